"""The size of a folder at a revision: every file below it, large files at their real size.

A tree's total depends only on its content, so it is cached by the tree's git id and a
folder that did not change between commits is never summed twice; the sizes come from the
trees' records (`hver.core.tree_sizes`), so a fresh server reads no blob twice either.
"""

from __future__ import annotations

import stat
import threading
from collections import OrderedDict

from hver.core import tree_sizes
from hver.core.tree import get_entry
from hver.storage.git import GitRepo


def tree_size(git: GitRepo, commit: str, path: str) -> int:
    """Total bytes of the files at or below `path` ('' is the root) at `commit`; a file
    path gives that file's size. EntryNotFound when nothing is there."""
    info = get_entry(git, commit, path)
    if not info.is_dir:
        return info.size
    return _tree_total(git, info.oid)


def _tree_total(git: GitRepo, sha: str) -> int:
    hit = _cache.get(sha)
    if hit is not None:
        return hit
    total = 0
    found = tree_sizes.entries(git, sha)
    for k, mode in enumerate(found.modes):
        if stat.S_ISDIR(mode):
            total += _tree_total(git, found.shas[k])
        elif stat.S_ISREG(mode):
            pointed = found.lfs.get(k)
            total += found.sizes[k] if pointed is None else pointed[1]
    _cache.put(sha, total)
    return total


class _Cache:
    """Tree id -> total size. Trees are immutable, so entries never go stale."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._data: OrderedDict[str, int] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, sha: str) -> int | None:
        with self._lock:
            value = self._data.get(sha)
            if value is not None:
                self._data.move_to_end(sha)
            return value

    def put(self, sha: str, value: int) -> None:
        with self._lock:
            self._data[sha] = value
            if len(self._data) > self.capacity:
                self._data.popitem(last=False)


_cache = _Cache()
