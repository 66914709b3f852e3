"""Users, organizations, passwords and API tokens.

Only a sha256 of each token is stored, and only an scrypt hash of each password.
Every change to accounts, memberships and tokens is written to the audit log in
the transaction that makes it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from hver.db.engine import QUIET
from hver.db.models import Account, Membership, Token, WebSession, utcnow
from hver.errors import BadRequest, Conflict, Forbidden, NotFound, Unauthorized
from hver.names import RepoType, split_repo_id, validate_namespace

if TYPE_CHECKING:
    from hver.core.caches import Stamped
    from hver.db.engine import Database

TOKEN_PREFIX = "hf_"
ROLES = ("read", "write")
FINE_GRAINED = "fineGrained"
ORG_ROLES = ("read", "write", "admin")
CLI_ACTOR = "@cli"  # the audit log's actor for the command line: no account can have this name

# The Hub's fine-grained permission names that hver enforces. `repo.write` implies
# `repo.content.read`; the others are accepted and shown but grant nothing yet.
READ_PERMISSION = "repo.content.read"
WRITE_PERMISSION = "repo.write"
DISCUSSION_PERMISSION = "discussion.write"
PERMISSIONS = (READ_PERMISSION, WRITE_PERMISSION, "repo.access.read", "repo.access.write",
               DISCUSSION_PERMISSION)
PERMISSION_SHORTHANDS = {"read": READ_PERMISSION, "write": WRITE_PERMISSION}
SCOPE_TYPES = ("repo", "org", "user")

# scrypt: n=2**14, r=8 takes 16 MiB and tens of milliseconds per hash.
_SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _SCRYPT_LEN = 2**14, 8, 1, 32
MIN_PASSWORD_LENGTH = 8
_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class TokenScope:
    """One entry of a fine-grained token: permissions on a repo, or on a namespace's repos."""

    type: str  # "repo" | "org" | "user"
    name: str  # "ns/name" for a repo, else the account name
    permissions: frozenset[str]
    repo_type: str = "model"  # repos only

    def covers(self, repo_type: str, namespace: str, name: str) -> bool:
        # Repo ids and account names are the same whatever their case (`core.repos.find_repo`).
        if self.type == "repo":
            return (self.repo_type == repo_type
                    and self.name.lower() == f"{namespace}/{name}".lower())
        return self.name.lower() == namespace.lower()

    def allows(self, permission: str) -> bool:
        if permission == READ_PERMISSION:
            return bool(self.permissions & {READ_PERMISSION, WRITE_PERMISSION})
        return permission in self.permissions

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TokenScope:
        return cls(type=str(raw["type"]), name=str(raw["name"]),
                   permissions=frozenset(str(p) for p in raw.get("permissions", [])),
                   repo_type=str(raw.get("repoType", "model")))

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "name": self.name,
                               "permissions": sorted(self.permissions)}
        if self.type == "repo":
            out["repoType"] = self.repo_type
        return out


