"""Big transfers with Python off the byte path: sendfile for ranges (Xet fetches, and
plain HTTP reads of Xet files from their cached whole copy), uploads streamed and
checked once (LFS sha256, xorb chunk hashes as hf_xet computes them), grant commits that
move the staged file instead of copying it. Real server, real clients."""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hf_xet
import httpx
import pytest
from huggingface_hub import HfApi, constants
from xetkit import Cas, make_file

from hver.xet.hashing import file_hash, hex_hash
from hver.xet.xorb import index_xorb

MB = 1024 * 1024
pytestmark = pytest.mark.usefixtures("no_server_errors")


@pytest.fixture(autouse=True)
def xet_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The client as installed by default (hf_xet on), with a cache of its own."""
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    monkeypatch.setenv("HF_XET_CACHE", str(tmp_path / "xet-cache"))


def random_bytes(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def upload_xet(api: HfApi, repo: str, tmp_path: Path, data: bytes, name: str = "w.bin") -> None:
    src = tmp_path / f"src-{name}"
    src.write_bytes(data)
    api.upload_file(path_or_fileobj=str(src), path_in_repo=name, repo_id=repo)


def cache_path(server: Any, url: str, headers: dict[str, str]) -> Path:
    """Where the hub keeps the whole decoded copy of the Xet file at `url`."""
    r = httpx.head(url, headers=headers)
    assert r.status_code == 200, r.text
    fh = r.headers["X-Xet-Hash"]
    return server.data / "blobs" / "xet" / "files" / fh[:2] / fh


def wait_for(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    """Wait for something the server does after answering (not a timing check)."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        time.sleep(0.05)


def staging_files(server: Any) -> list[Path]:
    return sorted((server.data / "tmp").glob("upload-*"))


# -- plain HTTP reads of Xet files ---------------------------------------------------------------


def test_xet_file_is_cached_on_first_whole_read_and_ranges_follow(
        server: Any, api: HfApi, repo_factory: Callable[..., str], tmp_path: Path) -> None:
    repo = repo_factory()
    data = random_bytes(6 * MB + 3, seed=1)
    upload_xet(api, repo, tmp_path, data)
    auth = {"Authorization": f"Bearer {api.token}"}
    url = f"{server.endpoint}/{repo}/resolve/main/w.bin"
    cached = cache_path(server, url, auth)
    assert not cached.exists()

    # A range read decodes what it needs and keeps nothing.
    r = httpx.get(url, headers=auth | {"Range": "bytes=100-200"}, follow_redirects=True)
    assert r.status_code == 206 and r.content == data[100:201]
    assert not cached.exists()

    r = httpx.get(url, headers=auth, follow_redirects=True, timeout=60)
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-length"] == str(len(data))
    wait_for(cached.exists, "the first whole read stores its copy")
    assert cached.read_bytes() == data

    # From the copy: whole, ranges of every form, HEAD, and many on one connection.
    n = len(data)
    cases = [("bytes=0-0", 0, 1), ("bytes=1-70000", 1, 70_001),
             (f"bytes={3 * MB - 5}-{3 * MB + 200_000}", 3 * MB - 5, 3 * MB + 200_001),
             (f"bytes={n - 10}-", n - 10, n), ("bytes=-7", n - 7, n),
             (f"bytes=5-{n + 1000}", 5, n)]
    with httpx.Client(headers=auth, follow_redirects=True, timeout=60) as client:
        for _ in range(2):
            r = client.get(url)
            assert r.status_code == 200 and r.content == data
            for spec, a, b in cases:
                r = client.get(url, headers={"Range": spec})
                assert r.status_code == 206, spec
                assert r.content == data[a:b], spec
                assert r.headers["content-range"] == f"bytes {a}-{b - 1}/{n}", spec
                assert r.headers["content-length"] == str(b - a), spec
        r = client.get(url, headers={"Range": f"bytes={n}-"})
        assert r.status_code == 416 and r.headers["content-range"] == f"bytes */{n}"
        r = client.head(url, headers={"Range": "bytes=10-19"})
        assert r.status_code in (200, 302)  # the Hub side answers HEAD itself
        target = client.get(url, follow_redirects=False).headers["location"]
        r = client.head(target, headers={"Range": "bytes=10-19"})
        assert r.status_code == 206 and r.headers["content-length"] == "10" and not r.content
        r = client.get(target, headers={"Range": "bytes=0-1,5-6"})  # not a single range
        assert r.status_code == 200 and r.content == data

    # curl, as the plain client the issue measures.
    out = tmp_path / "curl.bin"
    subprocess.run(["curl", "-sS", "--fail", "-L", "-H", f"Authorization: Bearer {api.token}",
                    "-o", str(out), url], check=True)
    assert out.read_bytes() == data


