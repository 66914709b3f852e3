"""Merkle subtrees and dirty windows (`hver.xet.subtree`), the parts of a
`GET /v2/file-chunk-hashes` answer, checked against the whole-file merkle root and
against the cases of xet-core's own tests (``merkle_hash_subtree.rs``,
``chunk_window_builder.rs``)."""

from __future__ import annotations

import random

import pytest

from hver.xet.hashing import (
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    ZERO_HASH,
    next_cut,
    swap_groups,
    xorb_hash,
)
from hver.xet.subtree import Node, Subtree, chunk_windows, find_stable_end, find_stable_start

STABLE = 2 * MIN_CHUNK_SIZE  # the smallest chunk size that counts as re-synchronised


def chunks(rng: random.Random, n: int, size: int | None = None) -> list[Node]:
    return [(rng.randbytes(32), size or rng.randint(1, 128 * 1024)) for _ in range(n)]


def merged(parts: list[Subtree]) -> Subtree:
    out = parts[0]
    for part in parts[1:]:
        out = out.merge(part)
    return out


@pytest.mark.parametrize("n", [0, 1, 2, 3, 9, 10, 37, 300, 2000])
def test_a_whole_run_gives_the_merkle_root(n: int) -> None:
    nodes = chunks(random.Random(n), n)
    tree = Subtree.from_chunks(True, nodes, True)
    assert tree.final_hash() == (xorb_hash(nodes) if nodes else ZERO_HASH)
    assert Subtree.from_chunks(True, nodes, False).final_hash() is None


def test_two_way_merges_give_the_root() -> None:
    rng = random.Random(16)
    for n in (2, 5, 16, 40, 120):
        nodes = chunks(rng, n)
        for k in range(1, n):
            tree = Subtree.from_chunks(True, nodes[:k], False).merge(
                Subtree.from_chunks(False, nodes[k:], True))
            assert tree.final_hash() == xorb_hash(nodes), (n, k)


