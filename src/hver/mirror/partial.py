"""A large file while the mirror fetches it: how much of it is written, and a reader
that follows the writer, so that clients stream a file as it arrives instead of waiting
for all of it (`hver.api.lfs`: the `/_lfs/objects` route of a mirrored file in flight)."""

from __future__ import annotations

import hashlib
import threading
import time
from pathlib import Path
from typing import BinaryIO


class PartFailed(Exception):
    """The fetch behind a partial file failed: what was read of it must not be used."""


class Part:
    """A file being fetched into `path` (set once its staging file exists): `written`
    bytes of its `size` are there, in order."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.path: Path | None = None
        self.written = 0
        self.done = False
        self.found = False  # done, and the repo holds the file now
        self.error: str | None = None
        self._cond = threading.Condition()

    def wrote(self, n: int) -> None:
        with self._cond:
            self.written += n
            self._cond.notify_all()

    def restart(self) -> None:
        """The writer begins again from the start (an upstream ignored a Range)."""
        with self._cond:
            self.written = 0

    def finish(self, found: bool, error: str | None = None) -> None:
        with self._cond:
            self.done, self.found, self.error = True, found, error
            self._cond.notify_all()

    def wait(self, pos: int, timeout: float) -> int:
        """What is written, once it is past `pos` or the fetch ended; PartFailed if it
        failed (or `timeout` passed with nothing new: a stalled fetch)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.written <= pos and not self.done:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PartFailed("the upstream sent nothing for a while")
                self._cond.wait(left)
            if self.error is not None or (self.done and not self.found):
                raise PartFailed(self.error or "the upstream has no such file")
            return self.written

    def wait_done(self, timeout: float | None) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.done, timeout)


class PartWriter:
    """Writes a fetched file into its staging file, hashing it and telling its readers."""

    def __init__(self, part: Part | None, out: BinaryIO, path: Path) -> None:
        self.part = part
        self.out = out
        self.digest = hashlib.sha256()
        self.size = 0
        if part is not None:
            part.path = path

    def write(self, data: bytes | memoryview) -> int:
        n = self.out.write(data)
        self.out.flush()  # readers read the file, not this buffer
        self.digest.update(data)
        self.size += len(data)
        if self.part is not None:
            self.part.wrote(len(data))
        return n

    def seek(self, pos: int, whence: int = 0) -> int:
        """Only back to the start, for a download that starts again."""
        assert pos == 0 and whence == 0
        self.digest = hashlib.sha256()
        self.size = 0
        if self.part is not None:
            self.part.restart()
        return self.out.seek(0)

    def truncate(self, size: int | None = None) -> int:
        return self.out.truncate(size)

    def tell(self) -> int:
        return self.out.tell()


def read_part(part: Part, fh: BinaryIO, start: int, end: int, chunk: int = 1 << 20,
              stall: float = 60.0) -> bytes:
    """Bytes [start, end) of a partial file open as `fh`, up to `chunk` of them, once
    they are written (waiting at most `stall` seconds for new ones). In a worker thread."""
    written = part.wait(start, stall)
    fh.seek(start)
    return fh.read(min(chunk, written - start, end - start))
