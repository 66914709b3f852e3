"""Trees, paths-info, refs and commit history."""

from __future__ import annotations

import base64
import bisect
import json
import re
from collections.abc import Callable
from itertools import islice
from typing import Any, cast
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from hver.api.deps import ActorDep, HubDep, load_repo, param, repo_type_from_plural
from hver.api.util import cursor, iso_ts, next_link, query_bool, read_json
from hver.core import objects as core_objects
from hver.core import refs as core_refs
from hver.core import tree as core_tree
from hver.core.hub import Hub
from hver.core.lru import Lru
from hver.core.tree import FileInfo, Folder
from hver.errors import BadRequest
from hver.names import validate_path
from hver.storage.git import GitRepo

router = APIRouter()
PAGE = 1000
PAGE_EXPANDED = 50
MAX_PATHS_INFO = 1000


def tree_entry(f: FileInfo, xet: dict[str, str]) -> dict[str, Any]:
    """A file or directory entry; `xet` maps the sha256 of Xet-stored files to their hash."""
    if f.is_dir:
        return {"type": "directory", "oid": f.oid, "size": 0, "path": f.path}
    out: dict[str, Any] = {"type": "file", "oid": f.oid, "size": f.size, "path": f.path}
    if f.lfs is not None:
        out["lfs"] = {"oid": f.lfs.oid, "size": f.lfs.size, "pointerSize": f.pointer_size}
        if f.lfs.oid in xet:
            out["xetHash"] = xet[f.lfs.oid]
    return out


def _dumps(item: dict[str, Any]) -> bytes:
    """JSON as `JSONResponse` writes it, so a page joined from these is the same bytes."""
    return json.dumps(item, ensure_ascii=False, allow_nan=False, indent=None,
                      separators=(",", ":")).encode("utf-8")


# A folder or a file kept in git, as `_dumps(tree_entry(...))` writes it; the path given
# encoded by `_string`, what json.dumps(..., ensure_ascii=False) uses.
_string = json.encoder.encode_basestring
_FILE = '{{"type":"file","oid":"{}","size":{},"path":{}}}'.format
_DIR = '{{"type":"directory","oid":"{}","size":0,"path":{}}}'.format


class _EncodedFolders:
    """Each folder's entries as JSON, encoded once per folder object that `core.tree` keeps,
    from its columns (a few calls a folder, none in Python per entry): a page of a listing
    is then joined from slices. Keyed by the object's id, holding the object (an id is not
    reused while it lives). Large files are None, and their indexes kept: their `xetHash`
    is asked for on every page."""

    def __init__(self, capacity: int = 250_000) -> None:
        self._lru = Lru[int, tuple[Folder, list[str | None], list[int]]](
            capacity, weight=lambda v: len(v[1]) + 1)

    def of(self, folder: Folder) -> tuple[list[str | None], list[int]]:
        hit = self._lru.get(id(folder))
        if hit is None or hit[0] is not folder:
            cols = folder.columns
            paths = list(map(_string, folder.paths))
            encoded: list[str | None] = list(map(_FILE, cols.shas, cols.sizes, paths))
            for d in cols.folders:
                encoded[d] = _DIR(cols.shas[d], paths[d])
            for k in cols.lfs:
                encoded[k] = None
            hit = self._lru.put(id(folder), (folder, encoded, sorted(cols.lfs)))
        return hit[1], hit[2]

    def page(self, runs: list[core_tree.Run],
             lfs_files: Callable[[list[FileInfo]], dict[str, str]]) -> bytes:
        """The JSON array of the runs' entries; `lfs_files` gives the Xet hashes of the
        large files among them (asked once, for all of them)."""
        found = [(folder, i, j, *self.of(folder)) for folder, i, j in runs]
        large = [folder.entry(k) for folder, i, j, _enc, at in found
                 for k in at[bisect.bisect_left(at, i):bisect.bisect_left(at, j)]]
        xet = lfs_files(large) if large else {}
        parts: list[str] = []
        for folder, i, j, enc, at in found:
            if bisect.bisect_left(at, i) == bisect.bisect_left(at, j):  # no large file
                parts += cast("list[str]", enc[i:j])
                continue
            for k in range(i, j):
                raw = enc[k]
                parts.append(raw if raw is not None else
                             _dumps(tree_entry(folder.entry(k), xet)).decode())
        return f"[{','.join(parts)}]".encode()