def test_a_damaged_copy_is_never_served(server: Any, api: HfApi,
                                        repo_factory: Callable[..., str],
                                        tmp_path: Path) -> None:
    """A copy of the wrong size (cut short outside the hub) is dropped and made again."""
    repo = repo_factory()
    data = random_bytes(5 * MB, seed=2)
    upload_xet(api, repo, tmp_path, data)
    auth = {"Authorization": f"Bearer {api.token}"}
    url = f"{server.endpoint}/{repo}/resolve/main/w.bin"
    cached = cache_path(server, url, auth)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(data[: MB])
    r = httpx.get(url, headers=auth, follow_redirects=True, timeout=60)
    assert r.status_code == 200 and r.content == data
    wait_for(lambda: cached.exists() and cached.stat().st_size == len(data),
             "a whole copy replaces the damaged one")
    assert cached.read_bytes() == data
    cached.unlink()  # removable at any time
    r = httpx.get(url, headers=auth | {"Range": "bytes=7-9"}, follow_redirects=True)
    assert r.status_code == 206 and r.content == data[7:10]


def test_an_interrupted_first_read_keeps_nothing(server: Any, api: HfApi,
                                                 repo_factory: Callable[..., str],
                                                 tmp_path: Path) -> None:
    repo = repo_factory()
    data = random_bytes(24 * MB, seed=3)
    upload_xet(api, repo, tmp_path, data)
    auth = {"Authorization": f"Bearer {api.token}"}
    url = f"{server.endpoint}/{repo}/resolve/main/w.bin"
    cached = cache_path(server, url, auth)
    before = staging_files(server)
    with httpx.stream("GET", url, headers=auth, follow_redirects=True, timeout=60) as r:
        assert r.status_code == 200
        got = 0
        for block in r.iter_raw():
            got += len(block)
            if got >= 2 * MB:
                break
    wait_for(lambda: staging_files(server) == before, "the partial copy is removed")
    assert not cached.exists()
    r = httpx.get(url, headers=auth, follow_redirects=True, timeout=60)
    assert r.content == data
    wait_for(cached.exists, "a whole read stores the copy")
    assert staging_files(server) == before


def test_the_copy_is_read_only_through_a_repo_that_holds_the_file(
        server: Any, api: HfApi, other: Any, repo_factory: Callable[..., str],
        tmp_path: Path) -> None:
    repo = repo_factory(private=True)
    data = random_bytes(5 * MB, seed=4)
    upload_xet(api, repo, tmp_path, data)
    auth = {"Authorization": f"Bearer {api.token}"}
    url = f"{server.endpoint}/{repo}/resolve/main/w.bin"
    cached = cache_path(server, url, auth)
    assert httpx.get(url, headers=auth, follow_redirects=True, timeout=60).content == data
    wait_for(cached.exists, "the copy is stored")
    oid = hashlib.sha256(data).hexdigest()

    theirs = {"Authorization": f"Bearer {other.token}"}
    for who in (theirs, {}):
        r = httpx.get(url, headers=who, follow_redirects=True)
        assert r.status_code in (401, 404) and r.content != data
    # Knowing the sha256 gives nothing: not from their own repo, not from a forged URL.
    other_api = HfApi(endpoint=server.endpoint, token=other.token)
    their_repo = f"{other.name}/probe-{oid[:6]}"
    other_api.create_repo(their_repo)
    r = httpx.post(f"{server.endpoint}/{their_repo}.git/info/lfs/objects/batch",
                   headers=theirs | {"Accept": "application/vnd.git-lfs+json"},
                   json={"operation": "download", "objects": [{"oid": oid, "size": len(data)}]})
    assert r.status_code == 200
    assert "actions" not in r.json()["objects"][0]
    location = httpx.get(url, headers=auth).headers["location"]
    forged = location.replace("sig=", "sig=0")
    r = httpx.get(forged)
    assert r.status_code in (401, 403, 404) and r.content != data


