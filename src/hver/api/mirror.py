"""The mirror's administration over HTTP (site admins): what `hver mirror status`,
`add` and `sync` do on the command line. Adding and syncing fetch large files, which
takes as long as they take: the request brings the repo in (or catches it up) and
answers 202; the files come in the background, and status shows them arrive."""

from __future__ import annotations

import logging
import threading
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from hver.api.deps import ActorDep, HubDep, param, repo_type_from_plural
from hver.api.util import read_json
from hver.core import access
from hver.core import repos as core_repos
from hver.core.hub import Hub
from hver.errors import BadRequest, NotFound, RepoNotFound
from hver.mirror import Mirror, ahead

router = APIRouter()
log = logging.getLogger("hver.mirror")


def _mirror(hub: Hub) -> Mirror:
    if hub.mirror is None:
        raise NotFound("This hub mirrors no upstream hub (HVER_UPSTREAM_URL is not set).")
    return hub.mirror


@router.get("/api/admin/mirror")
async def status(hub: HubDep, actor: ActorDep) -> Any:
    """Every mirrored repo (as `hver mirror status --json`) and the totals."""
    access.require_site_admin(actor)
    mirror = _mirror(hub)

    def run() -> dict[str, Any]:
        rows = ahead.status(mirror)
        return {"repos": rows, "totals": ahead.totals(mirror, rows)}

    return await run_in_threadpool(run)


def _strings(body: dict[str, Any], key: str) -> list[str] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise BadRequest(f"{key!r} must be a list of glob patterns.")
    return value


@router.post("/api/admin/mirror/{plural}/{ns}/{name}")
async def add(request: Request, plural: str, ns: str, name: str, hub: HubDep,
              actor: ActorDep) -> Any:
    """`hver mirror add`: body `{"revision": "main", "include": [globs], "exclude":
    [globs]}` (all optional)."""
    access.require_site_admin(actor)
    mirror = _mirror(hub)
    repo_type = repo_type_from_plural(plural)
    body = await read_json(request) if await request.body() else {}
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    revision = body.get("revision")
    if revision is not None and (not isinstance(revision, str) or not revision):
        raise BadRequest("'revision' must be a branch, tag or commit id.")
    include, exclude = _strings(body, "include"), _strings(body, "exclude")
    ns, name = param(ns), param(name)

    def bring_in() -> str:
        with hub.db.read() as session:
            repo = core_repos.find_repo(session, repo_type, ns, name)
        if repo is None:
            mirror.find(repo_type, ns, name)  # RepoNotFound, MirrorUnavailable
            with hub.db.read() as session:
                repo = core_repos.find_repo(session, repo_type, ns, name)
        if repo is None or repo.mirror_upstream is None:
            raise RepoNotFound()
        return repo.repo_id

    repo_id = await run_in_threadpool(bring_in)
    _background(f"add {repo_type.value} {repo_id}", ahead.add, mirror, repo_type, ns, name,
                revision, include, exclude)
    return JSONResponse({"id": repo_id, "type": repo_type.value,
                         "revision": revision or core_repos.DEFAULT_BRANCH,
                         "status": "fetching"}, status_code=202)


@router.post("/api/admin/mirror/{plural}/{ns}/{name}/sync")
async def sync(plural: str, ns: str, name: str, hub: HubDep, actor: ActorDep) -> Any:
    """`hver mirror sync` of one mirrored repo."""
    access.require_site_admin(actor)
    mirror = _mirror(hub)
    repo_type = repo_type_from_plural(plural)
    ns, name = param(ns), param(name)

    def find() -> Any:
        with hub.db.read() as session:
            repo = core_repos.find_repo(session, repo_type, ns, name)
        if repo is None or repo.mirror_upstream is None:
            raise RepoNotFound()
        return repo

    repo = await run_in_threadpool(find)
    _background(f"sync {repo.type} {repo.repo_id}", ahead.sync, mirror, repo)
    return JSONResponse({"id": repo.repo_id, "type": repo.type, "status": "syncing"},
                        status_code=202)


def _background(what: str, work: Any, *args: Any) -> None:
    def run() -> None:
        try:
            work(*args)
        except Exception:
            log.exception("mirror: %s failed", what)

    threading.Thread(target=run, name=f"mirror {what}", daemon=True).start()
