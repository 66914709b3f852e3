"""A mirror's storage quota: past `mirror_quota`, the least recently read large files of
mirrored repos are released (LRU), except what a pin keeps; local repos' files are never
touched; a released file comes again from the upstream on its next read. `hver mirror
status` shows hits, misses and the hit ratio. Two real servers, a counting proxy between
them (as tests/test_mirror.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, constants
from mirrorkit import CountingProxy

SIZE = 100_000  # every large file here
QUOTA = 350_000  # three and a half of them


@dataclass
class Hubs:
    up: Any  # tests.conftest.Server
    proxy: CountingProxy
    mirror: Any
    up_api: HfApi
    up_user: str
    mirror_api: HfApi  # a local user of the mirror
    mirror_user: str


def _user(srv: Any) -> tuple[str, str]:
    name = f"u-{uuid.uuid4().hex[:8]}"
    _, token = srv.hver("user", "create", name, "--token", "write").splitlines()
    return name, token


@pytest.fixture(scope="module")
def hubs(tmp_path_factory: pytest.TempPathFactory, unstarted_server: Any) -> Iterator[Hubs]:
    root = tmp_path_factory.mktemp("quota")
    (root / "up").mkdir()
    up = unstarted_server(root / "up", rate_limit_anonymous="0")
    proxy = CountingProxy(up.port)
    up.env["HVER_PUBLIC_URL"] = proxy.endpoint  # its LFS and CAS URLs lead through it too
    up.start()
    up_user, up_token = _user(up)
    (root / "mirror").mkdir()
    mirror = unstarted_server(root / "mirror", upstream_url=proxy.endpoint,
                              upstream_token=up_token, mirror_ttl="300",
                              mirror_quota=str(QUOTA), download_flush_interval="0.2",
                              rate_limit_anonymous="0")
    mirror.start()
    mirror_user, mirror_token = _user(mirror)
    yield Hubs(up, proxy, mirror, HfApi(endpoint=up.endpoint, token=up_token), up_user,
               HfApi(endpoint=mirror.endpoint, token=mirror_token), mirror_user)
    mirror.stop()
    proxy.close()
    up.stop()


def _hver(srv: Any, *args: str) -> str:
    try:
        return srv.hver(*args)  # type: ignore[no-any-return]
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"hver {' '.join(args)} failed: {exc.stderr}")


def _upload(api: HfApi, repo_id: str, files: dict[str, bytes], xet: bool = False) -> None:
    with pytest.MonkeyPatch.context() as mp:
        if not xet:  # through LFS; else the hub's Xet
            mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
        api.create_commit(repo_id, commit_message="files", operations=[
            CommitOperationAdd(path, data) for path, data in files.items()])


def _read(hubs: Hubs, repo_id: str, path: str, endpoint: str | None = None) -> bytes:
    """A plain download through the mirror: a resolve (one read of the file, a hit when
    the mirror held it) and the object it redirects to."""
    r = httpx.get(f"{endpoint or hubs.mirror.endpoint}/{repo_id}/resolve/main/{path}",
                  follow_redirects=True, timeout=60)
    assert r.status_code == 200, r.text
    return r.content


def _stats(hubs: Hubs, repo_id: str | None = None) -> dict[str, Any]:
    args = ("storage", "stats", *([repo_id] if repo_id else []), "--json")
    return json.loads(_hver(hubs.mirror, *args))  # type: ignore[no-any-return]


def _eventually(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    """`check()` once it is true (eviction runs after a fetch, beside the answer)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.1)


def _files(hubs: Hubs, repo_id: str) -> int:
    return int(_stats(hubs, repo_id)["files"])


def _status(hubs: Hubs, repo_id: str) -> dict[str, Any]:
    [row] = [r for r in json.loads(_hver(hubs.mirror, "mirror", "status", "--json"))
             if r["id"] == repo_id]
    return row  # type: ignore[no-any-return]


