"""Repo info (`model_info` & co) and listings (`list_models` & co)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from hver.api.deps import (
    ActorDep,
    HubDep,
    cached_repo,
    first_of_a_kind,
    get_actor,
    get_hub,
    load_repo,
    param,
    repo_type_from_plural,
)
from hver.api.util import cursor, iso, next_link, query_bool
from hver.core import access
from hver.core import repos as core_repos
from hver.core.accounts import Actor
from hver.core.caches import MAX_INFO_BODY, CachedCommit, revision_ref
from hver.core.cards import CardIndex
from hver.core.hub import Hub
from hver.core.lru import Lru
from hver.core.tree import FileInfo, Files, files_at, resolve_revision
from hver.db.models import Repo
from hver.errors import BadRequest
from hver.mirror import read_fields
from hver.names import RepoType

router = APIRouter()
MAX_PAGE = 1000


def repo_summary(repo: Repo, full: bool = False, card: bool = False) -> dict[str, Any]:
    return summary((repo.id, repo.type, repo.namespace, repo.name, repo.private, repo.gated,
                    repo.downloads, repo.likes, repo.tags, repo.created_at,
                    repo.last_modified, repo.pipeline_tag, repo.library_name, repo.sha,
                    repo.card_data), full, card)


def summary(row: Sequence[Any], full: bool = False, card: bool = False) -> dict[str, Any]:
    """A repo as listings show it, from its values in the order of `core.repos.LISTED`
    (then its card, for `card`), the JSON ones parsed; `repo_info` adds to it."""
    (pk, kind, namespace, name, private, gated, downloads, likes, tags, created, modified,
     pipeline_tag, library_name, sha) = row[:14]
    repo_id = f"{namespace}/{name}"
    out: dict[str, Any] = {
        "_id": str(pk),
        "id": repo_id,
        "author": namespace,
        "private": private,
        "gated": gated or False,
        "disabled": False,
        "downloads": downloads,
        "likes": likes,
        "tags": list(tags or []),
        "createdAt": iso(created),
        "lastModified": iso(modified),
    }
    if kind == "model":
        out["modelId"] = repo_id
        out["pipeline_tag"] = pipeline_tag
        out["library_name"] = library_name
    if full:
        out["sha"] = sha
    if card and row[14] is not None:
        out["cardData"] = row[14]
    return out


def _parsed(row: tuple[Any, ...]) -> list[Any]:
    """A row of `core.repos.LISTED` with its JSON text (tags, card) parsed, as the ORM would."""
    values = list(row)
    values[8] = _loads(values[8])  # tags
    if len(values) > 14:
        values[14] = _loads(values[14])  # the card
    return values


def _loads(text: Any) -> Any:
    return json.loads(text) if isinstance(text, str) else text


# (row, full, card) -> the encoded summary: the same row (every value the summary shows,
# as stored) always makes the same bytes, and a listing's rows mostly repeat between calls.
# A row changed (a download counted, a card committed) is another key. Up to 16 MB, the
# key (its row) counted too: about 1.1 KB over the bytes (~11,000 summaries).
_listed = Lru[tuple[tuple[Any, ...], bool, bool], bytes](
    capacity=16 * 2**20, weight=lambda body: len(body) + 1100)


def listed_json(rows: Sequence[tuple[Any, ...]], full: bool, card: bool) -> bytes:
    """The JSON list of the rows' summaries, as `_encode` of the list would make it."""
    parts = []
    for row in rows:
        key = (row, full, card)
        hit = _listed.get(key)
        if hit is None:
            hit = _listed.put(key, _encode(summary(_parsed(row), full, card)))
        parts.append(hit)
    return b"[" + b",".join(parts) + b"]"


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


# As FastAPI's JSONResponse encodes; one encoder, not one made per call as `json.dumps`
# makes for any but its default options (a third of encoding a small answer).
_encoder = json.JSONEncoder(ensure_ascii=False, allow_nan=False, indent=None,
                            separators=(",", ":"))


def _encode(value: Any) -> bytes:
    return _encoder.encode(value).encode()


def siblings_json(files: Files, commit: str, blobs: bool) -> bytes:
    """The `siblings` of a commit, encoded once per commit."""
    hit = _siblings.get((commit, blobs))
    if hit is None:
        hit = _siblings.put((commit, blobs), _encode([sibling(f, blobs) for f in files.files]))
    return hit


