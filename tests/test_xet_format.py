"""The pure Xet formats of hver.xet, checked against the real hf_xet client; no hver server."""

from __future__ import annotations

import hashlib
import json
import random
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import hf_xet
import pytest

from hver.xet.hashing import (
    chunk_boundaries,
    chunk_hash,
    file_hash,
    hex_hash,
    raw_hash,
    verification_hash,
    xorb_hash,
)
from hver.xet.shard import (
    FOOTER_SIZE,
    CasInfo,
    FileRecipe,
    Shard,
    ShardError,
    Term,
    parse_shard,
    serialize_shard,
)
from hver.xet.xorb import (
    MAX_CHUNK_SIZE,
    MAX_XORB_CHUNKS,
    MAX_XORB_SIZE,
    XorbError,
    XorbIndex,
    XorbParser,
    build_xorb,
    decode_chunks,
    encode_chunk,
)

RNG = random.Random(1234)


def rand_bytes(n: int) -> bytes:
    return RNG.randbytes(n)


def float_bytes(n: int) -> bytes:
    return struct.pack(f"<{n}f", *(RNG.gauss(0, 1) for _ in range(n)))


def chunk_list(data: bytes) -> list[tuple[bytes, int]]:
    out = []
    start = 0
    for end in chunk_boundaries(data):
        out.append((chunk_hash(data[start:end]), end - start))
        start = end
    return out


# ---------------------------------------------------------------- hashing


