"""Change stamps: counters every process on one data directory shares, so that what a
process caches is dropped the moment any process (another worker, the `hver` command
line) commits a change to what it was read from.

The counters live in `DATA/stamps`, mapped into memory: reading one is a memory read, no
system call. A writer bumps the kinds its transaction touched once the transaction has
committed (`hver.db.engine.Database` does it for every write), under an advisory lock on
the file. A reader takes the stamp *before* it reads what it caches and keeps the entry
only while the stamp is unchanged: a change committed after the read bumps it, so no
stale entry survives; one committed before is in what was read.

Processes on other machines (several servers sharing one PostgreSQL database) share no
file: there the caches' time-to-live (`HVER_CACHE_TTL`) is the bound.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import threading
from pathlib import Path

# One 8-byte counter per kind of cached data; the table names whose writes bump each are
# in `hver.core.caches.WATCHED`.
KINDS = ("actors", "repos", "holdings")
_SIZE = 4096
_SLOT = struct.Struct("<Q")
_OFFSET = {kind: i * _SLOT.size for i, kind in enumerate(KINDS)}


class Stamps:
    """The shared counters of a data directory; `path=None`: this process's alone."""

    def __init__(self, path: Path | None) -> None:
        self._lock = threading.Lock()
        self._fd: int | None = None
        if path is None:
            self._map: mmap.mmap | bytearray = bytearray(_SIZE)
            return
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < _SIZE:
                fcntl.flock(fd, fcntl.LOCK_EX)
                try:
                    if os.fstat(fd).st_size < _SIZE:
                        os.ftruncate(fd, _SIZE)  # zeros: every counter starts at 0
                finally:
                    fcntl.flock(fd, fcntl.LOCK_UN)
            self._map = mmap.mmap(fd, _SIZE)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def read(self, kind: str) -> int:
        value: int = _SLOT.unpack_from(self._map, _OFFSET[kind])[0]
        return value

    def bump(self, kinds: set[str]) -> None:
        with self._lock:
            if self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                for kind in kinds:
                    offset = _OFFSET[kind]
                    _SLOT.pack_into(self._map, offset, _SLOT.unpack_from(self._map, offset)[0] + 1)
            finally:
                if self._fd is not None:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            assert isinstance(self._map, mmap.mmap)
            self._map.close()
            os.close(self._fd)
            self._fd = None
            self._map = bytearray(_SIZE)
