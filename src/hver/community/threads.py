"""Discussion threads and their events, and who may change them.

As on the Hub: whoever may read a repo sees its threads (a private repo's stay as
invisible as the repo); anyone signed in with a token that may write discussions
(`access.require_contribute`) opens threads and comments; a thread's author and the
repo's writers rename it and close or reopen it; a comment's author edits it, and its
author or the repo's writers hide it. A hidden comment's text is kept but never shown.
Comments are markdown, rendered and sanitised as cards are (`core.markdown`).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hver.core import access
from hver.core.accounts import Actor
from hver.db.models import Account, Discussion, DiscussionEvent, Repo, utcnow
from hver.errors import BadRequest, Forbidden, HverError, NotFound

MAX_TITLE = 200
MAX_COMMENT = 65_536
PAGE_SIZE = 50
HIDDEN_TEXT = "This comment has been hidden"
KINDS = ("all", "discussion", "pull_request")
STATUS_FILTERS = ("all", "open", "closed")


@dataclass(frozen=True)
class Page:
    threads: list[Discussion]
    count: int
    start: int


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_NUM = re.compile(r"[1-9][0-9]{0,8}")


def parse_num(raw: str) -> int:
    """A thread number from a URL: ASCII digits, 1 to 999999999."""
    if not _NUM.fullmatch(raw):
        raise BadRequest(f"Invalid discussion number {raw!r}.")
    return int(raw)


def check_title(title: object) -> str:
    if not isinstance(title, str) or not title.strip():
        raise BadRequest("A title is required.")
    title = title.strip()
    if len(title) > MAX_TITLE:
        raise BadRequest(f"The title is longer than {MAX_TITLE} characters.")
    if _CONTROL.search(title) or "\n" in title or "\r" in title or "\t" in title:
        raise BadRequest("A title is one line of text, without control characters.")
    return title


def title_from(summary: str) -> str:
    """A pull request's title from a commit summary: its first line, cut to fit."""
    line = _CONTROL.sub("", summary.strip().split("\n", 1)[0]).replace("\t", " ").strip()
    return line[:MAX_TITLE] or "Update files"


def text_from(description: str) -> str:
    """A pull request's first comment from a commit description, cut to fit."""
    return _CONTROL.sub("", description)[:MAX_COMMENT]


def check_text(text: object, what: str = "comment") -> str:
    if not isinstance(text, str) or not text.strip():
        raise BadRequest(f"The {what} is empty.")
    if len(text) > MAX_COMMENT:
        raise BadRequest(f"The {what} is longer than {MAX_COMMENT} characters.")
    if _CONTROL.search(text):
        raise BadRequest(f"The {what} holds control characters.")
    return text.strip()


# -- reading --------------------------------------------------------------------------------


def list_threads(session: Session, repo: Repo, kind: str = "all", status: str = "all",
                 author: str | None = None, page: int = 0,
                 page_size: int = PAGE_SIZE) -> Page:
    """A page of the repo's threads, newest first. The repo was loaded for its reader."""
    if kind not in KINDS:
        raise BadRequest(f"'type' must be one of {', '.join(KINDS)}.")
    if status not in STATUS_FILTERS:
        raise BadRequest(f"'status' must be one of {', '.join(STATUS_FILTERS)}.")
    query = select(Discussion).where(Discussion.repo_id == repo.id)
    if kind != "all":
        query = query.where(Discussion.is_pr == (kind == "pull_request"))
    if status == "open":
        query = query.where(Discussion.status.in_(("open", "draft")))
    elif status == "closed":
        query = query.where(Discussion.status.in_(("closed", "merged")))
    if author is not None:
        query = query.join(Account, Account.id == Discussion.author_id).where(
            Account.name == author)
    count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    start = max(page, 0) * page_size
    rows = session.scalars(query.order_by(Discussion.num.desc())
                           .offset(start).limit(page_size)).all()
    return Page(list(rows), count, start)


def get_thread(session: Session, repo: Repo, num: int) -> Discussion:
    row = session.scalar(select(Discussion).where(Discussion.repo_id == repo.id,
                                                  Discussion.num == num))
    if row is None:
        raise NotFound(f"Discussion #{num} not found in {repo.repo_id}.",
                       code="DiscussionNotFound")
    return row


def events(session: Session, thread: Discussion) -> list[DiscussionEvent]:
    return list(session.scalars(select(DiscussionEvent).where(
        DiscussionEvent.discussion_id == thread.id).order_by(DiscussionEvent.id)).all())


def names(session: Session, ids: set[int | None]) -> dict[int, Account]:
    """The accounts behind author ids (a deleted account is absent)."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return {a.id: a for a in session.scalars(select(Account).where(Account.id.in_(wanted)))}


def comment_view(event: DiscussionEvent) -> dict[str, Any]:
    """A comment's current text, as readers may see it: a hidden comment shows none."""
    data = event.data
    latest = data["history"][0]
    raw = HIDDEN_TEXT if data.get("hidden") else latest["raw"]
    return {"raw": raw, "updatedAt": latest["updatedAt"], "author": latest.get("author"),
            "edited": len(data["history"]) > 1, "hidden": bool(data.get("hidden")),
            "numEdits": len(data["history"]) - 1,
            "history": [] if data.get("hidden") else data["history"]}


