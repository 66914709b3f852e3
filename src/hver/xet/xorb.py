"""Xorbs (hub-docs ``xorb.md``): chunk encoding, a streaming upload parser and a chunk index."""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate

import lz4.frame

from hver.xet.hashing import MAX_CHUNK_SIZE as MAX_CHUNK_SIZE
from hver.xet.hashing import chunk_hash, xorb_hash

MAX_XORB_SIZE = 64 * 1024 * 1024  # chunk bytes, uncompressed (the client cuts xorbs there)
MAX_XORB_CHUNKS = 8192
# Headers and incompressible LZ4 frames make the serialized form a little longer.
MAX_XORB_BODY = MAX_XORB_SIZE + 1024 * 1024
HEADER_SIZE = 8
SCHEME_NONE = 0
SCHEME_LZ4 = 1
SCHEME_BG4_LZ4 = 2

# An LZ4 frame of an incompressible 128 KiB chunk is a few dozen bytes longer than the chunk;
# anything far beyond that is refused before it is buffered.
_MAX_PAYLOAD = 2 * MAX_CHUNK_SIZE
_FOOTER_TAG = b"XETBLOB"
# A v1 XorbObjectInfo footer is 96 + 40 bytes per chunk; leave room for later versions.
_FOOTER_BASE = 4096
_FOOTER_PER_CHUNK = 64


class XorbError(ValueError):
    """A malformed xorb or chunk."""


def _bg4_group(data: bytes) -> bytes:
    return b"".join(data[i::4] for i in range(4))


def _bg4_ungroup(data: bytes) -> bytes:
    n = len(data)
    out = bytearray(n)
    pos = 0
    for i in range(4):
        size = n // 4 + (1 if i < n % 4 else 0)
        out[i::4] = data[pos : pos + size]
        pos += size
    return bytes(out)


def _lz4_compress(data: bytes) -> bytes:
    # Frame flags as hf_xet writes them: independent blocks, no checksums, no content size.
    out: bytes = lz4.frame.compress(
        data,
        block_size=lz4.frame.BLOCKSIZE_MAX64KB,
        block_linked=False,
        content_checksum=False,
        store_size=False,
    )
    return out


def _lz4_decompress(payload: bytes | memoryview, size: int) -> bytes:
    decompressor = lz4.frame.LZ4FrameDecompressor()
    try:
        out: bytes = decompressor.decompress(payload, max_length=size + 1)
    except RuntimeError as e:
        raise XorbError(f"invalid LZ4 frame: {e}") from None
    if len(out) != size or not decompressor.eof or decompressor.unused_data:
        raise XorbError("LZ4 frame does not decompress to exactly the declared size")
    return out


def encode_chunk(data: bytes, scheme: int = SCHEME_LZ4) -> bytes:
    """Serialize one chunk: 8-byte header + payload.

    As the spec recommends, a chunk that compression would not shrink is stored raw (scheme 0).
    """
    if not 0 < len(data) <= MAX_CHUNK_SIZE:
        raise XorbError(f"a chunk holds 1 to {MAX_CHUNK_SIZE} bytes, not {len(data)}")
    if scheme == SCHEME_NONE:
        payload = data
    elif scheme == SCHEME_LZ4:
        payload = _lz4_compress(data)
    elif scheme == SCHEME_BG4_LZ4:
        payload = _lz4_compress(_bg4_group(data))
    else:
        raise XorbError(f"unknown compression scheme {scheme}")
    if len(payload) >= len(data):
        scheme, payload = SCHEME_NONE, data
    n = len(data).to_bytes(3, "little")
    return b"\0" + len(payload).to_bytes(3, "little") + bytes([scheme]) + n + payload


def _parse_header(header: bytes | bytearray | memoryview, offset: int) -> tuple[int, int, int]:
    """Validate a chunk header; returns (payload size, scheme, uncompressed size)."""
    if header[0] != 0:
        raise XorbError(f"unsupported chunk header version {header[0]} at byte {offset}")
    payload_size = int.from_bytes(header[1:4], "little")
    scheme = header[4]
    size = int.from_bytes(header[5:8], "little")
    if scheme not in (SCHEME_NONE, SCHEME_LZ4, SCHEME_BG4_LZ4):
        raise XorbError(f"unknown compression scheme {scheme} at byte {offset}")
    if not 0 < size <= MAX_CHUNK_SIZE:
        raise XorbError(f"chunk at byte {offset} declares {size} bytes (1 to {MAX_CHUNK_SIZE})")
    if scheme == SCHEME_NONE and payload_size != size:
        raise XorbError(f"uncompressed chunk at byte {offset} has {payload_size} != {size} bytes")
    if payload_size > _MAX_PAYLOAD:
        raise XorbError(f"chunk at byte {offset} has a {payload_size}-byte payload")
    return payload_size, scheme, size