@dataclass(frozen=True)
class Actor:
    """Who makes a request: a user and the role of the token they used.

    `scopes` is None for read and write tokens; a fine-grained token reaches only
    what its scopes name (`hver.core.access` enforces it).
    """

    id: int
    name: str
    is_admin: bool
    token_role: str
    token_name: str
    email: str | None = None
    fullname: str | None = None
    orgs: dict[str, str] = field(default_factory=dict)  # org name -> role
    scopes: tuple[TokenScope, ...] | None = None
    token_id: int | None = None
    token_created_at: datetime | None = None

    @property
    def can_write(self) -> bool:
        """Whether the token may write at all (a fine-grained one: somewhere in its scopes)."""
        if self.scopes is not None:
            return any(s.allows(WRITE_PERMISSION) for s in self.scopes)
        return self.token_role == "write"

    @property
    def fine_grained(self) -> bool:
        return self.scopes is not None


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token: never its secret."""

    id: int
    user: str
    name: str
    role: str
    scopes: list[dict[str, Any]] | None
    created_at: datetime
    last_used_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": str(self.id), "name": self.name, "role": self.role, "scopes": self.scopes,
            "createdAt": _iso(self.created_at),
            "lastUsedAt": _iso(self.last_used_at) if self.last_used_at else None,
        }


def _iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def _audit(session: Session, actor: Actor | str | None, event: str, target: str | None,
           **details: Any) -> None:
    from hver.core import audit  # audit imports Actor from here

    audit.record(session, actor, event, target, **details)


# -- accounts -----------------------------------------------------------------------------------


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def has_users(session: Session) -> bool:
    return session.scalar(select(Account.id).where(Account.kind == "user").limit(1)) is not None


def get_account(session: Session, name: str) -> Account | None:
    """The user or organization of that name, whatever the case it is written in (names
    are unique whatever their case, as on the Hub); it keeps the casing it was given."""
    if not name.isascii():
        return None  # names are ASCII: no Unicode case folding may alias one
    return session.scalar(select(Account).where(func.lower(Account.name) == name.lower()))


def get_user(session: Session, name: str) -> Account:
    user = get_account(session, name)
    if user is None or user.kind != "user":
        raise NotFound(f"No user named {name!r}.")
    return user


def get_org(session: Session, name: str) -> Account:
    org = get_account(session, name)
    if org is None or org.kind != "org":
        raise NotFound(f"No organization named {name!r}.")
    return org


def _new_account(session: Session, name: str, kind: str, **fields: object) -> Account:
    validate_namespace(name)
    # Names are unique whatever their case (a plain comparison: `_` is no wildcard here).
    same = select(Account.id).where(func.lower(Account.name) == name.lower())
    if session.scalar(same) is not None:
        raise Conflict(f"The name {name!r} is already taken.")
    account = Account(name=name, kind=kind, **fields)
    session.add(account)
    session.flush()
    return account


def create_user(
    session: Session, name: str, email: str | None = None, is_admin: bool = False,
    fullname: str | None = None, *, password: str | None = None,
    actor: Actor | str | None = CLI_ACTOR,
) -> Account:
    password_hash = hash_password(password) if password is not None else None
    user = _new_account(session, name, "user", email=email, is_admin=is_admin,
                        fullname=fullname, password_hash=password_hash)
    _audit(session, actor, "user.create", name, admin=is_admin,
           password=password_hash is not None)
    return user


def set_disabled(session: Session, name: str, disabled: bool,
                 actor: Actor | str | None = CLI_ACTOR) -> None:
    """Disable a user (their tokens and password stop working at once) or enable them again."""
    user = get_user(session, name)
    user.disabled = disabled
    _audit(session, actor, "user.disable" if disabled else "user.enable", name)


def create_org(session: Session, name: str, owner: str,
               actor: Actor | str | None = CLI_ACTOR) -> Account:
    user = get_user(session, owner)
    org = _new_account(session, name, "org")
    session.add(Membership(org_id=org.id, user_id=user.id, role="admin"))
    _audit(session, actor, "org.create", name, owner=owner)
    return org


def create_mirror_namespace(session: Session, name: str, upstream: str) -> Account:
    """The namespace mirrored repos of an upstream namespace live in (`hver.mirror`): an
    org with no members, so that no local user has a role in it."""
    org = _new_account(session, name, "org", mirror_upstream=upstream)
    _audit(session, "@mirror", "org.create", name, upstream=upstream)
    return org


def _check_role(role: str) -> None:
    if role not in ORG_ROLES:
        raise BadRequest(f"Invalid role {role!r}: one of {', '.join(ORG_ROLES)}.")


def _keep_an_admin(session: Session, org: Account, leaving: Account) -> None:
    admins = session.scalar(select(func.count()).select_from(Membership).where(
        Membership.org_id == org.id, Membership.role == "admin",
        Membership.user_id != leaving.id))
    if not admins:
        raise Conflict(f"{leaving.name!r} is the last admin of {org.name!r}; "
                       "make another member admin first.")


def add_member(session: Session, org_name: str, user_name: str, role: str,
               actor: Actor | str | None = CLI_ACTOR) -> None:
    """Add a member, or change the role of one. A mirror's namespace has none: a role
    in it would bypass the gates of its mirrored repos."""
    _check_role(role)
    org, user = get_org(session, org_name), get_user(session, user_name)
    if org.mirror_upstream is not None:
        raise Forbidden(f"{org.name!r} mirrors a namespace of {org.mirror_upstream}: it has "
                        "no members.")
    existing = session.get(Membership, (org.id, user.id))
    if existing is None:
        session.add(Membership(org_id=org.id, user_id=user.id, role=role))
        _audit(session, actor, "org.member.add", org_name, user=user_name, role=role)
    elif existing.role != role:
        if existing.role == "admin":
            _keep_an_admin(session, org, user)
        _audit(session, actor, "org.member.role", org_name, user=user_name,
               role=role, previous=existing.role)
        existing.role = role


def set_member_role(session: Session, org_name: str, user_name: str, role: str,
                    actor: Actor | str | None = CLI_ACTOR) -> None:
    """Change the role of an existing member."""
    _check_role(role)
    org, user = get_org(session, org_name), get_user(session, user_name)
    if session.get(Membership, (org.id, user.id)) is None:
        raise NotFound(f"{user_name!r} is not a member of {org_name!r}.")
    add_member(session, org_name, user_name, role, actor)


def remove_member(session: Session, org_name: str, user_name: str,
                  actor: Actor | str | None = CLI_ACTOR) -> None:
    org, user = get_org(session, org_name), get_user(session, user_name)
    existing = session.get(Membership, (org.id, user.id))
    if existing is None:
        raise NotFound(f"{user_name!r} is not a member of {org_name!r}.")
    if existing.role == "admin":
        _keep_an_admin(session, org, user)
    session.delete(existing)
    _audit(session, actor, "org.member.remove", org_name, user=user_name, role=existing.role)


# -- passwords ----------------------------------------------------------------------------------


def hash_password(password: str) -> str:
    """`scrypt$n$r$p$salt$hash` (salt and hash in unpadded urlsafe base64)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise BadRequest(f"Passwords must have at least {MIN_PASSWORD_LENGTH} characters.")
    salt = secrets.token_bytes(16)
    digest = _scrypt(password, salt, _SCRYPT_N, _SCRYPT_R, _SCRYPT_P, _SCRYPT_LEN)
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    """Whether `password` matches a `hash_password` string; False for anything malformed."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = _unb64(digest)
        actual = _scrypt(password, _unb64(salt), int(n), int(r), int(p), len(expected))
    except ValueError:
        return False
    return hmac.compare_digest(actual, expected)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8", "surrogatepass"), salt=salt, n=n, r=r, p=p,
                          dklen=dklen, maxmem=256 * r * n + 1024 * 1024)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise ValueError("bad base64") from None


_DUMMY_HASH: str | None = None


def set_password(session: Session, name: str, password: str,
                 actor: Actor | str | None = CLI_ACTOR) -> None:
    user = get_user(session, name)
    user.password_hash = hash_password(password)
    # A new password ends every browser session signed in with the old one.
    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    _audit(session, actor, "user.password", name)


_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
MAX_FULLNAME_LENGTH = 200
MAX_EMAIL_LENGTH = 320


def update_profile(session: Session, name: str, fullname: str | None, email: str | None,
                   actor: Actor | str | None = CLI_ACTOR) -> Account:
    """Set a user's full name and email; blank clears them. BadRequest on a malformed email."""
    user = get_user(session, name)
    fullname = (fullname or "").strip() or None
    email = (email or "").strip() or None
    if fullname is not None and len(fullname) > MAX_FULLNAME_LENGTH:
        raise BadRequest(f"Full names have at most {MAX_FULLNAME_LENGTH} characters.")
    if email is not None and (len(email) > MAX_EMAIL_LENGTH or not _EMAIL.fullmatch(email)):
        raise BadRequest(f"{email!r} is not a valid email address.", code="InvalidEmail")
    if (fullname, email) != (user.fullname, user.email):
        user.fullname, user.email = fullname, email
        _audit(session, actor, "user.profile", name)
    return user


