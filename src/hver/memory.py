"""The serving process's memory after big transfers.

glibc gives threads arenas of their own (8 per core by default) and keeps the pages freed
in each; big transfers pass megabytes through every thread-pool thread, so after a burst
the process stays at its peak. `tune_malloc` caps the arenas; `transfer()` marks a big
transfer, and when the last running one ends the free pages go back to the system
(`malloc_trim`). Both are no-ops where the C library has no such calls.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import threading
from collections.abc import Iterator
from typing import Any

MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # mallopt parameter number, <malloc.h>


def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        lib = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return lib if lib is not None and hasattr(lib, "malloc_trim") else None


_LIBC = _libc()


def tune_malloc() -> None:
    """Cap glibc's arenas: fewer pools of freed pages, each reused more."""
    if _LIBC is not None and hasattr(_LIBC, "mallopt"):
        _LIBC.mallopt(_M_ARENA_MAX, MALLOC_ARENAS)


def release_memory() -> None:
    """Give the allocator's free pages back to the system."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


class _Transfers:
    """How many big transfers run; the last one to end releases free memory."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.active = 0

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        with self.lock:
            self.active += 1
        try:
            yield
        finally:
            with self.lock:
                self.active -= 1
                last = self.active == 0
            if last:  # off the caller's thread: a trim walks every arena
                threading.Thread(target=release_memory, name="hver-trim", daemon=True).start()


transfer = _Transfers()
