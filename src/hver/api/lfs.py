"""git-lfs: the batch API, signed upload hrefs (basic and multipart), verify, and blob reads."""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from hver.api.bodies import receive_into
from hver.api.deps import ActorDep, HubDep, SignerDep, base_url, load_repo
from hver.api.files import BigFileResponse, FilePartResponse
from hver.api.gating import require_file_access
from hver.api.mirrored import partial_response
from hver.api.util import FILE_HEADERS, RangeNotSatisfiable, parse_range, read_json
from hver.community import pulls
from hver.core import lfs as core_lfs
from hver.core import xet as core_xet
from hver.core.hub import Hub
from hver.core.objects import held_object
from hver.core.signing import Signer
from hver.db.models import Repo
from hver.errors import BadRequest, Conflict, NotFound
from hver.memory import transfer
from hver.names import RepoType
from hver.storage.lfs import ObjectWriter, blob_key, check_oid, store_staged

router = APIRouter()
LFS_JSON = "application/vnd.git-lfs+json"


async def _json(request: Request) -> Any:
    return await read_json(request, "Body must be JSON.")


def _upload_url(request: Request, signer: Signer, repo: Repo, oid: str, size: int,
                contributor: int | None, part: int | None = None) -> str:
    # Signed for the repo's storage key too: a URL of a deleted repo is void, even for a
    # repo that would get its id; and for the contributor whose upload it is (0: a writer).
    by = contributor or 0
    exp, sig = signer.sign("upload", repo.id, repo.storage_key, oid, size, by)
    suffix = f"/{part}" if part is not None else ""
    return (f"{base_url(request)}/_lfs/upload/{repo.id}/{oid}{suffix}"
            f"?size={size}&by={by}&exp={exp}&sig={sig}")


def _batch_handler(repo_type: RepoType) -> Any:
    async def batch(request: Request, ns: str, name: str, hub: HubDep, actor: ActorDep,
                    signer: SignerDep) -> Any:
        if not name.endswith(".git"):
            raise NotFound("Not found")
        name = name.removesuffix(".git")
        body = await _json(request)
        if not isinstance(body, dict):
            raise BadRequest("Body must be a JSON object.")
        operation = body.get("operation")
        if operation not in ("upload", "download"):
            raise BadRequest("'operation' must be 'upload' or 'download'.")
        if body.get("hash_algo", "sha256") != "sha256":
            raise BadRequest("Only sha256 is supported.", status=409)
        objects = core_lfs.parse_objects(body.get("objects"))
        repo = await run_in_threadpool(load_repo, hub, actor, repo_type, ns, name)
        contributor = None
        if operation == "upload":
            contributor = await run_in_threadpool(pulls.require_upload, hub, actor, repo)
            plans = await run_in_threadpool(core_lfs.plan_upload, hub, repo, objects,
                                            contributor)
        else:
            await run_in_threadpool(require_file_access, hub, actor, repo, base_url(request))
            plans = await run_in_threadpool(core_lfs.plan_download, hub, repo, objects)
        git_url = f"{base_url(request)}/{repo_type.url_prefix}{repo.repo_id}.git"
        verify: dict[str, Any] = {"href": f"{git_url}/info/lfs/objects/verify"}
        if (credentials := request.headers.get("authorization")) is not None:
            # The caller's own credentials, as the Hub does: git-lfs sends an action's
            # `header` and nothing else, and may hold none for that URL (a token in the
            # remote's URL, no credential helper).
            verify["header"] = {"Authorization": credentials}
        out = []
        for p in plans:
            item: dict[str, Any] = {"oid": p.oid, "size": p.size, "authenticated": True}
            if p.error is not None:
                item["error"] = p.error
            elif operation == "download":
                exp, sig = signer.sign("download", p.oid, "", repo.id, repo.storage_key)
                href = (f"{base_url(request)}/_lfs/objects/{p.oid}"
                        f"?repo={repo.id}&exp={exp}&sig={sig}")
                item["actions"] = {"download": {
                    "href": href,
                    "expires_in": hub.settings.signed_url_ttl}}
            elif not p.present:
                upload: dict[str, Any] = {
                    "href": _upload_url(request, signer, repo, p.oid, p.size, contributor),
                    "expires_in": hub.settings.signed_url_ttl,
                }
                if p.parts:
                    upload["header"] = {"chunk_size": str(hub.settings.lfs_part_size)} | {
                        f"{n:05d}": _upload_url(request, signer, repo, p.oid, p.size,
                                                contributor, n)
                        for n in range(1, p.parts + 1)
                    }
                item["actions"] = {"upload": upload, "verify": verify}
            out.append(item)
        return JSONResponse({"transfer": _transfer(body, plans), "objects": out,
                             "hash_algo": "sha256"}, media_type=LFS_JSON)

    return batch


