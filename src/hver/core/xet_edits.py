"""What a client editing part of a stored Xet file needs (`GET /v2/file-chunk-hashes`):
which chunk-aligned windows around its dirty byte ranges to re-chunk, and summaries of
the rest (merkle subtrees of the gaps, verification hashes of the terms in them), so it
can compute the new file's hash and shard without downloading or re-hashing the rest.
Per-chunk hashes are never sent. Authorised as reconstructions (`readable_file`)."""

from __future__ import annotations

from typing import Any

from hver.core import xet as core_xet
from hver.core.hub import Hub
from hver.errors import BadRequest
from hver.xet.hashing import hex_hash, verification_hash
from hver.xet.subtree import Node, chunk_windows

MAX_DIRTY_RANGES = 1024


def normalize(ranges: list[tuple[int, int]], size: int) -> list[tuple[int, int]]:
    """[start, end) ranges clamped to the file, sorted, overlapping ones merged; BadRequest
    when none is left."""
    out: list[tuple[int, int]] = []
    for start, end in sorted((s, min(e, size)) for s, e in ranges):
        if start >= end:
            continue
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    if not out:
        raise BadRequest(f"No dirty range lies within the file's {size} bytes.",
                         code="InvalidRange")
    return out


def file_chunk_hashes(hub: Hub, token: core_xet.CasToken, file_id: str,
                      dirty: list[tuple[int, int]]) -> dict[str, Any]:
    """The answer for `dirty` ([start, end) byte ranges) in the file `file_id` (xet-core's
    `FileChunkHashesResponse`)."""
    info = core_xet.readable_file(hub, token, file_id)
    dirty = normalize(dirty, info.size)
    terms = core_xet.file_chunks(hub, info)
    chunks: list[Node] = [(h, s) for hashes, sizes in terms
                          for h, s in zip(hashes, sizes, strict=True)]
    windows, gaps = chunk_windows(chunks, dirty)
    return {
        "totalChunks": len(chunks),
        "fileSize": info.size,
        "windows": [{"dirtyByteRange": w} for w in windows],
        "hashRanges": [g.as_json() if g is not None else None for g in gaps],
        "gapVerification": _gap_verification(terms, windows),
    }


def _gap_verification(terms: list[tuple[list[bytes], list[int]]],
                      windows: list[list[int]]) -> list[str]:
    """The verification hash of each term no window overlaps, in order."""
    out = []
    pos = 0
    w = 0
    for hashes, sizes in terms:
        start, end = pos, pos + sum(sizes)
        pos = end
        while w < len(windows) and windows[w][1] <= start:
            w += 1
        if w < len(windows) and windows[w][0] < end:
            continue
        out.append(hex_hash(verification_hash(hashes)))
    return out