def set_org_fullname(session: Session, org_name: str, fullname: str | None,
                     actor: Actor | str | None = CLI_ACTOR) -> Account:
    """Set an organization's full name (what whoami and its profile show); blank clears it."""
    org = get_org(session, org_name)
    fullname = (fullname or "").strip() or None
    if fullname is not None and len(fullname) > MAX_FULLNAME_LENGTH:
        raise BadRequest(f"Full names have at most {MAX_FULLNAME_LENGTH} characters.")
    if fullname != org.fullname:
        org.fullname = fullname
        _audit(session, actor, "org.profile", org.name, fullname=fullname)
    return org


def verify_password(session: Session, name: str, password: str) -> Actor:
    """The user, acting with full (write) rights, if `password` is theirs and they are enabled.

    Unauthorized otherwise, with one message for every reason, and about the same
    time spent whether or not the user exists.
    """
    global _DUMMY_HASH
    user = get_account(session, name)
    stored = user.password_hash if user is not None and user.kind == "user" else None
    if stored is None:
        if _DUMMY_HASH is None:
            _DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
        check_password(password, _DUMMY_HASH)
        ok = False
    else:
        ok = check_password(password, stored)
    if not ok or user is None or user.disabled:
        raise Unauthorized("Invalid username or password.", code="InvalidCredentials")
    return actor_for(session, user, "write", "password")


