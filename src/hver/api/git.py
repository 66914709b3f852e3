"""git over smart HTTP on the Hub's URLs: `git clone http://HOST/{ns}/{name}` (models),
`/datasets/{ns}/{name}`, `/spaces/{ns}/{name}`, with or without `.git`.

Who may fetch is decided as for every file read: the repo must be readable by the
actor (`load_repo`, which answers a private repo exactly as a missing one) and its
files too (`require_file_access`, the gate). Credentials come as git sends them: HTTP
Basic with the token as the password (any user name), or a Bearer token. Without any,
a repo that is missing, private or gated is answered 401 with `WWW-Authenticate`, so
that git asks its credential helper and retries; with a token, a missing or unreadable
repo is a 404 "Repository not found" and a gated one a 403. Error bodies are plain
text (git prints them), with the Hub's `X-Error-Code` / `X-Error-Message`.

The service runs in a worker thread (`hver.githttp.service`); what it writes reaches
the client through a bounded queue, so a pack streams out as it is built and a slow
client slows the packer instead of filling memory.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import zlib
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from tempfile import SpooledTemporaryFile
from typing import IO, Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from hver.api.deps import base_url, get_actor, get_hub, load_repo
from hver.api.gating import require_file_access
from hver.community import pulls
from hver.core.accounts import Actor
from hver.core.hub import Hub
from hver.db.models import Repo
from hver.errors import (
    BadRequest,
    GatedRepo,
    HverError,
    PayloadTooLarge,
    RepoMoved,
    RepoNotFound,
    Unauthorized,
)
from hver.githttp import receive, service, v2
from hver.names import RepoType

router = APIRouter(include_in_schema=False)
log = logging.getLogger("hver")

CHUNK = 64 * 1024  # what the packer hands over at a time
QUEUED = 16  # chunks in flight to the client at most (about 1 MiB)
SPOOL = 1024 * 1024  # request bodies larger than this go to a temporary file
MAX_FETCH_BODY = 64 * 1024 * 1024  # a fetch's wants and haves, when bodies are not capped
PACKERS = ThreadPoolExecutor(max_workers=16, thread_name_prefix="hver-git")
WRITE_TIMEOUT = 60.0  # seconds a packer waits for a client to take what it wrote
REALM = 'Basic realm="hver", charset="UTF-8"'

_PREFIXES = {"": RepoType.model, "datasets/": RepoType.dataset, "spaces/": RepoType.space}


def _repo_name(name: str) -> str:
    return name[:-4] if name.endswith(".git") and len(name) > 4 else name


def _error(exc: HverError, actor: Actor | None) -> Response:
    """A refusal as git reads it. Anonymous callers are asked for credentials (401) for
    any repo they cannot fetch, so git's credential helper gets its turn."""
    status, code, message = exc.status, exc.code or "Error", str(exc)
    if actor is None and isinstance(exc, RepoNotFound | GatedRepo | Unauthorized):
        status, code = 401, "Unauthorized" if isinstance(exc, Unauthorized) else code
    headers = {"X-Error-Code": code, "X-Error-Message": message.replace("\n", " ")}
    if status == 401:
        headers["WWW-Authenticate"] = REALM
    return Response(message + "\n", status_code=status, media_type="text/plain",
                    headers=headers)


async def _readable(request: Request, repo_type: RepoType, ns: str, name: str
                    ) -> tuple[Hub, Repo] | Response:
    """The repo when the caller may fetch it, else the response refusing them."""
    hub = get_hub(request)
    actor: Actor | None = None
    try:
        actor = await get_actor(request)
        repo = await run_in_threadpool(load_repo, hub, actor, repo_type, ns, _repo_name(name))
        site = base_url(request)
        await run_in_threadpool(require_file_access, hub, actor, repo, site)
    except RepoMoved as exc:  # the same git path at the repo's id now
        return _moved(request, repo_type, name, exc)
    except HverError as exc:
        return _error(exc, actor)
    return hub, repo


