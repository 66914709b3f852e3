"""Partial merkle trees of a file's chunks, for clients that re-upload part of a file
(`GET /v2/file-chunk-hashes`; xet-core ``merkle_hash_subtree.rs`` and
``chunk_window_builder.rs``, hf_xet 1.8.0).

A `Subtree` holds a run of chunks as a "hump": at each level of the tree, the nodes
whose groups are not yet known (a prefix and a suffix, since the neighbours are
missing) and, above them, the merged groups that are. Adjacent subtrees merge into
one (`merge`); once the run reaches both ends of the file, its top node is the merkle
root the file hash is made from. A stable group boundary is one no neighbour can move:
the second of three natural cuts whose gaps both lie strictly between 2 and 8 nodes.

`chunk_windows` answers a list of dirty byte ranges: each widened to whole chunks and
on to where the chunker is known to re-synchronise (two consecutive chunks of a
"stable" size), the subtrees of the gaps between them, and the verification hash of
each term that lies wholly in a gap. Per-chunk hashes are never sent.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hver.xet.hashing import (
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    ZERO_HASH,
    hex_hash,
    is_natural_cut,
    merge_nodes,
    next_cut,
)

Node = tuple[bytes, int]  # raw hash, size
MIN_GROUP = 2
MAX_GROUP = 9


def _valid_gap(gap: int) -> bool:
    return MIN_GROUP < gap < MAX_GROUP - 1


def find_stable_start(nodes: Sequence[Node]) -> int | None:
    """The first index that starts a group whatever precedes `nodes`, if any."""
    if len(nodes) < MIN_GROUP + 1:
        return None
    prev: int | None = None
    prev_prev: int | None = None
    for pos, (h, _) in enumerate(nodes):
        if not is_natural_cut(h):
            continue
        if (prev is not None and prev_prev is not None
                and _valid_gap(pos - prev) and _valid_gap(prev - prev_prev)):
            return prev + 1
        prev_prev, prev = prev, pos
    return None


def find_stable_end(nodes: Sequence[Node]) -> int | None:
    """The last index that starts a group whatever follows `nodes`, if any."""
    if len(nodes) < MIN_GROUP + 1:
        return None
    nxt: int | None = None
    nxt_nxt: int | None = None
    for pos in range(len(nodes) - 1, -1, -1):
        if not is_natural_cut(nodes[pos][0]):
            continue
        if (nxt is not None and nxt_nxt is not None
                and _valid_gap(nxt - pos) and _valid_gap(nxt_nxt - nxt)):
            return nxt + 1
        nxt_nxt, nxt = nxt, pos
    return None


def _split(nodes: list[Node], at_start: bool, at_end: bool) -> tuple[int, int, list[Node]]:
    """(prefix length, suffix length, parents of the groups between them) of one level."""
    if len(nodes) <= 1:
        return len(nodes), 0, []
    start: int | None = 0 if at_start else find_stable_start(nodes)
    if start is None:
        return len(nodes), 0, []
    end: int | None = len(nodes)
    if not at_end:
        found = find_stable_end(nodes[start:])
        end = None if found is None else start + found
    if end is None or start >= end:
        return len(nodes), 0, []
    mergeable = nodes[start:end]
    promoted = []
    pos = 0
    while pos < len(mergeable):
        stop = next_cut(mergeable, pos)
        promoted.append(merge_nodes(mergeable[pos:stop]))
        pos = stop
    return start, len(nodes) - end, promoted


@dataclass(frozen=True)
class Subtree:
    """`lefts[i]` and `rights[i]`: the unmerged prefix and suffix at level i (the top
    level's node, when there is one, is its only left)."""

    lefts: list[list[Node]]
    rights: list[list[Node]]
    at_start: bool
    at_end: bool

    @classmethod
    def from_chunks(cls, at_start: bool, chunks: Sequence[Node], at_end: bool) -> Subtree:
        """The hump of a run of chunks; `at_start`/`at_end`: it begins/ends the file."""
        lefts: list[list[Node]] = []
        rights: list[list[Node]] = []
        current = list(chunks)
        while True:
            prefix, suffix, promoted = _split(current, at_start and not any(lefts),
                                              at_end and not any(rights))
            lefts.append(current[:prefix])
            rights.append(current[len(current) - suffix:])
            if len(promoted) == 1:
                lefts.append(promoted)
                rights.append([])
            if len(promoted) <= 1:
                return cls(lefts, rights, at_start, at_end)
            current = promoted

    def is_empty(self) -> bool:
        return not any(self.lefts) and not any(self.rights)

    def final_hash(self) -> bytes | None:
        """The merkle root of the whole file, once the subtree reaches both of its ends."""
        if not (self.at_start and self.at_end):
            return None
        if self.is_empty():
            return ZERO_HASH
        return self.lefts[-1][0][0]

    def _level(self, i: int) -> list[Node]:
        return self.lefts[i] + self.rights[i] if i < len(self.lefts) else []

    def merge(self, right: Subtree) -> Subtree:
        """This subtree followed by `right`, as one."""
        if self.at_end or right.at_start:
            raise ValueError("only a subtree that does not reach the end takes one on its right")
        at_start, at_end = self.at_start, right.at_end
        lefts: list[list[Node]] = []
        rights: list[list[Node]] = []
        carry: list[Node] = []
        for i in range(max(len(self.lefts), len(right.lefts))):
            full = self._level(i) + carry + right._level(i)
            prefix, suffix, carry = _split(full, at_start and not any(lefts),
                                           at_end and not any(rights))
            lefts.append(full[:prefix])
            rights.append(full[len(full) - suffix:])
        while carry:
            if len(carry) == 1:
                lefts.append(carry)
                rights.append([])
                break
            prefix, suffix, promoted = _split(carry, at_start and not any(lefts),
                                              at_end and not any(rights))
            lefts.append(carry[:prefix])
            rights.append(carry[len(carry) - suffix:])
            carry = promoted
        while len(lefts) > 1 and not lefts[-1] and not rights[-1]:
            lefts.pop()
            rights.pop()
        return Subtree(lefts, rights, at_start, at_end)

    def as_json(self) -> dict[str, Any]:
        """xet-core's serde form: nodes (lefts by level, then rights from the top level
        down), and each level's (left, right) counts."""
        nodes = [n for side in self.lefts for n in side]
        nodes += [n for side in reversed(self.rights) for n in side]
        return {"nodes": [{"hash": hex_hash(h), "size": s} for h, s in nodes],
                "levels": [[len(a), len(b)] for a, b in zip(self.lefts, self.rights, strict=True)],
                "at_start": self.at_start, "at_end": self.at_end}


# -- dirty windows ------------------------------------------------------------------------------


def stable_chunk_size(size: int) -> bool:
    """A chunk size the chunker cut by content, well inside its bounds (xet-core
    ``is_stable_chunk_size``): two in a row mean it has re-synchronised."""
    return 2 * MIN_CHUNK_SIZE <= size < MAX_CHUNK_SIZE - MIN_CHUNK_SIZE


@dataclass
class _Windows:
    dirty: list[tuple[int, int]]
    index: int = 0
    in_window: bool = False
    gap_is_first: bool = True
    cursor: int = 0
    tail_prev: int | None = None

    def __post_init__(self) -> None:
        self.gap: list[Node] = []
        self.windows: list[list[int]] = []
        self.gaps: list[Subtree | None] = []

    def overlaps(self, i: int, start: int, end: int) -> bool:
        return i < len(self.dirty) and end > self.dirty[i][0] and start < self.dirty[i][1]

    def merge_ahead(self, end: int) -> None:
        while self.index + 1 < len(self.dirty) and end > self.dirty[self.index + 1][0]:
            self.index += 1

    def close_gap(self, at_end: bool) -> None:
        tree = Subtree.from_chunks(self.gap_is_first, self.gap, at_end)
        self.gaps.append(None if tree.is_empty() else tree)
        self.gap = []

    def add(self, node: Node) -> None:
        start, end = self.cursor, self.cursor + node[1]
        dirty = self.overlaps(self.index, start, end)
        if not self.in_window:
            if dirty:
                self.close_gap(False)
                self.windows.append([start, end])
                self.merge_ahead(end)
                self.in_window, self.tail_prev = True, None
            else:
                self.gap.append(node)
        elif dirty or self.overlaps(self.index + 1, start, end):
            if not dirty:
                self.index += 1
            self.windows[-1][1] = end
            self.merge_ahead(end)
            self.tail_prev = None
        else:  # past the dirty bytes: on until the chunker is back in step
            self.windows[-1][1] = end
            if self.tail_prev is not None and stable_chunk_size(self.tail_prev) \
                    and stable_chunk_size(node[1]):
                self.index += 1
                self.gap_is_first = self.in_window = False
                self.tail_prev = None
            else:
                self.tail_prev = node[1]
        self.cursor = end


def chunk_windows(chunks: Sequence[Node], dirty: Sequence[tuple[int, int]]
                  ) -> tuple[list[list[int]], list[Subtree | None]]:
    """The windows ([start, end) byte ranges) covering the sorted, disjoint `dirty` ranges,
    and the subtrees of the len(windows) + 1 gaps around them (None: an empty gap)."""
    state = _Windows(list(dirty))
    for node in chunks:
        state.add(node)
    state.close_gap(True)
    return state.windows, state.gaps