def info_fields(repo: Repo, downloads: int, sha: str, commit: CachedCommit,
                card: CardIndex | None, mirror: dict[str, Any] | None = None
                ) -> dict[str, Any]:
    """The repo's info at commit `sha`, without its `siblings`: the live parts from the
    repo row, the rest from the commit's summary and, for a commit other than the default
    branch's head (`repo.sha`), that commit's own card."""
    out = repo_summary(repo, full=True, card=True)
    out["downloads"] = downloads
    out["sha"] = sha
    if card is not None:  # another revision: its own card, not the default branch's
        out["cardData"], out["tags"] = card.card_data, card.tags
        if repo.type == RepoType.model.value:
            out["pipeline_tag"], out["library_name"] = card.pipeline_tag, card.library_name
    out["usedStorage"] = commit.used_storage
    if out.get("cardData") is None:
        out["cardData"] = {}
    if repo.type == RepoType.model.value:
        out["spaces"] = []
        if commit.has_config:
            out["config"] = {}
    if repo.type == RepoType.space.value:
        sdk = out["cardData"].get("sdk")
        out["sdk"] = sdk
        out["runtime"] = {"stage": "NO_APP_FILE", "hardware": None}
    if mirror is not None:  # a mirrored repo: where from, and how fresh
        out["mirror"] = mirror
    return out


def repo_info(hub: Hub, actor: Actor | None, repo_type: RepoType, ns: str, name: str,
              revision: str | None, blobs: bool) -> tuple[dict[str, Any], bytes]:
    """The repo's info without its `siblings`, and those encoded, apart: a big repo's file
    list is encoded once per commit, not on every call. Leaves in the caches what
    `_from_memory` needs to answer the same next time."""
    repo = load_repo(hub, actor, repo_type, ns, name)
    git = hub.git.open(repo.storage_key)
    sha = resolve_revision(git, revision or core_repos.DEFAULT_BRANCH)
    files = files_at(git, sha)
    key = (repo.storage_key, sha)
    commit = hub.caches.commits.put(
        key, CachedCommit(files.total_size, "config.json" in files.paths))
    card = None
    if sha != repo.sha:
        card = hub.caches.cards.get(key) or hub.caches.cards.put(
            key, core_repos.card_index(git, sha, repo.type))
    mirror = read_fields(hub, repo) if repo.mirror_upstream is not None else None
    return (info_fields(repo, repo.downloads, sha, commit, card, mirror),
            siblings_json(files, sha, blobs))


def _from_memory(hub: Hub, actor: Actor | None, repo_type: RepoType, ns: str, name: str,
                 revision: str | None, blobs: bool, expand: list[str]) -> bytes | None:
    """The body `repo_info` and `_render` make, from the caches alone, on the event loop:
    no thread, no query, no git object read; a ref file read or two. None whenever
    something is not cached or not plain (an access `load_repo` must decide, a lagging
    index, a packed, symbolic or annotated ref, a commit not yet seen in this repo):
    `repo_info` then answers, errors included."""
    found = cached_repo(hub, actor, repo_type, ns, name)
    if found is None:
        return None
    repo, downloads = found
    mirror = None
    if repo.mirror_upstream is not None:
        # How fresh it is, as this process knows it; never kept in a cached body.
        mirror = hub.mirror.describe(repo) if hub.mirror is not None else None
        if mirror is None:
            return None
    sha: str | None = repo.sha  # `cached_repo` read the default branch: it is this
    if revision is not None and revision != core_repos.DEFAULT_BRANCH:
        sha = revision_ref(hub.caches.repo_dir(hub.git, repo.storage_key), revision)
        if sha is None:
            return None
    assert sha is not None
    # The row object itself in the key: one read again (a change, or its time to live
    # run out) is another object, which never meets the bodies made from the old one.
    key = (repo, downloads, sha, blobs, tuple(expand))
    body = hub.caches.info_bodies.get(key) if mirror is None else None
    if body is not None:
        return body
    # Found in this repo before (an entry is keyed by the repo): a commit id asked of
    # another repo is never answered from here.
    commit = hub.caches.commits.get((repo.storage_key, sha))
    if commit is None:
        return None
    card = None
    if sha != repo.sha:
        card = hub.caches.cards.get((repo.storage_key, sha))
        if card is None:
            return None
    siblings = _siblings.get((sha, blobs))
    if siblings is None:
        return None
    body = _render(info_fields(repo, downloads, sha, commit, card, mirror), siblings, expand)
    if len(body) <= MAX_INFO_BODY and mirror is None:
        hub.caches.info_bodies.put(key, body)
    return body


