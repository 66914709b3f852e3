"""Xet: the Hub's token routes, and the CAS API (v1) mounted at `/xet`.

Clients ask the Hub for a short-lived CAS token scoped to one repo, then talk to
the CAS with it: xorb and shard uploads, the global-dedup query, reconstruction
plans, and the byte-range fetches those plans point to (signed URLs, sent
without Authorization). Every other CAS route answers 404, which makes hf_xet
fall back to these v1 routes.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from hver.api.deps import (
    ActorDep,
    HubDep,
    SignerDep,
    base_url,
    load_repo,
    param,
    repo_type_from_plural,
)
from hver.api.gating import require_file_access
from hver.api.lfs import BigFileResponse
from hver.api.util import RangeNotSatisfiable, parse_range, read_body, receive_into
from hver.core import access
from hver.core import xet as core_xet
from hver.core.signing import Signer
from hver.errors import BadRequest, Forbidden, NotFound
from hver.names import RepoType
from hver.xet.hashing import hex_hash

router = APIRouter()
PREFIX = "default"  # the only CAS namespace
MAX_BATCH_FILES = 100
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
    """A CAS token: `read` for anyone who may read the repo, `write` for its writers."""
    repo_type = repo_type_from_plural(plural)
    if kind not in ("read", "write"):
        raise NotFound(f"Unknown token kind {kind!r}.")
    param(revision)  # any revision: the commit that follows names and checks its own
    repo = await run_in_threadpool(load_repo, hub, actor, repo_type, ns, name)
    if kind == "write":
        access.require_write(actor, repo)
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


def _token(request: Request, signer: Signer) -> core_xet.CasToken:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return core_xet.parse_token(signer, value.strip() if scheme.lower() == "bearer" else None)


def _check_prefix(prefix: str) -> None:
    if prefix != PREFIX:
        raise NotFound(f"Unknown CAS prefix {prefix!r}.")


@router.post("/xet/{instance}/v1/xorbs/{prefix}/{xorb}", dependencies=[InstanceDep])
async def upload_xorb(request: Request, prefix: str, xorb: str, hub: HubDep,
                      signer: SignerDep) -> Any:
    _check_prefix(prefix)
    token = _token(request, signer)
    writer = await run_in_threadpool(core_xet.XorbUpload, hub, token, xorb)
    await receive_into(request, writer, XORB_BATCH)
    inserted = await run_in_threadpool(writer.commit)
    return {"was_inserted": inserted}


@router.post("/xet/{instance}/v1/shards", dependencies=[InstanceDep])
async def upload_shard(request: Request, hub: HubDep, signer: SignerDep) -> Any:
    token = _token(request, signer)
    if not token.can_write:
        raise Forbidden("This CAS token may only read.")
    data = await read_body(request, core_xet.MAX_SHARD_SIZE)
    new = await run_in_threadpool(core_xet.register_shard, hub, token, data)
    return {"result": 1 if new else 0}


@router.get("/xet/{instance}/v1/chunks/{prefix}/{chunk}", dependencies=[InstanceDep])
async def dedup_query(request: Request, prefix: str, chunk: str, hub: HubDep,
                      signer: SignerDep) -> Any:
    _check_prefix(prefix)
    token = _token(request, signer)
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
        token = _token(request, signer)

        def run() -> Any:
            info = core_xet.readable_file(hub, token, file_id)
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
    token = _token(request, signer)
    ids = request.query_params.getlist("file_id")
    if not ids or len(ids) > MAX_BATCH_FILES:
        raise BadRequest(f"Give 1 to {MAX_BATCH_FILES} file_id parameters.")

    def run() -> Any:
        files: dict[str, Any] = {}
        fetch_info: dict[str, list[dict[str, Any]]] = {}
        for file_id in ids:
            info = core_xet.readable_file(hub, token, file_id)
            body = _plan_json(request, signer, token, core_xet.plan(hub, info, 0, info.size))
            files[file_id] = body["terms"]
            for xorb, entries in body["fetch_info"].items():
                fetch_info.setdefault(xorb, []).extend(entries)
        return {"files": files, "fetch_info": fetch_info}

    return await run_in_threadpool(run)


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
    size = path.stat().st_size
    try:
        start, end = parse_range(request.headers.get("range"), size) or (0, size)
    except RangeNotSatisfiable:
        raise Forbidden("This URL grants other byte ranges.") from None
    allowed = [tuple(int(n) for n in span.split("-")) for span in spans.split(",")]
    if not any(a <= start and end - 1 <= b for a, b in allowed):
        raise Forbidden("This URL grants other byte ranges.")
    return BigFileResponse(path, media_type="application/octet-stream",
                           headers={"Cache-Control": "private, max-age=3600"})


@router.api_route("/xet/{rest:path}", methods=["GET", "HEAD", "POST", "PUT", "DELETE"])
async def not_implemented(rest: str) -> Any:
    raise NotFound(f"No CAS route /{rest}.")


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
