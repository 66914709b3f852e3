"""`/resolve/{rev}/{path}`: file content, the heart of every download."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from hver.api.deps import ActorDep, HubDep, SignerDep, base_url, load_repo, param
from hver.api.gating import require_file_access
from hver.api.util import FILE_HEADERS, INLINE_IMAGE_TYPES, RangeNotSatisfiable, parse_range
from hver.api.xet import read_token_url
from hver.core import repos as core_repos
from hver.core import tree as core_tree
from hver.core.accounts import Actor
from hver.core.hub import Hub
from hver.core.objects import held_object
from hver.core.tree import FileInfo
from hver.errors import NotFound
from hver.names import RepoType, validate_path

router = APIRouter()
# One file per repo type counts as "a download" (the Hub counts config.json for models):
# once per HEAD, which Hub clients send before every download, or per GET from clients
# that send no HEAD first (no `X-HF-Download-Counter` header).
COUNTED_FILES = {RepoType.model: "config.json", RepoType.dataset: "README.md"}


@dataclass
class _Found:
    repo_pk: int
    storage_key: str
    repo_id: str
    commit: str
    info: FileInfo
    data: bytes | None  # the content of a file kept in git
    xet_hash: str | None  # an LFS file stored as Xet chunks


def _lookup(hub: Hub, actor: Actor | None, repo_type: RepoType, ns: str, name: str,
            revision: str, path: str, counts: bool, site: str) -> _Found:
    repo = load_repo(hub, actor, repo_type, ns, name)
    require_file_access(hub, actor, repo, site, path)
    git = hub.git.open(repo.storage_key)
    commit = core_tree.resolve_revision(git, revision)
    info = core_tree.get_file(git, commit, path)
    data = git.blob(info.oid) if info.lfs is None else None
    xet_hash = None
    if info.lfs is not None:
        obj = held_object(hub, repo.id, info.lfs.oid, info.lfs.size)
        if obj is None:
            raise NotFound(f"The content of {path} is not stored in this repo.",
                           code="EntryNotFound")
        xet_hash = obj.xet_hash
    if counts and COUNTED_FILES.get(repo_type) == path:
        core_repos.count_download(hub, repo.id)
    return _Found(repo.id, repo.storage_key, repo.repo_id, commit, info, data, xet_hash)


def _handler(repo_type: RepoType) -> Any:
    async def resolve(request: Request, ns: str, name: str, revision: str, path: str,
                      hub: HubDep, actor: ActorDep, signer: SignerDep) -> Any:
        path = param(path)
        validate_path(path)
        found = await run_in_threadpool(
            _lookup, hub, actor, repo_type, ns, name, param(revision), path,
            request.method == "HEAD" or "x-hf-download-counter" not in request.headers,
            base_url(request),
        )
        commit, info, data = found.commit, found.info, found.data
        headers = FILE_HEADERS | {"X-Repo-Commit": commit, "Accept-Ranges": "bytes",
                   "Access-Control-Expose-Headers":
                   "X-Repo-Commit, X-Linked-Etag, X-Linked-Size, ETag, Content-Range, "
                   "X-Xet-Hash, Link"}
        filename = path.rsplit("/", 1)[-1]
        if info.lfs is not None:
            headers |= {"ETag": f'"{info.lfs.oid}"', "X-Linked-Etag": f'"{info.lfs.oid}"',
                        "X-Linked-Size": str(info.lfs.size)}
            if found.xet_hash is not None:
                token_url = read_token_url(request, repo_type, found.repo_id, commit)
                headers |= {"X-Xet-Hash": found.xet_hash,
                            "Link": f'<{token_url}>; rel="xet-auth"'}
                if request.method == "HEAD":  # all a Xet client needs; no redirect to follow
                    return Response(status_code=200, headers=headers | {
                        "Content-Length": str(info.lfs.size)})
            exp, sig = signer.sign("download", info.lfs.oid, commit, found.repo_pk,
                                   found.storage_key)
            query = urlencode({"commit": commit, "repo": found.repo_pk, "filename": filename,
                               "exp": exp, "sig": sig})
            location = f"{base_url(request)}/_lfs/objects/{info.lfs.oid}?{query}"
            return RedirectResponse(location, status_code=302, headers=headers)
        assert data is not None
        headers["ETag"] = f'"{info.oid}"'
        headers["Content-Disposition"] = (
            f"inline; filename*=UTF-8''{quote(filename)}; filename=\"{quote(filename)}\""
        )
        media = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        if media.startswith("text/") or filename.endswith((".json", ".md", ".txt", ".yaml")):
            media = "text/plain; charset=utf-8"
        elif media not in INLINE_IMAGE_TYPES:  # svg, xhtml, xml, pdf...: never rendered
            media = "application/octet-stream"
        try:
            rng = parse_range(request.headers.get("range"), len(data))
        except RangeNotSatisfiable:
            return Response(status_code=416, headers=headers | {
                "Content-Range": f"bytes */{len(data)}"})
        status = 200
        if rng is not None:
            start, end = rng
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{len(data)}"
            data = data[start:end]
            status = 206
        headers["Content-Length"] = str(len(data))
        body = b"" if request.method == "HEAD" else data
        resp = Response(body, status_code=status, headers=headers, media_type=media)
        resp.headers["Content-Length"] = str(len(data))
        return resp

    return resolve


for _t in RepoType:
    router.add_api_route(
        f"/{_t.url_prefix}{{ns}}/{{name}}/resolve/{{revision}}/{{path:path}}",
        _handler(_t), methods=["GET", "HEAD"],
    )