def _render(out: dict[str, Any], siblings: bytes, expand: list[str]) -> bytes:
    if expand:
        keep = {"_id", "id", *expand}
        out = {k: v for k, v in out.items() if k in keep}
    body = _encode(out)
    if not expand or "siblings" in expand:
        body = b"".join((body[:-1], b',"siblings":' if len(body) > 2 else b'"siblings":',
                         siblings, b"}"))
    return body


async def _info(request: Request, repo_type: RepoType, ns: str, name: str,
                revision: str | None, hub: Hub, actor: Actor | None) -> Response:
    blobs = query_bool(request, "blobs")
    expand = request.query_params.getlist("expand")
    body = _from_memory(hub, actor, repo_type, ns, name, revision, blobs, expand)
    if body is None:
        key = ("info", repo_type, ns.lower(), name.lower(), revision, blobs)
        async with first_of_a_kind(key) as first:
            if not first:  # another request just filled the caches
                body = _from_memory(hub, actor, repo_type, ns, name, revision, blobs, expand)
            if body is None:
                out, siblings = await run_in_threadpool(
                    repo_info, hub, actor, repo_type, ns, name, revision, blobs)
                body = _render(out, siblings, expand)
    return Response(body, media_type="application/json")


@router.get("/api/{plural}/{ns}/{name}")
async def info(request: Request, plural: str, ns: str, name: str, hub: HubDep,
               actor: ActorDep) -> Any:
    return await _info(request, repo_type_from_plural(plural), ns, name, None, hub, actor)


@router.get("/api/{plural}/{ns}/{name}/revision/{revision}")
async def info_at(request: Request, plural: str, ns: str, name: str, revision: str,
                  hub: HubDep, actor: ActorDep) -> Any:
    return await _info(request, repo_type_from_plural(plural), ns, name, param(revision),
                       hub, actor)


def _early(repo_type: RepoType, at_revision: bool) -> Any:
    # The request alone as a parameter: FastAPI then validates no parameters and solves
    # no dependencies (as `hver.api.resolve` does for downloads).
    async def info_early(request: Request) -> Response:
        p = request.path_params
        revision = param(p["revision"]) if at_revision else None
        return await _info(request, repo_type, p["ns"], p["name"], revision,
                           get_hub(request), await get_actor(request))

    return info_early


# The info routes again, matched before every other router (`hver.app`): `model_info` is
# one of the most frequent calls, and would otherwise be tried against some seventy
# routes first. No route before `router` takes a GET of these paths (the plural is
# spelled out; tests/test_info_cache.py checks that no earlier route matches them).
early_router = APIRouter()
for _t in RepoType:
    _base = f"/api/{_t.plural}/{{ns}}/{{name}}"
    early_router.add_api_route(_base, _early(_t, False), methods=["GET"],
                               include_in_schema=False)
    early_router.add_api_route(f"{_base}/revision/{{revision}}", _early(_t, True),
                               methods=["GET"], include_in_schema=False)


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
async def list_repos(request: Request, plural: str) -> Any:
    return await _list(request, repo_type_from_plural(plural))


async def _list(request: Request, repo_type: RepoType) -> Response:
    hub = get_hub(request)
    actor = await get_actor(request)
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

    def run() -> tuple[bytes, bool]:
        with hub.db.read() as session:
            rows = core_repos.list_rows(
                session, actor, repo_type,
                core_repos.LISTED_WITH_CARD if card else core_repos.LISTED,
                search=q.getlist("search"), author=q.get("author"), filters=filters,
                sort=q.get("sort"), direction=direction, offset=start, limit=limit + 1)
        more, rows = len(rows) > limit, rows[:limit]
        # Encoded here, off the event loop.
        if not expand:
            return listed_json(rows, full, card), more
        keep = {"_id", "id", *expand}
        return _encode([{k: v for k, v in summary(_parsed(r), full, card).items() if k in keep}
                        for r in rows]), more

    body, more = await run_in_threadpool(run)
    headers = {"Link": next_link(request, start + limit)} if more else None
    return Response(body, media_type="application/json", headers=headers)


def _early_list(repo_type: RepoType) -> Any:
    async def list_early(request: Request) -> Response:
        return await _list(request, repo_type)

    return list_early


# Listings too (`list_models` & co), as often called: matched before the other routers.
for _t in RepoType:
    early_router.add_api_route(f"/api/{_t.plural}", _early_list(_t), methods=["GET"],
                               include_in_schema=False)
