"""git-lfs pointer files and the streaming hash-and-store of LFS objects."""

from __future__ import annotations

import hashlib
import mmap
import os
import re
from dataclasses import dataclass
from pathlib import Path

from hver.errors import BadRequest
from hver.storage.blobs import BlobStore

SPEC = "https://git-lfs.github.com/spec/v1"
MAX_POINTER_SIZE = 1024
HASH_SLICE = 8 * 1024 * 1024
_OID_RE = re.compile(r"^[0-9a-f]{64}$")
_POINTER_RE = re.compile(
    rb"^version https://git-lfs\.github\.com/spec/v1\n"
    rb"oid sha256:(?P<oid>[0-9a-f]{64})\n"
    rb"size (?P<size>[0-9]+)\n$"
)


@dataclass(frozen=True)
class Pointer:
    oid: str
    size: int

    def encode(self) -> bytes:
        return f"version {SPEC}\noid sha256:{self.oid}\nsize {self.size}\n".encode()


def parse_pointer(data: bytes) -> Pointer | None:
    if len(data) > MAX_POINTER_SIZE or not data.startswith(b"version "):
        return None
    m = _POINTER_RE.match(data)
    if m is None:
        return None
    return Pointer(m.group("oid").decode(), int(m.group("size")))


def check_oid(oid: object) -> str:
    if not isinstance(oid, str) or not _OID_RE.match(oid):
        raise BadRequest(f"Invalid LFS oid {oid!r}: expected 64 lowercase hex characters.")
    return oid


def blob_key(oid: str) -> str:
    return f"lfs/{oid[0:2]}/{oid[2:4]}/{oid}"


class ObjectWriter:
    """Writes an upload to a staging file while hashing it; `commit` checks and stores it."""

    def __init__(self, store: BlobStore, expected_oid: str, expected_size: int) -> None:
        self.store = store
        self.expected_oid = expected_oid
        self.expected_size = expected_size
        self.file, self.path = store.staging_file()
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.size += len(data)
        if self.size > self.expected_size:
            raise BadRequest(
                f"LFS object is larger than the announced {self.expected_size} bytes.",
                code="SizeMismatch",
            )
        self.hash.update(data)
        self.file.write(data)

    def commit(self) -> None:
        try:
            if self.size != self.expected_size:
                raise BadRequest(
                    f"LFS object size mismatch: got {self.size} bytes, expected "
                    f"{self.expected_size}.",
                    code="SizeMismatch",
                )
            digest = self.hash.hexdigest()
            if digest != self.expected_oid:
                raise BadRequest(
                    f"LFS object hash mismatch: content has sha256 {digest}, expected "
                    f"{self.expected_oid}.",
                    code="HashMismatch",
                )
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            self.store.put_staged(blob_key(self.expected_oid), self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.path.unlink(missing_ok=True)


def store_staged(store: BlobStore, staged: Path, oid: str, size: int) -> None:
    """Check a finished staging file (multipart uploads) and move it into the store.

    The bytes are hashed once, through a mapping (not read into memory), and never
    copied; the file is removed if it does not match.
    """
    try:
        if staged.stat().st_size != size:
            raise BadRequest(
                f"LFS object size mismatch: got {staged.stat().st_size} bytes, expected {size}.",
                code="SizeMismatch",
            )
        digest = hashlib.sha256()
        with staged.open("rb") as fh:
            if size:
                with (mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped,
                      memoryview(mapped) as view):
                    for pos in range(0, size, HASH_SLICE):  # hashlib frees the GIL
                        digest.update(view[pos:pos + HASH_SLICE])
            os.fsync(fh.fileno())
        if digest.hexdigest() != oid:
            raise BadRequest(
                f"LFS object hash mismatch: content has sha256 {digest.hexdigest()}, "
                f"expected {oid}.",
                code="HashMismatch",
            )
        store.put_staged(blob_key(oid), staged)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
