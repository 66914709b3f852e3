"""Shards (hub-docs ``shard.md``; footer and lookup tables as xet-core writes them)."""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from itertools import accumulate

from hver.xet.hashing import MAX_CHUNK_SIZE, swap_groups

HEADER_TAG = bytes.fromhex("48465265706f4d6574614461746100556967456a7b815783a5bdd95ccdd14aa9")
HEADER_VERSION = 2
FOOTER_VERSION = 1
HEADER_SIZE = 48
FOOTER_SIZE = 200
ENTRY_SIZE = 48
FLAG_VERIFICATION = 1 << 31
FLAG_METADATA_EXT = 1 << 30
NO_EXPIRY = 2**64 - 1

_BOOKEND_HASH = b"\xff" * 32
_BOOKEND = _BOOKEND_HASH + bytes(16)
_KNOWN_FILE_FLAGS = FLAG_VERIFICATION | FLAG_METADATA_EXT
_HEADER = struct.Struct("<32sQQ")
_SEQUENCE = struct.Struct("<32sIIII")  # hash + four u32: every 48-byte entry but the ext ones
_FOOTER = struct.Struct("<9Q32sQQ48xQQQQ")


class ShardError(ValueError):
    """A malformed shard."""


@dataclass
class Term:
    """A chunk range `[chunk_start, chunk_end)` of a xorb."""

    xorb: bytes
    chunk_start: int
    chunk_end: int
    unpacked_bytes: int


@dataclass
class FileRecipe:
    """A file's reconstruction; `sha256` is the plain digest (the shard stores it group-swapped)."""

    file_hash: bytes
    terms: list[Term]
    verification: list[bytes] | None = None
    sha256: bytes | None = None


@dataclass
class CasInfo:
    """A xorb's chunk list; `num_bytes_on_disk` is 0 in client uploads."""

    xorb: bytes
    chunk_hashes: list[bytes]
    chunk_sizes: list[int]
    num_bytes_on_disk: int = 0


@dataclass
class Shard:
    """File recipes and xorb chunk lists, in shard order."""

    files: list[FileRecipe] = field(default_factory=list)
    xorbs: list[CasInfo] = field(default_factory=list)


def _truncated(h: bytes) -> int:
    return int.from_bytes(h[:8], "little")


class _Reader:
    def __init__(self, data: bytes, end: int) -> None:
        self.data = data
        self.end = end
        self.pos = HEADER_SIZE

    def need(self, entries: int, what: str) -> None:
        if self.pos + entries * ENTRY_SIZE > self.end:
            raise ShardError(f"shard truncated in {what} at byte {self.pos}")

    def entry(self) -> tuple[bytes, int, int, int, int]:
        values: tuple[bytes, int, int, int, int] = _SEQUENCE.unpack_from(self.data, self.pos)
        self.pos += ENTRY_SIZE
        return values

    def bookend(self, what: str) -> bool:
        self.need(1, what)
        if self.data[self.pos : self.pos + 32] != _BOOKEND_HASH:
            return False
        if self.data[self.pos : self.pos + ENTRY_SIZE] != _BOOKEND:
            raise ShardError(f"malformed bookend at byte {self.pos}")
        self.pos += ENTRY_SIZE
        return True


def _parse_file(r: _Reader) -> FileRecipe:
    at = r.pos
    file_hash, flags, n, _, _ = r.entry()
    if flags & ~_KNOWN_FILE_FLAGS:
        raise ShardError(f"file entry at byte {at} has unknown flags {flags:#x}")
    if n == 0:
        raise ShardError(f"file entry at byte {at} has no terms")
    verified = bool(flags & FLAG_VERIFICATION)
    has_ext = bool(flags & FLAG_METADATA_EXT)
    r.need(n * (2 if verified else 1) + has_ext, "file info")
    terms = []
    for _ in range(n):
        xorb, cas_flags, unpacked, start, end = r.entry()
        if cas_flags != 0:
            raise ShardError(f"term at byte {r.pos - ENTRY_SIZE} has flags {cas_flags:#x}")
        if not start < end or not 0 < unpacked <= (end - start) * MAX_CHUNK_SIZE:
            raise ShardError(f"term at byte {r.pos - ENTRY_SIZE} has an impossible range or size")
        terms.append(Term(xorb, start, end, unpacked))
    verification = None
    if verified:
        stop = r.pos + n * ENTRY_SIZE
        verification = [r.data[p : p + 32] for p in range(r.pos, stop, ENTRY_SIZE)]
        r.pos = stop
    sha256 = None
    if has_ext:
        sha256 = swap_groups(r.data[r.pos : r.pos + 32])
        r.pos += ENTRY_SIZE
    return FileRecipe(file_hash, terms, verification, sha256)