def test_hex_form() -> None:
    raw = bytes(range(32))
    text = hex_hash(raw)
    assert text[:16] == "0706050403020100"
    assert raw_hash(text) == raw
    for bad in ["", "0" * 63, "0" * 65, "A" * 64, "g" * 64, " " + "0" * 63]:
        with pytest.raises(ValueError):
            raw_hash(bad)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello",
        rand_bytes(300_000),
        rand_bytes(2_000_000),
        bytes(1_000_000),
        b"All work and no play makes Jack a dull boy.\n" * 40_000,
    ],
    ids=["empty", "5B", "random-300k", "random-2M", "zeros-1M", "text"],
)
def test_file_hash_matches_hf_xet(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "f"
    path.write_bytes(data)
    chunks = chunk_list(data)
    assert sum(size for _, size in chunks) == len(data)
    assert all(size <= MAX_CHUNK_SIZE for _, size in chunks)
    assert hex_hash(file_hash(chunks)) == hf_xet.hash_files([str(path)])[0].hash


def test_chunk_sizes() -> None:
    assert chunk_boundaries(bytes(300_000)) == [131072, 262144, 300_000]
    ends = chunk_boundaries(rand_bytes(1_000_000))
    sizes = [b - a for a, b in zip([0, *ends], ends, strict=False)]
    assert all(8192 <= s <= 131072 for s in sizes[:-1])


# xet-core xet_core_structures/src/merklehash/aggregated_hashes.rs, test_correctness.
_H = [
    "0" * 64,
    "cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6",
    "c3e67584b5c4fc2a89837ec39e40f2c8a6bb0b2987ac94cd4b31e5fbdd210a72",
    "0d2beb91b9196929a5ddec9f6e306924ddf4a24268e3e59fd8464738d525af37",
    "adf8773496a9b7319b2e50dc98093f344053b17d8ad37100b9c07d9805988784",
    "4ac202caf347fc1e9c874b1ef6a1c5e619141eb775a6f43f0f0124ccd0060d9e",
    "b3b28636f65c149ea52eb1f94669466f70f033b54cea792824c696ba6ef3c389",
    "0e2c1a002aae913d2c0fc8ddfa4e9e14b7b311b3b0d458726d5d9f6a6318013c",
]


@pytest.mark.parametrize(
    ("seeds", "xorb", "file"),
    [
        ([], "0" * 64, "0" * 64),
        (
            [0],
            "0" * 64,
            "638a6bc391964a85939d48f008e8bdbae6a7975e7ca2d87a3ce2492f4e4d8a4c",
        ),
        (
            [1],
            "cfc5d07f6f03c29bbf424132963fe08d19a37d5757aaf520bf08119f05cd56d6",
            "8e16257caa3fe079d484d872a8975264b2ff683b0d6db9028cc7c0f968a45661",
        ),
        (
            [1, 2, 3],
            "71ec1275fca074724e2dd666921b3277c7cee603e4d025bcab2d4050015be2bc",
            "54e55dccc6653c612bdb5576c5d3cb34bb31bc4e100248abccf4c908b3ef7715",
        ),
        (
            [1, 1, 1, 1],
            "89f2ada89ff8c96763c6b25010e6dd76a4c05b1466207633ea559acf2093211b",
            "2cdba690d0e09563596e0cda626d43eb4c96ef1e994fe72d9b2f5a83cfcd36dd",
        ),
        (
            [1, 2, 1, 2, 3, 4],
            "52c826f99507aa05d0b45e9837fa1709e0485425cfbcb1e80db3905cf98b3ee9",
            "91d21684db364c8883ab8209fa5eb2e781cf07f37e1fa43e731c30839afe422f",
        ),
        (
            [0, 1, 0, 1],
            "e1755c85be07fd6b7a8d7becc85e6d8c5f507f2a3d38b316bcb6f97855e72188",
            "207caf24fce045ac6d873b4c6186a5a435d600d103e1ae345e55ddf1f4b7f7ef",
        ),
        (
            [1, 0],
            "e8660f81494ca836a58e395c1395ef97870ed71e2b113eec1fab6b3361f46dd6",
            "274d92f7e2acebaa2b8d63c0b5e7a4fc15814a606e3e3825d55609e671bcc5d9",
        ),
        (
            list(range(8)),
            "f62abe77e3fb9c954fe52b0028027ddc90c064c45951a4fd2211d87e5c0011db",
            "d1b068be5bbdb38992269e8efe61f601881e39f7a7585fd76883cc6ea5c23b44",
        ),
        (
            [i % 8 for i in range(64)],
            "6554007c9b5d0a5e7918f79596a1b68815c1407535585435f5735db761f21b88",
            "a8640ab81d48854e00078e12b1ea8be5d90be0ffb5f73a15b7009981d093ddd8",
        ),
    ],
)
def test_aggregated_hash_vectors(seeds: list[int], xorb: str, file: str) -> None:
    chunks = [(raw_hash(_H[s]), 100 * s) for s in seeds]
    assert hex_hash(xorb_hash(chunks)) == xorb
    assert hex_hash(file_hash(chunks)) == file


# ---------------------------------------------------------------- xorbs


def sample_chunks() -> list[bytes]:
    text = b"".join(b"line %d of some repetitive text\n" % i for i in range(3000))
    return [text[:MAX_CHUNK_SIZE], float_bytes(20_000), b"x", rand_bytes(70_000)]


def xorb_footer(index: XorbIndex) -> bytes:
    """A v1 XorbObjectInfo footer as xet-core writes it (hub-docs xorb.md)."""
    n = len(index.hashes)
    ends = index.offsets[1:]
    unpacked_ends = index.unpacked_offsets()[1:]
    hashes = b"XBLBHSH\0" + struct.pack("<I", n) + b"".join(index.hashes)
    bounds = b"XBLBBND\1" + struct.pack(f"<I{n}I{n}I", n, *ends, *unpacked_ends)
    tail = struct.pack("<III", n, 28 + len(bounds) + len(hashes), 28 + len(bounds)) + bytes(16)
    info = b"XETBLOB\1" + index.hash() + hashes + bounds + tail
    return info + struct.pack("<I", len(info))


def feed_in_pieces(body: bytes, max_piece: int) -> tuple[bytes, XorbIndex]:
    parser = XorbParser()
    stored = bytearray()
    pos = 0
    while pos < len(body):
        step = RNG.randint(1, max_piece)
        stored += parser.feed(memoryview(body)[pos : pos + step])
        pos += step
        # Only the chunk in progress is held back.
        assert min(pos, len(body)) - len(stored) <= 8 + 2 * MAX_CHUNK_SIZE
    return bytes(stored), parser.finish()


@pytest.mark.parametrize(
    ("scheme", "stored_as"),
    # Chunks: text, float32 noise, "x", random. A chunk that compression would not shrink is
    # stored raw: LZ4 alone cannot shrink the floats, BG4 + LZ4 can.
    [(0, [0, 0, 0, 0]), (1, [1, 0, 0, 0]), (2, [2, 2, 0, 0])],
)
def test_xorb_round_trip(scheme: int, stored_as: list[int]) -> None:
    chunks = sample_chunks()
    body, index = build_xorb(chunks, scheme)
    assert [body[o + 4] for o in index.offsets[:-1]] == stored_as
    assert list(decode_chunks(body)) == chunks
    assert list(decode_chunks(body[index.offsets[1] : index.offsets[3]])) == chunks[1:3]
    assert index.offsets[-1] == len(body)
    assert index.unpacked_offsets() == [0, *[sum(map(len, chunks[: i + 1])) for i in range(4)]]
    assert index.hash() == xorb_hash([(chunk_hash(c), len(c)) for c in chunks])
    assert XorbIndex.from_bytes(index.to_bytes()) == index
    stored, parsed = feed_in_pieces(body, 64)
    assert stored == body
    assert parsed == index


def test_xorb_footer_is_dropped() -> None:
    body, index = build_xorb(sample_chunks())
    footer = xorb_footer(index)
    stored, parsed = feed_in_pieces(body + footer, 5)
    assert stored == body
    assert parsed == index
    parser = XorbParser()
    assert parser.feed(body + footer[:3]) == body  # "XET" could be a footer: wait
    assert parser.feed(footer[3:]) == b""
    assert parser.finish() == index


def test_xorb_index_rejects_garbage() -> None:
    _, index = build_xorb([b"abc"])
    data = index.to_bytes()
    for bad in [b"", data[:-1], data + b"\0"]:
        with pytest.raises(XorbError):
            XorbIndex.from_bytes(bad)


def parse_all(body: bytes) -> XorbIndex:
    parser = XorbParser()
    parser.feed(body)
    return parser.finish()


def header(payload_size: int, scheme: int, size: int, version: int = 0) -> bytes:
    return (
        bytes([version])
        + payload_size.to_bytes(3, "little")
        + bytes([scheme])
        + size.to_bytes(3, "little")
    )


_GOOD, _ = build_xorb([b"a" * 1000, b"b" * 1000])
_LZ4 = encode_chunk(b"c" * 1000)
_BAD_XORBS = {
    "bad version": header(3, 0, 3, version=1) + b"abc",
    "bad version after a chunk": _GOOD + header(3, 0, 3, version=2) + b"abc",
    "unknown scheme": header(3, 3, 3) + b"abc",
    "empty chunk": header(0, 0, 0),
    "oversize chunk": header(MAX_CHUNK_SIZE + 1, 0, MAX_CHUNK_SIZE + 1),
    "raw size mismatch": header(3, 0, 4) + b"abcd",
    "lz4 too short": header(len(_LZ4) - 8, 1, 1001) + _LZ4[8:],
    "lz4 too long": header(len(_LZ4) - 8, 1, 999) + _LZ4[8:],
    "lz4 garbage": header(12, 1, 100) + b"\x04\x22\x4d\x18garbage!",
    "bg4 garbage": header(5, 2, 100) + b"12345",
    "truncated payload": _GOOD[:-1],
    "truncated header": _GOOD + _LZ4[:5],
    "truncated footer tag": _GOOD + b"XET",
    "empty": b"",
    "footer only": b"XETBLOB\1" + bytes(40),
    "huge footer": _GOOD + b"XETBLOB" + bytes(10_000),
}


@pytest.mark.parametrize("body", _BAD_XORBS.values(), ids=_BAD_XORBS.keys())
def test_xorb_rejections(body: bytes) -> None:
    with pytest.raises(XorbError):
        parse_all(body)
    with pytest.raises(XorbError):
        feed_in_pieces(body, 3)


def test_xorb_size_limits() -> None:
    # 512 raw 128 KiB chunks are exactly 64 MiB of chunk data: accepted, though the
    # serialized body is longer by its headers.
    chunk = encode_chunk(rand_bytes(MAX_CHUNK_SIZE), 0)
    parser = XorbParser()
    for _ in range(MAX_XORB_SIZE // MAX_CHUNK_SIZE):
        parser.feed(chunk)
    assert sum(parser.finish().sizes) == MAX_XORB_SIZE
    with pytest.raises(XorbError, match="more than"):
        parser.feed(encode_chunk(b"x", 0))

    tiny = encode_chunk(b"y", 0)
    parser = XorbParser()
    parser.feed(tiny * MAX_XORB_CHUNKS)
    with pytest.raises(XorbError, match="chunks"):
        parser.feed(tiny)


# ---------------------------------------------------------------- shards


def h(n: int) -> bytes:
    return hashlib.sha256(b"%d" % n).digest()


def sample_shard() -> Shard:
    x1 = CasInfo(h(1), [h(10), h(11), h(12)], [1000, 2000, 3000], num_bytes_on_disk=5000)
    x2 = CasInfo(h(2), [h(20)], [7])
    files = [
        FileRecipe(
            h(100),
            [Term(h(1), 0, 2, 3000), Term(h(2), 0, 1, 7)],
            [verification_hash([h(10), h(11)]), verification_hash([h(20)])],
            hashlib.sha256(b"file 100").digest(),
        ),
        FileRecipe(h(101), [Term(h(1), 1, 3, 5000)], [verification_hash([h(11), h(12)])], None),
    ]
    return Shard(files, [x1, x2])


def test_shard_round_trip() -> None:
    shard = sample_shard()
    upload = serialize_shard(shard, with_footer=False)
    assert parse_shard(upload) == shard
    stored = serialize_shard(shard, created_at=1, expires_at=2)
    assert (upload[40:48], stored[40:48]) == (bytes(8), struct.pack("<Q", FOOTER_SIZE))
    assert stored[48 : len(upload)] == upload[48:]
    assert parse_shard(stored) == shard
    assert parse_shard(serialize_shard(Shard())) == Shard()
    no_verification = Shard([FileRecipe(h(5), [Term(h(2), 0, 1, 7)])], [])
    assert parse_shard(serialize_shard(no_verification, with_footer=False)) == no_verification


def test_shard_footer_lookup_tables() -> None:
    """The footer's tables, which hf_xet searches to dedup against a downloaded shard."""
    shard = sample_shard()
    data = serialize_shard(shard, created_at=10, expires_at=20)
    footer = struct.unpack_from("<9Q32sQQ48xQQQQ", data, len(data) - FOOTER_SIZE)
    version, file_info, xorb_info, file_lookup, n_files, xorb_lookup, n_xorbs = footer[:7]
    chunk_lookup, n_chunks, hmac_key, created, expiry = footer[7:12]
    on_disk, materialized, stored, footer_offset = footer[12:]
    assert (version, file_info, hmac_key, created, expiry) == (1, 48, bytes(32), 10, 20)
    assert (n_files, n_xorbs, n_chunks) == (2, 2, 4)
    assert (on_disk, materialized, stored, footer_offset) == (5000, 8007, 6007, len(data) - 200)
    keys = []
    for i in range(n_chunks):
        key, xorb_index, chunk_offset = struct.unpack_from("<QII", data, chunk_lookup + 16 * i)
        keys.append(key)
        entry = xorb_info + 48 * (xorb_index + 1 + chunk_offset)
        assert data[entry : entry + 8] == key.to_bytes(8, "little")
    assert keys == sorted(keys)
    for i in range(n_xorbs):
        key, xorb_index = struct.unpack_from("<QI", data, xorb_lookup + 12 * i)
        entry = xorb_info + 48 * xorb_index
        assert data[entry : entry + 8] == key.to_bytes(8, "little")
    for i in range(n_files):
        key, file_index = struct.unpack_from("<QI", data, file_lookup + 12 * i)
        entry = file_info + 48 * file_index
        assert data[entry : entry + 8] == key.to_bytes(8, "little")


def test_shard_rejections() -> None:
    upload = serialize_shard(sample_shard(), with_footer=False)
    stored = serialize_shard(sample_shard())
    footer = len(stored) - FOOTER_SIZE

    def patched(data: bytes, at: int, new: bytes) -> bytes:
        return data[:at] + new + data[at + len(new) :]

    cases = {
        "bad tag": patched(upload, 0, b"X"),
        "bad version": patched(upload, 32, struct.pack("<Q", 3)),
        "bad footer size": patched(upload, 40, struct.pack("<Q", 100)),
        "missing CAS bookend": upload[:-48],
        "missing both bookends": upload[:48] + upload[48 : 48 + 48 * 6],
        "trailing bytes": upload + b"\0",
        "unknown file flag": patched(upload, 48 + 32, struct.pack("<I", 0xC0000001)),
        "too many terms": patched(upload, 48 + 36, struct.pack("<I", 1000)),
        "no terms": patched(upload, 48 + 36, struct.pack("<I", 0)),
        "term flags": patched(upload, 96 + 32, struct.pack("<I", 1)),
        "empty term range": patched(upload, 96 + 40, struct.pack("<II", 1, 1)),
        "term bigger than its chunks": patched(upload, 96 + 36, struct.pack("<I", 10**9)),
        "malformed bookend": upload[:-1] + b"\1",
        "footer version": patched(stored, footer, struct.pack("<Q", 2)),
        "footer offsets": patched(stored, footer + 16, struct.pack("<Q", 49)),
        "keyed chunk hashes": patched(stored, footer + 72, b"\1"),
        "footer missing": stored[:-FOOTER_SIZE],
    }
    for name, data in cases.items():
        with pytest.raises(ShardError):
            parse_shard(data)
            pytest.fail(name)
    for n in range(len(upload)):
        with pytest.raises(ShardError):
            parse_shard(upload[:n])
    only_some_verified = sample_shard()
    only_some_verified.files[1].verification = None
    with pytest.raises(ShardError, match="verification"):
        parse_shard(serialize_shard(only_some_verified, with_footer=False))
    with pytest.raises(ShardError):
        serialize_shard(Shard([FileRecipe(h(1), [Term(h(2), 0, 1, 1)], [])]))
    with pytest.raises(ShardError):
        serialize_shard(Shard([], [CasInfo(b"short", [h(1)], [1])]))
    with pytest.raises(ShardError):
        serialize_shard(Shard([], [CasInfo(h(1), [h(1)], [2**32])]))


# ---------------------------------------------------------------- the real client


@dataclass
class RecordingCas:
    """A loopback CAS that records hf_xet's requests, answers dedup queries with
    `dedup_answer` and serves `reconstructions` (file hex -> JSON) and `xorbs` (hex -> bytes)."""

    endpoint: str = ""
    dedup_answer: bytes | None = None
    reconstructions: dict[str, bytes] = field(default_factory=dict)
    xorbs: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str, bytes]] = field(default_factory=list)

    def posted(self, prefix: str) -> list[tuple[str, bytes]]:
        return [(p, b) for m, p, b in self.requests if m == "POST" and p.startswith(prefix)]