def _verify_handler(repo_type: RepoType) -> Any:
    async def verify(request: Request, ns: str, name: str, hub: HubDep,
                     actor: ActorDep) -> Any:
        name = name.removesuffix(".git")
        body = await _json(request)
        if not isinstance(body, dict):
            raise BadRequest("Body must be a JSON object.")
        oid, size = check_oid(body.get("oid")), body.get("size")
        repo = await run_in_threadpool(load_repo, hub, actor, repo_type, ns, name)
        contributor = await run_in_threadpool(pulls.require_upload, hub, actor, repo)
        stored = await run_in_threadpool(core_lfs.has_object, hub, repo.id, oid, contributor)
        if stored is None or (size is not None and stored != size):
            raise NotFound(f"Object {oid} was not uploaded.", code="EntryNotFound")
        return JSONResponse({"message": "ok"}, media_type=LFS_JSON)

    return verify


async def _no_locking() -> JSONResponse:
    """The LFS locking API is not supported. 501 is the answer git-lfs documents for
    that: it turns lock verification off for the remote (`lfs.<url>.locksverify false`)
    and pushes on, with no warning. The same answer whatever the repo, so it tells
    nothing of one. (git-lfs's protocol, not the Hub's API: not in the OpenAPI schema.)"""
    message = "File locking is not supported by this server."
    return JSONResponse({"message": message}, status_code=501, media_type=LFS_JSON,
                        headers={"X-Error-Code": "NotImplemented", "X-Error-Message": message})


for _t in RepoType:
    _prefix = f"/{_t.url_prefix}{{ns}}/{{name}}/info/lfs/objects"
    router.add_api_route(f"{_prefix}/batch", _batch_handler(_t), methods=["POST"])
    router.add_api_route(f"{_prefix}/verify", _verify_handler(_t), methods=["POST"])
    _locks = f"/{_t.url_prefix}{{ns}}/{{name}}/info/lfs/locks"
    for _path, _methods in ((_locks, ["GET", "POST"]), (f"{_locks}/verify", ["POST"]),
                            (f"{_locks}/{{lock_id}}/unlock", ["POST"])):
        router.add_api_route(_path, _no_locking, methods=_methods, include_in_schema=False)


def _check_upload(request: Request, hub: Hub, signer: Signer, repo_id: int,
                  oid: str) -> tuple[int, int | None]:
    """The signed upload URL's size and contributor (None: a writer's upload)."""
    q = request.query_params
    check_oid(oid)
    try:
        size, by = int(q.get("size", "")), int(q.get("by", ""))
    except ValueError:
        raise BadRequest("Invalid upload URL.") from None
    repo = core_lfs.repo_by_pk(hub, repo_id)
    signer.verify("upload", repo_id, repo.storage_key if repo else "", oid, size, by,
                  exp=q.get("exp", ""), sig=q.get("sig", ""))
    return size, by or None


@router.put("/_lfs/upload/{repo_id}/{oid}")
async def upload(request: Request, repo_id: int, oid: str, hub: HubDep,
                 signer: SignerDep) -> Any:
    size, by = await run_in_threadpool(_check_upload, request, hub, signer, repo_id, oid)
    writer = await run_in_threadpool(ObjectWriter, hub.blobs, oid, size)
    await receive_into(request, writer)
    await run_in_threadpool(writer.commit)
    await run_in_threadpool(core_lfs.register_object, hub, repo_id, oid, size, by)
    return Response(status_code=200)


