"""kill -9 at the worst moments, restart on the same data directory, and check that
nothing needs repair: acknowledged commits are there, half uploads are invisible."""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, hf_hub_download

MiB = 1024 * 1024


def download(api, repo_id, path, cache_dir, **kw) -> str:
    return hf_hub_download(repo_id, path, cache_dir=cache_dir, token=api.token,
                           endpoint=api.endpoint, **kw)


def setup_server(server_factory, **settings):
    srv = server_factory(**settings)
    name, _, api = srv.new_user_api("crash")
    repo_id = f"{name}/survivor"
    api.create_repo(repo_id)
    return srv, api, repo_id


def seed(api, repo_id):
    """Two earlier commits, one with an LFS file; returns (commit ids, lfs bytes)."""
    lfs = os.urandom(64 * 1024) + b"\x00"
    api.upload_file(path_or_fileobj=b"before the crash\n", path_in_repo="notes.txt",
                    repo_id=repo_id)
    api.upload_file(path_or_fileobj=lfs, path_in_repo="early.bin", repo_id=repo_id)
    return [c.commit_id for c in api.list_repo_commits(repo_id)], lfs


def batch(srv, api, repo_id, oid, size, transfers=("basic",)) -> dict:
    r = httpx.post(f"{srv.endpoint}/{repo_id}.git/info/lfs/objects/batch",
                   headers={"authorization": f"Bearer {api.token}",
                            "content-type": "application/vnd.git-lfs+json"},
                   json={"operation": "upload", "transfers": list(transfers),
                         "hash_algo": "sha256", "objects": [{"oid": oid, "size": size}]})
    assert r.status_code == 200, r.text
    return r.json()["objects"][0]


def commit_lfs(srv, api, repo_id, path, oid, size) -> httpx.Response:
    body = (b'{"key":"header","value":{"summary":"after crash"}}\n'
            + f'{{"key":"lfsFile","value":{{"path":"{path}","algo":"sha256","oid":"{oid}",'
              f'"size":{size}}}}}\n'.encode())
    return httpx.post(f"{srv.endpoint}/api/models/{repo_id}/commit/main", content=body,
                      headers={"authorization": f"Bearer {api.token}",
                               "content-type": "application/x-ndjson"})


def staged_bytes(srv) -> int:
    tmp = srv.data / "tmp"
    return sum(p.stat().st_size for p in tmp.iterdir() if p.is_file()) if tmp.exists() else 0


def slow_put(url: str, data: bytes, chunk: int, started: threading.Event) -> None:
    def gen():
        for i in range(0, len(data), chunk):
            yield data[i:i + chunk]
            started.set()
            time.sleep(0.02)

    with contextlib.suppress(httpx.HTTPError):  # the server dies under us: expected
        httpx.put(url, content=gen(), headers={"content-length": str(len(data))}, timeout=60)


def check_intact(srv, api, repo_id, commits, lfs, cache_dir):
    assert [c.commit_id for c in api.list_repo_commits(repo_id)] == commits
    p = download(api, repo_id, "notes.txt", cache_dir,
                        revision=commits[1])
    with open(p, "rb") as fh:
        assert fh.read() == b"before the crash\n"
    p = download(api, repo_id, "early.bin", cache_dir)
    with open(p, "rb") as fh:
        assert fh.read() == lfs


