"""Preupload and the NDJSON commit endpoint."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from hver.api.deps import ActorDep, HubDep, base_url, load_repo, param, repo_type_from_plural
from hver.api.util import parse_json, query_bool, read_json
from hver.community import pulls
from hver.core import commits as core_commits
from hver.core.commits import AddFile, AddLfs, DeleteFile, DeleteFolder, Operation
from hver.errors import BadRequest, PayloadTooLarge
from hver.names import RepoType

router = APIRouter()
MAX_PREUPLOAD_FILES = 1000


@router.post("/api/{plural}/{ns}/{name}/preupload/{revision}")
async def preupload(request: Request, plural: str, ns: str, name: str, revision: str,
                    hub: HubDep, actor: ActorDep) -> Any:
    repo_type = repo_type_from_plural(plural)
    body = await read_json(request, "Body must be JSON: {\"files\": [...]}.")
    files = body.get("files") if isinstance(body, dict) else None
    if not isinstance(files, list) or len(files) > MAX_PREUPLOAD_FILES:
        raise BadRequest(f"'files' must be a list of at most {MAX_PREUPLOAD_FILES} entries.")
    parsed: list[tuple[str, int, bytes]] = []
    for f in files:
        if not isinstance(f, dict) or not isinstance(f.get("path"), str):
            raise BadRequest("Each file needs a 'path'.")
        size = f.get("size", 0)
        if not isinstance(size, int) or size < 0:
            raise BadRequest(f"Invalid size for {f['path']!r}.")
        try:
            sample = base64.b64decode(f.get("sample") or "", validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"Invalid base64 sample for {f['path']!r}.") from None
        parsed.append((f["path"], size, sample))
    git_ignore = body.get("gitIgnore")
    if git_ignore is not None and not isinstance(git_ignore, str):
        raise BadRequest("'gitIgnore' must be a string.")

    def run() -> list[core_commits.UploadPlan]:
        repo = load_repo(hub, actor, repo_type, ns, name)
        pulls.require_upload(hub, actor, repo)
        return core_commits.plan_uploads(hub, repo, param(revision), parsed, git_ignore)

    plans = await run_in_threadpool(run)
    return {
        "files": [
            {"path": p.path, "uploadMode": p.mode, "shouldIgnore": p.should_ignore, "oid": p.oid}
            for p in plans
        ],
        "commitOid": None,
    }


def parse_ndjson(body: bytes) -> tuple[dict[str, Any], list[Operation]]:
    header: dict[str, Any] | None = None
    ops: list[Operation] = []
    for n, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        item = parse_json(line, f"Line {n} of the commit body is not valid JSON.")
        if not isinstance(item, dict) or not isinstance(item.get("value"), dict):
            raise BadRequest(f"Line {n}: expected {{\"key\": ..., \"value\": {{...}}}}.")
        key, value = item.get("key"), item["value"]
        if key == "header":
            if header is not None:
                raise BadRequest("The commit body has two header lines.")
            header = value
            continue
        path = value.get("path")
        if not isinstance(path, str):
            raise BadRequest(f"Line {n}: 'path' must be a string.")
        if key == "file":
            if value.get("encoding", "base64") != "base64" or not isinstance(
                value.get("content"), str
            ):
                raise BadRequest(f"Line {n}: 'file' needs base64 'content'.")
            ops.append(AddFile(path, core_commits.decode_base64(value["content"], path)))
        elif key == "lfsFile":
            if value.get("algo", "sha256") != "sha256":
                raise BadRequest(f"Line {n}: only sha256 LFS objects are supported.")
            size = value.get("size")
            if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
                raise BadRequest(f"Line {n}: 'size' must be an integer.")
            ops.append(AddLfs(path, str(value.get("oid")), size))
        elif key == "deletedFile":
            ops.append(DeleteFile(path))
        elif key == "deletedFolder":
            ops.append(DeleteFolder(path))
        else:
            raise BadRequest(f"Line {n}: unknown operation {key!r}.")
    if header is None:
        raise BadRequest("The commit body has no header line.")
    return header, ops


async def read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"Commit body is larger than {limit} bytes.")
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise PayloadTooLarge(f"Commit body is larger than {limit} bytes.")
    return bytes(buf)


@router.post("/api/{plural}/{ns}/{name}/commit/{revision}")
async def commit(request: Request, plural: str, ns: str, name: str, revision: str,
                 hub: HubDep, actor: ActorDep) -> Any:
    repo_type = repo_type_from_plural(plural)
    create_pr = query_bool(request, "create_pr")
    # Authorise before reading a large body.
    repo = await run_in_threadpool(load_repo, hub, actor, repo_type, ns, name)
    await run_in_threadpool(pulls.commit_target, hub, actor, repo, param(revision), create_pr)
    body = await read_limited(request, hub.settings.max_commit_body)
    header, ops = await run_in_threadpool(parse_ndjson, body)
    summary = header.get("summary") or ""
    description = header.get("description") or ""
    parent = header.get("parentCommit")
    if not isinstance(summary, str) or not isinstance(description, str):
        raise BadRequest("'summary' and 'description' must be strings.")
    if parent is not None and not isinstance(parent, str):
        raise BadRequest("'parentCommit' must be a string.")
    landed = await run_in_threadpool(
        core_commits.create_commit, hub, actor, repo, param(revision), ops, summary,
        description, parent, create_pr,
    )
    prefix = f"{base_url(request)}/{repo_type.url_prefix}{repo.repo_id}"
    return {
        "commitUrl": commit_url(request, repo_type, repo.repo_id, landed.sha),
        "commitOid": landed.sha,
        "commitMessage": summary,
        "pullRequestUrl": (f"{prefix}/discussions/{landed.pr_num}"
                           if landed.pr_num is not None else None),
        "success": True,
    }


def commit_url(request: Request, repo_type: RepoType, repo_id: str, sha: str) -> str:
    return f"{base_url(request)}/{repo_type.url_prefix}{repo_id}/commit/{sha}"