def login(db: Database, name: str, password: str, source: str | None = None) -> Actor:
    """`verify_password`, with the attempt (success or failure) in the audit log."""
    try:
        with db.read() as session:
            actor = verify_password(session, name, password)
    except Unauthorized:
        with db.write() as session:
            _audit(session, None, "login.failure", name, source=source)
        raise
    with db.write() as session:
        _audit(session, actor, "login.success", name, source=source)
    return actor


# -- tokens -------------------------------------------------------------------------------------


def parse_scope(kind: str, spec: str, owner: str) -> TokenScope:
    """`NS/NAME:PERMS` for a repo (`datasets/NS/NAME`, `spaces/NS/NAME` for other types),
    `NAME:PERMS` for an org or the owner's own namespace (kind "org" or "user").

    PERMS is a comma-separated list of `read`, `write` or the Hub's permission names.
    """
    target, sep, perms_text = spec.rpartition(":")
    if not sep or not target:
        raise BadRequest(f"Invalid scope {spec!r}: expected NAME:PERMISSIONS.")
    repo_type = None
    if kind == "repo":
        first, _, rest = target.partition("/")
        if first in ("models", "datasets", "spaces") and rest.count("/") == 1:
            repo_type, target = RepoType.from_plural(first).value, rest
    elif kind in ("org", "user"):
        kind = "user" if target == owner else "org"
    return make_scope(kind, target, perms_text.split(","), repo_type)


def make_scope(kind: str, name: str, permissions: list[str],
               repo_type: str | None = None) -> TokenScope:
    """A checked scope: a repo (`ns/name`, of `repo_type`) or a namespace."""
    perms = parse_permissions(permissions)
    if kind == "repo":
        ns, repo_name = split_repo_id(name)
        return TokenScope("repo", f"{ns}/{repo_name}", perms,
                          RepoType.parse(repo_type).value)
    if kind in ("org", "user"):
        validate_namespace(name)
        return TokenScope(kind, name, perms)
    raise BadRequest(f"Invalid scope type {kind!r}: one of {', '.join(SCOPE_TYPES)}.")


def parse_permissions(items: list[str]) -> frozenset[str]:
    out = set()
    for item in (str(i).strip() for i in items):
        perm = PERMISSION_SHORTHANDS.get(item, item)
        if perm not in PERMISSIONS:
            raise BadRequest(f"Unknown permission {item!r}: read, write or one of "
                             f"{', '.join(PERMISSIONS)}.")
        out.add(perm)
    if not out:
        raise BadRequest("A scope needs at least one permission.")
    return frozenset(out)


def _check_scopes(session: Session, user: Account,
                  scopes: list[TokenScope]) -> list[dict[str, Any]]:
    if not scopes:
        raise BadRequest("A fine-grained token needs at least one scope.")
    for scope in scopes:
        if scope.type == "user" and scope.name != user.name:
            raise BadRequest("A 'user' scope can only name the token's own user.")
        if scope.type == "org":
            get_org(session, scope.name)
    return [s.to_json() for s in scopes]


def issue_token(session: Session, user_name: str, role: str = "write", name: str = "",
                scopes: list[TokenScope] | None = None,
                actor: Actor | str | None = CLI_ACTOR) -> tuple[TokenInfo, str]:
    """Make a token; returns what may be shown of it and its secret, the only time it is
    ever available."""
    if role not in (*ROLES, FINE_GRAINED):
        raise BadRequest(f"Invalid token role {role!r}: one of {', '.join(ROLES)} "
                         f"or {FINE_GRAINED}.")
    if scopes and role != FINE_GRAINED:
        raise BadRequest("Only fine-grained tokens have scopes.")
    user = get_user(session, user_name)
    scopes_json = _check_scopes(session, user, scopes or []) if role == FINE_GRAINED else None
    name = name or f"token-{secrets.token_hex(3)}"
    if len(name) > 100:
        raise BadRequest("Token names have at most 100 characters.")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(30).replace("-", "A").replace("_", "z")
    row = Token(user_id=user.id, name=name, role=role, scopes=scopes_json,
                token_hash=hash_token(secret), created_at=utcnow())
    session.add(row)
    session.flush()
    extra = {"scopes": scopes_json} if scopes_json is not None else {}
    _audit(session, actor, "token.create", user_name, token_id=row.id, token_name=name,
           role=role, **extra)
    return _info(row, user_name), secret


def create_token(session: Session, user_name: str, role: str = "write", name: str = "",
                 scopes: list[TokenScope] | None = None,
                 actor: Actor | str | None = CLI_ACTOR) -> str:
    """Make a token and return its secret, the only time it is ever available."""
    return issue_token(session, user_name, role, name, scopes, actor)[1]


