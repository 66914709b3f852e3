"""Discussions and pull requests: `/api/{type}s/{id}/discussions[/{num}[/...]]`."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from hver.api.deps import ActorDep, HubDep, load_repo, repo_type_from_plural
from hver.api.util import iso, parse_json, query_bool, read_json
from hver.community import pulls, threads
from hver.core import diff as core_diff
from hver.core import gating
from hver.core.accounts import Actor
from hver.core.hub import Hub
from hver.core.markdown import render_markdown
from hver.db.models import Account, Discussion, DiscussionEvent, Repo
from hver.errors import BadRequest

router = APIRouter()
BASE = "/api/{plural}/{ns}/{name}/discussions"


def _author(accounts: dict[int, Account], author_id: int | None) -> dict[str, Any]:
    account = accounts.get(author_id) if author_id is not None else None
    if account is None:
        return {}
    return {"author": {"name": account.name, "fullname": account.fullname or account.name,
                       "type": account.kind, "avatarUrl": f"/avatars/{account.name}"}}


def thread_json(repo: Repo, thread: Discussion, accounts: dict[int, Account]) -> dict[str, Any]:
    return {"num": thread.num, "title": thread.title, "status": thread.status,
            "isPullRequest": thread.is_pr, "createdAt": iso(thread.created_at),
            "pinned": False, "locked": False,
            "repo": {"name": repo.repo_id, "type": repo.type},
            **_author(accounts, thread.author_id)}


def event_json(event: DiscussionEvent, accounts: dict[int, Account]) -> dict[str, Any]:
    data: dict[str, Any] = dict(event.data)
    if event.type == "comment":
        view = threads.comment_view(event)
        data = {"edited": view["edited"], "hidden": view["hidden"],
                "numEdits": view["numEdits"], "editors": [], "reactions": [],
                "latest": {"raw": view["raw"], "html": render_markdown(view["raw"]),
                           "updatedAt": view["updatedAt"],
                           "author": {"name": view["author"]}},
                "history": [{"raw": v["raw"], "updatedAt": v["updatedAt"],
                             "author": {"name": v.get("author")}} for v in view["history"]]}
    return {"id": event.public_id, "type": event.type, "createdAt": iso(event.created_at),
            "data": data, **_author(accounts, event.author_id)}


def _num(raw: str) -> int:
    return threads.parse_num(raw)


def _repo(hub: Hub, actor: Actor | None, plural: str, ns: str, name: str) -> Repo:
    return load_repo(hub, actor, repo_type_from_plural(plural), ns, name)


def _page(request: Request) -> int:
    raw = request.query_params.get("p", "0")
    if not re.fullmatch(r"[0-9]{1,7}", raw):
        raise BadRequest(f"Invalid page {raw!r}.")
    return int(raw)


@router.get(BASE)
async def list_discussions(request: Request, plural: str, ns: str, name: str, hub: HubDep,
                           actor: ActorDep) -> Any:
    q = request.query_params
    page = _page(request)

    def run() -> dict[str, Any]:
        repo = _repo(hub, actor, plural, ns, name)
        with hub.db.read() as session:
            found = threads.list_threads(session, repo, q.get("type", "all"),
                                         q.get("status", "all"), q.get("author"), page)
            accounts = threads.names(session, {t.author_id for t in found.threads})
            return {"discussions": [thread_json(repo, t, accounts) for t in found.threads],
                    "count": found.count, "start": found.start,
                    "numClosedDiscussions": None}

    return await run_in_threadpool(run)


@router.post(BASE)
async def create_discussion(request: Request, plural: str, ns: str, name: str, hub: HubDep,
                            actor: ActorDep) -> Any:
    body = await read_json(request, "Body must be JSON: {\"title\": ...}.")
    if not isinstance(body, dict):
        raise BadRequest("Body must be a JSON object.")
    title, description = body.get("title"), body.get("description") or ""
    if not isinstance(description, str):
        raise BadRequest("'description' must be a string.")

    def run() -> dict[str, Any]:
        repo = _repo(hub, actor, plural, ns, name)
        if body.get("pullRequest") is True:
            thread = pulls.open_pull_request(hub, actor, repo, threads.check_title(title),
                                             description)
            return {"num": thread.num, "pullRequest": True}
        with hub.db.write() as session:
            thread = threads.open_thread(session, actor, repo, threads.check_title(title),
                                         description)
            return {"num": thread.num, "pullRequest": False}

    return await run_in_threadpool(run)


@router.get(BASE + "/{num}")
async def discussion_details(request: Request, plural: str, ns: str, name: str, num: str,
                             hub: HubDep, actor: ActorDep) -> Any:
    n = _num(num)
    with_diff = query_bool(request, "diff")

    def run() -> dict[str, Any]:
        repo = _repo(hub, actor, plural, ns, name)
        with hub.db.read() as session:
            thread = threads.get_thread(session, repo, n)
            found = threads.events(session, thread)
            accounts = threads.names(session, {thread.author_id}
                                     | {e.author_id for e in found})
            out = thread_json(repo, thread, accounts)
            out["events"] = [event_json(e, accounts) for e in found]
            if thread.is_pr:
                # A diff shows file content: on a gated repo, to those with access only.
                _pull_details(hub, repo, thread, out,
                              with_diff and gating.has_access(session, actor, repo))
            return out

    return await run_in_threadpool(run)


def _pull_details(hub: Hub, repo: Repo, thread: Discussion, out: dict[str, Any],
                  with_diff: bool) -> None:
    changes: dict[str, Any] = {"base": thread.target_branch}
    if thread.merge_commit is not None:
        changes["mergeCommitId"] = thread.merge_commit
    out["changes"] = changes
    out["filesWithConflicts"] = pulls.conflicting_files(hub, repo, thread)
    if with_diff:
        found = pulls.changes(hub, repo, thread)
        out["diff"] = core_diff.patch_text(found) if found is not None else ""


async def _optional_json(request: Request) -> dict[str, Any]:
    """A JSON object body, or {} when there is none (merge and hide may send nothing)."""
    if request.headers.get("content-length") == "0" or request.method == "GET":
        return {}
    raw = await request.body()
    if not raw.strip():
        return {}
    body = parse_json(raw, "Body must be JSON.")
    if not isinstance(body, dict):
        raise BadRequest("Body must be a JSON object.")
    return body


async def _change(request: Request, plural: str, ns: str, name: str, hub: Hub,
                  actor: Actor | None, key: str, act: Any) -> Any:
    """Read an optional JSON body, then run `act(session, repo, body)` in one write."""
    body = await _optional_json(request)

    def run() -> dict[str, Any]:
        repo = _repo(hub, actor, plural, ns, name)
        with hub.db.write() as session:
            event = act(session, repo, body)
            accounts = threads.names(session, {event.author_id})
            return {key: event_json(event, accounts)}

    return await run_in_threadpool(run)


@router.post(BASE + "/{num}/comment")
async def comment(request: Request, plural: str, ns: str, name: str, num: str, hub: HubDep,
                  actor: ActorDep) -> Any:
    n = _num(num)

    def act(session: Session, repo: Repo, body: dict[str, Any]) -> DiscussionEvent:
        return threads.comment(session, actor, repo, n, body.get("comment"))

    return await _change(request, plural, ns, name, hub, actor, "newMessage", act)


@router.post(BASE + "/{num}/title")
async def title(request: Request, plural: str, ns: str, name: str, num: str, hub: HubDep,
                actor: ActorDep) -> Any:
    n = _num(num)

    def act(session: Session, repo: Repo, body: dict[str, Any]) -> DiscussionEvent:
        return threads.rename(session, actor, repo, n, body.get("title"))

    return await _change(request, plural, ns, name, hub, actor, "newTitle", act)


@router.post(BASE + "/{num}/status")
async def status(request: Request, plural: str, ns: str, name: str, num: str, hub: HubDep,
                 actor: ActorDep) -> Any:
    n = _num(num)

    def act(session: Session, repo: Repo, body: dict[str, Any]) -> DiscussionEvent:
        return threads.set_status(session, actor, repo, n, body.get("status"),
                                  body.get("comment"))

    return await _change(request, plural, ns, name, hub, actor, "newStatus", act)


@router.post(BASE + "/{num}/comment/{comment_id}/edit")
async def edit_comment(request: Request, plural: str, ns: str, name: str, num: str,
                       comment_id: str, hub: HubDep, actor: ActorDep) -> Any:
    n = _num(num)

    def act(session: Session, repo: Repo, body: dict[str, Any]) -> DiscussionEvent:
        return threads.edit_comment(session, actor, repo, n, comment_id, body.get("content"))

    return await _change(request, plural, ns, name, hub, actor, "updatedComment", act)


@router.post(BASE + "/{num}/comment/{comment_id}/hide")
async def hide_comment(request: Request, plural: str, ns: str, name: str, num: str,
                       comment_id: str, hub: HubDep, actor: ActorDep) -> Any:
    n = _num(num)

    def act(session: Session, repo: Repo, body: dict[str, Any]) -> DiscussionEvent:
        return threads.hide_comment(session, actor, repo, n, comment_id)

    return await _change(request, plural, ns, name, hub, actor, "updatedComment", act)


@router.post(BASE + "/{num}/merge")
async def merge(request: Request, plural: str, ns: str, name: str, num: str, hub: HubDep,
                actor: ActorDep) -> Any:
    n = _num(num)
    body = await _optional_json(request)
    text = body.get("comment")
    if text is not None and not isinstance(text, str):
        raise BadRequest("'comment' must be a string.")

    def run() -> dict[str, Any]:
        repo = _repo(hub, actor, plural, ns, name)
        sha = pulls.merge(hub, actor, repo, n, text)
        return {"success": True, "mergeCommitId": sha}

    return await run_in_threadpool(run)
