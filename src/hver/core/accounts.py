"""Users, organizations and API tokens. Only a sha256 of each token is stored."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from hver.db.models import Account, Membership, Token
from hver.errors import BadRequest, Conflict, NotFound, Unauthorized
from hver.names import validate_namespace

TOKEN_PREFIX = "hf_"
ROLES = ("read", "write")
ORG_ROLES = ("read", "write", "admin")


@dataclass(frozen=True)
class Actor:
    """Who makes a request: a user and the role of the token they used."""

    id: int
    name: str
    is_admin: bool
    token_role: str
    token_name: str
    email: str | None = None
    fullname: str | None = None
    orgs: dict[str, str] = field(default_factory=dict)  # org name -> role

    @property
    def can_write(self) -> bool:
        return self.token_role == "write"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def has_users(session: Session) -> bool:
    return session.scalar(select(Account.id).where(Account.kind == "user").limit(1)) is not None


def get_account(session: Session, name: str) -> Account | None:
    return session.scalar(select(Account).where(Account.name == name))


def _new_account(session: Session, name: str, kind: str, **fields: object) -> Account:
    validate_namespace(name)
    if session.scalar(select(Account.id).where(Account.name.ilike(name))) is not None:
        raise Conflict(f"The name {name!r} is already taken.")
    account = Account(name=name, kind=kind, **fields)
    session.add(account)
    session.flush()
    return account


def create_user(
    session: Session, name: str, email: str | None = None, is_admin: bool = False,
    fullname: str | None = None,
) -> Account:
    return _new_account(session, name, "user", email=email, is_admin=is_admin, fullname=fullname)


def create_org(session: Session, name: str, owner: str) -> Account:
    user = get_account(session, owner)
    if user is None or user.kind != "user":
        raise NotFound(f"No user named {owner!r}.")
    org = _new_account(session, name, "org")
    session.add(Membership(org_id=org.id, user_id=user.id, role="admin"))
    return org


def add_member(session: Session, org_name: str, user_name: str, role: str) -> None:
    if role not in ORG_ROLES:
        raise BadRequest(f"Invalid role {role!r}: one of {', '.join(ORG_ROLES)}.")
    org, user = get_account(session, org_name), get_account(session, user_name)
    if org is None or org.kind != "org":
        raise NotFound(f"No organization named {org_name!r}.")
    if user is None or user.kind != "user":
        raise NotFound(f"No user named {user_name!r}.")
    existing = session.get(Membership, (org.id, user.id))
    if existing is None:
        session.add(Membership(org_id=org.id, user_id=user.id, role=role))
    else:
        existing.role = role


def create_token(session: Session, user_name: str, role: str = "write", name: str = "") -> str:
    """Make a token and return its secret, the only time it is ever available."""
    if role not in ROLES:
        raise BadRequest(f"Invalid token role {role!r}: one of {', '.join(ROLES)}.")
    user = get_account(session, user_name)
    if user is None or user.kind != "user":
        raise NotFound(f"No user named {user_name!r}.")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(30).replace("-", "A").replace("_", "z")
    session.add(
        Token(user_id=user.id, name=name or f"token-{secrets.token_hex(3)}", role=role,
              token_hash=hash_token(secret))
    )
    return secret


def authenticate(session: Session, token: str) -> Actor:
    """The actor a token stands for; Unauthorized when it is unknown."""
    row = session.scalar(select(Token).where(Token.token_hash == hash_token(token)))
    if row is None:
        raise Unauthorized("Invalid credentials in Authorization header", code="InvalidToken")
    user = session.get(Account, row.user_id)
    if user is None:
        raise Unauthorized("Invalid credentials in Authorization header", code="InvalidToken")
    return actor_for(session, user, row.role, row.name)


def actor_for(session: Session, user: Account, token_role: str, token_name: str) -> Actor:
    """The actor for `user` acting with a token of `token_role`, with their org roles."""
    orgs = {
        name: role
        for name, role in session.execute(
            select(Account.name, Membership.role)
            .join(Membership, Membership.org_id == Account.id)
            .where(Membership.user_id == user.id)
        ).tuples().all()
    }
    return Actor(
        id=user.id, name=user.name, is_admin=user.is_admin, token_role=token_role,
        token_name=token_name, email=user.email, fullname=user.fullname, orgs=orgs,
    )

