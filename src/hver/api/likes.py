"""Likes: like and unlike a repo, a user's likes, a repo's likers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from hver.api.deps import ActorDep, HubDep, param, repo_type_from_plural
from hver.api.util import iso
from hver.core import likes as core_likes
from hver.core import repos as core_repos
from hver.names import RepoType

router = APIRouter()


def _set(plural: str, ns: str, name: str, hub: HubDep, actor: ActorDep, liked: bool) -> int:
    repo_type = repo_type_from_plural(plural)
    with hub.db.write() as session:
        repo = core_repos.get_repo(session, actor, repo_type, param(ns), param(name))
        return core_likes.set_like(session, actor, repo, liked)


@router.post("/api/{plural}/{ns}/{name}/like")
async def like(plural: str, ns: str, name: str, hub: HubDep, actor: ActorDep) -> Any:
    return {"likes": await run_in_threadpool(_set, plural, ns, name, hub, actor, True)}


@router.delete("/api/{plural}/{ns}/{name}/like")
async def unlike(plural: str, ns: str, name: str, hub: HubDep, actor: ActorDep) -> Any:
    return {"likes": await run_in_threadpool(_set, plural, ns, name, hub, actor, False)}


@router.get("/api/users/{user}/likes")
async def user_likes(user: str, hub: HubDep, actor: ActorDep) -> Any:
    def run() -> list[dict[str, Any]]:
        with hub.db.read() as session:
            liked = core_likes.liked_by(session, actor, param(user))
        return [{"createdAt": iso(item.at),
                 "repo": {"name": item.repo.repo_id, "type": item.repo.type}} for item in liked]

    return await run_in_threadpool(run)


@router.get("/api/{plural}/{ns}/{name}/likers")
async def repo_likers(plural: str, ns: str, name: str, hub: HubDep, actor: ActorDep) -> Any:
    repo_type: RepoType = repo_type_from_plural(plural)

    def run() -> list[dict[str, Any]]:
        with hub.db.read() as session:
            repo = core_repos.get_repo(session, actor, repo_type, param(ns), param(name))
            return [{"user": a.name, "fullname": a.fullname or a.name, "avatarUrl": ""}
                    for a in core_likes.likers(session, repo)]

    return await run_in_threadpool(run)
