"""The rest of the CAS API of spec 1.1.0 (hf_xet 1.8.0): existence checks (HEAD), the
streaming shard upload (v2), chunk summaries for partial re-uploads, the spec's batch
reconstruction (POST), compressed JSON, and the Hub side's `X-Xet-Hash`."""

from __future__ import annotations

import hashlib
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hf_xet
import httpx
import pytest
import zstandard
from huggingface_hub import HfApi, constants, hf_hub_download
from xetkit import Cas, make_file

from hver.xet.hashing import file_hash, hex_hash, swap_groups, verification_hash
from hver.xet.shard import CasInfo, FileRecipe, Shard, Term, serialize_shard
from hver.xet.subtree import Node, Subtree

pytestmark = pytest.mark.usefixtures("no_server_errors")


@pytest.fixture(autouse=True)
def xet_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    monkeypatch.setenv("HF_XET_CACHE", str(tmp_path / "xet-cache"))


@dataclass
class XetFile:
    """A file of many terms, alternating between two uploaded xorbs, registered by hand."""

    file_id: str
    size: int
    data: bytes
    xorbs: dict[str, bytes]  # hex hash -> body
    terms: list[tuple[list[Node], int]]  # each term's (chunk hash, size) list, and its length
    shard: bytes


def many_terms(seed: int, span: int = 5) -> tuple[Any, ...]:
    """(xorb bodies, recipe shard, chunks in file order, terms, data) of a file whose terms
    take `span` chunks of each xorb in turn."""
    made = [make_file(seed, n_chunks=40), make_file(seed + 1, n_chunks=40)]
    terms, chunks, datas, term_chunks = [], [], [], []
    for start in range(0, 40, span):
        for _, xorb, index, raw in made:
            nodes = list(zip(index.hashes[start:start + span], index.sizes[start:start + span],
                             strict=True))
            terms.append(Term(xorb, start, start + span, sum(s for _, s in nodes)))
            term_chunks.append((nodes, sum(s for _, s in nodes)))
            chunks.extend(nodes)
            datas.extend(raw[start:start + span])
    data = b"".join(datas)
    recipe = FileRecipe(file_hash(chunks), terms,
                        [verification_hash([h for h, _ in nodes]) for nodes, _ in term_chunks],
                        hashlib.sha256(data).digest())
    infos = [CasInfo(xorb, list(index.hashes), list(index.sizes)) for _, xorb, index, _ in made]
    shard = serialize_shard(Shard([recipe], infos), with_footer=False)
    return made, shard, chunks, term_chunks, data


@pytest.fixture
def stored_file(server: Any, api: HfApi, repo_factory: Callable[..., str]) -> tuple[Cas, XetFile]:
    repo = repo_factory()
    cas = Cas(server.endpoint, repo, api.token, "write")
    made, shard, chunks, term_chunks, data = many_terms(random.randrange(1 << 30))
    for body, xorb, *_ in made:
        assert cas.call("POST", f"/v1/xorbs/default/{hex_hash(xorb)}", body).status_code == 200
    r = cas.call("POST", "/v1/shards", shard)
    assert r.status_code == 200, r.text
    file = XetFile(hex_hash(file_hash(chunks)), len(data), data,
                   {hex_hash(x): b for b, x, *_ in made}, term_chunks, shard)
    return cas, file


def outsider(server: Any, other: Any) -> Cas:
    repo = f"{other.name}/own-{uuid.uuid4().hex[:6]}"
    HfApi(endpoint=server.endpoint, token=other.token).create_repo(repo)
    return Cas(server.endpoint, repo, other.token, "write")


# -- HEAD ---------------------------------------------------------------------------------------


