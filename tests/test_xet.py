"""Xet storage, driven by the default client install: huggingface_hub with hf_xet.

Uploads go through xet-write-token and the CAS; downloads through reconstruction
and signed byte-range fetches. The same files stay readable by plain HTTP clients.
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hf_xet
import httpx
import pytest
from huggingface_hub import (
    CommitOperationAdd,
    HfApi,
    constants,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    snapshot_download,
)
from huggingface_hub.utils import _xet_progress_reporting as xet_progress
from huggingface_hub.utils import disable_progress_bars, enable_progress_bars
from xetkit import Cas, make_file, shard_for

from hver.xet.hashing import (
    chunk_boundaries,
    chunk_hash,
    file_hash,
    hex_hash,
    raw_hash,
)
from hver.xet.shard import FileRecipe, Shard, Term, serialize_shard

MB = 1024 * 1024


@pytest.fixture(autouse=True)
def xet_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The client as installed by default (hf_xet on), with a cache of its own."""
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    monkeypatch.setenv("HF_XET_CACHE", str(tmp_path / "xet-cache"))
    monkeypatch.setenv("HF_XET_CLIENT_RETRY_MAX_ATTEMPTS", "1")


def random_file(path: Path, size: int, seed: int) -> Path:
    rng = random.Random(seed)
    with path.open("wb") as fh:
        left = size
        while left:
            n = min(left, 4 * MB)
            fh.write(rng.randbytes(n))
            left -= n
    return path


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(4 * MB):
            h.update(block)
    return h.hexdigest()


def xet_hash(path: Path) -> str:
    return str(hf_xet.hash_files([str(path)])[0].hash)


# -- the real client, end to end ----------------------------------------------------------------


@pytest.mark.usefixtures("no_server_errors")
def test_upload_and_download_sizes(api: HfApi, repo_factory: Callable[..., str],
                                   tmp_path: Path, cache_dir: Path) -> None:
    repo = repo_factory()
    files = {}
    for n, size in enumerate([1, 1000, 65_535, 300_000, 3 * MB, 20 * MB + 17]):
        src = random_file(tmp_path / f"f{n}.bin", size, seed=size)
        api.upload_file(path_or_fileobj=str(src), path_in_repo=f"w/{size}.bin", repo_id=repo)
        files[f"w/{size}.bin"] = src

    entries = {e.path: e for e in api.list_repo_tree(repo, path_in_repo="w", expand=False)}
    for path, src in files.items():
        assert entries[path].lfs is not None
        assert entries[path].xet_hash == xet_hash(src), path
        meta = get_hf_file_metadata(hf_hub_url(repo, path), token=api.token)
        assert meta.xet_file_data is not None and meta.xet_file_data.file_hash == xet_hash(src)
        got = hf_hub_download(repo, path, cache_dir=cache_dir, token=api.token)
        assert sha256(Path(got)) == sha256(src), path

    snap = Path(snapshot_download(repo, cache_dir=tmp_path / "snap", token=api.token))
    for path, src in files.items():
        assert sha256(snap / path) == sha256(src)


@pytest.mark.usefixtures("no_server_errors")
def test_file_repeating_itself(api: HfApi, repo_factory: Callable[..., str], server: Any,
                               tmp_path: Path) -> None:
    """Repeated content: terms reuse chunk ranges of one xorb, and the plan's fetch
    ranges must still be sorted and disjoint for the client."""
    repo = repo_factory()
    block = random.Random(77).randbytes(2 * MB)
    src = tmp_path / "repeat.bin"
    src.write_bytes(block * 4 + block[:MB])
    api.upload_file(path_or_fileobj=str(src), path_in_repo="repeat.bin", repo_id=repo)
    got = hf_hub_download(repo, "repeat.bin", cache_dir=tmp_path / "c", token=api.token)
    assert Path(got).read_bytes() == src.read_bytes()
    cas = Cas(server.endpoint, repo, api.token, "read")
    for version, key in ((1, "fetch_info"), (2, "xorbs")):
        plan = cas.call("GET", f"/v{version}/reconstructions/{xet_hash(src)}").json()
        assert len(plan["terms"]) > 1
        for entries in plan[key].values():
            chunk_ranges = ([e["range"] for e in entries] if version == 1
                            else [r["chunks"] for e in entries for r in e["ranges"]])
            ends = [(c["start"], c["end"]) for c in chunk_ranges]
            assert ends == sorted(ends)
            assert all(a[1] < b[0] for a, b in zip(ends, ends[1:], strict=False)), ends