def _decode(payload: bytes | memoryview, scheme: int, size: int) -> bytes:
    if scheme == SCHEME_NONE:
        return bytes(payload)
    data = _lz4_decompress(payload, size)
    return _bg4_ungroup(data) if scheme == SCHEME_BG4_LZ4 else data


@dataclass
class XorbIndex:
    """Per-chunk index of a stored xorb.

    `offsets[i]` is where chunk i starts in the stored bytes; `offsets[-1]` is their total length.
    """

    hashes: list[bytes]
    sizes: list[int]
    offsets: list[int]

    def hash(self) -> bytes:
        """The xorb hash (merkle root over the chunks)."""
        return xorb_hash(list(zip(self.hashes, self.sizes, strict=True)))

    def unpacked_offsets(self) -> list[int]:
        """Unpacked start of each chunk, plus the total unpacked length (n + 1 entries)."""
        return list(accumulate(self.sizes, initial=0))

    def to_bytes(self) -> bytes:
        """Compact form: u32 n, n u32 sizes, n + 1 u32 offsets, then n 32-byte hashes."""
        n = len(self.hashes)
        return struct.pack(f"<I{n}I{n + 1}I", n, *self.sizes, *self.offsets) + b"".join(self.hashes)

    @classmethod
    def from_bytes(cls, data: bytes) -> XorbIndex:
        """Inverse of `to_bytes`."""
        if len(data) < 8:
            raise XorbError("xorb index too short")
        n = int.from_bytes(data[:4], "little")
        table = 4 + 4 * (2 * n + 1)
        if len(data) != table + 32 * n:
            raise XorbError("xorb index has the wrong length")
        numbers = struct.unpack_from(f"<{2 * n + 1}I", data, 4)
        hashes = [data[i : i + 32] for i in range(table, len(data), 32)]
        return cls(hashes, list(numbers[:n]), list(numbers[n:]))