class _PartWriter:
    """Writes one part of a multipart upload at its offset in the shared staging file."""

    def __init__(self, path: Path, offset: int, limit: int) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
        # Held until closed: `_take_parts` cannot take the file while a part is written
        # into it, and a part that arrives after it was taken writes nothing into it.
        fcntl.flock(fd, fcntl.LOCK_SH)
        if not _is_current(fd, path):
            os.close(fd)
            raise Conflict("This upload was completed; start a new one.")
        self.file = os.fdopen(fd, "r+b")
        self.file.seek(offset)
        self.limit = limit
        self.size = 0
        self.md5 = hashlib.md5(usedforsecurity=False)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.size += len(data)
        if self.size > self.limit:
            raise BadRequest("Part is larger than the part size.")
        self.md5.update(data)
        self.file.write(data)

    def abort(self) -> None:
        self.file.close()

    def close(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()


def _transfer(body: dict[str, Any], plans: list[core_lfs.BatchObject]) -> str:
    """The transfer adapter the client is to use. `multipart` (parts PUT to their own
    signed URLs, then a completion POST to the object's href) when the client offers it
    (huggingface_hub does; git-lfs with the transfer agent `hf lfs-enable-largefiles`
    sets up) and every object to upload is sent in parts, as the agent reads parts from
    every object it is given; else `basic` (one PUT, which the object's href also
    takes)."""
    offered = body.get("transfers")
    uploads = [p for p in plans if not p.present and p.error is None]
    if (isinstance(offered, list) and "multipart" in offered and uploads
            and all(p.parts for p in uploads)):
        return "multipart"
    return "basic"


def _multipart_path(hub: Hub, repo_id: int, oid: str) -> Path:
    # Beside the blob store's own staging files, so finishing is a rename, not a copy.
    return hub.settings.tmp_dir / f"multipart-{repo_id}-{oid}"


def _is_current(fd: int, path: Path) -> bool:
    try:
        return os.fstat(fd).st_ino == path.stat().st_ino
    except FileNotFoundError:
        return False


def _take_parts(path: Path) -> Path:
    """Move the parts' file to a name of its own, once no part is being written into it:
    what is then hashed and stored can no longer change under a late part upload."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise BadRequest("No parts were uploaded.") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Conflict("Parts of this object are still being uploaded.") from None
        if not _is_current(fd, path):
            raise Conflict("This upload was completed meanwhile.")
        taken = path.with_name(f"{path.name}.{uuid.uuid4().hex}")
        os.rename(path, taken)
    finally:
        os.close(fd)
    return taken


@router.put("/_lfs/upload/{repo_id}/{oid}/{part}")
async def upload_part(request: Request, repo_id: int, oid: str, part: int, hub: HubDep,
                      signer: SignerDep) -> Any:
    size, _ = await run_in_threadpool(_check_upload, request, hub, signer, repo_id, oid)
    part_size = hub.settings.lfs_part_size
    if part < 1 or (part - 1) * part_size >= max(size, 1):
        raise BadRequest(f"Invalid part number {part}.")
    limit = min(part_size, size - (part - 1) * part_size)
    writer = await run_in_threadpool(
        _PartWriter, _multipart_path(hub, repo_id, oid), (part - 1) * part_size, limit
    )
    await receive_into(request, writer)
    await run_in_threadpool(writer.close)
    if writer.size != limit:
        raise BadRequest(f"Part {part} is {writer.size} bytes, expected {limit}.")
    return Response(status_code=200, headers={"ETag": f'"{writer.md5.hexdigest()}"'})


@router.post("/_lfs/upload/{repo_id}/{oid}")
async def complete_multipart(request: Request, repo_id: int, oid: str, hub: HubDep,
                             signer: SignerDep) -> Any:
    size, by = await run_in_threadpool(_check_upload, request, hub, signer, repo_id, oid)
    body = await _json(request)
    parts = body.get("parts") if isinstance(body, dict) else None
    expected = max(1, -(-size // hub.settings.lfs_part_size))
    if not isinstance(parts, list) or len(parts) != expected:
        raise BadRequest(f"Expected {expected} parts.")
    def finish() -> None:
        staged = _take_parts(_multipart_path(hub, repo_id, oid))
        store_staged(hub.blobs, staged, oid, size)
        core_lfs.register_object(hub, repo_id, oid, size, by)

    await run_in_threadpool(finish)
    return JSONResponse({"message": "ok"}, media_type=LFS_JSON)


@router.api_route("/_lfs/objects/{oid}", methods=["GET", "HEAD"])
async def download(request: Request, oid: str, hub: HubDep, signer: SignerDep) -> Any:
    """Serve an LFS object through a signed URL (the target of resolve redirects).

    The URL names a repo, and only what that repo holds is served (`core.objects`).
    """
    q = request.query_params
    check_oid(oid)
    commit, repo_pk = q.get("commit", ""), q.get("repo", "")
    repo = await run_in_threadpool(
        core_lfs.repo_by_pk, hub, int(repo_pk) if repo_pk.isdigit() else 0)
    signer.verify("download", oid, commit, repo_pk, repo.storage_key if repo else "",
                  exp=q.get("exp", ""), sig=q.get("sig", ""))
    assert repo is not None  # the signature names its storage key
    obj = await run_in_threadpool(held_object, hub, repo.id, oid)
    headers = FILE_HEADERS | {"ETag": f'"{oid}"', "X-Linked-Etag": f'"{oid}"', "Cache-Control":
                              "private, max-age=31536000, immutable"}
    if commit:
        headers["X-Repo-Commit"] = commit
    filename = q.get("filename") or None
    if obj is None:
        # A mirrored repo's file on its way from the upstream: sent as it arrives.
        part = hub.mirror.in_flight(repo.id, oid) if hub.mirror is not None else None
        if part is None:
            raise NotFound("Object not found", code="EntryNotFound")
        return await partial_response(request, part, headers, filename)
    if hub.mirror is not None:  # the quota's LRU (the hit was counted at resolve)
        hub.mirror.read(repo, oid, obj.size, False)
    if obj.xet_hash is not None:
        xet_file = await run_in_threadpool(core_xet.get_file, hub, obj.xet_hash)
        if xet_file is None:
            raise NotFound("Object not found", code="EntryNotFound")
        return await _xet_response(request, hub, xet_file, headers, filename)
    path = hub.blobs.local_path(blob_key(oid))
    if path is None:
        raise NotFound("Object not found", code="EntryNotFound")
    stat = path.stat()
    headers["X-Linked-Size"] = str(stat.st_size)
    return BigFileResponse(path, headers=headers, filename=filename, stat_result=stat,
                           content_disposition_type="inline",
                           media_type="application/octet-stream")


async def _xet_response(request: Request, hub: Hub, file: core_xet.XetFileInfo,
                        headers: dict[str, str], filename: str | None) -> Response:
    """A file stored as Xet chunks for a plain HTTP client (Range supported): sent from its
    cached whole copy by sendfile, or decoded; the first whole read keeps what it decoded
    as that copy (`core.xet.CacheFill`)."""
    headers = headers | {"X-Linked-Size": str(file.size), "Accept-Ranges": "bytes"}
    if filename:
        headers["Content-Disposition"] = f"inline; filename*=UTF-8''{quote(filename)}"
    try:
        rng = parse_range(request.headers.get("range"), file.size)
    except RangeNotSatisfiable:
        return Response(status_code=416, headers=headers | {
            "Content-Range": f"bytes */{file.size}"})
    start, end = rng or (0, file.size)
    status = 200
    if rng is not None:
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{file.size}"
    media = "application/octet-stream"
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers | {
            "Content-Length": str(end - start)})
    cached = await run_in_threadpool(core_xet.cached_file, hub, file)
    if cached is not None:
        return FilePartResponse(cached, start, end, status, headers, media)
    fill = None
    if rng is None or (start, end) == (0, file.size):
        fill = await run_in_threadpool(core_xet.CacheFill.start, hub, file)
    headers["Content-Length"] = str(end - start)
    return StreamingResponse(_decoded(hub, file, start, end, fill), status_code=status,
                             headers=headers, media_type=media)


_finishing: set[asyncio.Future[bool]] = set()


def _in_background(job: Callable[[], bool]) -> None:
    """Run `job` in a thread, not waited for: the response it follows is complete."""
    future = asyncio.get_running_loop().run_in_executor(None, job)
    _finishing.add(future)
    future.add_done_callback(_finishing.discard)


async def _decoded(hub: Hub, file: core_xet.XetFileInfo, start: int, end: int,
                   fill: core_xet.CacheFill | None) -> AsyncIterator[bytes]:
    """The decoded bytes, each piece also kept by `fill`; once all were produced, `fill`
    is stored in the background (its fsync does not hold up the response's end)."""
    pieces = core_xet.iter_content(hub, file, start, end)

    def step() -> bytes | None:
        piece = next(pieces, None)
        if piece is not None and fill is not None:
            fill.write(piece)
        return piece

    done = False
    with transfer():
        try:
            while (piece := await run_in_threadpool(step)) is not None:
                yield piece
            done = True
        finally:
            pieces.close()  # no step runs now: a cancelled one was waited for
            if fill is not None:
                if done:
                    _in_background(fill.finish)
                else:
                    fill.abort()