@pytest.mark.usefixtures("no_server_errors")
def test_one_gib_round_trip(api: HfApi, repo_factory: Callable[..., str],
                            tmp_path: Path) -> None:
    repo = repo_factory()
    src = random_file(tmp_path / "big.safetensors", 1024 * MB, seed=1024)
    digest = sha256(src)
    api.upload_file(path_or_fileobj=str(src), path_in_repo="big.safetensors", repo_id=repo)
    src.unlink()
    got = Path(hf_hub_download(repo, "big.safetensors", cache_dir=tmp_path / "c",
                               token=api.token))
    assert got.stat().st_size == 1024 * MB
    assert sha256(got) == digest


@pytest.mark.usefixtures("no_server_errors")
def test_upload_folder_create_commit_and_cli(api: HfApi, repo_factory: Callable[..., str],
                                             tmp_path: Path, server: Any) -> None:
    repo = repo_factory(repo_type="dataset")
    folder = tmp_path / "folder"
    (folder / "data").mkdir(parents=True)
    random_file(folder / "data" / "train.parquet", 2 * MB, seed=1)
    random_file(folder / "data" / "test.parquet", 500_000, seed=2)
    (folder / "README.md").write_text("# a dataset\n")
    api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type="dataset")

    extra = random_file(tmp_path / "extra.bin", 1 * MB, seed=3)
    api.create_commit(repo, repo_type="dataset", commit_message="two more", operations=[
        CommitOperationAdd("extra.bin", str(extra)),
        CommitOperationAdd("bytes.bin", b"in-memory bytes through Xet" * 1000),
    ])

    cli_file = random_file(tmp_path / "cli.safetensors", 700_000, seed=4)
    subprocess.run(
        [str(Path(sys.executable).parent / "hf"), "upload", repo, str(cli_file),
         "cli.safetensors", "--repo-type", "dataset", "--token", api.token],
        check=True, capture_output=True, env=_env_without_xet_switch(tmp_path),
    )

    snap = Path(snapshot_download(repo, repo_type="dataset", cache_dir=tmp_path / "c",
                                  token=api.token))
    assert sha256(snap / "data/train.parquet") == sha256(folder / "data" / "train.parquet")
    assert sha256(snap / "data/test.parquet") == sha256(folder / "data" / "test.parquet")
    assert sha256(snap / "extra.bin") == sha256(extra)
    assert (snap / "bytes.bin").read_bytes() == b"in-memory bytes through Xet" * 1000
    assert sha256(snap / "cli.safetensors") == sha256(cli_file)
    tree = {e.path: e for e in api.list_repo_tree(repo, repo_type="dataset", recursive=True)}
    for path in ("data/train.parquet", "extra.bin", "bytes.bin", "cli.safetensors"):
        assert tree[path].xet_hash, path
    assert getattr(tree["README.md"], "xet_hash", None) is None


def _env_without_xet_switch(tmp_path: Path) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.pop("HF_HUB_DISABLE_XET", None)
    env["HF_XET_CACHE"] = str(tmp_path / "cli-xet-cache")
    return env


@pytest.mark.usefixtures("no_server_errors")
def test_xet_file_served_to_plain_http_clients(api: HfApi, repo_factory: Callable[..., str],
                                               tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               server: Any) -> None:
    repo = repo_factory()
    src = random_file(tmp_path / "model.bin", 5 * MB + 3, seed=7)
    api.upload_file(path_or_fileobj=str(src), path_in_repo="model.bin", repo_id=repo)
    data = src.read_bytes()
    auth = {"Authorization": f"Bearer {api.token}"}
    url = f"{server.endpoint}/{repo}/resolve/main/model.bin"

    r = httpx.get(url, headers=auth, follow_redirects=True, timeout=60)
    assert r.status_code == 200 and r.content == data
    for a, b in [(0, 0), (1, 70_000), (3 * MB - 5, 3 * MB + 200_000), (len(data) - 10, None)]:
        spec = f"bytes={a}-" if b is None else f"bytes={a}-{b}"
        r = httpx.get(url, headers=auth | {"Range": spec}, follow_redirects=True, timeout=60)
        assert r.status_code == 206, spec
        assert r.content == data[a:(len(data) if b is None else b + 1)], spec
        assert r.headers["content-range"].endswith(f"/{len(data)}")
    r = httpx.get(url, headers=auth | {"Range": f"bytes={len(data)}-"}, follow_redirects=True)
    assert r.status_code == 416

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    got = hf_hub_download(repo, "model.bin", cache_dir=tmp_path / "plain", token=api.token)
    assert Path(got).read_bytes() == data


