"""`POST /api/{type}s/{id}/super-squash/{branch}`: a branch's history as one commit."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from hver.api.deps import ActorDep, HubDep, load_repo, param, repo_type_from_plural
from hver.api.util import parse_json
from hver.core import squash as core_squash
from hver.errors import BadRequest

router = APIRouter()


@router.post("/api/{plural}/{ns}/{name}/super-squash/{branch}")
async def super_squash(request: Request, plural: str, ns: str, name: str, branch: str,
                       hub: HubDep, actor: ActorDep) -> Any:
    repo_type = repo_type_from_plural(plural)
    raw = await request.body()
    body = parse_json(raw) if raw.strip() else {}
    message = body.get("message") if isinstance(body, dict) else None
    if message is not None and not isinstance(message, str):
        raise BadRequest("'message' must be a string.")

    def run() -> str:
        repo = load_repo(hub, actor, repo_type, ns, name)
        return core_squash.super_squash(hub, actor, repo, param(branch), message)

    return {"commitOid": await run_in_threadpool(run)}
