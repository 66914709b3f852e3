"""The Community tab: a repo's discussions and pull requests, a thread's page with its
comments (and, for a pull request, its commits and the diff against its base), and the
forms to open a thread, comment, close or reopen, and merge.

Forms go through `hver.web.session` (same origin, signed in, CSRF); every decision is
`hver.community`'s, as for the API. A private repo's threads are a 404 for outsiders.
A pull request's commits and diff show file content: on a gated repo, only to those with
access to its files.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from hver.api.deps import get_hub, load_repo
from hver.community import pulls, threads
from hver.core import access, gating
from hver.core import diff as core_diff
from hver.core import repos as core_repos
from hver.core.accounts import Actor
from hver.core.hub import Hub
from hver.core.markdown import render_markdown
from hver.db.models import Discussion
from hver.errors import BadRequest, Conflict, HverError
from hver.names import RepoType
from hver.web.pages import _common, _RepoView, human_size, render, repo_url
from hver.web.session import field, form_user, page_actor

router = APIRouter(include_in_schema=False)
STATUS_LABELS = {"open": "Open", "closed": "Closed", "merged": "Merged", "draft": "Draft"}


def _view(hub: Hub, actor: Actor | None, repo_type: RepoType, ns: str, name: str) -> _RepoView:
    repo = load_repo(hub, actor, repo_type, ns, name)
    return _RepoView(repo, repo_type, core_repos.DEFAULT_BRANCH, "",
                     repo_url(repo_type, repo.repo_id), admin=access.can_admin(actor, repo))


def _see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _num(raw: str) -> int:
    return threads.parse_num(raw)


# --- the list --------------------------------------------------------------------------------


def _list(repo_type: RepoType) -> tuple[Any, Any]:
    async def page(request: Request, ns: str, name: str) -> HTMLResponse:
        actor = await page_actor(request)
        hub = get_hub(request)
        status = request.query_params.get("status", "open")
        kind = request.query_params.get("type", "all")

        def run() -> dict[str, Any]:
            view = _view(hub, actor, repo_type, ns, name)
            with hub.db.read() as session:
                found = threads.list_threads(session, view.repo, kind, status,
                                             page_size=threads.PAGE_SIZE)
                names = threads.names(session, {t.author_id for t in found.threads})
            return {"view": view, "threads": found.threads, "count": found.count,
                    "authors": {i: a.name for i, a in names.items()}, "filter_status": status,
                    "kind": kind, "may_contribute": access.can_contribute(actor, view.repo)}

        context = await run_in_threadpool(run)
        return render("discussions.html", tab="community", labels=STATUS_LABELS,
                      values={}, error=None, **context, **_common(request))

    async def submit(request: Request, ns: str, name: str) -> Response:
        actor, form = await form_user(request)
        hub = get_hub(request)
        values = {k: field(form, k) for k in ("title", "description")}

        def run() -> tuple[_RepoView, int]:
            view = _view(hub, actor, repo_type, ns, name)
            with hub.db.write() as session:
                thread = threads.open_thread(session, actor, view.repo, values["title"],
                                             values["description"])
                return view, thread.num

        try:
            view, num = await run_in_threadpool(run)
        except BadRequest as exc:
            view = await run_in_threadpool(_view, hub, actor, repo_type, ns, name)
            return render("discussions.html", status=exc.status, tab="community", view=view,
                          threads=[], count=0, authors={}, filter_status="open", kind="all",
                          may_contribute=True, labels=STATUS_LABELS, values=values,
                          error=exc.message, **_common(request))
        return _see_other(f"{view.url}/discussions/{num}")

    return page, submit


# --- a thread ----------------------------------------------------------------------------------


def _thread_context(hub: Hub, actor: Actor | None, view: _RepoView,
                    thread: Discussion) -> dict[str, Any]:
    repo = view.repo
    with hub.db.read() as session:
        events = threads.events(session, thread)
        accounts = threads.names(session, {thread.author_id} | {e.author_id for e in events})
        files_visible = gating.has_access(session, actor, repo)
    shown = []
    for e in events:
        item: dict[str, Any] = {"event": e, "author": accounts[e.author_id].name
                                if e.author_id in accounts else "deleted"}
        if e.type == "comment":
            comment = threads.comment_view(e)
            item["comment"] = comment
            item["html"] = Markup(render_markdown(comment["raw"]))  # sanitized: the one safe HTML
        shown.append(item)
    context: dict[str, Any] = {
        "thread": thread, "events": shown, "writer": access.can_write(actor, repo),
        "author": accounts[thread.author_id].name if thread.author_id in accounts else "deleted",
        "may_contribute": access.can_contribute(actor, repo),
        "may_change": threads.may_change(actor, repo, thread.author_id),
        "files_visible": files_visible, "diff": None, "commits": [], "conflicts": [],
        "max_lines": core_diff.MAX_LINES, "max_files": core_diff.MAX_FILES,
        "max_blob": human_size(core_diff.MAX_BLOB_BYTES), "head": None,
    }
    if thread.is_pr and files_visible:
        context["diff"] = pulls.changes(hub, repo, thread)
        context["commits"] = pulls.commits(hub, repo, thread)
        context["conflicts"] = pulls.conflicting_files(hub, repo, thread)
        context["head"] = hub.git.open(repo.storage_key).ref(pulls.pr_ref(thread.num))
    return context


def _thread(repo_type: RepoType) -> Any:
    async def page(request: Request, ns: str, name: str, num: str) -> HTMLResponse:
        actor = await page_actor(request)
        return await _thread_page(request, actor, repo_type, ns, name, _num(num))

    return page


async def _thread_page(request: Request, actor: Actor | None, repo_type: RepoType, ns: str,
                       name: str, num: int, error: HverError | None = None) -> HTMLResponse:
    """A thread's page; with `error`, shown above it with its status (a refused form)."""
    hub = get_hub(request)

    def run() -> dict[str, Any]:
        view = _view(hub, actor, repo_type, ns, name)
        with hub.db.read() as session:
            thread = threads.get_thread(session, view.repo, num)
            session.expunge(thread)
        return {"view": view, **_thread_context(hub, actor, view, thread)}

    context = await run_in_threadpool(run)
    return render("discussion.html", status=error.status if error else 200, tab="community",
                  labels=STATUS_LABELS, error=error.message if error else None, **context,
                  **_common(request))


