"""Parameter counts and tensor types of a repo's safetensors files, from their headers.

A safetensors file starts with an 8-byte little-endian header length and a JSON header
mapping tensor names to {"dtype", "shape", "data_offsets"} (plus an optional
"__metadata__"). Only that header is read, through `content.open_file`, so a multi-GB
file, even one stored as Xet chunks, costs a few kilobytes of reading.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter, OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass

from hver.core.content import open_file
from hver.core.hub import Hub
from hver.core.tree import FileInfo
from hver.errors import HverError
from hver.storage.git import GitRepo

MAX_HEADER_BYTES = 100_000_000  # the format's own limit
MAX_FILES = 200  # safetensors files read for one repo page
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
    for name, tensor in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(tensor, dict):
            return None
        dtype, shape = tensor.get("dtype"), tensor.get("shape")
        if not isinstance(dtype, str) or not dtype or not isinstance(shape, list):
            return None
        if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
            return None
        counts[dtype] += math.prod(shape)
    return dict(counts)


def read_counts(hub: Hub, git: GitRepo, repo_pk: int, info: FileInfo) -> dict[str, int] | None:
    """The counts of one file, reading its header only; None when it has no valid one."""
    # Per repo: Xet content is only ever read through the repo that references it.
    key = f"{repo_pk}:{info.lfs.oid if info.lfs else info.oid}"
    hit = _cache.get(key)
    if hit is not None:
        return hit
    try:
        with open_file(hub, git, repo_pk, info) as fh:
            head = fh.read(8)
            if len(head) < 8:
                return None
            length = int.from_bytes(head, "little")
            if length < 2 or length > MAX_HEADER_BYTES or length > info.size - 8:
                return None
            data = fh.read(length)
    except (HverError, OSError, ValueError):
        return None
    if len(data) < length:
        return None
    counts = parse_header(data)
    if counts is not None:
        _cache.put(key, counts)
    return counts


def repo_meta(hub: Hub, git: GitRepo, repo_pk: int,
              files: Iterable[FileInfo]) -> SafetensorsMeta | None:
    """Totals over the `*.safetensors` among `files` (sharded checkpoints add up);
    None when there is none with a valid header."""
    total: Counter[str] = Counter()
    found = False
    candidates = [f for f in files if not f.is_dir and f.path.endswith(SUFFIX)]
    for info in candidates[:MAX_FILES]:
        counts = read_counts(hub, git, repo_pk, info)
        if not counts:
            continue
        found = True
        total.update(counts)
    if not found:
        return None
    return SafetensorsMeta(dict(total.most_common()))


def format_count(n: int) -> str:
    """1234567 -> '1.23M', as parameter counts are usually written."""
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
    """(repo, content hash) -> counts. Keyed by what the bytes hash to, so never stale."""

    def __init__(self, capacity: int = 4096) -> None:
        self.capacity = capacity
        self._data: OrderedDict[str, dict[str, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, int] | None:
        with self._lock:
            hit = self._data.get(key)
            if hit is not None:
                self._data.move_to_end(key)
            return hit

    def put(self, key: str, value: dict[str, int]) -> None:
        with self._lock:
            self._data[key] = value
            if len(self._data) > self.capacity:
                self._data.popitem(last=False)


_cache = _Cache()
