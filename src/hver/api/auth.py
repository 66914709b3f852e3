"""whoami, YAML validation and the side calls clients make."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from hver.api import accounts as accounts_api
from hver.api.deps import ActorDep, HubDep
from hver.api.errors import error_response, plain_error_response
from hver.api.util import read_json
from hver.core import orgs as core_orgs
from hver.core.accounts import Actor
from hver.core.cards import check_card
from hver.errors import BadRequest, Unauthorized

router = APIRouter()
# Token management and the audit log ride on this router (fixed paths, included first).
router.include_router(accounts_api.router)


@router.get("/api/whoami-v2")
async def whoami(actor: ActorDep, hub: HubDep) -> dict[str, Any]:
    if actor is None:
        raise Unauthorized("Invalid user token", code="Unauthorized")

    orgs = list(actor.orgs)

    def org_fullnames() -> dict[str, str | None]:
        with hub.db.read() as session:
            return core_orgs.fullnames(session, orgs)

    fullnames = await run_in_threadpool(org_fullnames) if orgs else {}
    return {
        "type": "user",
        "id": str(actor.id),
        "name": actor.name,
        "fullname": actor.fullname or actor.name,
        "email": actor.email,
        "emailVerified": actor.email is not None,
        "isPro": False,
        "canPay": False,
        "avatarUrl": "",
        "orgs": [
            {"type": "org", "name": name, "fullname": fullnames.get(name) or name,
             "roleInOrg": role}
            for name, role in sorted(actor.orgs.items())
        ],
        "auth": {"type": "access_token", "accessToken": access_token_info(actor)},
    }


def access_token_info(actor: Actor) -> dict[str, Any]:
    """`auth.accessToken` as the Hub gives it; fine-grained tokens list their scopes."""
    out: dict[str, Any] = {"displayName": actor.token_name, "role": actor.token_role}
    if actor.token_created_at is not None:
        out["createdAt"] = actor.token_created_at.isoformat() + "Z"
    if actor.scopes is not None:
        out["fineGrained"] = {
            "canReadGatedRepos": True,
            "global": [],
            "scoped": [
                {"entity": {"type": s.repo_type if s.type == "repo" else s.type,
                            "name": s.name},
                 "permissions": sorted(s.permissions)}
                for s in actor.scopes
            ],
        }
    return out


@router.post("/api/validate-yaml")
async def validate_yaml(request: Request) -> Any:
    """The Hub's card check. Errors are a 400 whose text huggingface_hub raises as a
    ValueError (`RepoCard.validate` asks for text: it gets the Hub's `- Error: ...` lines
    as the body); warnings come with a 200."""
    body = await read_json(request, "Body must be JSON: {\"content\": ..., \"repoType\": ...}")
    content = body.get("content") if isinstance(body, dict) else None
    if not isinstance(content, str):
        raise BadRequest("'content' must be a string.")
    repo_type = body.get("repoType")
    check = await run_in_threadpool(
        check_card, content, repo_type if isinstance(repo_type, str) else "model")
    warnings = [{"message": w} for w in check.warnings]
    if check.errors:
        message = "\n".join(f"- Error: {e}" for e in check.errors)
        accept = request.headers.get("accept", "")
        if "text/plain" in accept and "json" not in accept:
            return plain_error_response(400, message, "BadRequest")
        return error_response(400, message, "BadRequest", extra={
            "errors": [{"message": e} for e in check.errors], "warnings": warnings})
    return {"errors": [], "warnings": warnings}


@router.get("/api/agent-harnesses")
async def agent_harnesses() -> dict[str, Any]:
    return {"standardEnvVars": [], "harnesses": {}}
