"""`/resolve/{rev}/{path}`: file content, the heart of every download."""

from __future__ import annotations

import functools
import mimetypes
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_plus

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor

from hver.api.deps import (
    base_url,
    first_of_a_kind,
    get_actor,
    get_hub,
    get_signer,
    load_repo,
    param,
)
from hver.api.gating import require_file_access
from hver.api.util import FILE_HEADERS, INLINE_IMAGE_TYPES, RangeNotSatisfiable, parse_range
from hver.api.xet import read_token_url
from hver.core import access
from hver.core import repos as core_repos
from hver.core import tree as core_tree
from hver.core.accounts import Actor
from hver.core.caches import MAX_FILE_BYTES, CachedFile, loose_ref, repo_key, revision_ref
from hver.core.hub import Hub
from hver.core.objects import HeldObject, held_object
from hver.core.tree import FileInfo
from hver.db.models import Repo
from hver.errors import NotFound
from hver.mirror import Mirror, MirrorUnavailable
from hver.names import RepoType, validate_path

router = APIRouter()
# One file per repo type counts as "a download" (the Hub counts config.json for models):
# once per HEAD, which Hub clients send before every download, or per GET from clients
# that send no HEAD first (no `X-HF-Download-Counter` header).
COUNTED_FILES = {RepoType.model: "config.json", RepoType.dataset: "README.md"}


@dataclass
class _Found:
    repo_pk: int
    storage_key: str
    repo_id: str
    commit: str
    info: FileInfo
    data: bytes | None  # the content of a file kept in git
    xet_hash: str | None  # an LFS file stored as Xet chunks


def _lookup(hub: Hub, actor: Actor | None, repo_type: RepoType, ns: str, name: str,
            revision: str, path: str, counts: bool, site: str) -> _Found:
    repo = load_repo(hub, actor, repo_type, ns, name)
    require_file_access(hub, actor, repo, site, path)
    git = hub.git.open(repo.storage_key)
    commit = core_tree.resolve_revision(git, revision)
    info = core_tree.get_file(git, commit, path)
    data = git.blob(info.oid) if info.lfs is None else None
    # A commit never changes: what it holds at `path` is kept (small content too).
    hub.caches.files.put((repo.storage_key, commit, path), CachedFile(
        info, data if data is not None and len(data) <= MAX_FILE_BYTES else None))
    xet_hash = None
    if info.lfs is not None:
        holdings = hub.caches.holdings
        stamp = holdings.stamp()  # before the read, see hver.core.stamps
        obj = held_object(hub, repo.id, info.lfs.oid, info.lfs.size)
        pending = False
        if hub.mirror is not None:
            if obj is not None:  # a hit, if the repo is a mirror's (its quota's LRU)
                hub.mirror.read(repo, info.lfs.oid, info.lfs.size, counts)
            else:  # a mirrored repo's, on first read
                obj, pending = _mirrored(hub, hub.mirror, repo, info.lfs.oid,
                                         info.lfs.size, commit, path)
        if obj is None:
            raise NotFound(f"The content of {path} is not stored in this repo.",
                           code="EntryNotFound")
        if not pending:
            holdings.put((repo.id, info.lfs.oid, info.lfs.size), obj, stamp)
        xet_hash = obj.xet_hash
    if counts and COUNTED_FILES.get(repo_type) == path:
        core_repos.count_download(hub, repo.id)
    return _Found(repo.id, repo.storage_key, repo.repo_id, commit, info, data, xet_hash)


MIRROR_WAIT_S = 2.0  # how long a resolve waits for a mirror's fetch before it streams


def _mirrored(hub: Hub, mirror: Mirror, repo: Repo, oid: str, size: int, commit: str,
              path: str) -> tuple[HeldObject | None, bool]:
    """A mirrored repo's large file that is not here yet: fetched now from the upstream.
    A small one is held once the resolve answers (Xet clients then get its Xet hash); a
    big one is answered while it arrives (its `/_lfs/objects` URL streams it as it is
    written, `hver.api.lfs`): (the file, True). (None, False): the upstream has no such
    file."""
    part = mirror.start(repo, oid, size, (commit, path))
    if part is not None and not part.wait_done(MIRROR_WAIT_S):
        return HeldObject(oid, size, None), True  # in flight: not for the caches
    obj = held_object(hub, repo.id, oid, size)
    if obj is None and part is not None and part.error is not None:
        raise MirrorUnavailable("The upstream hub did not send this file; try again later.")
    return obj, False


def _from_memory(hub: Hub, actor: Actor | None, repo_type: RepoType, ns: str, name: str,
                 revision: str, path: str, counts: bool) -> _Found | None:
    """`_lookup` from the caches alone, on the event loop: no thread, no query, no git
    object read; two small ref file reads. None whenever something is not cached or is
    not plain (a gated repo, a lagging index, a packed or symbolic ref, a big git file):
    `_lookup` then decides, and answers every error."""
    key = repo_key(repo_type.value, param(ns), param(name))
    hit = hub.caches.repos.get(key) if key is not None else None
    if hit is None:
        return None
    repo = hit[0]
    if repo.gated or not access.can_read(actor, repo) or (
            hub.mirror is not None and hub.mirror.due(repo)):
        return None
    repo_dir = hub.caches.repo_dir(hub.git, repo.storage_key)
    head = loose_ref(repo_dir, f"refs/heads/{core_repos.DEFAULT_BRANCH}")
    if head is None or head != repo.sha:
        return None  # `load_repo` brings the index up to date
    commit = head if revision == core_repos.DEFAULT_BRANCH else revision_ref(repo_dir, revision)
    if commit is None:
        return None
    entry = hub.caches.files.get((repo.storage_key, commit, path))
    if entry is None:
        return None
    info = entry.info
    xet_hash = None
    if info.lfs is not None:
        obj = hub.caches.holdings.get((repo.id, info.lfs.oid, info.lfs.size))
        if obj is None:
            return None
        xet_hash = obj.xet_hash
        if hub.mirror is not None:  # a dictionary write, for a mirror's quota
            hub.mirror.read(repo, info.lfs.oid, info.lfs.size, counts)
    elif entry.data is None:
        return None  # too big to keep: read from git in a thread
    if counts and COUNTED_FILES.get(repo_type) == path:
        core_repos.count_download(hub, repo.id)
    return _Found(repo.id, repo.storage_key, repo.repo_id, commit, info, entry.data, xet_hash)


