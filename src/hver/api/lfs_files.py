"""A repo's large files by sha256: list (`list_lfs_files`), delete for good
(`permanently_delete_lfs_files`), and copy to another repo (`lfs-files/duplicate`, the
first step of a cross-repo `CommitOperationCopy` / `copy_files`)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from hver.api.deps import ActorDep, HubDep, load_repo, repo_type_from_plural
from hver.api.util import cursor, iso, next_link, read_json
from hver.core import lfs_files as core_lfs_files
from hver.core import objects as core_objects
from hver.core.lfs_files import LfsFile
from hver.errors import BadRequest
from hver.names import RepoType, split_repo_id
from hver.storage.lfs import check_oid

router = APIRouter()
PAGE = 1000
MAX_DUPLICATES = 1000  # files in one duplicate request (the client sends batches of 500)


def _entry(f: LfsFile) -> dict[str, Any]:
    out: dict[str, Any] = {"fileOid": f.oid, "oid": f.oid, "size": f.size,
                           "pushedAt": iso(f.pushed_at), "filename": f.filename, "ref": f.ref}
    if f.xet_hash is not None:
        out["xetHash"] = f.xet_hash
    return out


@router.get("/api/{plural}/{ns}/{name}/lfs-files")
async def list_lfs_files(request: Request, plural: str, ns: str, name: str, hub: HubDep,
                         actor: ActorDep) -> Any:
    repo_type = repo_type_from_plural(plural)
    start = cursor(request)
    try:
        page = max(1, min(int(request.query_params.get("limit", PAGE)), PAGE))
    except ValueError:
        raise BadRequest("'limit' must be an integer.") from None

    def run() -> tuple[list[LfsFile], bool]:
        repo = load_repo(hub, actor, repo_type, ns, name)
        return core_lfs_files.list_lfs_files(hub, actor, repo, start, page)

    files, more = await run_in_threadpool(run)
    headers = {"Link": next_link(request, start + page)} if more else {}
    return JSONResponse([_entry(f) for f in files], headers=headers)


@router.post("/api/{plural}/{ns}/{name}/lfs-files/batch")
async def delete_lfs_files(request: Request, plural: str, ns: str, name: str, hub: HubDep,
                           actor: ActorDep) -> Any:
    repo_type = repo_type_from_plural(plural)
    body = await read_json(request)
    deletions = body.get("deletions") if isinstance(body, dict) else None
    if not isinstance(deletions, dict) or not isinstance(deletions.get("sha"), list):
        raise BadRequest("Body must be {\"deletions\": {\"sha\": [...]}}.")
    oids: list[object] = deletions["sha"]
    rewrite = deletions.get("rewriteHistory", False)

    def run() -> list[str]:
        repo = load_repo(hub, actor, repo_type, ns, name)
        return core_lfs_files.delete_lfs_files(hub, actor, repo, oids)

    deleted = await run_in_threadpool(run)
    headers = {}
    if rewrite:
        # The client logs this once; the pointers stay in git and answer 404.
        headers["X-HF-Warning"] = ("lfs-files; This hub does not rewrite history: commits "
                                   "keep their pointers to deleted files, which are not "
                                   "served any more.")
    return JSONResponse({"deleted": deleted}, headers=headers)


@router.post("/api/{plural}/{ns}/{name}/lfs-files/duplicate")
async def duplicate_lfs_files(request: Request, plural: str, ns: str, name: str,
                              hub: HubDep, actor: ActorDep) -> Any:
    """Give the target repo files this repo holds: {"target": {"type", "name"}, "files":
    [{"sha256", "xetHash"?, "filename"?}]}. All or nothing: an error names the first
    file that cannot be copied; `failed` is always empty."""
    repo_type = repo_type_from_plural(plural)
    body = await read_json(request)
    target = body.get("target") if isinstance(body, dict) else None
    files = body.get("files") if isinstance(body, dict) else None
    if not isinstance(target, dict) or not isinstance(target.get("name"), str):
        raise BadRequest("'target' must be {\"type\": ..., \"name\": \"namespace/name\"}.")
    if not isinstance(files, list) or len(files) > MAX_DUPLICATES:
        raise BadRequest(f"'files' must be a list of at most {MAX_DUPLICATES} entries.")
    target_type = target.get("type")
    if target_type is not None and not isinstance(target_type, str):
        raise BadRequest("'target.type' must be a string.")
    target_ns, target_name = split_repo_id(target["name"])
    wanted: list[tuple[str, str | None]] = []
    for f in files:
        if not isinstance(f, dict):
            raise BadRequest("Each file must be a JSON object.")
        xet_hash = f.get("xetHash")
        if xet_hash is not None and not isinstance(xet_hash, str):
            raise BadRequest("'xetHash' must be a string.")
        wanted.append((check_oid(f.get("sha256")), xet_hash or None))

    def run() -> int:
        source = load_repo(hub, actor, repo_type, ns, name)
        dest = load_repo(hub, actor, RepoType.parse(target_type), target_ns, target_name)
        return len(core_objects.copy_held(hub, actor, source, dest, wanted))

    copied = await run_in_threadpool(run)
    return {"duplicated": copied, "failed": []}
