"""Parameter counts and tensor types of a repo's safetensors files, from their headers.

A safetensors file starts with an 8-byte little-endian header length and a JSON header
mapping tensor names to {"dtype", "shape", "data_offsets"} (plus an optional
"__metadata__"). Only that header is read, through `content.open_file`, so a multi-GB
file, even one stored as Xet chunks, costs a few kilobytes of reading.

A page's reading is bounded: a header over `MAX_HEADER_BYTES` makes the file's counts
unknown, and one page reads at most `MAX_PAGE_BYTES` (a git-stored file is read whole).
What a file's bytes give, counts or unknown, is cached, so the next view reads further.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hver.core.content import open_file
from hver.core.hub import Hub
from hver.core.tree import FileInfo
from hver.errors import HverError
from hver.storage.git import GitRepo

# Real checkpoints' headers are well under 1 MiB; the format allows 100 MB.
MAX_HEADER_BYTES = 8 * 1024 * 1024  # a longer header: counts unknown
MAX_PAGE_BYTES = 64 * 1024 * 1024  # header (or git blob) bytes read for one repo page
MAX_FILES = 200  # safetensors files read for one repo page
MAX_DIM = 2**53  # a shape's dimensions are below this (JSON numbers are exact below it)
MAX_COUNT = 2**63  # element counts (of a tensor, a file, a repo) are below this
SUFFIX = ".safetensors"
_UNITS = ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K"))


@dataclass(frozen=True)
class SafetensorsMeta:
    parameters: dict[str, int]  # dtype -> element count, most elements first

    @property
    def total(self) -> int:
        return sum(self.parameters.values())

    @property
    def dtypes(self) -> list[str]:
        return list(self.parameters)


def parse_header(data: bytes) -> dict[str, int] | None:
    """dtype -> element count from a header's JSON; None when it is not a valid header."""
    try:
        header = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(header, dict):
        return None
    counts: Counter[str] = Counter()
    total = 0
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(tensor, dict):
            return None
        dtype, shape = tensor.get("dtype"), tensor.get("shape")
        if not isinstance(dtype, str) or not dtype or not isinstance(shape, list):
            return None
        n = _elements(shape)
        if n is None:
            return None
        counts[dtype] += n
        total += n
        if total >= MAX_COUNT:
            return None
    return dict(counts)


def _elements(shape: list[Any]) -> int | None:
    """The element count of a tensor of `shape`; None when a dimension or the count is out
    of range. Stops at the first: a long shape of big numbers makes a huge product."""
    n = 1
    for d in shape:
        if not isinstance(d, int) or isinstance(d, bool) or not 0 <= d < MAX_DIM:
            return None
        n *= d
        if n >= MAX_COUNT:
            return None
    return n


class PageBudget:
    """What one page may still read: `left` bytes."""

    def __init__(self, left: int = MAX_PAGE_BYTES) -> None:
        self.left = left


class _OverBudget(Exception):
    """Reading a file would take more than the page may still read."""


def read_counts(hub: Hub, git: GitRepo, repo_pk: int, info: FileInfo,
                budget: PageBudget) -> dict[str, int] | None:
    """The counts of one file, reading its header only; None when it has no valid one.
    What is read is taken from `budget`; _OverBudget, with nothing read, when the file
    needs more than is left."""
    # Per repo: Xet content is only ever read through the repo that references it.
    key = f"{repo_pk}:{info.lfs.oid if info.lfs else info.oid}"
    found, hit = _cache.get(key)
    if found:
        return hit
    if info.lfs is None:  # a git blob is read whole
        _spend(budget, info.size)
    try:
        with open_file(hub, git, repo_pk, info) as fh:
            head = fh.read(8)
            length = int.from_bytes(head, "little")
            if len(head) < 8 or length < 2 or length > min(MAX_HEADER_BYTES, info.size - 8):
                counts = None
            else:
                if info.lfs is not None:
                    _spend(budget, length)
                data = fh.read(length)
                counts = parse_header(data) if len(data) == length else None
    except (HverError, OSError, ValueError):
        return None  # not cached: missing or unreadable content may be readable later
    # Failures too: the same bytes always give the same answer.
    _cache.put(key, counts)
    return counts


def _spend(budget: PageBudget, n: int) -> None:
    if n > budget.left:
        raise _OverBudget
    budget.left -= n


def repo_meta(hub: Hub, git: GitRepo, repo_pk: int, files: Iterable[FileInfo],
              max_bytes: int = MAX_PAGE_BYTES) -> SafetensorsMeta | None:
    """Totals over the `*.safetensors` among `files` (sharded checkpoints add up);
    None when there is none with a valid header, when the total is out of range, or when
    the files need more than `max_bytes` of reading (cached files cost nothing, so a
    later view gets further)."""
    total: Counter[str] = Counter()
    found = False
    budget = PageBudget(max_bytes)
    candidates = [f for f in files if not f.is_dir and f.path.endswith(SUFFIX)]
    for info in candidates[:MAX_FILES]:
        try:
            counts = read_counts(hub, git, repo_pk, info, budget)
        except _OverBudget:
            return None  # a partial total would be a wrong one
        if not counts:
            continue
        found = True
        total.update(counts)
    if not found or total.total() >= MAX_COUNT:
        return None
    return SafetensorsMeta(dict(total.most_common()))


def format_count(n: int) -> str:
    """1234567 -> '1.23M', as parameter counts are usually written. Any int: one out of
    range (negative, or MAX_COUNT and more) reads as such, never raises."""
    if n < 0:
        return "negative"
    if n >= MAX_COUNT:  # also beyond float division's range
        return f"over {format_count(MAX_COUNT - 1)}"
    for i, (limit, suffix) in enumerate(_UNITS):
        if n >= limit:
            text = f"{n / limit:.3g}"
            if float(text) >= 1000 and i > 0:  # 999_999 is 1M, not 1e+03K
                limit, suffix = _UNITS[i - 1]
                text = f"{n / limit:.3g}"
            if "e" in text:  # beyond the largest unit
                text = f"{n / limit:.0f}"
            return f"{text}{suffix}"
    return str(n)


class _Cache:
    """(repo, content hash) -> counts, or None for no valid header. Keyed by what the
    bytes hash to, so never stale."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._data: OrderedDict[str, dict[str, int] | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[bool, dict[str, int] | None]:
        """(found, value)."""
        with self._lock:
            if key not in self._data:
                return False, None
            self._data.move_to_end(key)
            return True, self._data[key]

    def put(self, key: str, value: dict[str, int] | None) -> None:
        with self._lock:
            self._data[key] = value
            if len(self._data) > self.capacity:
                self._data.popitem(last=False)


_cache = _Cache()
