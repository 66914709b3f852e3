"""The blob store: a few methods over content-addressed large files.

The local directory is the embedded default. A store hands out staging files
on the same filesystem, so an upload is written and hashed once, then moved
into place with an atomic rename: a reader never sees a partial blob, and a
crash leaves only a stray staging file, which the next start removes.

Direct uploads: a client may send an upload's bytes itself, without credentials, to
a target the store names (`upload_target`): a presigned URL of an object store, or,
for the local directory, the hub's own signed URL, whose route hands the bytes to
`put_upload`. They are staged under a name, never readable as a blob: whoever asked
for the target takes them (`take_upload`), checks them and stores them with
`put_staged`. Uploads never taken are removed (`clean_uploads`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlparse

_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK,
                  errno.ENOSYS}


_UPLOAD_NAME = re.compile(r"[A-Za-z0-9_-]{1,128}")
_UPLOAD_PREFIX = "direct-"


@dataclass(frozen=True)
class UploadTarget:
    """Where a client sends a direct upload: exactly this method, URL and headers."""

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)


class BlobStore(Protocol):
    def exists(self, key: str) -> bool: ...
    def size(self, key: str) -> int | None: ...
    def local_path(self, key: str) -> Path | None:
        """A file path to serve the blob from, when the store is on this machine."""
        ...
    def open(self, key: str) -> BinaryIO: ...
    def staging_file(self) -> tuple[BinaryIO, Path]:
        """A new temporary file to write an upload into, for `put_staged`."""
        ...
    def put_staged(self, key: str, staged: Path) -> bool:
        """Move a finished staging file to `key`, atomically, unless a blob is there already:
        the first writer wins for good, even under races. True when this call stored it.
        The staging file is gone afterwards either way."""
        ...
    def delete(self, key: str) -> None: ...
    def upload_target(self, name: str, length: int, crc64nvme: int, expires: int,
                      own_url: str) -> UploadTarget:
        """Where a client sends the `length` bytes of the direct upload `name` itself, until
        `expires` (unix seconds); `crc64nvme` is their CRC-64/NVME, which a store may make
        the upload prove. A store clients do not reach returns `own_url`: the hub's own
        signed URL, whose route passes the bytes to `put_upload`."""
        ...
    def put_upload(self, name: str, staged: Path) -> None:
        """Make a finished staging file the direct upload `name`, replacing an earlier one."""
        ...
    def take_upload(self, name: str, max_age: float) -> Path | None:
        """Move the direct upload `name` into a staging file of the caller's, out of reach
        of later uploads to that name; None when there is none at most `max_age` seconds
        old (an older one is removed)."""
        ...
    def clean_uploads(self, older_than: float) -> int:
        """Remove direct uploads never taken, older than `older_than` seconds."""
        ...


class LocalBlobStore:
    def __init__(self, root: Path, staging: Path) -> None:
        self.root = root
        self.staging = staging
        self.root.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"bad blob key {key!r}")
        return self.root / key

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int | None:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError:
            return None

    def local_path(self, key: str) -> Path | None:
        p = self._path(key)
        return p if p.is_file() else None

    def open(self, key: str) -> BinaryIO:
        return self._path(key).open("rb")

    def staging_file(self) -> tuple[BinaryIO, Path]:
        fd, name = tempfile.mkstemp(prefix="upload-", dir=self.staging)
        return os.fdopen(fd, "w+b"), Path(name)

    def put_staged(self, key: str, staged: Path) -> bool:
        dest = self._path(key)
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(staged, dest)  # unlike a rename, never replaces a blob stored meanwhile
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            if not self._rename_if_absent(staged, dest):
                return False
        finally:
            staged.unlink(missing_ok=True)
        _fsync_dir(dest.parent)
        return True

    def _rename_if_absent(self, staged: Path, dest: Path) -> bool:
        """For filesystems without hard links: check and rename under one lock (all of
        this store's writers, in every process, take it)."""
        with (self.staging / ".put.lock").open("a") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
            if dest.exists():
                return False
            os.replace(staged, dest)
            return True

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def _upload_path(self, name: str) -> Path:
        if not _UPLOAD_NAME.fullmatch(name):
            raise ValueError(f"bad upload name {name!r}")
        return self.staging / f"{_UPLOAD_PREFIX}{name}"

    def upload_target(self, name: str, length: int, crc64nvme: int, expires: int,
                      own_url: str) -> UploadTarget:
        self._upload_path(name)
        return UploadTarget("PUT", own_url)  # clients reach this store through the hub only

    def put_upload(self, name: str, staged: Path) -> None:
        os.replace(staged, self._upload_path(name))

    def take_upload(self, name: str, max_age: float) -> Path | None:
        taken = self.staging / f"upload-taken-{uuid.uuid4().hex}"
        try:
            os.rename(self._upload_path(name), taken)  # a later upload makes a new file
        except FileNotFoundError:
            return None
        if taken.stat().st_mtime < time.time() - max_age:
            taken.unlink(missing_ok=True)
            return None
        return taken

    def clean_uploads(self, older_than: float) -> int:
        return self.clean_staging(older_than, prefix=_UPLOAD_PREFIX)

    def clean_staging(self, older_than: float = 0.0, prefix: str = "") -> int:
        """Remove staging files (those whose name starts with `prefix`) left by a crash.
        Returns how many were removed."""
        removed = 0
        cutoff = time.time() - older_than
        for entry in self.staging.iterdir():
            if not entry.name.startswith(prefix):
                continue
            with contextlib.suppress(FileNotFoundError):
                if entry.stat().st_mtime <= cutoff:
                    if entry.is_dir():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink()
                    removed += 1
        return removed


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_blob_store(url: str, staging: Path) -> BlobStore:
    parsed = urlparse(url)
    if parsed.scheme == "file":
        return LocalBlobStore(Path(parsed.path), staging)
    raise ValueError(f"unsupported blob store URL {url!r} (supported: file://)")