def _parse_xorb(r: _Reader) -> CasInfo:
    at = r.pos
    xorb, flags, n, _, on_disk = r.entry()
    if flags != 0:
        raise ShardError(f"CAS entry at byte {at} has flags {flags:#x}")
    if n == 0:
        raise ShardError(f"CAS entry at byte {at} has no chunks")
    r.need(n, "CAS info")
    hashes = []
    sizes = []
    for _ in range(n):
        chunk, _, size, _, _ = r.entry()
        if not 0 < size <= MAX_CHUNK_SIZE:
            raise ShardError(f"chunk at byte {r.pos - ENTRY_SIZE} has size {size}")
        hashes.append(chunk)
        sizes.append(size)
    return CasInfo(xorb, hashes, sizes, on_disk)


def _check_footer(data: bytes, xorb_info_offset: int, info_end: int) -> None:
    footer_offset = len(data) - FOOTER_SIZE
    fields = _FOOTER.unpack_from(data, footer_offset)
    version, file_info, xorb_info, file_lookup, n_files, xorb_lookup, n_xorbs = fields[:7]
    chunk_lookup, n_chunks, hmac_key = fields[7:10]
    stored_footer_offset = fields[15]
    if version != FOOTER_VERSION:
        raise ShardError(f"unsupported shard footer version {version}")
    if hmac_key != bytes(32):
        raise ShardError("shards with HMAC-keyed chunk hashes are not accepted")
    layout = (
        file_info == HEADER_SIZE
        and xorb_info == xorb_info_offset
        and file_lookup == info_end
        and xorb_lookup == file_lookup + 12 * n_files
        and chunk_lookup == xorb_lookup + 12 * n_xorbs
        and stored_footer_offset == chunk_lookup + 16 * n_chunks == footer_offset
    )
    if not layout:
        raise ShardError("shard footer offsets do not match its sections")


def parse_shard(data: bytes) -> Shard:
    """Parse and validate a shard, with (stored) or without (upload) its footer."""
    if len(data) < HEADER_SIZE:
        raise ShardError("shard shorter than its header")
    tag, version, footer_size = _HEADER.unpack_from(data)
    if tag != HEADER_TAG:
        raise ShardError("not a shard (bad header tag)")
    if version != HEADER_VERSION:
        raise ShardError(f"unsupported shard version {version}")
    if footer_size not in (0, FOOTER_SIZE) or len(data) < HEADER_SIZE + footer_size:
        raise ShardError(f"bad shard footer size {footer_size}")
    r = _Reader(data, len(data) - footer_size)
    shard = Shard()
    while not r.bookend("file info"):
        shard.files.append(_parse_file(r))
    if len({f.verification is None for f in shard.files}) > 1:
        raise ShardError("only some files have verification entries")
    xorb_info_offset = r.pos
    while not r.bookend("CAS info"):
        shard.xorbs.append(_parse_xorb(r))
    if footer_size:
        _check_footer(data, xorb_info_offset, r.pos)
    elif r.pos != len(data):
        raise ShardError("trailing bytes after the CAS info section")
    return shard


def _hash(h: bytes) -> bytes:
    if len(h) != 32:
        raise ShardError(f"a hash is 32 bytes, not {len(h)}")
    return h