# -- writing --------------------------------------------------------------------------------


def open_thread(session: Session, actor: Actor | None, repo: Repo, title: str,
                description: str, *, is_pr: bool = False, status: str = "open",
                target_branch: str | None = None) -> Discussion:
    """A new thread with its first comment; its number is the repo's next one."""
    access.require_contribute(actor, repo)
    assert actor is not None
    title = check_title(title)
    last = session.scalar(select(func.max(Discussion.num)).where(Discussion.repo_id == repo.id))
    thread = Discussion(repo_id=repo.id, num=(last or 0) + 1, is_pr=is_pr, title=title,
                        status=status, author_id=actor.id, target_branch=target_branch,
                        created_at=utcnow(), updated_at=utcnow())
    session.add(thread)
    session.flush()
    if description.strip():
        _comment(session, actor, thread, check_text(description, "description"))
    return thread


def add_event(session: Session, actor: Actor | None, thread: Discussion, kind: str,
              data: dict[str, Any]) -> DiscussionEvent:
    event = DiscussionEvent(public_id=secrets.token_hex(12), discussion_id=thread.id,
                            type=kind, author_id=actor.id if actor else None,
                            created_at=utcnow(), data=data)
    session.add(event)
    thread.updated_at = utcnow()
    session.flush()
    return event


def _comment(session: Session, actor: Actor, thread: Discussion, text: str) -> DiscussionEvent:
    version = {"raw": text, "updatedAt": _now(), "author": actor.name}
    return add_event(session, actor, thread, "comment", {"history": [version], "hidden": False})


def comment(session: Session, actor: Actor | None, repo: Repo, num: int,
            text: object) -> DiscussionEvent:
    access.require_contribute(actor, repo)
    assert actor is not None
    return _comment(session, actor, get_thread(session, repo, num), check_text(text))


def rename(session: Session, actor: Actor | None, repo: Repo, num: int,
           title: object) -> DiscussionEvent:
    thread = get_thread(session, repo, num)
    _require_author_or_writer(actor, repo, thread.author_id)
    new = check_title(title)
    old, thread.title = thread.title, new
    return add_event(session, actor, thread, "title-change", {"from": old, "to": new})


def set_status(session: Session, actor: Actor | None, repo: Repo, num: int, status: object,
               text: object = None) -> DiscussionEvent:
    """Close or reopen a thread (a draft pull request is opened by setting it "open")."""
    if status not in ("open", "closed"):
        raise BadRequest("'status' must be 'open' or 'closed'.")
    thread = get_thread(session, repo, num)
    _require_author_or_writer(actor, repo, thread.author_id)
    assert actor is not None
    if thread.status == "merged":
        raise BadRequest("This pull request is merged: its status cannot change.")
    if text is not None and str(text).strip():
        _comment(session, actor, thread, check_text(text))
    thread.status = str(status)
    return add_event(session, actor, thread, "status-change", {"status": thread.status})


def edit_comment(session: Session, actor: Actor | None, repo: Repo, num: int,
                 comment_id: str, content: object) -> DiscussionEvent:
    access.require_contribute(actor, repo)
    assert actor is not None
    event = _find_comment(session, repo, num, comment_id)
    if event.author_id != actor.id:
        raise Forbidden("Only its author may edit a comment.")
    if event.data.get("hidden"):
        raise BadRequest("A hidden comment cannot be edited.")
    version = {"raw": check_text(content), "updatedAt": _now(), "author": actor.name}
    event.data = {**event.data, "history": [version, *event.data["history"]]}
    return event


def hide_comment(session: Session, actor: Actor | None, repo: Repo, num: int,
                 comment_id: str) -> DiscussionEvent:
    """Hide a comment for good: its author or the repo's writers."""
    event = _find_comment(session, repo, num, comment_id)
    _require_author_or_writer(actor, repo, event.author_id)
    assert actor is not None
    event.data = {**event.data, "hidden": True, "hiddenBy": actor.name}
    return event


def _find_comment(session: Session, repo: Repo, num: int, comment_id: str) -> DiscussionEvent:
    thread = get_thread(session, repo, num)
    event = session.scalar(select(DiscussionEvent).where(
        DiscussionEvent.discussion_id == thread.id,
        DiscussionEvent.public_id == comment_id.lower()))
    if event is None or event.type != "comment":
        raise NotFound(f"Comment {comment_id} not found.", code="CommentNotFound")
    return event


def _require_author_or_writer(actor: Actor | None, repo: Repo, author_id: int | None) -> None:
    """Renaming, closing and reopening a thread, hiding a comment: its author (who may
    still contribute) or the repo's writers."""
    access.require_contribute(actor, repo)
    assert actor is not None
    if author_id != actor.id and not access.can_write(actor, repo):
        raise Forbidden(f"Only its author or a writer of {repo.repo_id} may do this.")


def may_change(actor: Actor | None, repo: Repo, author_id: int | None) -> bool:
    """`_require_author_or_writer` as a question (to offer the buttons, or not)."""
    try:
        _require_author_or_writer(actor, repo, author_id)
    except HverError:
        return False
    return True


def _now() -> str:
    return iso(utcnow())


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
