"""Xet: the Hub's token routes, and the CAS API mounted at `/xet` (spec 1.1.0, as hf_xet
1.8.0 speaks it; docs/xet-protocol-notes.md).

Clients ask the Hub for a short-lived CAS token scoped to one repo, then talk to
the CAS with it: xorb uploads (through upload grants, `api.xet_grants`, or
directly), shard uploads (v1, and v2 streaming its progress), the global-dedup
query, reconstruction plans (v1, v2, and batches), existence checks (HEAD), chunk
summaries for partial re-uploads, and the byte-range fetches plans point to
(signed URLs, sent without Authorization). Every other CAS path answers 404 with
an error code, whatever the method: hf_xet takes a 404 as "not offered" and falls
back, where another status could fail the transfer.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from hver.api.bodies import receive_into
from hver.api.deps import (
    ActorDep,
    HubDep,
    SignerDep,
    base_url,
    load_repo,
    param,
    repo_type_from_plural,
)
from hver.api.files import BigFileResponse
from hver.api.gating import require_file_access
from hver.api.util import (
    RangeNotSatisfiable,
    parse_json,
    parse_range,
    read_body,
)
from hver.community import pulls
from hver.core import access, xet_edits
from hver.core import xet as core_xet
from hver.core.hub import Hub
from hver.core.signing import Signer
from hver.errors import BadRequest, Forbidden, HverError, NotFound
from hver.names import RepoType
from hver.xet.hashing import hex_hash

log = logging.getLogger("hver")
router = APIRouter()
PREFIX = "default"  # the only CAS namespace
MAX_BATCH_FILES = 100
MAX_JSON_BODY = 256 * 1024  # CAS request bodies in JSON (the middleware leaves /xet/ bodies be)
_DIRTY_RANGE = re.compile(r"([0-9]{1,19})-([0-9]{1,19})")
SHARD_HEARTBEAT = 15.0  # seconds between progress frames of a v2 shard upload (client: ~20)
XORB_BATCH = 2 * 1024 * 1024  # clients send several xorbs at once: keep each one's buffers small


# -- Hub side: tokens ---------------------------------------------------------------------------


def cas_url(request: Request, account_id: int | None) -> str:
    """The CAS base URL for one account.

    Clients cache, per CAS URL, which xorbs the CAS holds, and skip uploading those.
    The URL names this hub's data (wiped data gets a new one) and the account: what
    one account has uploaded is not assumed held for another on the same machine,
    which may not read it.
    """
    return f"{base_url(request)}/xet/{request.app.state.cas_instance}.{account_id or 0}"


@router.get("/api/{plural}/{ns}/{name}/xet-{kind}-token/{revision}")
async def xet_token(request: Request, plural: str, ns: str, name: str, kind: str,
                    revision: str, hub: HubDep, actor: ActorDep, signer: SignerDep) -> Any:
    """A CAS token: `read` for anyone who may read the repo's files, `write` for whoever may
    upload to it (its writers, and those who may open a pull request: which ref a commit
    then moves is decided when it is made)."""
    repo_type = repo_type_from_plural(plural)
    if kind not in ("read", "write"):
        raise NotFound(f"Unknown token kind {kind!r}.")
    param(revision)  # any revision: the commit that follows names and checks its own
    repo = await run_in_threadpool(load_repo, hub, actor, repo_type, ns, name)
    if kind == "write":
        await run_in_threadpool(pulls.require_upload, hub, actor, repo)
    else:
        await run_in_threadpool(require_file_access, hub, actor, repo, base_url(request))
    token, exp = core_xet.issue_token(signer, repo, actor, kind, hub.settings.xet_token_ttl)
    url = cas_url(request, actor.id if actor is not None else None)
    return JSONResponse(
        {"accessToken": token, "exp": exp, "casUrl": url},
        headers={"X-Xet-Cas-Url": url, "X-Xet-Access-Token": token,
                 "X-Xet-Token-Expiration": str(exp)},
    )


def read_token_url(request: Request, repo_type: RepoType, repo_id: str, commit: str) -> str:
    """Where a client gets a read token for a file at `commit` (resolve's `xet-auth` link)."""
    return f"{base_url(request)}/api/{repo_type.plural}/{repo_id}/xet-read-token/{commit}"


# -- CAS side -----------------------------------------------------------------------------------


def _check_instance(request: Request) -> None:
    """A CAS URL of another hub's data (wiped since) must not look like this one."""
    instance = str(request.path_params.get("instance", "")).partition(".")[0]
    if instance != request.app.state.cas_instance:
        raise NotFound("Unknown CAS instance: ask the Hub for a new token.")


InstanceDep = Depends(_check_instance)


def cas_token(request: Request, signer: Signer) -> core_xet.CasToken:
    """The CAS token of a request's Bearer header; 401 when missing, forged or expired."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return core_xet.parse_token(signer, value.strip() if scheme.lower() == "bearer" else None)


def check_prefix(prefix: str) -> None:
    if prefix != PREFIX:
        raise NotFound(f"Unknown CAS prefix {prefix!r}.")


@router.post("/xet/{instance}/v1/xorbs/{prefix}/{xorb}", dependencies=[InstanceDep])
async def upload_xorb(request: Request, prefix: str, xorb: str, hub: HubDep,
                      signer: SignerDep) -> Any:
    check_prefix(prefix)
    token = cas_token(request, signer)
    writer = await run_in_threadpool(core_xet.XorbUpload, hub, token, xorb)
    await receive_into(request, writer, XORB_BATCH)
    inserted = await run_in_threadpool(writer.commit)
    return {"was_inserted": inserted}


@router.post("/xet/{instance}/v1/shards", dependencies=[InstanceDep])
async def upload_shard(request: Request, hub: HubDep, signer: SignerDep) -> Any:
    token = cas_token(request, signer)
    if not token.can_write:
        raise Forbidden("This CAS token may only read.")
    data = await read_body(request, core_xet.MAX_SHARD_SIZE)
    new = await run_in_threadpool(core_xet.register_shard, hub, token, data)
    return {"result": 1 if new else 0}


@router.post("/xet/{instance}/v2/shards", dependencies=[InstanceDep])
async def upload_shard_v2(request: Request, hub: HubDep, signer: SignerDep) -> Any:
    """`register_shard`, its progress streamed as NDJSON: `validating` (repeated while it
    runs), `committing`, then `result` or `error`. Refusals known before the body is read
    (token, size) are plain HTTP errors; once the stream starts the status is 200."""
    token = cas_token(request, signer)
    if not token.can_write:
        raise Forbidden("This CAS token may only read.")
    data = await read_body(request, core_xet.MAX_SHARD_SIZE)
    return StreamingResponse(_shard_events(hub, token, data),
                             media_type="application/x-ndjson")


def _frame(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode() + b"\n"


async def _shard_events(hub: Hub, token: core_xet.CasToken, data: bytes) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    committing = asyncio.Event()

    def on_commit() -> None:  # called in the worker thread
        loop.call_soon_threadsafe(committing.set)

    job = asyncio.ensure_future(run_in_threadpool(
        core_xet.register_shard, hub, token, data, on_commit))
    stage = {"type": "validating", "verified": 0, "total": 1}
    yield _frame(stage)
    while not job.done():
        waiter = asyncio.ensure_future(committing.wait())
        done, _ = await asyncio.wait({job, waiter}, timeout=SHARD_HEARTBEAT,
                                     return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        if committing.is_set() and stage["type"] == "validating":
            stage = {"type": "committing", "stage": "syncing"}
            committing.clear()  # reported: wait for the job or the next heartbeat
            yield _frame(stage)
        elif not done:
            yield _frame(stage)  # the last frame again, as a heartbeat
    try:
        job.result()
    except HverError as exc:
        retry = exc.status in (409, 429) or exc.status >= 500
        yield _frame({"type": "error", "message": exc.message, "retryable": retry,
                      "code": exc.code})
        return
    except Exception:
        log.exception("unexpected error registering a shard")
        yield _frame({"type": "error", "message": "Internal server error", "retryable": True,
                      "code": "InternalError"})
        return
    if stage["type"] == "validating":
        yield _frame({"type": "committing", "stage": "syncing"})
    yield _frame({"type": "result"})


@router.get("/xet/{instance}/v1/chunks/{prefix}/{chunk}", dependencies=[InstanceDep])
async def dedup_query(request: Request, prefix: str, chunk: str, hub: HubDep,
                      signer: SignerDep) -> Any:
    check_prefix(prefix)
    token = cas_token(request, signer)
    shard = await run_in_threadpool(core_xet.dedup_shard, hub, token, chunk)
    if shard is None:
        raise NotFound("No stored chunk with this hash.", code="EntryNotFound")
    return Response(shard, media_type="application/octet-stream")


def _plan_json(request: Request, signer: Signer, token: core_xet.CasToken,
               plan: core_xet.Plan, version: int = 1) -> dict[str, Any]:
    """A reconstruction plan: v1 gives one signed URL per chunk range, v2 one per xorb."""
    ranges: dict[str, list[str]] = {}
    for f in plan.fetches:
        ranges.setdefault(f.xorb, []).append(f"{f.byte_start}-{f.byte_end - 1}")
    urls: dict[str, str] = {}
    for xorb, allowed in ranges.items():
        # A xorb may also hold chunks of files the reader may not see: the URL grants
        # exactly the byte ranges of this plan.
        spans = ",".join(allowed)
        exp, sig = signer.sign("xet-fetch", xorb, spans)
        urls[xorb] = (f"{cas_url(request, token.account_id)}/fetch/{xorb}"
                      f"?r={spans}&exp={exp}&sig={sig}")
    out: dict[str, Any] = {
        "offset_into_first_range": plan.offset_into_first_range,
        "terms": [{"hash": hex_hash(t.xorb), "unpacked_length": t.unpacked_bytes,
                   "range": {"start": t.chunk_start, "end": t.chunk_end}} for t in plan.terms],
    }
    by_xorb: dict[str, list[dict[str, Any]]] = {}
    for f in plan.fetches:
        chunks = {"start": f.chunk_start, "end": f.chunk_end}
        byte_range = {"start": f.byte_start, "end": f.byte_end - 1}  # inclusive
        if version == 1:
            by_xorb.setdefault(f.xorb, []).append(
                {"range": chunks, "url": urls[f.xorb], "url_range": byte_range})
        else:
            by_xorb.setdefault(f.xorb, [{"url": urls[f.xorb], "ranges": []}])[0][
                "ranges"].append({"chunks": chunks, "bytes": byte_range})
    out["fetch_info" if version == 1 else "xorbs"] = by_xorb
    return out


def _reconstruction(version: int) -> Any:
    async def reconstruction(request: Request, file_id: str, hub: HubDep,
                             signer: SignerDep) -> Any:
        token = cas_token(request, signer)

        def run() -> Any:
            info = core_xet.readable_file(hub, token, file_id)
            if hub.mirror is not None:  # the quota's LRU, if the repo is a mirror's
                hub.mirror.reads.read_xet(token.repo_id, file_id)
            try:
                rng = parse_range(request.headers.get("range"), info.size)
            except RangeNotSatisfiable:
                return Response(status_code=416,
                                headers={"Content-Range": f"bytes */{info.size}"})
            start, end = rng or (0, info.size)
            plan = core_xet.plan(hub, info, start, end)
            return _plan_json(request, signer, token, plan, version)

        return await run_in_threadpool(run)

    return reconstruction


for _version in (1, 2):
    router.add_api_route(f"/xet/{{instance}}/v{_version}/reconstructions/{{file_id}}",
                         _reconstruction(_version), methods=["GET"], dependencies=[InstanceDep])


@router.get("/xet/{instance}/v1/reconstructions", dependencies=[InstanceDep])
async def batch_reconstruction(request: Request, hub: HubDep, signer: SignerDep) -> Any:
    """The batch form hf_xet sends: `?file_id=...&file_id=...`."""
    token = cas_token(request, signer)
    ids = request.query_params.getlist("file_id")
    return await run_in_threadpool(_batch, request, hub, signer, token, ids)


@router.post("/xet/{instance}/v1/reconstructions", dependencies=[InstanceDep])
async def batch_reconstruction_post(request: Request, hub: HubDep, signer: SignerDep) -> Any:
    """The batch form of the spec: a JSON list of keys, `[{"prefix": "default", "hash": id}]`."""
    token = cas_token(request, signer)
    body = parse_json(await read_body(request, MAX_JSON_BODY),
                      "Body must be a JSON list of {prefix, hash} keys.")
    if not isinstance(body, list) or not all(
            isinstance(k, dict) and isinstance(k.get("hash"), str) for k in body):
        raise BadRequest("Body must be a JSON list of {prefix, hash} keys.")
    for key in body:
        if key.get("prefix", PREFIX) != PREFIX:
            raise BadRequest(f"Unknown CAS prefix {key.get('prefix')!r}.")
    ids = list(dict.fromkeys(k["hash"] for k in body))
    return await run_in_threadpool(_batch, request, hub, signer, token, ids)


def _batch(request: Request, hub: Hub, signer: Signer, token: core_xet.CasToken,
           ids: list[str]) -> dict[str, Any]:
    """Whole-file plans of several files, each authorised as one reconstruction is."""
    if not ids or len(ids) > MAX_BATCH_FILES:
        raise BadRequest(f"Give 1 to {MAX_BATCH_FILES} file ids.")
    files: dict[str, Any] = {}
    fetch_info: dict[str, list[dict[str, Any]]] = {}
    for file_id in ids:
        info = core_xet.readable_file(hub, token, file_id)
        body = _plan_json(request, signer, token, core_xet.plan(hub, info, 0, info.size))
        files[file_id] = body["terms"]
        for xorb, entries in body["fetch_info"].items():
            fetch_info.setdefault(xorb, []).extend(entries)
    return {"files": files, "fetch_info": fetch_info}


@router.head("/xet/{instance}/v1/files/{file_id}", dependencies=[InstanceDep])
async def file_exists(request: Request, file_id: str, hub: HubDep, signer: SignerDep) -> Any:
    """Whether the token's repo holds the file (404 as for a missing one), and its size."""
    token = cas_token(request, signer)
    info = await run_in_threadpool(core_xet.readable_file, hub, token, file_id)
    return Response(headers={"Content-Length": str(info.size)})


@router.head("/xet/{instance}/v1/xorbs/{prefix}/{xorb}", dependencies=[InstanceDep])
async def xorb_exists(request: Request, prefix: str, xorb: str, hub: HubDep,
                      signer: SignerDep) -> Any:
    """Whether a xorb is the account's own upload or part of a file the token's repo holds
    (404 as for a missing one), and its stored size."""
    check_prefix(prefix)
    token = cas_token(request, signer)
    size = await run_in_threadpool(core_xet.readable_xorb_size, hub, token, xorb)
    return Response(headers={"Content-Length": str(size)})


@router.get("/xet/{instance}/v2/file-chunk-hashes/{file_id}", dependencies=[InstanceDep])
async def file_chunk_hashes(request: Request, file_id: str, hub: HubDep,
                            signer: SignerDep) -> Any:
    """Windows and gap summaries for re-uploading the dirty ranges of `X-Range-Dirty`."""
    token = cas_token(request, signer)
    dirty = _dirty_ranges(request.headers.get("x-range-dirty"))
    return await run_in_threadpool(xet_edits.file_chunk_hashes, hub, token, file_id, dirty)


def _dirty_ranges(header: str | None) -> list[tuple[int, int]]:
    """`bytes=A-B,C-D` (inclusive ends) as [start, end) ranges; BadRequest if malformed."""
    unit, _, spec = (header or "").partition("=")
    parts = spec.split(",") if unit.strip().lower() == "bytes" else []
    if not parts or len(parts) > xet_edits.MAX_DIRTY_RANGES:
        raise BadRequest("X-Range-Dirty must be `bytes=A-B[,C-D...]` with 1 to "
                         f"{xet_edits.MAX_DIRTY_RANGES} ranges.", code="InvalidRange")
    out = []
    for part in parts:
        match = _DIRTY_RANGE.fullmatch(part.strip())
        if match is None or int(match[2]) < int(match[1]):
            raise BadRequest(f"Invalid dirty range {part.strip()[:40]!r}.", code="InvalidRange")
        out.append((int(match[1]), int(match[2]) + 1))
    return out


@router.post("/xet/{instance}/v1/telemetry", dependencies=[InstanceDep])
async def telemetry() -> Response:
    return Response(status_code=204)  # accepted and dropped: this hub keeps no client telemetry


@router.api_route("/xet/{instance}/fetch/{xorb}", methods=["GET", "HEAD"],
                  dependencies=[InstanceDep])
async def fetch(request: Request, xorb: str, hub: HubDep, signer: SignerDep) -> Any:
    """Stored xorb bytes, for the signed URLs of a reconstruction plan (Range as given)."""
    q = request.query_params
    core_xet.check_hash(xorb)
    spans = q.get("r", "")
    signer.verify("xet-fetch", xorb, spans, exp=q.get("exp", ""), sig=q.get("sig", ""))
    path = hub.blobs.local_path(core_xet.xorb_key(xorb))
    if path is None:
        raise NotFound("Xorb not found.", code="EntryNotFound")
    stat = path.stat()
    size = stat.st_size
    try:
        start, end = parse_range(request.headers.get("range"), size) or (0, size)
    except RangeNotSatisfiable:
        raise Forbidden("This URL grants other byte ranges.") from None
    allowed = [tuple(int(n) for n in span.split("-")) for span in spans.split(",")]
    if not any(a <= start and end - 1 <= b for a, b in allowed):
        raise Forbidden("This URL grants other byte ranges.")
    # A single range goes out by sendfile (`hver.api.files`), as a whole file does.
    return BigFileResponse(path, media_type="application/octet-stream", stat_result=stat,
                           headers={"Cache-Control": "private, max-age=3600"})


# Every method a client may send: a path matched under another method would answer 405.
@router.api_route("/xet/{rest:path}", include_in_schema=False,
                  methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def not_implemented(request: Request) -> Any:
    raise NotFound(f"No CAS route {request.url.path}.")


# -- admin --------------------------------------------------------------------------------------


@router.get("/api/admin/storage")
async def hub_storage(hub: HubDep, actor: ActorDep) -> Any:
    """Logical and stored large-file bytes of the whole hub (site admins)."""
    access.require_site_admin(actor)
    stats = await run_in_threadpool(core_xet.storage_stats, hub, None)
    return stats.as_dict()


@router.get("/api/admin/storage/{plural}/{ns}/{name}")
async def repo_storage(plural: str, ns: str, name: str, hub: HubDep, actor: ActorDep) -> Any:
    access.require_site_admin(actor)
    repo = await run_in_threadpool(load_repo, hub, actor, repo_type_from_plural(plural), ns, name)
    stats = await run_in_threadpool(core_xet.storage_stats, hub, repo.id)
    return {"repo": repo.repo_id, "type": repo.type} | stats.as_dict()