def serialize_shard(
    shard: Shard,
    *,
    with_footer: bool = True,
    created_at: int | None = None,
    expires_at: int = NO_EXPIRY,
    hmac_key: bytes = bytes(32),
) -> bytes:
    """Serialize a shard; inverse of `parse_shard`.

    An upload body has no footer. With the footer (what stored shards and global-dedup answers
    carry) come xet-core's lookup tables and the HMAC key: zero when the chunk hashes are
    plain; else the CAS info's chunk hashes are already keyed with it (`keyed_chunk_hash`).
    """
    out = bytearray(_HEADER.pack(HEADER_TAG, HEADER_VERSION, FOOTER_SIZE if with_footer else 0))
    file_lookup: list[tuple[int, int]] = []
    xorb_lookup: list[tuple[int, int]] = []
    chunk_lookup: list[tuple[int, int, int]] = []
    materialized = 0
    try:
        index = 0
        for f in shard.files:
            file_lookup.append((_truncated(f.file_hash), index))
            flags = (FLAG_VERIFICATION if f.verification is not None else 0) | (
                FLAG_METADATA_EXT if f.sha256 is not None else 0
            )
            start = len(out)
            out += _SEQUENCE.pack(_hash(f.file_hash), flags, len(f.terms), 0, 0)
            for t in f.terms:
                xorb = _hash(t.xorb)
                out += _SEQUENCE.pack(xorb, 0, t.unpacked_bytes, t.chunk_start, t.chunk_end)
                materialized += t.unpacked_bytes
            if f.verification is not None:
                if len(f.verification) != len(f.terms):
                    raise ShardError("a file needs one verification hash per term")
                for v in f.verification:
                    out += _hash(v) + bytes(16)
            if f.sha256 is not None:
                out += swap_groups(_hash(f.sha256)) + bytes(16)
            index += (len(out) - start) // ENTRY_SIZE
        out += _BOOKEND
        xorb_info_offset = len(out)
        index = 0
        for x in shard.xorbs:
            if len(x.chunk_hashes) != len(x.chunk_sizes):
                raise ShardError("a xorb needs one size per chunk hash")
            xorb_lookup.append((_truncated(x.xorb), index))
            n = len(x.chunk_hashes)
            out += _SEQUENCE.pack(_hash(x.xorb), 0, n, sum(x.chunk_sizes), x.num_bytes_on_disk)
            starts = list(accumulate(x.chunk_sizes, initial=0))[:-1]
            chunks = zip(x.chunk_hashes, x.chunk_sizes, starts, strict=True)
            for i, (h, size, start) in enumerate(chunks):
                out += _SEQUENCE.pack(_hash(h), start, size, 0, 0)
                chunk_lookup.append((_truncated(h), index, i))
            index += 1 + n
        out += _BOOKEND
        if not with_footer:
            return bytes(out)
        file_lookup_offset = len(out)
        for key, i in sorted(file_lookup, key=lambda e: e[0]):
            out += struct.pack("<QI", key, i)
        xorb_lookup_offset = len(out)
        for key, i in sorted(xorb_lookup, key=lambda e: e[0]):
            out += struct.pack("<QI", key, i)
        chunk_lookup_offset = len(out)
        for key, i, j in sorted(chunk_lookup, key=lambda e: e[0]):
            out += struct.pack("<QII", key, i, j)
        out += _FOOTER.pack(
            FOOTER_VERSION,
            HEADER_SIZE,
            xorb_info_offset,
            file_lookup_offset,
            len(file_lookup),
            xorb_lookup_offset,
            len(xorb_lookup),
            chunk_lookup_offset,
            len(chunk_lookup),
            _hash(hmac_key),
            int(time.time()) if created_at is None else created_at,
            expires_at,
            sum(x.num_bytes_on_disk for x in shard.xorbs),
            materialized,
            sum(sum(x.chunk_sizes) for x in shard.xorbs),
            len(out),
        )
    except struct.error as e:
        raise ShardError(f"value out of range for the shard format: {e}") from None
    return bytes(out)
