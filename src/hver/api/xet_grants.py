"""Xorb upload grants on the CAS (`core.xet_grants`): ask for a grant, send the bytes to
its URL (here, for the local blob store: a signed URL of the hub's own, no CAS token),
commit it. Included before `api.xet`, whose catch-all answers every other CAS path."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from hver.api.bodies import receive_into
from hver.api.deps import HubDep, SignerDep
from hver.api.util import parse_json, read_body
from hver.api.xet import (
    MAX_JSON_BODY,
    XORB_BATCH,
    InstanceDep,
    cas_token,
    cas_url,
    check_prefix,
)
from hver.core import xet_grants
from hver.errors import BadRequest

router = APIRouter()


@router.post("/xet/{instance}/v1/xorb-grants/{prefix}/{xorb}", dependencies=[InstanceDep])
async def request_grant(request: Request, prefix: str, xorb: str, hub: HubDep,
                        signer: SignerDep) -> Any:
    """201 and a grant; 200 when the account sent this xorb before (nothing to upload)."""
    check_prefix(prefix)
    token = cas_token(request, signer)
    body = parse_json(await read_body(request, MAX_JSON_BODY),
                      "Body must be JSON: {\"length\": ..., \"checksum\": ...}.")
    base = cas_url(request, token.account_id)
    grant = await run_in_threadpool(xet_grants.request_grant, hub, signer, token, xorb, body,
                                    base)
    if grant is None:
        return JSONResponse({"was_inserted": False}, status_code=200)
    return JSONResponse(grant.as_dict(), status_code=201)


@router.put("/xet/{instance}/uploads/{grant_id}", dependencies=[InstanceDep])
async def upload(request: Request, grant_id: str, hub: HubDep, signer: SignerDep) -> Any:
    """The bytes of a grant, to a URL signed for them; staged only, checked at commit."""
    name, length = await run_in_threadpool(
        xet_grants.check_upload, hub, signer, grant_id, request.query_params)
    declared = request.headers.get("content-length")
    if declared is not None and declared != str(length):
        raise BadRequest(f"This URL takes exactly {length} bytes.")
    writer = await run_in_threadpool(xet_grants.UploadWriter, hub, name, length)
    await receive_into(request, writer, XORB_BATCH)
    await run_in_threadpool(writer.finish)
    return Response(status_code=200)


@router.post("/xet/{instance}/v1/xorb-commits/{prefix}/{xorb}/grant/{grant_id}",
             dependencies=[InstanceDep])
async def commit_grant(request: Request, prefix: str, xorb: str, grant_id: str, hub: HubDep,
                       signer: SignerDep) -> Any:
    check_prefix(prefix)
    token = cas_token(request, signer)
    inserted = await run_in_threadpool(xet_grants.commit_grant, hub, signer, token, xorb,
                                       grant_id)
    return {"was_inserted": inserted}