def test_killed_during_a_first_read_leaves_no_partial_copy(server_factory: Any,
                                                           tmp_path: Path) -> None:
    srv = server_factory()
    name, token, api = srv.new_user_api("cachecrash")
    repo = f"{name}/m"
    api.create_repo(repo)
    data = random_bytes(24 * MB, seed=5)
    upload_xet(api, repo, tmp_path, data)
    auth = {"Authorization": f"Bearer {token}"}
    url = f"{srv.endpoint}/{repo}/resolve/main/w.bin"
    cached = cache_path(srv, url, auth)
    with httpx.stream("GET", url, headers=auth, follow_redirects=True, timeout=60) as r:
        got = 0
        for block in r.iter_raw():
            got += len(block)
            if got >= 2 * MB:
                srv.kill()
                break
    srv.start()
    # What the killed read had written is a staging file nothing reads (swept once stale).
    assert not cached.exists()
    r = httpx.get(url, headers=auth, follow_redirects=True, timeout=60)
    assert r.status_code == 200 and r.content == data
    wait_for(cached.exists, "a whole read stores the copy")
    assert cached.read_bytes() == data


# -- Xet fetches ---------------------------------------------------------------------------------


def test_fetch_ranges_are_the_stored_bytes_and_only_the_signed_ones(
        server: Any, api: HfApi, repo_factory: Callable[..., str], tmp_path: Path) -> None:
    repo = repo_factory()
    data = random_bytes(9 * MB, seed=6)
    upload_xet(api, repo, tmp_path, data)
    fid = httpx.head(f"{server.endpoint}/{repo}/resolve/main/w.bin",
                     headers={"Authorization": f"Bearer {api.token}"}).headers["X-Xet-Hash"]
    cas = Cas(server.endpoint, repo, api.token, "read")
    size = len(data)
    plan = cas.call("GET", f"/v2/reconstructions/{fid}",
                    headers={"Range": f"bytes={size // 3}-{2 * size // 3}"}).json()
    assert plan["xorbs"]
    with httpx.Client(timeout=60) as client:  # one connection: each answer ends exactly
        for xorb, entries in plan["xorbs"].items():
            stored = (server.data / "blobs" / "xet" / "xorbs" / xorb[:2] / xorb).read_bytes()
            for entry in entries:
                for rng in entry["ranges"]:
                    a, b = rng["bytes"]["start"], rng["bytes"]["end"]
                    for spec, lo, hi in [(f"bytes={a}-{b}", a, b + 1),
                                         (f"bytes={a + 1}-{b - 1}", a + 1, b)]:
                        r = client.get(entry["url"], headers={"Range": spec})
                        assert r.status_code == 206, r.text
                        assert r.content == stored[lo:hi]
                        assert r.headers["content-range"] == f"bytes {lo}-{hi - 1}/{len(stored)}"
                    r = client.head(entry["url"], headers={"Range": f"bytes={a}-{b}"})
                    assert r.status_code == 206 and r.headers["content-length"] == str(b - a + 1)
                    r = client.get(entry["url"], headers={"Range": f"bytes={a}-{b + 1}"})
                    assert r.status_code == 403
                    if a > 0:
                        r = client.get(entry["url"], headers={"Range": f"bytes={a - 1}-{b}"})
                        assert r.status_code == 403
                r = client.get(entry["url"])  # the whole xorb was not granted
                assert r.status_code == 403


