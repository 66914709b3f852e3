"""User and organization overviews, organization members, and their management."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from hver.api.deps import ActorDep, HubDep, param
from hver.api.util import read_json
from hver.core import orgs as core_orgs
from hver.db.models import Account
from hver.errors import BadRequest

router = APIRouter()


def _counts(p: core_orgs.Profile) -> dict[str, Any]:
    return {"numModels": p.repos["model"], "numDatasets": p.repos["dataset"],
            "numSpaces": p.repos["space"]}


def _org(a: Account) -> dict[str, Any]:
    return {"name": a.name, "fullname": a.fullname or a.name, "avatarUrl": ""}


def _user(a: Account) -> dict[str, Any]:
    return {"user": a.name, "fullname": a.fullname or a.name, "avatarUrl": "", "type": "user"}


@router.get("/api/users/{name}/overview")
async def user_overview(name: str, hub: HubDep, actor: ActorDep) -> Any:
    def run() -> dict[str, Any]:
        with hub.db.read() as session:
            p = core_orgs.profile(session, actor, param(name), "user")
        return _user(p.account) | _counts(p) | {
            "numLikes": p.likes, "orgs": [_org(o) for o in p.orgs],
            "createdAt": p.account.created_at.isoformat() + "Z"}

    return await run_in_threadpool(run)


@router.get("/api/organizations/{name}/overview")
async def org_overview(name: str, hub: HubDep, actor: ActorDep) -> Any:
    def run() -> dict[str, Any]:
        with hub.db.read() as session:
            p = core_orgs.profile(session, actor, param(name), "org")
        return _org(p.account) | _counts(p) | {"numUsers": p.members}

    return await run_in_threadpool(run)


@router.get("/api/organizations/{name}/members")
async def org_members(name: str, hub: HubDep) -> Any:
    def run() -> list[dict[str, Any]]:
        with hub.db.read() as session:
            return [_user(a) | {"role": role}
                    for a, role in core_orgs.members(session, param(name))]

    return await run_in_threadpool(run)


@router.put("/api/organizations/{name}/members/{user}")
async def set_member(request: Request, name: str, user: str, hub: HubDep,
                     actor: ActorDep) -> Any:
    body = await read_json(request, "Body must be JSON: {\"role\": \"read\"|\"write\"|\"admin\"}.")
    role = body.get("role") if isinstance(body, dict) else None
    if not isinstance(role, str):
        raise BadRequest("'role' must be one of read, write, admin.")

    def run() -> None:
        with hub.db.write() as session:
            core_orgs.set_member(session, actor, param(name), param(user), role)

    await run_in_threadpool(run)
    return {"user": param(user), "role": role}


@router.delete("/api/organizations/{name}/members/{user}")
async def drop_member(name: str, user: str, hub: HubDep, actor: ActorDep) -> Any:
    def run() -> None:
        with hub.db.write() as session:
            core_orgs.drop_member(session, actor, param(name), param(user))

    await run_in_threadpool(run)
    return {"user": param(user), "removed": True}