def test_many_way_merges_give_the_root_and_stay_small() -> None:
    rng = random.Random(7)
    for trial in range(30):
        nodes = chunks(rng, rng.randint(50, 3000))
        cuts = sorted(rng.sample(range(1, len(nodes)), rng.randint(1, 12)))
        bounds = [0, *cuts, len(nodes)]
        parts = [Subtree.from_chunks(a == 0, nodes[a:b], b == len(nodes))
                 for a, b in zip(bounds, bounds[1:], strict=False)]
        tree = merged(parts)
        assert tree.final_hash() == xorb_hash(nodes), trial
        middle = parts[len(parts) // 2]
        assert sum(map(len, middle.lefts + middle.rights)) < 400  # O(log n), not O(n)


def test_merge_refuses_what_cannot_follow() -> None:
    nodes = chunks(random.Random(1), 20)
    with pytest.raises(ValueError):
        Subtree.from_chunks(True, nodes, True).merge(Subtree.from_chunks(False, nodes, True))
    with pytest.raises(ValueError):
        Subtree.from_chunks(True, nodes, False).merge(Subtree.from_chunks(True, nodes, True))


def test_stable_boundaries_do_not_depend_on_neighbours() -> None:
    """A group boundary found by `find_stable_start` stays one whatever comes before."""
    rng = random.Random(3)
    for _ in range(200):
        nodes = chunks(rng, 40)
        m = find_stable_start(nodes)
        if m is None:
            continue
        for _ in range(5):
            prefix = chunks(rng, rng.randint(0, 20))
            whole = prefix + nodes
            cuts, pos = set(), 0
            while pos < len(whole):
                pos = next_cut(whole, pos)
                cuts.add(pos)
            assert len(prefix) + m in cuts
        e = find_stable_end(nodes)
        assert e is None or 0 < e <= len(nodes)


def test_json_form() -> None:
    """xet-core's serde form: every left side by level, then the right sides from the top
    level down, with each level's (left, right) counts."""
    tree = Subtree.from_chunks(False, chunks(random.Random(5), 500), False)
    data = tree.as_json()
    assert set(data) == {"nodes", "levels", "at_start", "at_end"}
    assert data["at_start"] is False and data["at_end"] is False
    nodes = [(bytes.fromhex(n["hash"]), n["size"]) for n in data["nodes"]]
    assert sum(a + b for a, b in data["levels"]) == len(nodes) > 0
    pos, lefts = 0, []
    for count, _ in data["levels"]:
        lefts.append(nodes[pos:pos + count])
        pos += count
    rights = []
    end = len(nodes)
    for _, count in data["levels"]:
        rights.append(nodes[end - count:end])
        end -= count
    assert end == pos
    assert [[(swap_groups(h), s) for h, s in side] for side in lefts] == tree.lefts
    assert [[(swap_groups(h), s) for h, s in side] for side in rights] == tree.rights


# -- windows (the cases of xet-core's chunk_window_builder.rs) ----------------------------------


def sized(n: int, size: int) -> list[Node]:
    return chunks(random.Random(n), n, size)


def test_a_window_extends_to_the_next_stable_boundary() -> None:
    windows, gaps = chunk_windows(sized(6, STABLE), [(1, STABLE + 1)])
    assert windows == [[0, 4 * STABLE]]
    assert len(gaps) == 2 and gaps[0] is None


def test_ranges_coalesce_after_the_extension() -> None:
    dirty = [(1, STABLE + 1), (3 * STABLE + 7, 3 * STABLE + 42)]
    windows, _ = chunk_windows(sized(8, STABLE), dirty)
    assert windows == [[0, 6 * STABLE]]


def test_no_extension_at_the_end_of_the_file() -> None:
    windows, gaps = chunk_windows(sized(6, STABLE), [(4 * STABLE, 6 * STABLE)])
    assert windows == [[4 * STABLE, 6 * STABLE]]
    assert gaps[0] is not None and gaps[1] is None


def test_far_apart_ranges_stay_apart() -> None:
    windows, gaps = chunk_windows(sized(20, STABLE), [(0, STABLE), (14 * STABLE, 15 * STABLE)])
    assert len(windows) >= 2
    assert len(gaps) == len(windows) + 1


def test_without_a_stable_boundary_the_window_runs_to_the_end() -> None:
    windows, _ = chunk_windows(sized(4, MAX_CHUNK_SIZE), [(0, MAX_CHUNK_SIZE)])
    assert windows == [[0, 4 * MAX_CHUNK_SIZE]]


def test_gaps_and_windows_make_up_the_file() -> None:
    """The client's side: subtrees of the gaps, merged with those of the re-chunked
    windows (here the same chunks), give the file's merkle root."""
    rng = random.Random(11)
    for trial in range(40):
        nodes = [(rng.randbytes(32), rng.randint(MIN_CHUNK_SIZE, MAX_CHUNK_SIZE))
                 for _ in range(rng.randint(20, 600))]
        ends = [0]
        for _, size in nodes:
            ends.append(ends[-1] + size)
        size = ends[-1]
        points = sorted(rng.sample(range(size), 2 * rng.randint(1, 4)))
        dirty = [(a, b) for a, b in zip(points[::2], points[1::2], strict=True) if a < b]
        windows, gaps = chunk_windows(nodes, dirty)
        assert len(gaps) == len(windows) + 1
        for a, b in dirty:
            assert any(w[0] <= a and b <= w[1] for w in windows), (trial, a, b, windows)
        parts = []
        for i, window in enumerate(windows):
            if gaps[i] is not None:
                parts.append(gaps[i])
            inside = [n for n, lo, hi in zip(nodes, ends, ends[1:], strict=False)
                      if window[0] <= lo and hi <= window[1]]
            assert window[0] in ends and window[1] in ends
            parts.append(Subtree.from_chunks(window[0] == 0, inside, window[1] == size))
        if gaps[-1] is not None:
            parts.append(gaps[-1])
        assert merged(parts).final_hash() == xorb_hash(nodes), trial
