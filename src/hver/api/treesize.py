"""`GET /api/{type}s/{id}/treesize/{rev}/{path}`: the total size of a folder."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from hver.api.deps import ActorDep, HubDep, load_repo, param, repo_type_from_plural
from hver.core import tree as core_tree
from hver.core import treesize as core_treesize
from hver.names import validate_path

router = APIRouter()


async def _treesize(plural: str, ns: str, name: str, revision: str, path: str, hub: Any,
                    actor: Any) -> Any:
    repo_type = repo_type_from_plural(plural)
    path = param(path).strip("/")
    if path:
        validate_path(path)

    def run() -> int:
        repo = load_repo(hub, actor, repo_type, ns, name)
        git = hub.git.open(repo.storage_key)
        commit = core_tree.resolve_revision(git, param(revision))
        return core_treesize.tree_size(git, commit, path)

    return {"path": path, "size": await run_in_threadpool(run)}


@router.get("/api/{plural}/{ns}/{name}/treesize/{revision}")
async def treesize_root(plural: str, ns: str, name: str, revision: str, hub: HubDep,
                        actor: ActorDep) -> Any:
    return await _treesize(plural, ns, name, revision, "", hub, actor)


@router.get("/api/{plural}/{ns}/{name}/treesize/{revision}/{path:path}")
async def treesize_path(plural: str, ns: str, name: str, revision: str, path: str,
                        hub: HubDep, actor: ActorDep) -> Any:
    return await _treesize(plural, ns, name, revision, path, hub, actor)