def _moved(request: Request, repo_type: RepoType, name: str, exc: RepoMoved) -> Response:
    """The same git path at the repo's id now (`name` may end in `.git`)."""
    tail = request.url.path.rsplit(f"/{name}/", 1)[1]  # info/refs, git-upload-pack, ...
    suffix = ".git" if name.endswith(".git") else ""
    location = f"/{repo_type.url_prefix}{exc.namespace}/{exc.name}{suffix}/{tail}"
    if request.url.query:
        location += f"?{request.url.query}"
    return Response(status_code=307, headers={"Location": location,
                                              "Cache-Control": "no-store"})


async def _stream(work: Callable[[Callable[[bytes], None]], None]) -> AsyncIterator[bytes]:
    """Run `work(write)` in a packer thread and yield what it writes, in order."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
    room = threading.Semaphore(QUEUED)
    gone = threading.Event()

    class _Gone(Exception):
        pass

    def put(item: bytes | BaseException | None) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def run() -> None:
        buf = bytearray()

        def write(data: bytes) -> None:
            buf.extend(data)
            if len(buf) >= CHUNK:
                flush()

        def flush() -> None:
            # A client that stops reading frees its packer thread after WRITE_TIMEOUT.
            if not room.acquire(timeout=WRITE_TIMEOUT) or gone.is_set():
                gone.set()
                raise _Gone()
            put(bytes(buf))
            buf.clear()

        try:
            work(write)
            if buf:
                flush()
        except _Gone:
            return
        except BaseException as exc:  # reported by the consumer, which can still log it
            put(exc)
            return
        put(None)

    loop.run_in_executor(PACKERS, run)  # `run` reports its own end and errors
    try:
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                # The status line is out: end the body short, which git reports.
                log.error("git service failed", exc_info=item)
                return
            room.release()
            yield item
    finally:
        gone.set()
        for _ in range(QUEUED + 1):
            room.release()  # a packer waiting for room wakes, sees `gone` and stops


async def _body(request: Request, limit: int) -> IO[bytes]:
    """The request body in a spooled file, gunzipped when git compressed it; at most
    `limit` bytes once gunzipped (PayloadTooLarge)."""
    gzipped = request.headers.get("content-encoding", "").lower() == "gzip"
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    spool: IO[bytes] = SpooledTemporaryFile(max_size=SPOOL)  # noqa: SIM115 (returned)
    size = 0
    try:
        async for chunk in request.stream():
            while chunk:
                if inflate is None:
                    data, chunk = chunk, b""
                else:  # bounded output per step: a small bomb cannot fill memory
                    data = inflate.decompress(chunk, SPOOL)
                    chunk = inflate.unconsumed_tail
                size += len(data)
                if size > limit:
                    raise PayloadTooLarge(f"Request body is larger than {limit} bytes.")
                spool.write(data)
        if inflate is not None:
            spool.write(inflate.flush())
            if not inflate.eof:
                raise BadRequest("The gzip request body is truncated.")
    except zlib.error:
        spool.close()
        raise BadRequest("The request body is not valid gzip.") from None
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


def _version2(request: Request) -> bool:
    """Whether the client asks for protocol version 2 (`Git-Protocol: version=2`)."""
    header = request.headers.get("git-protocol", "")
    return "version=2" in (part.strip() for part in header.split(":"))


def _no_cache() -> dict[str, str]:
    return {"Cache-Control": "no-cache, max-age=0, must-revalidate", "Pragma": "no-cache",
            "Expires": "Fri, 01 Jan 1980 00:00:00 GMT"}


async def _pushable(request: Request, repo_type: RepoType, ns: str, name: str
                    ) -> tuple[Hub, Actor, Repo] | Response:
    """The repo and the pusher when they may push to it at all (a writer, or someone who
    may open pull requests on it: which refs each may move is decided per ref), else the
    refusal. Anonymous pushers are asked for credentials, whatever the repo."""
    found = await _readable(request, repo_type, ns, name)
    if isinstance(found, Response):
        return found
    hub, repo = found
    actor: Actor | None = request.state.hver_actor
    try:
        if actor is None:
            raise Unauthorized("Pushing needs a token: use it as the password.")
        await run_in_threadpool(pulls.require_upload, hub, actor, repo)
    except HverError as exc:
        return _error(exc, actor)
    return hub, actor, repo


async def info_refs(request: Request, repo_type: RepoType, ns: str, name: str) -> Response:
    svc = request.query_params.get("service")
    if svc == receive.RECEIVE_PACK:
        pushable = await _pushable(request, repo_type, ns, name)
        if isinstance(pushable, Response):
            return pushable
        hub, actor, repo = pushable

        def advertise_push(write: Callable[[bytes], None]) -> None:
            receive.advertise(hub, actor, repo, write)

        return StreamingResponse(_stream(advertise_push),
                                 media_type=f"application/x-{svc}-advertisement",
                                 headers=_no_cache())
    found = await _readable(request, repo_type, ns, name)
    if isinstance(found, Response):
        return found
    if svc not in service.SERVICES:
        return _error(HverError("Only git's smart HTTP protocol is served "
                                "(a git client newer than 1.6.6).", status=403,
                                code="Forbidden"), None)
    hub, repo = found
    git = hub.git.open(repo.storage_key)
    version2 = _version2(request)

    def work(write: Callable[[bytes], None]) -> None:
        if version2:
            v2.advertise(write)
        else:
            service.advertise(git.repo, svc, write)

    return StreamingResponse(_stream(work), media_type=f"application/x-{svc}-advertisement",
                             headers=_no_cache())


async def upload_pack(request: Request, repo_type: RepoType, ns: str, name: str) -> Response:
    if request.headers.get("content-type") != "application/x-git-upload-pack-request":
        return _error(BadRequest("Expected a git-upload-pack request body."), None)
    found = await _readable(request, repo_type, ns, name)
    if isinstance(found, Response):
        return found
    hub, repo = found
    try:
        body = await _body(request, hub.settings.max_request_body or MAX_FETCH_BODY)
    except HverError as exc:
        return _error(exc, None)
    git = hub.git.open(repo.storage_key)
    version2 = _version2(request)

    def work(write: Callable[[bytes], None]) -> None:
        with body:
            if version2:
                v2.serve(git.repo, body.read, write)
            else:
                service.upload_pack(git.repo, body.read, write)

    return StreamingResponse(_stream(work), media_type="application/x-git-upload-pack-result",
                             headers=_no_cache())


async def receive_pack(request: Request, repo_type: RepoType, ns: str, name: str) -> Response:
    if request.headers.get("content-type") != "application/x-git-receive-pack-request":
        return _error(BadRequest("Expected a git-receive-pack request body."), None)
    pushable = await _pushable(request, repo_type, ns, name)
    if isinstance(pushable, Response):
        return pushable
    hub, actor, repo = pushable
    limit = hub.settings.max_commit_body
    try:
        body = await _body(request, limit)
    except HverError as exc:
        return _error(exc, actor)

    def work(write: Callable[[bytes], None]) -> None:
        with body:
            receive.receive_pack(hub, actor, repo, body, write, limit)

    return StreamingResponse(_stream(work), media_type="application/x-git-receive-pack-result",
                             headers=_no_cache())


def _routes() -> None:
    for prefix, repo_type in _PREFIXES.items():
        def bind(handler: Callable[..., Any], rt: RepoType = repo_type) -> Callable[..., Any]:
            async def route(request: Request, ns: str, name: str) -> Response:
                result: Response = await handler(request, rt, ns, name)
                return result
            return route

        router.add_api_route(f"/{prefix}{{ns}}/{{name}}/info/refs", bind(info_refs),
                             methods=["GET"])
        router.add_api_route(f"/{prefix}{{ns}}/{{name}}/git-upload-pack", bind(upload_pack),
                             methods=["POST"])
        router.add_api_route(f"/{prefix}{{ns}}/{{name}}/git-receive-pack",
                             bind(receive_pack), methods=["POST"])


_routes()