# -- uploads -------------------------------------------------------------------------------------


def test_stored_xorbs_hash_as_hf_xet_hashes_them(server_factory: Any, tmp_path: Path) -> None:
    """The keyed blake3 chunk hashes (computed while the body streams in) match hf_xet's:
    every stored xorb hashes to its name, and the file's chunks to hf_xet's file hash."""
    srv = server_factory()
    name, _, api = srv.new_user_api("hashes")
    api.create_repo(f"{name}/m")
    data = random_bytes(70 * MB, seed=7)  # more than one 64 MiB xorb
    src = tmp_path / "w.bin"
    src.write_bytes(data)
    api.upload_file(path_or_fileobj=str(src), path_in_repo="w.bin", repo_id=f"{name}/m")
    xorbs = sorted((srv.data / "blobs" / "xet" / "xorbs").glob("*/*"))
    assert len(xorbs) >= 2
    chunks: dict[str, list[tuple[bytes, int]]] = {}
    for path in xorbs:
        body = path.read_bytes()
        index = index_xorb(body)
        assert hex_hash(index.hash()) == path.name
        assert index.offsets[-1] == len(body)  # stored without the client's footer
        chunks[path.name] = list(zip(index.hashes, index.sizes, strict=True))
    want = str(hf_xet.hash_files([str(src)])[0].hash)
    fid = httpx.head(f"{srv.endpoint}/{name}/m/resolve/main/w.bin",
                     headers={"Authorization": f"Bearer {api.token}"}).headers["X-Xet-Hash"]
    assert fid == want
    cas = Cas(srv.endpoint, f"{name}/m", api.token, "read")
    plan = cas.call("GET", f"/v1/reconstructions/{fid}").json()
    ordered = [node for t in plan["terms"]
               for node in chunks[t["hash"]][t["range"]["start"]:t["range"]["end"]]]
    assert hex_hash(file_hash(ordered)) == want


def test_a_grant_upload_with_a_footer_is_stored_without_it(
        server: Any, api: HfApi, repo_factory: Callable[..., str]) -> None:
    repo = repo_factory()
    cas = Cas(server.endpoint, repo, api.token, "write")
    body, xorb, index, _ = make_file(61, n_chunks=5)
    footer = b"XETBLOB" + bytes(200)
    sent = body + footer
    r = cas.call("POST", f"/v1/xorb-grants/default/{hex_hash(xorb)}", json.dumps(
        {"length": len(sent), "checksum": {"algo": "crc64nvme", "value": "1"}}).encode(),
        headers={"Content-Type": "application/json"})
    assert r.status_code == 201, r.text
    g = r.json()
    r = httpx.request(g["method"], g["url"], content=sent, headers=g["headers"])
    assert r.status_code == 200
    r = cas.call("POST", f"/v1/xorb-commits/default/{hex_hash(xorb)}/grant/{g['id']}")
    assert r.status_code == 200 and r.json() == {"was_inserted": True}
    stored = server.data / "blobs" / "xet" / "xorbs" / hex_hash(xorb)[:2] / hex_hash(xorb)
    assert stored.read_bytes() == body

    # Bytes that are not the xorb named: refused at commit, nothing stored or left staged.
    body2, xorb2, _, _ = make_file(62, n_chunks=4)
    wrong = bytearray(body2)
    wrong[-1] ^= 1
    r = cas.call("POST", f"/v1/xorb-grants/default/{hex_hash(xorb2)}", json.dumps(
        {"length": len(wrong), "checksum": {"algo": "crc64nvme", "value": "1"}}).encode(),
        headers={"Content-Type": "application/json"})
    g = r.json()
    assert httpx.request(g["method"], g["url"], content=bytes(wrong),
                         headers=g["headers"]).status_code == 200
    r = cas.call("POST", f"/v1/xorb-commits/default/{hex_hash(xorb2)}/grant/{g['id']}")
    assert r.status_code == 400 and r.headers["X-Error-Code"] == "HashMismatch"
    assert not (server.data / "blobs" / "xet" / "xorbs" / hex_hash(xorb2)[:2]
                / hex_hash(xorb2)).exists()


