"""The blob store: a few methods over content-addressed large files.

The local directory is the embedded default. A store hands out staging files
on the same filesystem, so an upload is written and hashed once, then moved
into place with an atomic rename: a reader never sees a partial blob, and a
crash leaves only a stray staging file, which the next start removes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import BinaryIO, Protocol
from urllib.parse import urlparse

_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK,
                  errno.ENOSYS}


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

    def clean_staging(self, older_than: float = 0.0) -> int:
        """Remove staging files left by a crash. Returns how many were removed."""
        removed = 0
        cutoff = time.time() - older_than
        for entry in self.staging.iterdir():
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