@functools.lru_cache(maxsize=4096)
def _validate_path(path: str) -> None:
    """`validate_path`, remembered for the paths that pass (downloads repeat them)."""
    validate_path(path)


def _handler(repo_type: RepoType) -> Any:
    # The request alone as a parameter: FastAPI then validates no parameters and solves no
    # dependencies, a third of a cached download's time.
    async def resolve(request: Request) -> Any:
        ns, name, revision, path = (request.path_params[k]
                                    for k in ("ns", "name", "revision", "path"))
        hub, signer = get_hub(request), get_signer(request)
        actor = await get_actor(request)
        path = param(path)
        _validate_path(path)
        counts = request.method == "HEAD" or "x-hf-download-counter" not in request.headers
        revision = param(revision)
        found = _from_memory(hub, actor, repo_type, ns, name, revision, path, counts)
        if found is None:
            key = ("resolve", repo_type, ns.lower(), name.lower(), revision, path)
            async with first_of_a_kind(key) as first:
                if not first:
                    found = _from_memory(hub, actor, repo_type, ns, name, revision, path,
                                         counts)
                if found is None:
                    found = await run_in_threadpool(
                        _lookup, hub, actor, repo_type, ns, name, revision, path, counts,
                        base_url(request))
        commit, info, data = found.commit, found.info, found.data
        headers = FILE_HEADERS | {"X-Repo-Commit": commit, "Accept-Ranges": "bytes",
                   "Access-Control-Expose-Headers":
                   "X-Repo-Commit, X-Linked-Etag, X-Linked-Size, ETag, Content-Range, "
                   "X-Xet-Hash, Link"}
        filename = path.rsplit("/", 1)[-1]
        if info.lfs is not None:
            headers |= {"ETag": f'"{info.lfs.oid}"', "X-Linked-Etag": f'"{info.lfs.oid}"',
                        "X-Linked-Size": str(info.lfs.size)}
            if found.xet_hash is not None:
                token_url = read_token_url(request, repo_type, found.repo_id, commit)
                headers |= {"X-Xet-Hash": found.xet_hash,
                            "Link": f'<{token_url}>; rel="xet-auth"'}
                if request.method == "HEAD":  # all a Xet client needs; no redirect to follow
                    return Response(status_code=200, headers=headers | {
                        "Content-Length": str(info.lfs.size)})
            exp, sig = signer.sign("download", info.lfs.oid, commit, found.repo_pk,
                                   found.storage_key)
            # As urlencode() writes it; the other values are digits and hex.
            query = (f"commit={commit}&repo={found.repo_pk}&filename={quote_plus(filename)}"
                     f"&exp={exp}&sig={quote_plus(sig)}")
            location = f"{base_url(request)}/_lfs/objects/{info.lfs.oid}?{query}"
            return RedirectResponse(location, status_code=302, headers=headers)
        assert data is not None
        headers["ETag"] = f'"{info.oid}"'
        headers["Content-Disposition"] = (
            f"inline; filename*=UTF-8''{quote(filename)}; filename=\"{quote(filename)}\""
        )
        media = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        if media.startswith("text/") or filename.endswith((".json", ".md", ".txt", ".yaml")):
            media = "text/plain; charset=utf-8"
        elif media not in INLINE_IMAGE_TYPES:  # svg, xhtml, xml, pdf...: never rendered
            media = "application/octet-stream"
        try:
            rng = parse_range(request.headers.get("range"), len(data))
        except RangeNotSatisfiable:
            return Response(status_code=416, headers=headers | {
                "Content-Range": f"bytes */{len(data)}"})
        status = 200
        if rng is not None:
            start, end = rng
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
            data = data[start:end]
            status = 206
        headers["Content-Length"] = str(len(data))
        body = b"" if request.method == "HEAD" else data
        resp = Response(body, status_code=status, headers=headers, media_type=media)
        resp.headers["Content-Length"] = str(len(data))
        return resp

    return resolve


class _NotApiOrXet(Convertor[str]):
    """A first path segment that is neither `api` nor `xet`: no route before these has a
    path that also matches a download's then (`early_router`)."""

    regex = r"(?!(?:api|xet)/)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("hver_not_api", _NotApiOrXet())
# The same routes again, matched before every other router (`hver.app`): matching walks
# the routes in order, and downloads, the most frequent request, would otherwise be
# tried against some hundred API routes first. Only paths no earlier route could take
# match here (a model's namespace segment is not `api` or `xet`; every other GET or HEAD
# route before `router` is under /api/ or /xet/, or has fewer segments); the rest still
# reach `router` at its place.
early_router = APIRouter()

for _t in RepoType:
    _tail = "{name}/resolve/{revision}/{path:path}"
    router.add_api_route(f"/{_t.url_prefix}{{ns}}/{_tail}", _handler(_t),
                         methods=["GET", "HEAD"])
    _ns = "{ns}" if _t.url_prefix else "{ns:hver_not_api}"
    early_router.add_api_route(f"/{_t.url_prefix}{_ns}/{_tail}", _handler(_t),
                               methods=["GET", "HEAD"], include_in_schema=False)
