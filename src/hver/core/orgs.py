"""Profiles of users and organizations, and the members of an organization."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hver.core import access, likes
from hver.core.accounts import (
    WRITE_PERMISSION,
    Actor,
    add_member,
    get_account,
    get_org,
    get_user,
    remove_member,
    set_org_fullname,
)
from hver.db.models import Account, Membership, Repo
from hver.errors import Forbidden, NotFound, Unauthorized


@dataclass(frozen=True)
class Profile:
    account: Account
    repos: Counter[str]  # repo type -> how many the viewer can see
    likes: int  # the repos a user liked that the viewer can see
    orgs: list[Account]  # for a user: the organizations they belong to
    members: int  # for an organization


def profile(session: Session, viewer: Actor | None, name: str, kind: str) -> Profile:
    """The profile of a user or an organization, named in any case."""
    account = get_account(session, name)
    if account is None or account.kind != kind:
        raise NotFound(f"No {'user' if kind == 'user' else 'organization'} named {name!r}.",
                       code="UserNotFound" if kind == "user" else "OrgNotFound")
    repos = Counter(r.type for r in session.scalars(
                        select(Repo).where(Repo.namespace == account.name))
                    if access.can_read(viewer, r))
    orgs = list(session.scalars(select(Account).join(Membership, Membership.org_id == Account.id)
                                .where(Membership.user_id == account.id)
                                .order_by(Account.name))) if kind == "user" else []
    members = session.scalar(select(func.count()).where(Membership.org_id == account.id)) or 0
    liked = likes.count_liked(session, viewer, account)
    return Profile(account, repos, liked, orgs, members)


def members(session: Session, org: str) -> list[tuple[Account, str]]:
    """An organization's members and their roles, by name."""
    account = get_org(session, org)
    return list(session.execute(
        select(Account, Membership.role).join(Membership, Membership.user_id == Account.id)
        .where(Membership.org_id == account.id).order_by(Account.name)).tuples().all())


def _require_org_admin(actor: Actor | None, org: str) -> None:
    if actor is None:
        raise Unauthorized("You must be authenticated to manage an organization.")
    if not access.token_allows_namespace(actor, org, WRITE_PERMISSION):
        raise Forbidden(f"This token may not manage {org!r}.")
    if access.namespace_role(actor, org) != "admin":
        raise Forbidden(f"You must be an admin of {org!r} to manage it.")


def set_member(session: Session, actor: Actor | None, org: str, user: str, role: str) -> None:
    """An org admin (or site admin) adds a member or changes their role."""
    org = get_org(session, org).name
    _require_org_admin(actor, org)
    get_user(session, user)
    add_member(session, org, user, role, actor)


def set_fullname(session: Session, actor: Actor | None, org: str, fullname: str | None) -> None:
    """An org admin (or site admin) sets the organization's full name."""
    org = get_org(session, org).name
    _require_org_admin(actor, org)
    set_org_fullname(session, org, fullname, actor)


def fullnames(session: Session, names: Collection[str]) -> dict[str, str | None]:
    """The full names of the accounts named (those that exist), by name."""
    if not names:
        return {}
    rows = session.execute(select(Account.name, Account.fullname)
                           .where(Account.name.in_(list(names)))).tuples().all()
    return dict(rows)


def drop_member(session: Session, actor: Actor | None, org: str, user: str) -> None:
    org = get_org(session, org).name
    _require_org_admin(actor, org)
    remove_member(session, org, user, actor)
