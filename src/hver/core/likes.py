"""Likes: a user's favourite repos, and who liked a repo. Private repos stay invisible.

A like is the user's public act, so it takes what writing as them takes (as on the Hub): a
write token, a fine-grained token that may write as the user (a `user` scope with
`repo.write`), or a signed-in browser session; never a read token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from hver.core import access
from hver.core.accounts import WRITE_PERMISSION, Actor, get_account
from hver.db.models import Account, Like, Repo
from hver.errors import Forbidden, NotFound, Unauthorized


@dataclass(frozen=True)
class Liked:
    repo: Repo
    at: datetime


def set_like(session: Session, actor: Actor | None, repo: Repo, liked: bool) -> int:
    """Like or unlike (idempotent); returns the repo's like count."""
    if actor is None:
        raise Unauthorized("You must be authenticated to like a repo.")
    access.require_read(actor, repo)
    if not access.token_allows_namespace(actor, actor.name, WRITE_PERMISSION):
        raise Forbidden("Liking a repo needs a write token.")
    row = session.get(Like, (actor.id, repo.id))
    if liked and row is None:
        session.add(Like(user_id=actor.id, repo_id=repo.id))
    elif not liked and row is not None:
        session.delete(row)
    session.flush()
    count = session.scalar(select(func.count()).where(Like.repo_id == repo.id)) or 0
    session.execute(update(Repo).where(Repo.id == repo.id).values(likes=count))
    return count


def liked_by(session: Session, actor: Actor | None, user: str) -> list[Liked]:
    """What `user` liked, newest first, as far as `actor` may see those repos."""
    account = get_account(session, user)
    if account is None or account.kind != "user":
        raise NotFound(f"No user named {user!r}.", code="UserNotFound")
    return _liked(session, actor, account)


def count_liked(session: Session, viewer: Actor | None, account: Account) -> int:
    """How many repos `account` liked that `viewer` may see: a private repo the viewer
    cannot read is not counted either."""
    return len(_liked(session, viewer, account))


def _liked(session: Session, viewer: Actor | None, account: Account) -> list[Liked]:
    rows = session.execute(
        select(Repo, Like.created_at).join(Like, Like.repo_id == Repo.id)
        .where(Like.user_id == account.id).order_by(Like.created_at.desc())
    ).tuples().all()
    return [Liked(repo, at) for repo, at in rows if access.can_read(viewer, repo)]


def likers(session: Session, repo: Repo) -> list[Account]:
    """Who liked a repo (the caller checked it may read it), first likers first."""
    return list(session.scalars(
        select(Account).join(Like, Like.user_id == Account.id)
        .where(Like.repo_id == repo.id).order_by(Like.created_at)))
