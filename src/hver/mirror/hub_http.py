"""An upstream hub reached over HTTP: the Hub's API for what it says of a repo, git's
smart HTTP for the repo itself (commit ids and history kept exactly)."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import urllib3
from dulwich.client import HTTPUnauthorized, Urllib3HttpGitClient
from dulwich.objects import ObjectID
from dulwich.refs import Ref

from hver.githttp.receive import PackRefused, scan_pack_data
from hver.mirror.upstream import MIRRORED_REFS, Sink, UpstreamRepo, UpstreamUnavailable
from hver.names import RepoType
from hver.storage.git import GitRepo

log = logging.getLogger("hver.mirror")

TIMEOUT = httpx.Timeout(30.0, connect=5.0)
INFO_TIMEOUT = httpx.Timeout(10.0, connect=5.0)  # a request waits on it: short
LFS_JSON = "application/vnd.git-lfs+json"
CHUNK = 1 << 20
RESUMES = 5  # cut connections a download resumes after
USER_AGENT = "hver-mirror"


def _http_error(exc: Exception) -> UpstreamUnavailable:
    unreachable = isinstance(exc, (httpx.TransportError, OSError))
    return UpstreamUnavailable(f"{type(exc).__name__}: {exc}"[:400], unreachable)


class HubHttp:
    def __init__(self, url: str, token: str, tmp_dir: Path, object_cap: int,
                 pack_cap: int) -> None:
        self.url = url.rstrip("/")
        self._token = token
        self._tmp_dir = tmp_dir
        self._object_cap = object_cap  # the most bytes one git object may inflate to
        self._pack_cap = pack_cap  # the most bytes one fetch may bring
        headers = {"User-Agent": USER_AGENT}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(headers=headers, timeout=TIMEOUT, follow_redirects=False)
        # For the hrefs the upstream hands out (its storage, a CDN): they carry their own
        # credentials, and the mirror's token never leaves the upstream's origin.
        self._bare = httpx.Client(headers={"User-Agent": USER_AGENT}, timeout=TIMEOUT,
                                  follow_redirects=True)
        self._pool = urllib3.PoolManager(  # the bytes of large files
            timeout=urllib3.Timeout(connect=TIMEOUT.connect, read=TIMEOUT.read),
            retries=urllib3.Retry(total=None, connect=2, read=0, status=0, other=0,
                                  redirect=5, raise_on_redirect=True))

    def __repr__(self) -> str:  # never the token
        return f"HubHttp({self.url!r})"

    def repo_info(self, repo_type: RepoType, repo_id: str) -> UpstreamRepo | None:
        url = f"{self.url}/api/{repo_type.plural}/{repo_id}"
        # What the mirror needs, not the file list of a big repo.
        params = {"expand": ["private", "createdAt"] if repo_type is RepoType.space
                  else ["private", "gated", "createdAt"]}
        try:
            r = self._http.get(url, params=params, timeout=INFO_TIMEOUT)
        except httpx.HTTPError as exc:
            raise _http_error(exc) from None
        if r.status_code in (401, 403, 404):
            if r.headers.get("X-Error-Code") in ("RepoNotFound", "GatedRepo") or \
                    r.status_code == 404:
                return None
            raise UpstreamUnavailable(
                f"the upstream refused the mirror's token: {r.status_code} "
                f"{r.headers.get('X-Error-Message', '')}"[:400])
        if r.status_code != 200:
            raise UpstreamUnavailable(f"repo info answered {r.status_code}")
        try:
            body: dict[str, Any] = r.json()
            upstream_id = str(body["id"])
        except (ValueError, KeyError, TypeError):
            raise UpstreamUnavailable("repo info answered no repo id") from None
        gated = body.get("gated", False)
        if gated not in (False, None, "auto", "manual"):
            gated = "manual"  # a kind of gate this hub does not know: the strictest it has
        created = body.get("createdAt")
        created_at = None
        if isinstance(created, str):
            try:
                created_at = datetime.fromisoformat(created.replace("Z", "+00:00"))
                created_at = created_at.replace(tzinfo=None)
            except ValueError:
                created_at = None
        return UpstreamRepo(
            id=upstream_id, private=body.get("private") is not False,  # unsaid: private
            gated=gated if gated in ("auto", "manual") else None, created_at=created_at)

    def _git(self) -> Urllib3HttpGitClient:
        # Basic credentials scoped to the upstream's origin: dulwich sends none to another
        # host a redirect might name.
        auth: dict[str, Any] = {"username": "hver", "password": self._token} if self._token \
            else {}
        return Urllib3HttpGitClient(self.url, timeout=TIMEOUT.read, **auth)

    def fetch_git(self, repo_type: RepoType, repo_id: str, git: GitRepo) -> dict[str, str]:
        mirrored: dict[str, str] = {}
        store = git.repo.object_store

        def determine_wants(refs: Mapping[Ref, ObjectID],
                            depth: int | None = None) -> list[ObjectID]:
            for name, sha in refs.items():
                text = name.decode("utf-8", "replace")
                if sha and text.startswith(MIRRORED_REFS) and not text.endswith("^{}"):
                    mirrored[text] = sha.decode("ascii")
            return sorted({ObjectID(s.encode()) for s in mirrored.values()
                           if ObjectID(s.encode()) not in store})

        path = f"/{repo_type.url_prefix}{repo_id}.git"
        with tempfile.TemporaryFile(dir=self._tmp_dir, prefix="mirror-pack-") as spool:
            size = 0

            def write(data: bytes) -> int:
                nonlocal size
                size += len(data)
                if size > self._pack_cap:
                    raise UpstreamUnavailable(f"the upstream's pack is over "
                                              f"{self._pack_cap} bytes")
                return spool.write(data)

            try:
                self._git().fetch_pack(path, determine_wants, git.repo.get_graph_walker(),
                                       write)
            except HTTPUnauthorized:
                raise UpstreamUnavailable("the upstream refused the mirror's token for "
                                          "git") from None
            except UpstreamUnavailable:
                raise
            except Exception as exc:  # dulwich raises many kinds (NotGitRepository, ...)
                raise _http_error(exc) from None
            if size:
                self._add_pack(spool, store)
        return mirrored

    def _add_pack(self, spool: Any, store: Any) -> None:
        spool.seek(0)
        try:
            scan_pack_data(spool, self._object_cap)
        except PackRefused as exc:
            raise UpstreamUnavailable(f"the upstream's pack was refused: {exc}") from None
        spool.seek(0)
        try:
            store.add_thin_pack(spool.read, None)
        except Exception as exc:  # a broken pack: dulwich raises many kinds
            raise UpstreamUnavailable(f"the upstream's pack is broken: {exc}"[:400]) from None

    def lfs_download(self, repo_type: RepoType, repo_id: str, oid: str, size: int
                     ) -> tuple[str, dict[str, str]] | None:
        """Where the upstream serves a large file of a repo (its LFS batch API, which
        also serves files it stores as Xet): an href and the headers to send to it;
        None when the upstream says the repo holds no such object."""
        url = f"{self.url}/{repo_type.url_prefix}{repo_id}.git/info/lfs/objects/batch"
        body = {"operation": "download", "transfers": ["basic"], "hash_algo": "sha256",
                "objects": [{"oid": oid, "size": size}]}
        try:
            r = self._http.post(url, json=body, headers={
                "Accept": LFS_JSON, "Content-Type": LFS_JSON})
        except httpx.HTTPError as exc:
            raise _http_error(exc) from None
        if r.status_code == 404:
            return None
        if r.status_code != 200:  # 401, 403: the mirror's token may not read its files
            raise UpstreamUnavailable(f"the LFS batch answered {r.status_code}")
        try:
            obj = r.json()["objects"][0]
            if "error" in obj:
                if obj["error"].get("code") in (404, 410):
                    return None
                raise UpstreamUnavailable(f"the LFS batch: {obj['error']}"[:400])
            if obj.get("size") != size:  # not the object the commit names
                return None
            action = obj["actions"]["download"]
            return str(action["href"]), {str(k): str(v) for k, v in
                                         (action.get("header") or {}).items()}
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise UpstreamUnavailable("the LFS batch answered no download") from None

    def download(self, href: str, headers: dict[str, str], out: Sink, limit: int) -> None:
        """The bytes at `href` into `out`, from its current end on (a resumed download
        asks for the rest with Range), at most `limit` of them; a connection cut midway
        is resumed where it stopped, up to RESUMES times."""
        self._resumable("GET", href, headers, out, None, limit)

    def _resumable(self, method: str, url: str, headers: dict[str, str], out: Sink,
                   first: int | None, limit: int) -> None:
        """Bytes [first, first + limit) at `url` (first None: the whole body, asked for
        without a Range) appended to `out`, resuming after a cut connection from what
        arrived. Through urllib3, read into one buffer: several times less CPU per byte
        than httpx's stream."""
        start = first or 0
        base = out.tell()
        cuts = 0
        buf = bytearray(CHUNK)
        view = memoryview(buf)
        while True:
            done = out.tell() - base
            if done >= limit:
                return
            asked = {"Accept-Encoding": "identity", "User-Agent": USER_AGENT} | headers
            if first is not None or done:
                asked["Range"] = f"bytes={start + done}-{start + limit - 1}"
            try:
                r = self._pool.request(method, url, headers=asked, preload_content=False,
                                       decode_content=False)
                try:
                    if r.status == 200 and done:  # the range ignored: from the start
                        out.seek(base)
                        out.truncate()
                    elif r.status not in (200, 206):
                        raise UpstreamUnavailable(f"a download answered {r.status}")
                    while n := r.readinto(buf):
                        if out.tell() - base + n > limit:
                            raise UpstreamUnavailable("the upstream sent more bytes than "
                                                      "asked")
                        out.write(view[:n])
                finally:
                    r.release_conn()
                if out.tell() - base < limit:
                    raise urllib3.exceptions.ProtocolError("the body ended early")
                return
            except (urllib3.exceptions.ProtocolError, urllib3.exceptions.TimeoutError,
                    urllib3.exceptions.MaxRetryError) as exc:
                cuts += 1
                if cuts > RESUMES:
                    raise UpstreamUnavailable(f"{type(exc).__name__}: {exc}"[:400],
                                              unreachable=True) from None
                log.info("mirror: a download from %s was cut at %d bytes; resuming", self.url,
                         out.tell() - base)
                time.sleep(min(2.0, 0.1 * 2 ** cuts))
            except urllib3.exceptions.HTTPError as exc:
                raise UpstreamUnavailable(f"{type(exc).__name__}: {exc}"[:400]) from None

    def xet_file_hash(self, repo_type: RepoType, repo_id: str, commit: str,
                      path: str) -> str | None:
        """The Xet file hash the upstream stores a file as (its resolve's `X-Xet-Hash`),
        None when it stores it otherwise."""
        url = f"{self.url}/{repo_type.url_prefix}{repo_id}/resolve/{commit}/{quote(path)}"
        try:
            r = self._http.head(url, timeout=INFO_TIMEOUT)
        except httpx.HTTPError as exc:
            raise _http_error(exc) from None
        if r.status_code >= 400:
            raise UpstreamUnavailable(f"resolve answered {r.status_code}")
        found = r.headers.get("X-Xet-Hash")
        return found.lower() if found else None

    def xet_reconstruction(self, repo_type: RepoType, repo_id: str, commit: str,
                           file_hash: str) -> dict[str, Any]:
        """The upstream CAS's v2 plan to rebuild a whole file (terms and xorb ranges)."""
        url = f"{self.url}/api/{repo_type.plural}/{repo_id}/xet-read-token/{commit}"
        try:
            r = self._http.get(url, timeout=INFO_TIMEOUT)
            cas, token = r.headers.get("X-Xet-Cas-Url"), r.headers.get("X-Xet-Access-Token")
            if r.status_code != 200 or not cas or not token:
                raise UpstreamUnavailable(f"the Xet read token answered {r.status_code}")
            plan = self._bare.get(f"{cas.rstrip('/')}/v2/reconstructions/{file_hash}",
                                  headers={"Authorization": f"Bearer {token}"})
        except httpx.HTTPError as exc:
            raise _http_error(exc) from None
        if plan.status_code != 200:
            raise UpstreamUnavailable(f"the reconstruction answered {plan.status_code}")
        try:
            body: dict[str, Any] = plan.json()
            return body
        except ValueError:
            raise UpstreamUnavailable("the reconstruction answered no JSON") from None

    def xet_range(self, url: str, start: int, end: int, out: Sink) -> None:
        """Bytes [start, end] (inclusive) of a xorb, from a URL of a plan, into `out`
        (resumed after a cut connection)."""
        self._resumable("GET", url, {}, out, start, end - start + 1)

    def close(self) -> None:
        self._http.close()
        self._bare.close()
        self._pool.clear()
