"""`GET /api/models/{id}/safetensors-metadata/{index}`: a sharded checkpoint's index and
every shard's header in one answer (`get_sharded_safetensors_metadata`), at `main`."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from hver.api.deps import ActorDep, HubDep, base_url, load_repo, param
from hver.api.gating import require_file_access
from hver.core import safetensors_index
from hver.core import tree as core_tree
from hver.core.repos import DEFAULT_BRANCH
from hver.names import RepoType, validate_path

router = APIRouter()


@router.get("/api/models/{ns}/{name}/safetensors-metadata/{filename:path}")
async def safetensors_metadata(request: Request, ns: str, name: str, filename: str,
                               hub: HubDep, actor: ActorDep) -> Any:
    path = validate_path(param(filename))
    site = base_url(request)

    def run() -> dict[str, Any]:
        repo = load_repo(hub, actor, RepoType.model, ns, name)
        require_file_access(hub, actor, repo, site)
        git = hub.git.open(repo.storage_key)
        commit = core_tree.resolve_revision(git, DEFAULT_BRANCH)
        return safetensors_index.sharded_metadata(hub, git, repo.id, commit, path)

    return await run_in_threadpool(run)