def _info(row: Token, user_name: str) -> TokenInfo:
    return TokenInfo(id=row.id, user=user_name, name=row.name, role=row.role,
                     scopes=row.scopes, created_at=row.created_at,
                     last_used_at=row.last_used_at)


def list_tokens(session: Session, user_name: str) -> list[TokenInfo]:
    user = get_user(session, user_name)
    rows = session.scalars(select(Token).where(Token.user_id == user.id).order_by(Token.id))
    return [_info(row, user.name) for row in rows]


def revoke_token(session: Session, user_name: str, token: str,
                 actor: Actor | str | None = CLI_ACTOR) -> TokenInfo:
    """Delete one of a user's tokens, named by id or by name (which must then be unique)."""
    user = get_user(session, user_name)
    q = select(Token).where(Token.user_id == user.id)
    rows = list(session.scalars(q.where(Token.id == int(token)))) if token.isdigit() else []
    if not rows:
        rows = list(session.scalars(q.where(Token.name == token)))
    if not rows:
        raise NotFound(f"{user_name!r} has no token {token!r}.")
    if len(rows) > 1:
        raise Conflict(f"{user_name!r} has {len(rows)} tokens named {token!r}; revoke by id.")
    row = rows[0]
    info = _info(row, user.name)
    session.delete(row)
    _audit(session, actor, "token.revoke", user_name, token_id=row.id, token_name=row.name)
    return info


def authenticate(session: Session, token: str) -> Actor:
    """The actor a token stands for; Unauthorized when it is unknown or its user disabled."""
    # The lookup is by the sha256 of the secret: an index probe whose timing says nothing
    # about how much of a guess was right.
    row = session.scalar(select(Token).where(Token.token_hash == hash_token(token)))
    return _token_actor(session, row)


def actor_for_token_id(session: Session, token_id: int) -> Actor:
    """The actor of a token known by id (one a signed grant names): its user, role and
    scopes as they are now; Unauthorized once it is revoked or its user disabled."""
    return _token_actor(session, session.get(Token, token_id))


def _token_actor(session: Session, row: Token | None) -> Actor:
    user = session.get(Account, row.user_id) if row is not None else None
    if row is None or user is None or user.disabled:
        raise Unauthorized("Invalid credentials in Authorization header", code="InvalidToken")
    scopes = (tuple(TokenScope.from_json(s) for s in row.scopes or [])
              if row.role == FINE_GRAINED else None)
    actor = actor_for(session, user, row.role, row.name, scopes=scopes, token_id=row.id,
                      token_created_at=row.created_at)
    return actor


def cached_actor(cache: Stamped[str, Actor], token: str) -> Actor | None:
    """The actor of a token as `authenticate_token` last found it, while still valid."""
    return cache.get(hash_token(token))


def authenticate_token(db: Database, token: str,
                       cache: Stamped[str, Actor] | None = None) -> Actor:
    """`authenticate` in its own read transaction, then note the token's use (at most once a
    minute, so requests stay reads). With `cache`, the actor found is kept there, until a
    change to accounts, memberships or tokens (`hver.core.caches`)."""
    if cache is not None:
        stamp = cache.stamp()  # before the read: a change committed after it drops the entry
        actor = authenticate_token(db, token)
        cache.put(hash_token(token), actor, stamp)
        return actor
    with db.read() as session:
        actor = authenticate(session, token)
        row = session.get(Token, actor.token_id)
        stale = row is not None and (row.last_used_at is None
                                     or row.last_used_at < utcnow() - _TOUCH_EVERY)
    if stale:
        now = utcnow()
        with db.write() as session:
            session.execute(update(Token).where(
                Token.id == actor.token_id,
                (Token.last_used_at.is_(None)) | (Token.last_used_at < now - _TOUCH_EVERY),
            ).values(last_used_at=now), execution_options={QUIET: True})
    return actor


def actor_for(session: Session, user: Account, token_role: str, token_name: str, *,
              scopes: tuple[TokenScope, ...] | None = None, token_id: int | None = None,
              token_created_at: datetime | None = None) -> Actor:
    """The actor for `user` acting with a token of `token_role`, with their org roles."""
    orgs = {
        name: role
        for name, role in session.execute(
            select(Account.name, Membership.role)
            .join(Membership, Membership.org_id == Account.id)
            .where(Membership.user_id == user.id)
        ).all()
    }
    return Actor(
        id=user.id, name=user.name, is_admin=user.is_admin, token_role=token_role,
        token_name=token_name, email=user.email, fullname=user.fullname, orgs=orgs,
        scopes=scopes, token_id=token_id, token_created_at=token_created_at,
    )