def test_kill_during_basic_lfs_upload(server_factory, cache_dir):
    srv, api, repo_id = setup_server(server_factory)
    commits, lfs = seed(api, repo_id)
    data = os.urandom(64 * MiB)
    oid = hashlib.sha256(data).hexdigest()
    href = batch(srv, api, repo_id, oid, len(data))["actions"]["upload"]["href"]

    started = threading.Event()
    t = threading.Thread(target=slow_put, args=(href, data, MiB, started))
    t.start()
    assert started.wait(30)
    deadline = time.time() + 30
    while staged_bytes(srv) < 8 * MiB and time.time() < deadline:  # the server is writing it
        time.sleep(0.05)
    assert staged_bytes(srv) >= 8 * MiB
    srv.kill()
    t.join(60)
    assert not t.is_alive()

    srv.start()  # no repair step: just start again on the same directory
    check_intact(srv, api, repo_id, commits, lfs, cache_dir)
    obj = batch(srv, api, repo_id, oid, len(data))
    assert "upload" in obj.get("actions", {}), obj  # must be uploaded again
    r = commit_lfs(srv, api, repo_id, "big.bin", oid, len(data))
    assert r.status_code == 422 and r.headers["X-Error-Code"] == "LfsObjectMissing"
    assert [c.commit_id for c in api.list_repo_commits(repo_id)] == commits

    # A fresh upload through the client then works, byte-exact.
    info = api.upload_file(path_or_fileobj=data, path_in_repo="big.bin", repo_id=repo_id)
    assert api.list_repo_commits(repo_id)[0].commit_id == info.oid
    p = download(api, repo_id, "big.bin", cache_dir)
    with open(p, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == oid


def test_kill_during_multipart_upload(server_factory, cache_dir):
    srv, api, repo_id = setup_server(server_factory, lfs_multipart_threshold=str(4 * MiB),
                                     lfs_part_size=str(2 * MiB))
    commits, lfs = seed(api, repo_id)
    data = os.urandom(8 * MiB)
    oid = hashlib.sha256(data).hexdigest()
    upload = batch(srv, api, repo_id, oid, len(data), ("basic", "multipart"))["actions"]["upload"]
    parts = [upload["header"][k] for k in sorted(k for k in upload["header"] if k.isdigit())]
    assert len(parts) == 4
    for i in (0, 1):
        r = httpx.put(parts[i], content=data[i * 2 * MiB:(i + 1) * 2 * MiB])
        assert r.status_code == 200 and r.headers.get("ETag")
    started = threading.Event()
    t = threading.Thread(target=slow_put,
                         args=(parts[2], data[4 * MiB:6 * MiB], 256 * 1024, started))
    t.start()
    assert started.wait(30)
    time.sleep(0.3)
    srv.kill()
    t.join(60)

    srv.start()
    check_intact(srv, api, repo_id, commits, lfs, cache_dir)
    obj = batch(srv, api, repo_id, oid, len(data), ("basic", "multipart"))
    assert "upload" in obj.get("actions", {}), obj
    # Completing with the parts that did arrive must not produce an object.
    r = httpx.post(upload["href"], json={"oid": oid, "parts": [
        {"partNumber": n, "etag": "x"} for n in range(1, 5)]})
    assert 400 <= r.status_code < 500, r.text
    r = commit_lfs(srv, api, repo_id, "big.bin", oid, len(data))
    assert r.status_code == 422
    assert [c.commit_id for c in api.list_repo_commits(repo_id)] == commits

    info = api.upload_file(path_or_fileobj=data, path_in_repo="big.bin", repo_id=repo_id)
    p = download(api, repo_id, "big.bin", cache_dir,
                        revision=info.oid)
    with open(p, "rb") as fh:
        assert fh.read() == data


@pytest.mark.parametrize("kind", ["regular", "lfs"])
def test_kill_right_after_commit_ack(server_factory, cache_dir, kind):
    srv, api, repo_id = setup_server(server_factory)
    commits, lfs = seed(api, repo_id)
    content = b"acknowledged\n" if kind == "regular" else os.urandom(100_000) + b"\x00"
    info = api.create_commit(repo_id, operations=[CommitOperationAdd("acked.dat", content)],
                             commit_message="acked")
    srv.kill()
    srv.start()
    got = api.list_repo_commits(repo_id)
    assert got[0].commit_id == info.oid
    assert [c.commit_id for c in got[1:]] == commits
    assert api.model_info(repo_id).sha == info.oid
    p = download(api, repo_id, "acked.dat", cache_dir)
    with open(p, "rb") as fh:
        assert fh.read() == content
    # And the repo keeps taking writes.
    again = api.upload_file(path_or_fileobj=b"after\n", path_in_repo="after.txt",
                            repo_id=repo_id)
    assert api.list_repo_commits(repo_id)[0].commit_id == again.oid


def test_stale_ref_lock_does_not_block_commits(server_factory):
    """A crash while holding a ref's lock file leaves it behind; writes still go through."""
    srv, api, repo_id = setup_server(server_factory)
    head = api.list_repo_commits(repo_id)[0].commit_id
    srv.kill()
    (lock,) = [p for p in (srv.data / "repos").rglob("refs/heads/main")]
    stale = lock.with_name("main.lock")
    stale.write_text(head + "\n")
    old = time.time() - 3600
    os.utime(stale, (old, old))
    srv.start()
    info = api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
    assert api.list_repo_commits(repo_id)[0].commit_id == info.oid
    assert not stale.exists()