@pytest.fixture
def start_cas() -> Iterator[Callable[[], RecordingCas]]:
    servers: list[ThreadingHTTPServer] = []

    def start() -> RecordingCas:
        cas = RecordingCas()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def reply(self, code: int, body: bytes, *headers: tuple[str, str]) -> None:
                self.send_response(code)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                cas.requests.append(("GET", self.path, b""))
                name = self.path.rsplit("/", 1)[-1]
                if self.path.startswith("/v1/chunks/default/") and cas.dedup_answer:
                    self.reply(200, cas.dedup_answer)
                elif self.path.startswith("/v1/reconstructions/") and name in cas.reconstructions:
                    self.reply(200, cas.reconstructions[name])
                elif self.path.startswith("/fetch/") and name in cas.xorbs:
                    first, last = map(int, self.headers["Range"].removeprefix("bytes=").split("-"))
                    total = len(cas.xorbs[name])
                    content_range = ("Content-Range", f"bytes {first}-{last}/{total}")
                    self.reply(206, cas.xorbs[name][first : last + 1], content_range)
                else:  # also /v2/reconstructions/...: makes hf_xet fall back to v1
                    self.reply(404, b"")

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                cas.requests.append(("POST", self.path, body))
                if self.path.startswith("/v1/xorbs/default/"):
                    self.reply(200, json.dumps({"was_inserted": True}).encode())
                elif self.path == "/v1/shards":
                    self.reply(200, json.dumps({"result": 1}).encode())
                else:  # /v1/xorb-grants/..., /v2/shards, /v1/telemetry: makes hf_xet fall back
                    self.reply(404, b"")

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        cas.endpoint = f"http://127.0.0.1:{server.server_port}"
        return cas

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def upload(cas: RecordingCas, blobs: list[bytes]) -> list[tuple[str, str | None, int]]:
    config = hf_xet.XetConfig().with_config({"telemetry.enabled": False})
    session = hf_xet.XetSession(config)
    expiry = int(time.time()) + 3600
    with session.new_upload_commit(
        endpoint=cas.endpoint, token="t", token_expiry_unix_secs=expiry
    ) as commit:
        handles = [commit.start_upload_bytes(b, name=f"f{i}") for i, b in enumerate(blobs)]
    infos = [handle.result().xet_info for handle in handles]
    return [(i.hash, i.sha256, i.file_size) for i in infos]