def test_past_the_quota_the_least_recently_read_unpinned_file_goes(hubs: Hubs) -> None:
    data = {name: os.urandom(SIZE) for name in ("p", "a", "b", "x", "local", "other")}
    # A local repo of the mirror: never counted, never touched.
    local = f"{hubs.mirror_user}/local-{uuid.uuid4().hex[:6]}"
    hubs.mirror_api.create_repo(local)
    _upload(hubs.mirror_api, local, {"local.bin": data["local"]})
    # Upstream: a repo whose p.bin is pinned, and one read on demand (LFS and Xet).
    pinned = f"{hubs.up_user}/pinned-{uuid.uuid4().hex[:6]}"
    hubs.up_api.create_repo(pinned)
    _upload(hubs.up_api, pinned, {"p.bin": data["p"], "other.bin": data["other"]})
    repo = f"{hubs.up_user}/lru-{uuid.uuid4().hex[:6]}"
    hubs.up_api.create_repo(repo)
    _upload(hubs.up_api, repo, {"a.bin": data["a"], "b.bin": data["b"]})
    _upload(hubs.up_api, repo, {"x.bin": data["x"]}, xet=True)

    _hver(hubs.mirror, "mirror", "add", f"models/{pinned}", "--include", "p.bin")
    assert _files(hubs, pinned) == 1  # p.bin only: 100 kB held of 350
    assert _read(hubs, repo, "a.bin") == data["a"]  # 200 kB
    assert _read(hubs, repo, "x.bin") == data["x"]  # 300 kB, a Xet file
    assert _read(hubs, repo, "a.bin") == data["a"]  # a read again: x is the LRU now
    assert _eventually(lambda: _stats(hubs, repo)["xetFiles"] == 1)
    stored = _stats(hubs)["storedBytes"]
    assert _read(hubs, repo, "b.bin") == data["b"]  # 400 kB: past the quota
    # x goes (least recently read; p is pinned, b just came, a was read after x).
    assert _eventually(lambda: _stats(hubs, repo)["xetFiles"] == 0), _stats(hubs, repo)
    stats = _stats(hubs, repo)
    assert (stats["files"], stats["logicalBytes"]) == (2, 2 * SIZE), stats
    # What its eviction frees of a Xet file: the holding and the decoded copy (not the
    # xorbs yet); b's blob came meanwhile.
    assert _stats(hubs)["storedBytes"] == stored + SIZE
    status = _status(hubs, repo)
    assert status["heldFiles"] == 2 and status["heldBytes"] == 2 * SIZE, status

    # Read again: fetched again from the upstream, through its CAS; then a, read before
    # b came, is the LRU and goes: its LFS blob is deleted.
    hubs.proxy.reset()
    stored = _stats(hubs)["storedBytes"]
    assert _read(hubs, repo, "x.bin") == data["x"]
    assert hubs.proxy.count("/reconstructions/") == 1, hubs.proxy.paths()
    assert _eventually(lambda: _files(hubs, repo) == 2 and _stats(hubs, repo)["xetFiles"]
                       == 1), _stats(hubs, repo)
    assert _eventually(lambda: _stats(hubs)["storedBytes"] == stored - SIZE), _stats(hubs)
    hubs.proxy.reset()
    assert _read(hubs, repo, "a.bin") == data["a"]  # and a comes back once
    assert hubs.proxy.count("/info/lfs/objects/batch") == 1, hubs.proxy.paths()
    assert hubs.proxy.count("/_lfs/objects/") == 1, hubs.proxy.paths()
    assert _eventually(lambda: _files(hubs, repo) == 2)  # b, the LRU, went for it
    assert _eventually(lambda: _status(hubs, repo)["heldBytes"] == 2 * SIZE)

    # The pinned file, never read, is held all along (no upstream call for it), and so is
    # the local repo's file.
    hubs.proxy.reset()
    assert _read(hubs, pinned, "p.bin") == data["p"]
    assert _read(hubs, local, "local.bin") == data["local"]
    assert hubs.proxy.count("/info/lfs/objects/batch") + hubs.proxy.count(
        "/reconstructions/") == 0, hubs.proxy.paths()
    assert _files(hubs, pinned) == 1 and _files(hubs, local) == 1


def test_status_shows_hits_misses_and_the_hit_ratio(hubs: Hubs) -> None:
    repo = f"{hubs.up_user}/hits-{uuid.uuid4().hex[:6]}"
    hubs.up_api.create_repo(repo)
    data = os.urandom(SIZE)
    _upload(hubs.up_api, repo, {"w.bin": data})
    for _ in range(3):  # a miss (brought in), then two hits
        assert _read(hubs, repo, "w.bin") == data
    row = _eventually(lambda: (r := _status(hubs, repo))["hits"] == 2 and r)
    assert row, _status(hubs, repo)
    assert (row["hits"], row["misses"], row["hitRatio"]) == (2, 1, round(2 / 3, 4)), row
    out = subprocess.run(  # the table, and the totals against the quota on stderr
        [sys.executable, "-m", "hver", "mirror", "status", "--data", str(hubs.mirror.data)],
        env=hubs.mirror.env, capture_output=True, text=True, check=True)
    line = next(x for x in out.stdout.splitlines() if repo in x)
    assert "67%" in line.split(), line
    assert f"{QUOTA:,}" in out.stderr and "hits" in out.stderr, out.stderr
    assert "HITS" in out.stdout and "RATIO" in out.stdout
