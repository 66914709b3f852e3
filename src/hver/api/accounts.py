"""A user's own API tokens, and the site admin's audit log.

- `GET /api/settings/tokens`: the caller's tokens (never their secrets).
- `POST /api/settings/tokens` `{"name"?, "role": "read"|"write"|"fineGrained", "scopes"?:
  [{"type": "repo"|"org"|"user", "name", "permissions": [...], "repoType"?}]}`: a new token;
  the answer carries its secret in `token`, the only time it is shown.
- `DELETE /api/settings/tokens/{id or name}`: revoke one.
- `GET /api/admin/audit?event=&actor=&since=&limit=`: the audit log, newest first.

Token management takes a write token (not read-only, not fine-grained); the audit log a
site admin's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from hver.api.deps import ActorDep, HubDep, param
from hver.core import access, accounts, audit
from hver.core.hub import Hub
from hver.errors import BadRequest

router = APIRouter()


class ScopeBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    name: str
    permissions: list[str]
    repoType: str | None = None


class NewToken(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str | None = None
    role: str = "write"
    scopes: list[ScopeBody] | None = None


@router.get("/api/settings/tokens")
async def list_tokens(hub: HubDep, actor: ActorDep) -> list[dict[str, Any]]:
    me = access.require_full_token(actor)

    def run() -> list[dict[str, Any]]:
        with hub.db.read() as session:
            return [t.as_dict() for t in accounts.list_tokens(session, me.name)]

    return await run_in_threadpool(run)


@router.post("/api/settings/tokens")
async def create_token(body: NewToken, hub: HubDep, actor: ActorDep) -> dict[str, Any]:
    me = access.require_full_token(actor)
    scopes = [accounts.make_scope(s.type, s.name, s.permissions, s.repoType)
              for s in body.scopes or []]

    def run() -> dict[str, Any]:
        with hub.db.write() as session:
            info, secret = accounts.issue_token(session, me.name, body.role, body.name or "",
                                                scopes or None, actor=me)
        return info.as_dict() | {"token": secret}

    return await run_in_threadpool(run)


@router.delete("/api/settings/tokens/{token}")
async def revoke_token(token: str, hub: HubDep, actor: ActorDep) -> dict[str, Any]:
    me = access.require_full_token(actor)

    def run() -> dict[str, Any]:
        with hub.db.write() as session:
            return accounts.revoke_token(session, me.name, param(token), actor=me).as_dict()

    return await run_in_threadpool(run)


@router.get("/api/admin/audit")
async def audit_log(
    hub: HubDep, actor: ActorDep, event: str | None = None,
    actor_name: Annotated[str | None, Query(alias="actor")] = None, since: str | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    access.require_site_admin(actor)
    return await run_in_threadpool(
        audit_entries, hub, event=event, actor=actor_name,
        since=parse_since(since), limit=max(1, min(limit, 10000)))


def parse_since(since: str | None) -> datetime | None:
    """An ISO 8601 date or time, naive UTC as the log stores it."""
    if not since:
        return None
    try:
        at = datetime.fromisoformat(since.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"Invalid 'since' {since!r}: an ISO 8601 date or time.") from None
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at


def audit_entries(hub: Hub, *, event: str | None = None, actor: str | None = None,
                  since: datetime | None = None, limit: int = 1000) -> list[dict[str, Any]]:
    with hub.db.read() as session:
        return [
            {"id": e.id, "at": e.at.isoformat() + "Z", "actor": e.actor, "event": e.event,
             "target": e.target, "details": e.details or {}}
            for e in audit.events(session, since=since, event=event, actor=actor, limit=limit)
        ]
