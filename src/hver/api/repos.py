"""Create, delete, move and configure repos; branches and tags."""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.concurrency import run_in_threadpool

from hver.api.deps import ActorDep, HubDep, base_url, load_repo, param, repo_type_from_plural
from hver.api.errors import error_response
from hver.core import refs as core_refs
from hver.core import repos as core_repos
from hver.errors import BadRequest, Conflict, Unauthorized
from hver.names import RepoType, split_repo_id

router = APIRouter()
_M = TypeVar("_M", bound=BaseModel)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore")


class CreateRepo(_Body):
    name: str
    organization: str | None = None
    type: str | None = None
    private: bool | None = None
    visibility: Literal["private", "public"] | None = None
    sdk: str | None = None  # Spaces: kept in the new repo's card


class DeleteRepo(_Body):
    name: str
    organization: str | None = None
    type: str | None = None


class MoveRepo(_Body):
    fromRepo: str
    toRepo: str
    type: str | None = None


class Settings(_Body):
    private: bool | None = None
    visibility: Literal["private", "public"] | None = None
    gated: Literal["auto", "manual"] | bool | None = None


class BranchBody(_Body):
    startingPoint: str | None = None


class TagBody(_Body):
    tag: str
    message: str | None = None


def repo_url(request: Request, repo_type: RepoType, repo_id: str) -> str:
    return f"{base_url(request)}/{repo_type.url_prefix}{repo_id}"


def _split(name: str, organization: str | None, default_ns: str) -> tuple[str, str]:
    if "/" in name:
        return split_repo_id(name)
    return (organization or default_ns), name


@router.post("/api/repos/create")
async def create_repo(request: Request, body: CreateRepo, hub: HubDep,
                      actor: ActorDep) -> Any:
    if actor is None:
        raise Unauthorized("You must be authenticated to create a repo.")
    repo_type = RepoType.parse(body.type)
    ns, name = _split(body.name, body.organization, actor.name)
    private = body.private if body.visibility is None else body.visibility == "private"
    try:
        repo = await run_in_threadpool(
            core_repos.create_repo, hub, actor, repo_type, ns, name, bool(private), body.sdk
        )
    except Conflict as e:
        # The client reads `url` from the 409 body when exist_ok=True.
        return error_response(409, e.message, e.code,
                              extra={"url": repo_url(request, repo_type, f"{ns}/{name}")})
    return {"url": repo_url(request, repo_type, repo.repo_id), "name": repo.repo_id,
            "id": str(repo.id)}


@router.delete("/api/repos/delete")
async def delete_repo(body: DeleteRepo, hub: HubDep, actor: ActorDep) -> Any:
    if actor is None:
        raise Unauthorized("You must be authenticated to delete a repo.")
    ns, name = _split(body.name, body.organization, actor.name)
    await run_in_threadpool(
        core_repos.delete_repo, hub, actor, RepoType.parse(body.type), ns, name
    )
    return JSONResponse({})


@router.post("/api/repos/move")
async def move_repo(request: Request, body: MoveRepo, hub: HubDep, actor: ActorDep) -> Any:
    if actor is None:
        raise Unauthorized("You must be authenticated to move a repo.")
    repo_type = RepoType.parse(body.type)
    repo = await run_in_threadpool(
        core_repos.move_repo, hub, actor, repo_type, split_repo_id(body.fromRepo),
        split_repo_id(body.toRepo),
    )
    return {"url": repo_url(request, repo_type, repo.repo_id)}


@router.put("/api/{plural}/{ns}/{name}/settings")
async def update_settings(plural: str, ns: str, name: str, body: Settings, hub: HubDep,
                          actor: ActorDep) -> Any:
    repo_type = repo_type_from_plural(plural)
    private = body.private if body.visibility is None else body.visibility == "private"
    repo = await run_in_threadpool(
        core_repos.update_settings, hub, actor, repo_type, param(ns), param(name), private,
        body.gated,
    )
    return {"private": repo.private, "gated": repo.gated or False}


@router.post("/api/{plural}/{ns}/{name}/branch/{branch}")
async def create_branch(plural: str, ns: str, name: str, branch: str, hub: HubDep,
                        actor: ActorDep, request: Request) -> Any:
    body = await _optional_json(request, BranchBody)
    repo = await run_in_threadpool(load_repo, hub, actor, repo_type_from_plural(plural), ns, name)
    await run_in_threadpool(
        core_refs.create_branch, hub, actor, repo, param(branch), body.startingPoint
    )
    return {}


@router.delete("/api/{plural}/{ns}/{name}/branch/{branch}")
async def delete_branch(plural: str, ns: str, name: str, branch: str, hub: HubDep,
                        actor: ActorDep) -> Any:
    repo = await run_in_threadpool(load_repo, hub, actor, repo_type_from_plural(plural), ns, name)
    await run_in_threadpool(core_refs.delete_branch, hub, actor, repo, param(branch))
    return {}


@router.post("/api/{plural}/{ns}/{name}/tag/{revision}")
async def create_tag(plural: str, ns: str, name: str, revision: str, body: TagBody,
                     hub: HubDep, actor: ActorDep) -> Any:
    repo = await run_in_threadpool(load_repo, hub, actor, repo_type_from_plural(plural), ns, name)
    await run_in_threadpool(
        core_refs.create_tag, hub, actor, repo, param(revision), body.tag, body.message
    )
    return {}


@router.delete("/api/{plural}/{ns}/{name}/tag/{tag}")
async def delete_tag(plural: str, ns: str, name: str, tag: str, hub: HubDep,
                     actor: ActorDep) -> Any:
    repo = await run_in_threadpool(load_repo, hub, actor, repo_type_from_plural(plural), ns, name)
    await run_in_threadpool(core_refs.delete_tag, hub, actor, repo, param(tag))
    return {}


async def _optional_json(request: Request, model: type[_M]) -> _M:
    raw = await request.body()
    if not raw.strip():
        return model()
    try:
        return model.model_validate_json(raw)
    except ValueError as e:
        raise BadRequest(f"Invalid JSON body: {e}") from None