def test_real_client_upload_parses(
    start_cas: Callable[[], RecordingCas],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HF_XET_CACHE", str(tmp_path / "xet-cache"))
    blobs = [rand_bytes(200_000) + b"hello xet " * 30_000, float_bytes(40_000)]
    cas = start_cas()
    results = upload(cas, blobs)

    [(xorb_path, body)] = cas.posted("/v1/xorbs/default/")
    stored, index = feed_in_pieces(body, 10_000)
    assert stored == body  # hf_xet sends no footer
    assert hex_hash(index.hash()) == xorb_path.rsplit("/", 1)[1]
    assert {body[o + 4] for o in index.offsets[:-1]} == {0, 1, 2}  # raw, LZ4 and BG4 chunks

    [(_, shard_body)] = cas.posted("/v1/shards")
    shard = parse_shard(shard_body)
    assert serialize_shard(shard, with_footer=False) == shard_body
    assert shard.xorbs == [CasInfo(index.hash(), index.hashes, index.sizes)]
    chunks = list(zip(index.hashes, index.sizes, strict=True))
    recipes = {hex_hash(f.file_hash): f for f in shard.files}  # xet-core sorts files by hash
    assert len(recipes) == len(blobs)
    for blob, (xet_hash, sha256, size) in zip(blobs, results, strict=True):
        recipe = recipes[xet_hash]
        assert xet_hash == hex_hash(file_hash(chunk_list(blob)))
        assert recipe.sha256 == hashlib.sha256(blob).digest()
        assert sha256 == hashlib.sha256(blob).hexdigest()
        assert sum(t.unpacked_bytes for t in recipe.terms) == size == len(blob)
        assert recipe.verification is not None
        used = []
        for term, check in zip(recipe.terms, recipe.verification, strict=True):
            assert term.xorb == index.hash()
            span = chunks[term.chunk_start : term.chunk_end]
            assert term.unpacked_bytes == sum(s for _, s in span)
            assert check == verification_hash([c for c, _ in span])
            used += span
        assert file_hash(used) == recipe.file_hash
        offsets = index.offsets
        spans = [body[offsets[t.chunk_start] : offsets[t.chunk_end]] for t in recipe.terms]
        assert b"".join(c for s in spans for c in decode_chunks(s)) == blob

    # A global-dedup answer (a shard with footer) makes a fresh client reuse the xorb.
    dedup = CasInfo(index.hash(), index.hashes, index.sizes, len(body))
    answer = serialize_shard(Shard([], [dedup]), expires_at=int(time.time()) + 86400)
    cas2 = start_cas()
    cas2.dedup_answer = answer
    assert upload(cas2, blobs[:1]) == results[:1]
    assert any(p.startswith("/v1/chunks/default/") for _, p, _ in cas2.requests)
    assert cas2.posted("/v1/xorbs/") == []
    [(_, shard_body2)] = cas2.posted("/v1/shards")
    shard2 = parse_shard(shard_body2)
    assert shard2.xorbs == []
    assert shard2.files == [recipes[results[0][0]]]


def test_real_client_downloads_built_xorb(
    start_cas: Callable[[], RecordingCas], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hf_xet decodes what encode_chunk writes, in every scheme."""
    monkeypatch.setenv("HF_XET_CACHE", str(tmp_path / "xet-cache"))
    data = b"".join(b"row %d, value %d\n" % (i, i * i) for i in range(20_000))
    data += float_bytes(60_000) + rand_bytes(100_000)
    ends = chunk_boundaries(data)
    chunks = [data[a:b] for a, b in zip([0, *ends], ends, strict=False)]
    body = b"".join(encode_chunk(c, i % 3) for i, c in enumerate(chunks))
    stored, index = feed_in_pieces(body, 100_000)
    assert {body[o + 4] for o in index.offsets[:-1]} == {0, 1, 2}
    xorb_hex = hex_hash(index.hash())
    file_hex = hex_hash(file_hash(chunk_list(data)))
    whole = {"start": 0, "end": len(chunks)}
    cas = start_cas()
    cas.xorbs[xorb_hex] = stored
    cas.reconstructions[file_hex] = json.dumps({
        "offset_into_first_range": 0,
        "terms": [{"hash": xorb_hex, "unpacked_length": len(data), "range": whole}],
        "fetch_info": {xorb_hex: [{
            "range": whole,
            "url": f"{cas.endpoint}/fetch/{xorb_hex}",
            "url_range": {"start": 0, "end": len(stored) - 1},
        }]},
    }).encode()  # fmt: skip
    session = hf_xet.XetSession(hf_xet.XetConfig().with_config({"telemetry.enabled": False}))
    with session.new_file_download_group(
        endpoint=cas.endpoint, token="t", token_expiry_unix_secs=int(time.time()) + 3600
    ) as group:
        group.start_download_file(hf_xet.XetFileInfo(file_hex, len(data)), str(tmp_path / "out"))
    assert (tmp_path / "out").read_bytes() == data
    assert any(p.startswith(f"/fetch/{xorb_hex}") for _, p, _ in cas.requests)