@pytest.mark.usefixtures("no_server_errors")
def test_lfs_uploaded_file_is_downloadable_by_xet_clients(
        api: HfApi, repo_factory: Callable[..., str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    repo = repo_factory()
    src = random_file(tmp_path / "lfs.bin", 2 * MB, seed=8)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    api.upload_file(path_or_fileobj=str(src), path_in_repo="lfs.bin", repo_id=repo)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    (entry,) = api.get_paths_info(repo, ["lfs.bin"])
    assert entry.lfs is not None and entry.xet_hash is None  # served by plain HTTP
    got = hf_hub_download(repo, "lfs.bin", cache_dir=tmp_path / "c", token=api.token)
    assert sha256(Path(got)) == sha256(src)


@pytest.mark.usefixtures("no_server_errors")
def test_range_read_through_hffilesystem(api: HfApi, repo_factory: Callable[..., str],
                                         tmp_path: Path) -> None:
    from huggingface_hub import HfFileSystem

    repo = repo_factory()
    src = random_file(tmp_path / "big.bin", 3 * MB, seed=9)
    api.upload_file(path_or_fileobj=str(src), path_in_repo="big.bin", repo_id=repo)
    fs = HfFileSystem(endpoint=api.endpoint, token=api.token, skip_instance_cache=True)
    assert fs.info(f"{repo}/big.bin")["xet_hash"] == xet_hash(src)
    with fs.open(f"{repo}/big.bin", "rb") as fh:
        fh.seek(1_000_000)
        assert fh.read(500_000) == src.read_bytes()[1_000_000:1_500_000]
    fs.get_file(f"{repo}/big.bin", str(tmp_path / "copy.bin"))
    assert sha256(tmp_path / "copy.bin") == sha256(src)


# -- deduplication ------------------------------------------------------------------------------


def safetensors_like(tensors: list[tuple[str, bytes]]) -> bytes:
    header: dict[str, Any] = {}
    offset = 0
    for name, data in tensors:
        header[name] = {"dtype": "F32", "shape": [len(data) // 4],
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    head = json.dumps(header).encode()
    return struct.pack("<Q", len(head)) + head + b"".join(d for _, d in tensors)


class TransferLog:
    """What the client itself reports for each upload: bytes processed and bytes sent."""

    def __init__(self) -> None:
        self.reports: list[Any] = []

    def last(self) -> tuple[int, int]:
        r = self.reports[-1]
        return int(r.total_bytes), int(r.total_transfer_bytes)


@pytest.fixture
def transfer_log(monkeypatch: pytest.MonkeyPatch) -> Iterator[TransferLog]:
    log = TransferLog()
    real = xet_progress.XetUploadProgressReporter.update_progress

    def record(self: Any, total_update: Any, item_updates: Any) -> None:
        log.reports.append(total_update)
        real(self, total_update, item_updates)

    monkeypatch.setattr(xet_progress.XetUploadProgressReporter, "update_progress", record)
    # The suite sets HF_HUB_DISABLE_PROGRESS_BARS=1; the reporter only runs with bars on.
    hf_tqdm = sys.modules["huggingface_hub.utils.tqdm"]  # the package attribute is the class
    monkeypatch.setattr(hf_tqdm, "HF_HUB_DISABLE_PROGRESS_BARS", None)
    enable_progress_bars()
    yield log
    disable_progress_bars()


@pytest.mark.usefixtures("no_server_errors")
def test_new_versions_store_only_what_changed(
        server: Any, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, transfer_log: TransferLog) -> None:
    admin = f"admin-{uuid.uuid4().hex[:6]}"
    server.hver("user", "create", admin, "--admin")
    admin_auth = {"Authorization": f"Bearer {server.hver('token', 'create', admin)}"}
    name, token, api = server.new_user_api("dedup")
    repo = f"{name}/weights"
    api.create_repo(repo)

    def stored() -> int:
        r = httpx.get(f"{server.endpoint}/api/admin/storage/models/{repo}", headers=admin_auth)
        assert r.status_code == 200, r.text
        return int(r.json()["storedBytes"])

    rng = random.Random(42)
    tensors = [(f"layer.{i}.weight", rng.randbytes(10 * MB)) for i in range(20)]
    v1 = safetensors_like(tensors)
    size = len(v1)

    def upload(data: bytes, message: str, cache: str) -> tuple[int, int]:
        monkeypatch.setenv("HF_XET_CACHE", str(tmp_path / cache))
        path = tmp_path / "model.safetensors"
        path.write_bytes(data)
        before = stored()
        api.upload_file(path_or_fileobj=str(path), path_in_repo="model.safetensors",
                        repo_id=repo, commit_message=message)
        total, sent = transfer_log.last()
        assert total == len(data)
        print(f"{message}: {len(data)} bytes, stored +{stored() - before}, client sent {sent}")
        return stored() - before, sent

    growth, sent = upload(v1, "v1", cache="first-machine")
    assert growth >= size * 0.95 and sent >= size * 0.95

    # ~5% of the bytes rewritten in place, in a few places (a fine-tuned layer or two),
    # uploaded from another machine: what is not sent is what the hub's dedup answers cover.
    v2 = bytearray(v1)
    for start in (20 * MB, 90 * MB, 160 * MB):
        v2[start:start + 3_500_000] = rng.randbytes(3_500_000)
    growth, sent = upload(bytes(v2), "v2", cache="second-machine")
    assert growth < 0.15 * size, growth
    assert sent < 0.15 * size, sent  # the client reports the rest as deduplicated

    # A tensor appended: the header grows, every byte after it shifts. The first chunk is
    # new, so the client asks the hub only at its next dedup-eligible chunk; from the
    # machine that uploaded v2 (whose cache knows v1's xorbs) nothing else is sent.
    v3 = safetensors_like([*tensors, ("extra.weight", rng.randbytes(4 * MB))])
    growth, sent = upload(v3, "v3", cache="second-machine")
    assert growth < 0.15 * size, growth
    assert sent < 0.15 * size, sent

    got = hf_hub_download(repo, "model.safetensors", cache_dir=tmp_path / "dl", token=token)
    assert hashlib.sha256(Path(got).read_bytes()).digest() == hashlib.sha256(v3).digest()
    old = hf_hub_download(repo, "model.safetensors", revision=api.list_repo_commits(repo)[1]
                          .commit_id, cache_dir=tmp_path / "dl", token=token)
    assert Path(old).read_bytes() == bytes(v2)

    stats = json.loads(server.hver("storage", "stats", repo, "--json"))
    assert stats["logicalBytes"] == len(v1) + len(v2) + len(v3)
    assert stats["storedBytes"] < 1.35 * size
    assert stats["dedupRatio"] > 2.2
    text = server.hver("storage", "stats")
    assert "dedup ratio:" in text


# -- bad input and access -----------------------------------------------------------------------


@pytest.mark.usefixtures("no_server_errors")
def test_bad_xorbs_and_shards_are_rejected(server: Any, api: HfApi,
                                           repo_factory: Callable[..., str]) -> None:
    repo = repo_factory()
    cas = Cas(server.endpoint, repo, api.token, "write")
    body, xorb, index, chunks = make_file(1)
    path = f"/v1/xorbs/default/{hex_hash(xorb)}"

    r = cas.call("POST", path, body[:-10])
    assert r.status_code == 400 and r.headers["X-Error-Code"] == "InvalidXorb", r.text
    other_body, other_xorb, *_ = make_file(2)
    r = cas.call("POST", path, other_body)
    assert r.status_code == 400 and r.headers["X-Error-Code"] == "HashMismatch", r.text
    r = cas.call("POST", path, b"\x07" + body[1:])
    assert r.status_code == 400, r.text

    # Nothing of those was stored: no blob, no staging file, and a shard naming the
    # xorb is refused.
    stored = server.data / "blobs" / "xet" / "xorbs" / hex_hash(xorb)[:2] / hex_hash(xorb)
    assert not stored.exists()
    assert not list((server.data / "tmp").glob("upload-*"))
    shard = shard_for(xorb, index, chunks)
    r = cas.call("POST", "/v1/shards", shard)
    assert r.status_code == 400 and r.headers["X-Error-Code"] == "XorbNotFound", r.text

    r = cas.call("POST", path, body)
    assert r.status_code == 200 and r.json() == {"was_inserted": True}
    assert stored.read_bytes() == body
    r = cas.call("POST", path, body)
    assert r.status_code == 200 and r.json() == {"was_inserted": False}

    r = cas.call("POST", "/v1/shards", shard_for(xorb, index, chunks, fh=b"\x01" * 32))
    assert r.status_code == 400 and r.headers["X-Error-Code"] == "HashMismatch", r.text
    r = cas.call("POST", "/v1/shards", b"not a shard")
    assert r.status_code == 400 and r.headers["X-Error-Code"] == "InvalidShard", r.text
    fid = hex_hash(file_hash(list(zip(index.hashes, index.sizes, strict=True))))
    assert cas.call("GET", f"/v1/reconstructions/{fid}").status_code == 404

    r = cas.call("POST", "/v1/shards", shard)
    assert r.status_code == 200 and r.json() == {"result": 1}
    r = cas.call("POST", "/v1/shards", shard)
    assert r.status_code == 200 and r.json() == {"result": 0}
    r = cas.call("GET", f"/v1/reconstructions/{fid}", headers={"Range": "bytes=0-"})
    assert r.status_code == 200
    plan = r.json()
    assert [t["hash"] for t in plan["terms"]] == [hex_hash(xorb)]
    (fetch,) = plan["fetch_info"][hex_hash(xorb)]
    got = httpx.get(fetch["url"], headers={
        "Range": f"bytes={fetch['url_range']['start']}-{fetch['url_range']['end']}"})
    assert got.status_code == 206 and got.content == body
    r = cas.call("GET", f"/v2/reconstructions/{fid}", headers={"Range": "bytes=0-"})
    assert r.status_code == 200
    (entry,) = r.json()["xorbs"][hex_hash(xorb)]
    assert entry["ranges"] == [{"chunks": {"start": 0, "end": len(chunks)},
                                "bytes": {"start": 0, "end": len(body) - 1}}]
    size = sum(len(c) for c in chunks)
    for version in (1, 2):
        r = cas.call("GET", f"/v{version}/reconstructions/{fid}",
                     headers={"Range": f"bytes={size}-"})
        assert r.status_code == 416
    r = cas.call("GET", f"/v1/reconstructions/{fid}",
                 headers={"Range": f"bytes={len(chunks[0]) + 5}-{size - 1}"})
    assert r.json()["offset_into_first_range"] == 5
    assert r.json()["terms"][0]["range"] == {"start": 1, "end": len(chunks)}
    # Its fetch URL grants the bytes of chunks 1.. only.
    (fetch,) = r.json()["fetch_info"][hex_hash(xorb)]
    first, last = fetch["url_range"]["start"], fetch["url_range"]["end"]
    assert first > 0
    assert httpx.get(fetch["url"], headers={"Range": f"bytes={first}-{last}"}
                     ).content == body[first:last + 1]
    for spec in (f"bytes=0-{last}", "bytes=0-10", None):
        r = httpx.get(fetch["url"], headers={"Range": spec} if spec else {})
        assert r.status_code == 403, spec

    # The stored file is committable by its sha256 like any LFS object.
    sha = hashlib.sha256(b"".join(chunks)).hexdigest()
    ndjson = "\n".join(json.dumps(x) for x in [
        {"key": "header", "value": {"summary": "raw xet", "description": ""}},
        {"key": "lfsFile", "value": {"path": "raw.bin", "algo": "sha256", "oid": sha,
                                     "size": size}}])
    r = httpx.post(f"{server.endpoint}/api/models/{repo}/commit/main", content=ndjson,
                   headers={"Authorization": f"Bearer {api.token}",
                            "Content-Type": "application/x-ndjson"})
    assert r.status_code == 200, r.text
    r = httpx.get(f"{server.endpoint}/{repo}/resolve/main/raw.bin", follow_redirects=True,
                  headers={"Authorization": f"Bearer {api.token}"})
    assert r.content == b"".join(chunks)

    # Unknown routes are 404s with an error code, whatever the method: hf_xet takes a 404
    # as "not offered" and falls back, where a 405 or 501 could fail the transfer.
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        for path in ("/v3/shards", f"/v1/xorbs/default/{hex_hash(xorb)}/more", "/v2/xorbs",
                     f"/v1/xorb-grants/default/{hex_hash(xorb)}/x"):
            r = cas.call(method, path)
            assert r.status_code == 404, (method, path, r.status_code)
            assert r.headers["X-Error-Code"] == "NotFound", (method, path)
    for method in ("GET", "PUT", "PATCH", "DELETE"):  # known paths, other methods
        for path in (f"/v1/xorbs/default/{hex_hash(xorb)}", "/v1/shards", "/v2/shards",
                     f"/v1/xorb-grants/default/{hex_hash(xorb)}"):
            assert cas.call(method, path).status_code == 404, (method, path)
    assert cas.call("POST", "/v1/shards", shard.replace(b"HFRepo", b"HFRepx")).status_code == 400


@pytest.mark.usefixtures("no_server_errors")
def test_tokens_are_scoped(server: Any, api: HfApi, user: Any, other: Any,
                           repo_factory: Callable[..., str], server_factory: Any) -> None:
    repo = repo_factory()
    body, xorb, index, chunks = make_file(3)

    read = Cas(server.endpoint, repo, user.token, "read")
    r = read.call("POST", f"/v1/xorbs/default/{hex_hash(xorb)}", body)
    assert r.status_code == 403, r.text
    assert read.call("POST", "/v1/shards", shard_for(xorb, index, chunks)).status_code == 403

    # A read-only Hub token gets read CAS tokens only.
    r = httpx.get(f"{server.endpoint}/api/models/{repo}/xet-write-token/main",
                  headers={"Authorization": f"Bearer {user.read_token}"})
    assert r.status_code == 403
    # Another user's write token gets a write CAS token for a public repo (to upload for a
    # pull request, tests/attacks/test_pull_requests.py), not for a private one.
    r = httpx.get(f"{server.endpoint}/api/models/{repo}/xet-write-token/main",
                  headers={"Authorization": f"Bearer {other.token}"})
    assert r.status_code == 200
    private = repo_factory(private=True)
    r = httpx.get(f"{server.endpoint}/api/models/{private}/xet-write-token/main",
                  headers={"Authorization": f"Bearer {other.token}"})
    assert r.status_code == 404 and r.headers["x-error-code"] == "RepoNotFound"
    r = httpx.get(f"{server.endpoint}/api/models/{repo}/xet-write-token/main")
    assert r.status_code == 401

    for bad in ({}, {"Authorization": "Bearer garbage"},
                {"Authorization": f"Bearer {read.token[:-2]}00"}):
        r = httpx.get(f"{read.url}/v1/reconstructions/{hex_hash(xorb)}", headers=bad)
        assert r.status_code == 401, (bad, r.status_code, r.text)

    short = server_factory(xet_token_ttl="1")
    name, token, short_api = short.new_user_api("ttl")
    short_api.create_repo(f"{name}/r")
    cas = Cas(short.endpoint, f"{name}/r", token, "write", ttl=1)
    time.sleep(1.1)
    r = cas.call("POST", f"/v1/xorbs/default/{hex_hash(xorb)}", body)
    assert r.status_code == 401 and r.headers["X-Error-Code"] == "TokenExpired"
    assert not list((short.data / "blobs").rglob("xet/xorbs/*/*"))


@pytest.mark.usefixtures("no_server_errors")
def test_private_xet_files_stay_private(server: Any, api: HfApi, user: Any, other: Any,
                                        repo_factory: Callable[..., str],
                                        tmp_path: Path) -> None:
    private = repo_factory(private=True)
    src = random_file(tmp_path / "secret.bin", 400_000, seed=11)
    api.upload_file(path_or_fileobj=str(src), path_in_repo="secret.bin", repo_id=private)
    fid = xet_hash(src)
    data = src.read_bytes()

    # The owner's read token reaches it; the plan's fetch URLs work without auth.
    mine = Cas(server.endpoint, private, user.token, "read")
    plan = mine.call("GET", f"/v1/reconstructions/{fid}").json()
    xorb, (fetch,) = next(iter(plan["fetch_info"].items()))
    url = fetch["url"]

    # Outsiders: no token for the repo, and a token for their own repo reaches nothing.
    r = httpx.get(f"{server.endpoint}/api/models/{private}/xet-read-token/main",
                  headers={"Authorization": f"Bearer {other.token}"})
    assert r.status_code == 404 and r.headers["X-Error-Code"] == "RepoNotFound"
    other_api = HfApi(endpoint=server.endpoint, token=other.token)
    theirs = f"{other.name}/own-{uuid.uuid4().hex[:6]}"
    other_api.create_repo(theirs)
    cas = Cas(server.endpoint, theirs, other.token, "write")
    missing = "ab" * 32
    for file_id in (fid, missing):
        r = cas.call("GET", f"/v1/reconstructions/{file_id}")
        assert r.status_code == 404, file_id
    assert cas.call("GET", f"/v1/reconstructions?file_id={fid}").status_code == 404
    first_chunk = _first_chunk_hash(data)
    assert cas.call("GET", f"/v1/chunks/default/{first_chunk}").status_code == 404
    assert mine.call("GET", f"/v1/chunks/default/{first_chunk}").status_code == 200

    # Naming the private xorb in a shard (without its bytes) does not attach the file.
    terms = plan["terms"]
    assert len(terms) == 1
    term = Term(raw_hash(xorb), 0, terms[0]["range"]["end"], terms[0]["unpacked_length"])
    recipe = FileRecipe(file_hash=bytes(32), terms=[term], verification=None,
                        sha256=hashlib.sha256(data).digest())
    r = cas.call("POST", "/v1/shards", serialize_shard(Shard([recipe], []), with_footer=False))
    assert r.status_code == 400 and r.headers["X-Error-Code"] == "XorbNotFound"

    # Fetch URLs need their signature.
    assert httpx.get(url.split("?")[0], headers={"Range": "bytes=0-10"}).status_code == 403
    assert httpx.get(url.replace("sig=", "sig=0"), headers={"Range": "bytes=0-10"}
                     ).status_code == 403

    # The plain-HTTP route also hides it.
    r = httpx.get(f"{server.endpoint}/{private}/resolve/main/secret.bin",
                  headers={"Authorization": f"Bearer {other.token}"})
    assert r.status_code == 404



def _first_chunk_hash(data: bytes) -> str:
    end = chunk_boundaries(data)[0]
    return hex_hash(chunk_hash(data[:end]))


@pytest.mark.usefixtures("no_server_errors")
def test_concurrent_uploads_of_the_same_content(server: Any, api: HfApi,
                                                repo_factory: Callable[..., str]) -> None:
    from concurrent.futures import ThreadPoolExecutor

    repo = repo_factory()
    cas = Cas(server.endpoint, repo, api.token, "write")
    body, xorb, index, chunks = make_file(21, n_chunks=20)
    with ThreadPoolExecutor(6) as pool:
        xorbs = list(pool.map(
            lambda _: cas.call("POST", f"/v1/xorbs/default/{hex_hash(xorb)}", body), range(6)))
    assert all(r.status_code == 200 for r in xorbs), [r.text for r in xorbs]
    assert sum(r.json()["was_inserted"] for r in xorbs) == 1
    shard = shard_for(xorb, index, chunks)
    with ThreadPoolExecutor(6) as pool:
        shards = list(pool.map(lambda _: cas.call("POST", "/v1/shards", shard), range(6)))
    assert all(r.status_code == 200 for r in shards), [r.text for r in shards]
    fid = hex_hash(file_hash(list(zip(index.hashes, index.sizes, strict=True))))
    plan = cas.call("GET", f"/v1/reconstructions/{fid}").json()
    assert sum(t["unpacked_length"] for t in plan["terms"]) == sum(len(c) for c in chunks)


def test_acknowledged_xet_upload_survives_kill(server_factory: Any, tmp_path: Path) -> None:
    srv = server_factory()
    name, token, api = srv.new_user_api("crash")
    api.create_repo(f"{name}/m")
    src = random_file(tmp_path / "w.bin", 3 * MB, seed=5)
    api.upload_file(path_or_fileobj=str(src), path_in_repo="w.bin", repo_id=f"{name}/m")
    srv.kill()
    srv.start()
    got = hf_hub_download(f"{name}/m", "w.bin", cache_dir=tmp_path / "c", token=token,
                          endpoint=srv.endpoint)
    assert sha256(Path(got)) == sha256(src)


def test_storage_stats_are_for_site_admins(server: Any, api: HfApi, user: Any,
                                           repo_factory: Callable[..., str]) -> None:
    repo = repo_factory()
    for path in ("/api/admin/storage", f"/api/admin/storage/models/{repo}"):
        assert httpx.get(f"{server.endpoint}{path}").status_code == 401
        r = httpx.get(f"{server.endpoint}{path}",
                      headers={"Authorization": f"Bearer {user.token}"})
        assert r.status_code == 403
    with pytest.raises(subprocess.CalledProcessError):
        server.hver("storage", "stats", f"{user.name}/no-such-repo")


@pytest.mark.usefixtures("no_server_errors")
def test_a_shards_sha256_binds_only_in_its_repo(server: Any, api: HfApi, other: Any,
                                                 repo_factory: Callable[..., str]) -> None:
    """The sha256 in a shard is the uploader's word, like a pointer in a commit: it names
    the file in the uploader's repo and nowhere else."""
    mine = repo_factory()
    theirs = f"{other.name}/victim-{uuid.uuid4().hex[:6]}"
    HfApi(endpoint=server.endpoint, token=other.token).create_repo(theirs)
    real = b"the real weights" * 1000
    claimed = hashlib.sha256(real).hexdigest()

    body, xorb, index, chunks = make_file(31)
    cas = Cas(server.endpoint, mine, api.token, "write")
    assert cas.call("POST", f"/v1/xorbs/default/{hex_hash(xorb)}", body).status_code == 200
    r = cas.call("POST", "/v1/shards", shard_for(xorb, index, chunks, sha=bytes.fromhex(claimed)))
    assert r.status_code == 200, r.text

    # The claim is not the victim's: committing a pointer to it without uploading fails.
    ndjson = "\n".join(json.dumps(x) for x in [
        {"key": "header", "value": {"summary": "pointer only", "description": ""}},
        {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": claimed,
                                     "size": len(real)}}])
    r = httpx.post(f"{server.endpoint}/api/models/{theirs}/commit/main", content=ndjson,
                   headers={"Authorization": f"Bearer {other.token}",
                            "Content-Type": "application/x-ndjson"})
    assert r.status_code == 422 and r.headers["X-Error-Code"] == "LfsObjectMissing", r.text

    # The victim uploads the real content through LFS and commits it: it is served as is.
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
        HfApi(endpoint=server.endpoint, token=other.token).upload_file(
            path_or_fileobj=real, path_in_repo="w.bin", repo_id=theirs)
    (entry,) = HfApi(endpoint=server.endpoint, token=other.token).get_paths_info(
        theirs, ["w.bin"])
    assert entry.lfs.sha256 == claimed and entry.xet_hash is None
    r = httpx.get(f"{server.endpoint}/{theirs}/resolve/main/w.bin", follow_redirects=True)
    assert r.content == real


@pytest.mark.usefixtures("no_server_errors")
def test_cas_token_dies_with_its_hub_token(server: Any, tmp_path: Path) -> None:
    name, token, api = server.new_user_api("revoke")
    api.create_repo(f"{name}/r")
    src = random_file(tmp_path / "w.bin", 300_000, seed=41)
    api.upload_file(path_or_fileobj=str(src), path_in_repo="w.bin", repo_id=f"{name}/r")
    second = server.hver("token", "create", name, "--name", "second")
    cas = Cas(server.endpoint, f"{name}/r", second, "read")
    path = f"/v1/reconstructions/{xet_hash(src)}"
    assert cas.call("GET", path).status_code == 200
    server.hver("token", "revoke", name, "second")
    assert cas.call("GET", path).status_code == 401
    cas = Cas(server.endpoint, f"{name}/r", token, "read")
    server.hver("user", "disable", name)
    assert cas.call("GET", path).status_code == 401
