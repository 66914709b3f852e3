"""Repo info (`model_info` & co) and listings (`list_models` & co)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from hver.api.deps import ActorDep, HubDep, load_repo, param, repo_type_from_plural
from hver.api.util import cursor, iso, next_link, query_bool
from hver.core import access
from hver.core import repos as core_repos
from hver.core.accounts import Actor
from hver.core.hub import Hub
from hver.core.lru import Lru
from hver.core.tree import FileInfo, Files, files_at, resolve_revision
from hver.db.models import Repo
from hver.errors import BadRequest
from hver.names import RepoType

router = APIRouter()
MAX_PAGE = 1000


def repo_summary(repo: Repo, full: bool = False, card: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "_id": str(repo.id),
        "id": repo.repo_id,
        "author": repo.namespace,
        "private": repo.private,
        "gated": repo.gated or False,
        "disabled": False,
        "downloads": repo.downloads,
        "likes": repo.likes,
        "tags": list(repo.tags or []),
        "createdAt": iso(repo.created_at),
        "lastModified": iso(repo.last_modified),
    }
    if repo.type == "model":
        out["modelId"] = repo.repo_id
        out["pipeline_tag"] = repo.pipeline_tag
        out["library_name"] = repo.library_name
    if full:
        out["sha"] = repo.sha
    if card and repo.card_data is not None:
        out["cardData"] = repo.card_data
    return out


def sibling(f: FileInfo, blobs: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"rfilename": f.path}
    if blobs:
        out["size"] = f.size
        out["blobId"] = f.oid
        if f.lfs is not None:
            out["lfs"] = {"size": f.lfs.size, "sha256": f.lfs.oid, "pointerSize": f.pointer_size}
    return out


# (commit, blobs) -> the encoded `siblings` list, up to 64 MB in all: encoding 100,000
# files takes longer than the rest of the answer; a commit never changes.
_siblings = Lru[tuple[str, bool], bytes](capacity=64 * 2**20, weight=len)


def _encode(value: Any) -> bytes:
    # As FastAPI's JSONResponse encodes.
    return json.dumps(value, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode()


def siblings_json(files: Files, commit: str, blobs: bool) -> bytes:
    """The `siblings` of a commit, encoded once per commit."""
    hit = _siblings.get((commit, blobs))
    if hit is None:
        hit = _siblings.put((commit, blobs), _encode([sibling(f, blobs) for f in files.files]))
    return hit


def repo_info(hub: Hub, actor: Actor | None, repo_type: RepoType, ns: str, name: str,
              revision: str | None, blobs: bool) -> tuple[dict[str, Any], bytes]:
    """The repo's info without its `siblings`, and those encoded, apart: a big repo's file
    list is encoded once per commit, not on every call."""
    repo = load_repo(hub, actor, repo_type, ns, name)
    git = hub.git.open(repo.storage_key)
    sha = resolve_revision(git, revision or core_repos.DEFAULT_BRANCH)
    files = files_at(git, sha)
    out = repo_summary(repo, full=True, card=True)
    out["sha"] = sha
    if sha != repo.sha:  # another revision: its own card, not the default branch's
        idx = core_repos.card_index(git, sha, repo.type)
        out["cardData"], out["tags"] = idx.card_data, idx.tags
        if repo_type is RepoType.model:
            out["pipeline_tag"], out["library_name"] = idx.pipeline_tag, idx.library_name
    out["usedStorage"] = files.total_size
    if out.get("cardData") is None:
        out["cardData"] = {}
    if repo_type is RepoType.model:
        out["spaces"] = []
        if "config.json" in files.paths:
            out["config"] = {}
    if repo_type is RepoType.space:
        sdk = out["cardData"].get("sdk")
        out["sdk"] = sdk
        out["runtime"] = {"stage": "NO_APP_FILE", "hardware": None}
    return out, siblings_json(files, sha, blobs)


async def _info(request: Request, plural: str, ns: str, name: str, revision: str | None,
                hub: Hub, actor: Actor | None) -> Any:
    repo_type = repo_type_from_plural(plural)
    out, siblings = await run_in_threadpool(
        repo_info, hub, actor, repo_type, ns, name, revision, query_bool(request, "blobs")
    )
    expand = request.query_params.getlist("expand")
    if expand:
        keep = {"_id", "id", *expand}
        out = {k: v for k, v in out.items() if k in keep}
    body = _encode(out)
    if not expand or "siblings" in expand:
        body = b"".join((body[:-1], b',"siblings":' if len(body) > 2 else b'"siblings":',
                         siblings, b"}"))
    return Response(body, media_type="application/json")


@router.get("/api/{plural}/{ns}/{name}")
async def info(request: Request, plural: str, ns: str, name: str, hub: HubDep,
               actor: ActorDep) -> Any:
    return await _info(request, plural, ns, name, None, hub, actor)


@router.get("/api/{plural}/{ns}/{name}/revision/{revision}")
async def info_at(request: Request, plural: str, ns: str, name: str, revision: str,
                  hub: HubDep, actor: ActorDep) -> Any:
    return await _info(request, plural, ns, name, param(revision), hub, actor)


@router.get("/api/{plural}/{ns}/{name}/auth-check")
async def auth_check(plural: str, ns: str, name: str, hub: HubDep, actor: ActorDep) -> Any:
    await run_in_threadpool(load_repo, hub, actor, repo_type_from_plural(plural), ns, name)
    return {}


@router.get("/api/{plural}/{ns}/{name}/auth-check/write")
async def auth_check_write(plural: str, ns: str, name: str, hub: HubDep,
                           actor: ActorDep) -> Any:
    repo = await run_in_threadpool(
        load_repo, hub, actor, repo_type_from_plural(plural), ns, name
    )
    access.require_write(actor, repo)
    return {}


@router.get("/api/{plural}")
async def list_repos(request: Request, plural: str, hub: HubDep, actor: ActorDep) -> Any:
    repo_type = repo_type_from_plural(plural)
    q = request.query_params
    try:
        limit = min(int(q.get("limit", MAX_PAGE)), MAX_PAGE)
        direction = int(q.get("direction", -1))
    except ValueError:
        raise BadRequest("'limit' and 'direction' must be integers.") from None
    if limit <= 0:
        raise BadRequest("'limit' must be positive.")
    start = cursor(request)
    full = query_bool(request, "full")
    expand = q.getlist("expand")
    card = query_bool(request, "cardData") or full or "cardData" in expand
    filters = list(q.getlist("filter"))
    for key, prefix in (("pipeline_tag", ""), ("library", ""), ("language", "language:"),
                        ("license", "license:")):
        filters.extend(f"{prefix}{v}" for v in q.getlist(key))

    def run() -> list[dict[str, Any]]:
        with hub.db.read() as session:
            rows = core_repos.list_repos(
                session, actor, repo_type, search=q.getlist("search"), author=q.get("author"),
                filters=filters, sort=q.get("sort"), direction=direction, offset=start,
                limit=limit + 1,
            )
        return [repo_summary(r, full=full, card=card) for r in rows]

    items = await run_in_threadpool(run)
    headers = {}
    if len(items) > limit:
        items = items[:limit]
        headers["Link"] = next_link(request, start + limit)
    if expand:
        keep = {"_id", "id", *expand}
        items = [{k: v for k, v in it.items() if k in keep} for it in items]
    return JSONResponse(items, headers=headers)