class XorbParser:
    """Incremental parser of an uploaded xorb body.

    `feed` returns the bytes to store (whole, validated chunks). Chunks are checked and
    hashed where they lie in the piece fed, without a copy; only a chunk split between
    two pieces is gathered in a buffer. A trailing ``XorbObjectInfo`` footer is accepted
    and dropped.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._stored = 0
        self._unpacked = 0
        self._in_footer = False
        self._footer_size = 0
        self._hashes: list[bytes] = []
        self._sizes: list[int] = []
        self._offsets: list[int] = []

    def feed(self, data: bytes | bytearray | memoryview) -> bytes:
        """Consume the next piece of the body; returns the stored bytes it completes."""
        parts = self.feed_parts(data)
        return bytes(parts[0]) if len(parts) == 1 else b"".join(parts)

    def feed_parts(self, data: bytes | bytearray | memoryview) -> list[bytes | memoryview]:
        """`feed`, the stored bytes as pieces: views of `data` where whole chunks lie in it
        (valid while `data` is), so that a caller writing them copies nothing."""
        if self._in_footer:
            self._add_footer(len(data))
            return []
        view = memoryview(data).cast("B")
        out: list[bytes | memoryview] = []
        pos = 0
        buffer = self._buffer
        while buffer and pos < len(view):  # complete the chunk the last piece began
            take = view[pos : pos + self._missing()]
            buffer += take
            pos += len(take)
            with memoryview(buffer) as held:
                done = self._scan(held)
            if done:
                out.append(bytes(buffer))
                buffer.clear()
            if self._in_footer:
                self._add_footer(len(buffer) + len(view) - pos)
                buffer.clear()
                return out
        if pos < len(view) and not buffer:
            rest = view[pos:]
            done = self._scan(rest)
            if done:
                out.append(rest[:done])
            if self._in_footer:
                self._add_footer(len(rest) - done)
            else:
                buffer += rest[done:]
        return out

    def _missing(self) -> int:
        """How many more bytes the buffered start of a chunk (or footer) needs."""
        have = len(self._buffer)
        if self._buffer[0] != 0:
            return max(len(_FOOTER_TAG) - have, 0) or 1
        if have < HEADER_SIZE:
            return HEADER_SIZE - have
        payload_size, _, _ = _parse_header(self._buffer[:HEADER_SIZE], self._stored)
        return HEADER_SIZE + payload_size - have

    def _scan(self, view: memoryview) -> int:
        """Check and hash the whole chunks at the start of `view`, which begins at stored
        offset `self._stored`; returns how many bytes they take (and moves `_stored`)."""
        pos = 0
        n = len(view)
        while pos < n:
            offset = self._stored + pos
            if view[pos] != 0:
                head = bytes(view[pos : pos + len(_FOOTER_TAG)])
                if head == _FOOTER_TAG:
                    self._in_footer = True
                    break
                if len(head) < len(_FOOTER_TAG) and _FOOTER_TAG.startswith(head):
                    break  # maybe a footer: wait for more bytes
                raise XorbError(f"unsupported chunk header version {view[pos]} at {offset}")
            if n - pos < HEADER_SIZE:
                break
            payload_size, scheme, size = _parse_header(view[pos : pos + HEADER_SIZE], offset)
            end = pos + HEADER_SIZE + payload_size
            if self._stored + end > MAX_XORB_BODY:
                raise XorbError(f"xorb body exceeds {MAX_XORB_BODY} bytes")
            if end > n:
                break
            payload = view[pos + HEADER_SIZE : end]
            chunk = payload if scheme == SCHEME_NONE else _decode(payload, scheme, size)
            self._unpacked += size
            if self._unpacked > MAX_XORB_SIZE or len(self._sizes) >= MAX_XORB_CHUNKS:
                raise XorbError(f"xorb holds more than {MAX_XORB_SIZE} bytes or "
                                f"{MAX_XORB_CHUNKS} chunks")
            self._hashes.append(chunk_hash(chunk))
            self._sizes.append(size)
            self._offsets.append(offset)
            pos = end
        self._stored += pos
        return pos

    def _add_footer(self, n: int) -> None:
        self._footer_size += n
        if self._footer_size > _FOOTER_BASE + _FOOTER_PER_CHUNK * len(self._hashes):
            raise XorbError("too much data after the last chunk")

    def finish(self) -> XorbIndex:
        """End of body: returns the index, or raises XorbError if the body was incomplete."""
        if self._buffer:
            raise XorbError("xorb body ends inside a chunk header or payload")
        if not self._hashes:
            raise XorbError("empty xorb")
        return XorbIndex(self._hashes, self._sizes, [*self._offsets, self._stored])


def index_xorb(data: bytes | memoryview) -> XorbIndex:
    """The checked index of a whole xorb body (a footer after the chunks is allowed; its
    chunks end at `offsets[-1]`), read in place: no byte is copied that is stored raw."""
    parser = XorbParser()
    parser.feed_parts(data)
    return parser.finish()


def decode_chunks(data: bytes | memoryview) -> Iterator[bytes]:
    """Decode a run of whole serialized chunks (a stored xorb byte range)."""
    for piece in _decoded(data):
        yield bytes(piece)


def decode_range(data: bytes | memoryview) -> bytes:
    """A run of whole serialized chunks, decoded into one piece (one copy of raw chunks)."""
    return b"".join(_decoded(data))


def _decoded(data: bytes | memoryview) -> Iterator[bytes | memoryview]:
    view = memoryview(data)
    pos = 0
    while pos < len(view):
        if len(view) - pos < HEADER_SIZE:
            raise XorbError("data ends inside a chunk header")
        payload_size, scheme, size = _parse_header(view[pos : pos + HEADER_SIZE], pos)
        end = pos + HEADER_SIZE + payload_size
        if end > len(view):
            raise XorbError("data ends inside a chunk")
        payload = view[pos + HEADER_SIZE : end]
        yield payload if scheme == SCHEME_NONE else _decode(payload, scheme, size)
        pos = end


def build_xorb(chunks: Sequence[bytes], scheme: int = SCHEME_LZ4) -> tuple[bytes, XorbIndex]:
    """Serialize chunks into a xorb body and its index."""
    parts = [encode_chunk(chunk, scheme) for chunk in chunks]
    offsets = list(accumulate((len(p) for p in parts), initial=0))
    index = XorbIndex([chunk_hash(c) for c in chunks], [len(c) for c in chunks], offsets)
    return b"".join(parts), index