def test_head_files_and_xorbs(server: Any, api: HfApi, other: Any,
                              stored_file: tuple[Cas, XetFile]) -> None:
    cas, file = stored_file
    r = cas.call("HEAD", f"/v1/files/{file.file_id}")
    assert r.status_code == 200 and int(r.headers["content-length"]) == file.size
    for xorb, body in file.xorbs.items():
        r = cas.call("HEAD", f"/v1/xorbs/default/{xorb}")
        assert r.status_code == 200 and int(r.headers["content-length"]) == len(body)

    # What the token's repo may not read answers exactly as what does not exist.
    theirs = outsider(server, other)
    missing = "ab" * 32
    for path in (f"/v1/files/{file.file_id}", f"/v1/files/{missing}",
                 *(f"/v1/xorbs/default/{x}" for x in file.xorbs), f"/v1/xorbs/default/{missing}"):
        assert theirs.call("HEAD", path).status_code == 404, path
    assert cas.call("HEAD", f"/v1/files/{missing}").status_code == 404
    assert cas.call("HEAD", f"/v1/xorbs/other/{next(iter(file.xorbs))}").status_code == 404
    assert cas.call("HEAD", "/v1/files/nothex").status_code == 400
    assert httpx.head(f"{cas.url}/v1/files/{file.file_id}").status_code == 401


# -- POST /v2/shards ----------------------------------------------------------------------------


def frames(r: httpx.Response) -> list[dict[str, Any]]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    return [json.loads(line) for line in r.text.splitlines() if line]


def test_shard_upload_v2_streams_its_progress(server: Any, api: HfApi, user: Any,
                                              repo_factory: Callable[..., str]) -> None:
    repo = repo_factory()
    cas = Cas(server.endpoint, repo, api.token, "write")
    made, shard, chunks, _, data = many_terms(4242)
    for body, xorb, *_ in made:
        assert cas.call("POST", f"/v1/xorbs/default/{hex_hash(xorb)}", body).status_code == 200

    bad = frames(cas.call("POST", "/v2/shards", shard[:-40]))
    assert [f["type"] for f in bad] == ["validating", "error"]
    assert bad[-1]["retryable"] is False and bad[-1]["code"] == "InvalidShard"
    events = frames(cas.call("POST", "/v2/shards", shard))
    assert [f["type"] for f in events] == ["validating", "committing", "result"], events
    assert events[0] == {"type": "validating", "verified": 0, "total": 1}
    assert events[1] == {"type": "committing", "stage": "syncing"}
    again = frames(cas.call("POST", "/v2/shards", shard))
    assert again[-1] == {"type": "result"}

    fid = hex_hash(file_hash(chunks))
    plan = cas.call("GET", f"/v2/reconstructions/{fid}").json()
    assert sum(t["unpacked_length"] for t in plan["terms"]) == len(data)
    r = Cas(server.endpoint, repo, user.read_token, "read").call("POST", "/v2/shards", shard)
    assert r.status_code == 403, r.text


# -- GET /v2/file-chunk-hashes ------------------------------------------------------------------


def subtree(data: dict[str, Any]) -> Subtree:
    """A subtree from its JSON form, as the client reads it."""
    nodes = [(swap_groups(bytes.fromhex(n["hash"])), n["size"]) for n in data["nodes"]]
    lefts, rights, pos, end = [], [], 0, len(nodes)
    for left, right in data["levels"]:
        lefts.append(nodes[pos:pos + left])
        rights.append(nodes[end - right:end])
        pos, end = pos + left, end - right
    return Subtree(lefts, rights, data["at_start"], data["at_end"])