def _action(repo_type: RepoType, what: str) -> Any:
    """A thread form: `comment`, `status` (close or reopen) or `merge`."""

    async def submit(request: Request, ns: str, name: str, num: str) -> Response:
        actor, form = await form_user(request)
        hub = get_hub(request)
        n = _num(num)
        text = field(form, "comment")

        def run() -> _RepoView:
            view = _view(hub, actor, repo_type, ns, name)
            if what == "merge":
                pulls.merge(hub, actor, view.repo, n, text or None)
                return view
            with hub.db.write() as session:
                if what == "comment":
                    threads.comment(session, actor, view.repo, n, text)
                else:
                    threads.set_status(session, actor, view.repo, n, field(form, "status"),
                                       text or None)
            return view

        try:
            view = await run_in_threadpool(run)
        except (BadRequest, Conflict) as exc:
            return await _thread_page(request, actor, repo_type, ns, name, n, exc)
        return _see_other(f"{view.url}/discussions/{n}")

    return submit


def _add(path: str, endpoint: Any, method: str) -> None:
    router.add_api_route(path, endpoint, methods=[method], response_class=HTMLResponse)


def _routes() -> None:
    # Datasets and spaces first: `/datasets/x/discussions` is not the model `datasets/x`.
    for t in (RepoType.dataset, RepoType.space, RepoType.model):
        base = f"/{t.url_prefix}{{ns:hver_ns}}/{{name}}/discussions"
        list_page, create = _list(t)
        _add(base, list_page, "GET")
        _add(base, create, "POST")
        _add(f"{base}/{{num}}", _thread(t), "GET")
        for what in ("comment", "status", "merge"):
            _add(f"{base}/{{num}}/{what}", _action(t, what), "POST")


_routes()