def _signed_put(server: Any, token: str, repo: str, oid: str, size: int) -> str:
    r = httpx.post(f"{server.endpoint}/{repo}.git/info/lfs/objects/batch",
                   headers={"Authorization": f"Bearer {token}",
                            "Accept": "application/vnd.git-lfs+json"},
                   json={"operation": "upload", "objects": [{"oid": oid, "size": size}]})
    assert r.status_code == 200, r.text
    return str(r.json()["objects"][0]["actions"]["upload"]["href"])


def test_lfs_bodies_in_any_pieces_are_hashed_once_and_checked(
        server: Any, api: HfApi, repo_factory: Callable[..., str], tmp_path: Path) -> None:
    repo = repo_factory()
    data = random_bytes(5 * MB + 11, seed=8)
    oid = hashlib.sha256(data).hexdigest()
    blob = server.data / "blobs" / "lfs" / oid[:2] / oid[2:4] / oid

    def pieces(payload: bytes) -> Any:
        sizes = random.Random(1)
        pos = 0
        while pos < len(payload):
            n = sizes.choice([1, 7, 4096, 65_537, 300_000, 2 * MB + 1])
            yield payload[pos:pos + n]
            pos += n

    href = _signed_put(server, api.token, repo, oid, len(data))
    # Too long, too short, other bytes: refused, nothing stored.
    for bad, code in [(data + b"x", "SizeMismatch"), (data[:-1], "SizeMismatch"),
                      (data[:-1] + b"\0", "HashMismatch")]:
        r = httpx.put(href, content=pieces(bad), timeout=60)
        assert r.status_code == 400 and r.headers["X-Error-Code"] == code, r.text
        assert not blob.exists()
    r = httpx.put(href, content=pieces(data), timeout=60)  # chunked, odd pieces
    assert r.status_code == 200, r.text
    assert blob.read_bytes() == data

    # curl sends `Expect: 100-continue` for a big body and waits for the interim answer.
    data2 = random_bytes(3 * MB, seed=9)
    oid2 = hashlib.sha256(data2).hexdigest()
    src = tmp_path / "d2.bin"
    src.write_bytes(data2)
    out = subprocess.run(["curl", "-sS", "-v", "--fail", "-T", str(src),
                          _signed_put(server, api.token, repo, oid2, len(data2))],
                         check=True, capture_output=True, text=True)
    assert "Expect: 100-continue" in out.stderr and "100 Continue" in out.stderr
    assert (server.data / "blobs" / "lfs" / oid2[:2] / oid2[2:4] / oid2).read_bytes() == data2


def test_the_copy_goes_when_no_repo_holds_the_file(
        server: Any, api: HfApi, repo_factory: Callable[..., str], tmp_path: Path) -> None:
    """Deleting a file's LFS object for good (`permanently_delete_lfs_files`) removes its
    decoded copy once no repo holds the Xet file any more, and not before."""
    first, second = repo_factory(), repo_factory()
    data = random_bytes(5 * MB, seed=11)
    upload_xet(api, first, tmp_path, data)
    upload_xet(api, second, tmp_path, data)  # the same file, held by both
    auth = {"Authorization": f"Bearer {api.token}"}
    url = f"{server.endpoint}/{first}/resolve/main/w.bin"
    cached = cache_path(server, url, auth)
    r = httpx.get(url, headers=auth, follow_redirects=True, timeout=60)
    assert r.status_code == 200 and r.content == data
    wait_for(cached.exists, "the first whole read stores its copy")

    api.permanently_delete_lfs_files(first, list(api.list_lfs_files(first)))
    assert cached.exists()  # the second repo still holds it
    r = httpx.get(f"{server.endpoint}/{second}/resolve/main/w.bin", headers=auth,
                  follow_redirects=True, timeout=60)
    assert r.status_code == 200 and r.content == data
    api.permanently_delete_lfs_files(second, list(api.list_lfs_files(second)))
    assert not cached.exists()