def test_file_chunk_hashes(server: Any, other: Any, stored_file: tuple[Cas, XetFile]) -> None:
    cas, file = stored_file
    path = f"/v2/file-chunk-hashes/{file.file_id}"
    chunks = [n for nodes, _ in file.terms for n in nodes]
    ends = [0]
    for _, size in chunks:
        ends.append(ends[-1] + size)
    edits = [[(10, 20)], [(file.size // 2, file.size // 2 + 1000), (0, 5)],
             [(file.size - 3, file.size - 1)], [(0, file.size - 1)]]
    for dirty in edits:
        header = "bytes=" + ",".join(f"{a}-{b}" for a, b in dirty)
        r = cas.call("GET", path, headers={"X-Range-Dirty": header})
        assert r.status_code == 200, r.text
        body = r.json()
        assert set(body) == {"totalChunks", "fileSize", "windows", "hashRanges",
                             "gapVerification"}
        assert body["totalChunks"] == len(chunks) and body["fileSize"] == file.size
        windows = [w["dirtyByteRange"] for w in body["windows"]]
        assert len(body["hashRanges"]) == len(windows) + 1
        for a, b in dirty:  # every dirty byte lies in a chunk-aligned window
            assert any(w[0] <= a and b < w[1] for w in windows), (dirty, windows)
        assert all(w[0] in ends and w[1] in ends for w in windows)
        # The client's side: gaps from the answer, windows re-chunked (here unchanged),
        # merged, give back the file hash; per-chunk hashes of the gaps never came.
        parts = []
        for i, (start, end) in enumerate(windows):
            if body["hashRanges"][i] is not None:
                parts.append(subtree(body["hashRanges"][i]))
            inside = chunks[ends.index(start):ends.index(end)]
            parts.append(Subtree.from_chunks(start == 0, inside, end == file.size))
        if body["hashRanges"][-1] is not None:
            parts.append(subtree(body["hashRanges"][-1]))
        whole = parts[0]
        for part in parts[1:]:
            whole = whole.merge(part)
        root = whole.final_hash()
        assert root is not None and hex_hash(file_hash_from_root(root)) == file.file_id
        # One verification hash per term no window touches, in order.
        expected, pos = [], 0
        for nodes, length in file.terms:
            if not any(w[0] < pos + length and pos < w[1] for w in windows):
                expected.append(hex_hash(verification_hash([h for h, _ in nodes])))
            pos += length
        assert body["gapVerification"] == expected

    for bad in (None, "", "bytes=", "bytes=5", "bytes=9-3", "lines=1-2", "bytes=a-b",
                f"bytes={file.size}-{file.size + 5}", "bytes=0-" + "9" * 5000,
                "bytes=" + ",".join(["0-1"] * 1025), "bytes=-5"):
        r = cas.call("GET", path, headers={"X-Range-Dirty": bad} if bad is not None else {})
        assert r.status_code == 400 and r.headers["X-Error-Code"], (bad, r.text)
    assert outsider(server, other).call(
        "GET", path, headers={"X-Range-Dirty": "bytes=0-1"}).status_code == 404
    assert cas.call("GET", f"/v2/file-chunk-hashes/{'ab' * 32}",
                    headers={"X-Range-Dirty": "bytes=0-1"}).status_code == 404


def file_hash_from_root(root: bytes) -> bytes:
    from blake3 import blake3

    return blake3(root, key=bytes(32)).digest()


# -- POST /v1/reconstructions -------------------------------------------------------------------


def without_urls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: without_urls(v) for k, v in value.items() if k != "url"}
    if isinstance(value, list):
        return [without_urls(v) for v in value]
    return value


def test_batch_reconstruction_by_post(server: Any, other: Any,
                                      stored_file: tuple[Cas, XetFile]) -> None:
    cas, file = stored_file
    r = cas.call("POST", "/v1/reconstructions",
                 json.dumps([{"prefix": "default", "hash": file.file_id}]).encode())
    assert r.status_code == 200, r.text
    by_get = cas.call("GET", f"/v1/reconstructions?file_id={file.file_id}").json()
    assert without_urls(r.json()) == without_urls(by_get)
    assert list(r.json()["files"]) == [file.file_id]
    entry = r.json()["fetch_info"][next(iter(file.xorbs))][0]
    got = httpx.get(entry["url"], headers={
        "Range": f"bytes={entry['url_range']['start']}-{entry['url_range']['end']}"})
    assert got.status_code == 206

    r = outsider(server, other).call(
        "POST", "/v1/reconstructions", json.dumps([{"prefix": "default",
                                                    "hash": file.file_id}]).encode())
    assert r.status_code == 404
    for bad in (b"{}", b"[]", b"not json", b'[{"prefix": "default"}]', b'["x"]',
                b'[{"prefix": "other", "hash": "' + file.file_id.encode() + b'"}]',
                json.dumps([{"prefix": "default", "hash": f"{i:064x}"}
                            for i in range(101)]).encode()):
        r = cas.call("POST", "/v1/reconstructions", bad)
        assert r.status_code == 400 and r.headers["X-Error-Code"], (bad[:40], r.text)


# -- compression --------------------------------------------------------------------------------


def test_json_answers_are_compressed_on_request(stored_file: tuple[Cas, XetFile]) -> None:
    cas, file = stored_file
    path = f"/v1/reconstructions/{file.file_id}"
    plain = cas.call("GET", path, headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert len(plain.content) > 1024
    r = httpx.get(f"{cas.url}{path}", headers={"Authorization": f"Bearer {cas.token}",
                                               "Accept-Encoding": "zstd"})
    assert r.headers["content-encoding"] == "zstd" and "Accept-Encoding" in r.headers["vary"]
    assert int(r.headers["content-length"]) == r.num_bytes_downloaded < len(plain.content)
    assert without_urls(r.json()) == without_urls(plain.json())  # httpx decodes zstd
    with httpx.stream("GET", f"{cas.url}{path}", headers={
            "Authorization": f"Bearer {cas.token}", "Accept-Encoding": "zstd"}) as raw:
        packed = b"".join(raw.iter_raw())
    assert json.loads(zstandard.ZstdDecompressor().decompressobj().decompress(packed))
    r = cas.call("GET", path, headers={"Accept-Encoding": "gzip, zstd;q=0"})
    assert r.headers["content-encoding"] == "gzip"
    assert without_urls(r.json()) == without_urls(plain.json())
    for version in (1, 2):
        r = cas.call("GET", f"/v{version}/reconstructions/{file.file_id}",
                     headers={"Accept-Encoding": "gzip, zstd"})
        assert r.headers["content-encoding"] == "zstd"

    # Xorb bytes are sent as they are.
    entry = plain.json()["fetch_info"][next(iter(file.xorbs))][0]
    start, end = entry["url_range"]["start"], entry["url_range"]["end"]
    got = httpx.get(entry["url"], headers={"Range": f"bytes={start}-{end}",
                                           "Accept-Encoding": "gzip, zstd"})
    assert got.status_code == 206 and "content-encoding" not in got.headers
    assert got.content == file.xorbs[next(iter(file.xorbs))][start:end + 1]


# -- the Hub side -------------------------------------------------------------------------------


def test_xet_hash_is_the_contents_whichever_repo_serves_it(
        server: Any, api: HfApi, other: Any, repo_factory: Callable[..., str],
        tmp_path: Path) -> None:
    src = tmp_path / "same.bin"
    src.write_bytes(random.Random(99).randbytes(700_000))
    expected = hf_xet.hash_files([str(src)])[0].hash
    other_api = HfApi(endpoint=server.endpoint, token=other.token)
    mine, theirs = repo_factory(), f"{other.name}/copy-{uuid.uuid4().hex[:6]}"
    other_api.create_repo(theirs)
    api.upload_file(path_or_fileobj=str(src), path_in_repo="a/w.bin", repo_id=mine)
    other_api.upload_file(path_or_fileobj=str(src), path_in_repo="b.bin", repo_id=theirs,
                          repo_type="model")
    hashes = set()
    for repo, path, token in ((mine, "a/w.bin", api.token), (theirs, "b.bin", other.token)):
        r = httpx.head(f"{server.endpoint}/{repo}/resolve/main/{path}",
                       headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        hashes.add(r.headers["X-Xet-Hash"])
    assert hashes == {expected}


def test_download_counter_header_is_harmless(server: Any, api: HfApi,
                                             repo_factory: Callable[..., str],
                                             tmp_path: Path) -> None:
    repo = repo_factory()
    data = random.Random(5).randbytes(300_000)
    api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=repo)
    api.upload_file(path_or_fileobj=b"small", path_in_repo="s.txt", repo_id=repo)
    counter = {"Authorization": f"Bearer {api.token}", "X-HF-Download-Counter": "1"}
    for method, path in (("HEAD", "w.bin"), ("GET", "w.bin"), ("GET", "s.txt")):
        r = httpx.request(method, f"{server.endpoint}/{repo}/resolve/main/{path}",
                          headers=counter, follow_redirects=True)
        assert r.status_code == 200, (method, path, r.text)
    r = httpx.get(f"{server.endpoint}/api/models/{repo}/xet-read-token/main", headers=counter)
    assert r.status_code == 200
    got = hf_hub_download(repo, "w.bin", cache_dir=tmp_path / "c", token=api.token)
    assert Path(got).read_bytes() == data