_encoded = _EncodedFolders()


def xet_hashes(hub: Hub, repo_id: int, files: list[FileInfo]) -> dict[str, str]:
    return core_objects.xet_hashes(hub, repo_id, [f.lfs.oid for f in files if f.lfs is not None])


def expanded(git: GitRepo, commit: str, f: FileInfo, xet: dict[str, str]) -> dict[str, Any]:
    out = tree_entry(f, xet)
    last = next(git.history(commit, f.path, limit=1), None)
    if last is not None:
        out["lastCommit"] = {"id": last.id, "title": last.title, "date": iso_ts(last.timestamp)}
    if not f.is_dir:
        # The client indexes all three keys; this hub scans nothing.
        out["securityFileStatus"] = {"status": "unscanned", "avScan": None,
                                     "pickleImportScan": None}
    return out


def tree_cursor(commit: str, revision: str, path: str, recursive: bool, after: str) -> str:
    """The cursor of a listing's next page: the commit the listing began at (every page
    lists the same commit, whatever the branch does meanwhile), what was asked, and the
    last entry given (`core_tree.entry_key`), from which the next page seeks."""
    raw = json.dumps([1, commit, revision, path, recursive, after], ensure_ascii=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def read_tree_cursor(raw: str, revision: str, path: str, recursive: bool) -> tuple[str, str]:
    """(commit, last entry's key) of a cursor this listing gave; BadRequest for any other."""
    try:
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        version, commit, c_revision, c_path, c_recursive, after = data
    except (ValueError, TypeError):
        raise BadRequest("Invalid cursor.") from None
    prefix = f"{path}/" if path else ""
    if (version != 1 or not isinstance(commit, str) or not _SHA.fullmatch(commit)
            or (c_revision, c_path, c_recursive) != (revision, path, recursive)
            or not isinstance(after, str) or not after.startswith(prefix) or after == prefix):
        raise BadRequest("Invalid cursor: not one this listing gave.")
    return commit, after


_SHA = re.compile(r"[0-9a-f]{40}")


async def _tree(request: Request, plural: str, ns: str, name: str, revision: str,
                path: str, hub: Any, actor: Any) -> Any:
    repo_type = repo_type_from_plural(plural)
    recursive = query_bool(request, "recursive")
    expand = query_bool(request, "expand")
    page = PAGE_EXPANDED if expand else PAGE
    path = param(path).strip("/")
    if path:
        validate_path(path)
    revision = param(revision)
    raw_cursor = request.query_params.get("cursor")
    resume = (read_tree_cursor(raw_cursor, revision, path, recursive)
              if raw_cursor is not None else None)

    def run() -> tuple[list[dict[str, Any]] | bytes, str | None]:
        repo = load_repo(hub, actor, repo_type, ns, name)
        git = hub.git.open(repo.storage_key)
        if resume is None:
            commit, after = core_tree.resolve_revision(git, revision), None
        else:
            commit, after = resume
            if not core_tree.has_commit(git, commit):
                raise BadRequest("Invalid cursor: not one this listing gave.")
        runs, more = core_tree.page_runs(git, commit, path, recursive, after, page)
        nxt = None
        if more:
            folder, _i, j = runs[-1]
            nxt = tree_cursor(commit, revision, path, recursive, folder.keys[j - 1])
        if expand:
            chunk = [f for folder, i, j in runs for f in folder.entries[i:j]]
            xet = xet_hashes(hub, repo.id, chunk)
            return [expanded(git, commit, f, xet) for f in chunk], nxt
        return _encoded.page(runs, lambda large: xet_hashes(hub, repo.id, large)), nxt

    items, nxt = await run_in_threadpool(run)
    headers = {"Link": next_link(request, nxt)} if nxt is not None else {}
    if isinstance(items, bytes):  # encoded in the thread, not on the event loop
        return Response(items, media_type="application/json", headers=headers)
    return JSONResponse(items, headers=headers)


@router.get("/api/{plural}/{ns}/{name}/tree/{revision}")
async def tree_root(request: Request, plural: str, ns: str, name: str, revision: str,
                    hub: HubDep, actor: ActorDep) -> Any:
    return await _tree(request, plural, ns, name, revision, "", hub, actor)


@router.get("/api/{plural}/{ns}/{name}/tree/{revision}/{path:path}")
async def tree_path(request: Request, plural: str, ns: str, name: str, revision: str,
                    path: str, hub: HubDep, actor: ActorDep) -> Any:
    return await _tree(request, plural, ns, name, revision, path, hub, actor)


@router.post("/api/{plural}/{ns}/{name}/paths-info/{revision}")
async def paths_info(request: Request, plural: str, ns: str, name: str, revision: str,
                     hub: HubDep, actor: ActorDep) -> Any:
    repo_type = repo_type_from_plural(plural)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        body = await read_json(request, "Invalid JSON body.")
        paths = body.get("paths", []) if isinstance(body, dict) else []
        expand = bool(body.get("expand")) if isinstance(body, dict) else False
    else:
        # Form-urlencoded (what the client sends), parsed here: Starlette's form
        # parser needs python-multipart, which is not a dependency.
        try:
            form = parse_qs((await request.body()).decode("utf-8"), keep_blank_values=True,
                            strict_parsing=False)
        except UnicodeDecodeError:
            raise BadRequest("Form body must be UTF-8.") from None
        paths = form.get("paths", [])
        expand = form.get("expand", ["false"])[-1].lower() in ("1", "true")
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise BadRequest("'paths' must be a list of strings.")
    if len(paths) > MAX_PATHS_INFO:
        raise BadRequest(f"At most {MAX_PATHS_INFO} paths per request.")

    def run() -> list[dict[str, Any]]:
        repo = load_repo(hub, actor, repo_type, ns, name)
        git = hub.git.open(repo.storage_key)
        commit = core_tree.resolve_revision(git, param(revision))
        found = core_tree.paths_info(git, commit, paths)
        xet = xet_hashes(hub, repo.id, found)
        if expand:
            return [expanded(git, commit, f, xet) for f in found]
        return [tree_entry(f, xet) for f in found]

    return await run_in_threadpool(run)


@router.get("/api/{plural}/{ns}/{name}/refs")
async def list_refs(request: Request, plural: str, ns: str, name: str, hub: HubDep,
                    actor: ActorDep) -> Any:
    repo_type = repo_type_from_plural(plural)
    include_prs = query_bool(request, "include_prs")

    def run() -> dict[str, Any]:
        repo = load_repo(hub, actor, repo_type, ns, name)
        git = hub.git.open(repo.storage_key)
        refs = core_refs.list_refs(git, include_prs)
        return {
            kind: [{"name": r.name, "ref": r.ref, "targetCommit": r.target_commit} for r in items]
            for kind, items in refs.items()
        }

    return await run_in_threadpool(run)


@router.get("/api/{plural}/{ns}/{name}/commits/{revision}")
async def list_commits(request: Request, plural: str, ns: str, name: str, revision: str,
                       hub: HubDep, actor: ActorDep) -> Any:
    repo_type = repo_type_from_plural(plural)
    start = cursor(request)
    try:
        page = min(int(request.query_params.get("limit", 100)), 1000)
    except ValueError:
        raise BadRequest("'limit' must be an integer.") from None
    formatted = "formatted" in request.query_params.getlist("expand[]")

    def run() -> tuple[list[dict[str, Any]], bool]:
        repo = load_repo(hub, actor, repo_type, ns, name)
        git = hub.git.open(repo.storage_key)
        commit = core_tree.resolve_revision(git, param(revision))
        chunk = list(islice(git.history(commit), start, start + page + 1))
        out = []
        for c in chunk[:page]:
            author = c.author.split(" <", 1)[0]
            body = c.message.split("\n", 1)[1].strip() if "\n" in c.message else ""
            item: dict[str, Any] = {
                "id": c.id, "title": c.title, "message": body,
                "authors": [{"user": author, "avatar": None}], "date": iso_ts(c.timestamp),
            }
            if formatted:
                item["formatted"] = {"title": c.title, "message": body}
            out.append(item)
        return out, len(chunk) > page

    items, more = await run_in_threadpool(run)
    headers = {"Link": next_link(request, start + page)} if more else {}
    return JSONResponse(items, headers=headers)
