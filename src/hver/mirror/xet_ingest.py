"""Xet files of mirrored repos, brought into this hub's CAS through the upstream's
reconstruction API, so that local clients download them through Xet with the
upstream's file hash, and local uploads deduplicate against them.

A fetched range of a xorb holds whole chunks. When it is the whole xorb, its chunks
hash to the xorb's own hash and it is stored under it; otherwise it is stored as a
xorb of its own (the hash of its chunks). The file's terms are rewritten to name what
was stored; the file hash does not depend on how chunks are packed into xorbs, so it
is checked against the upstream's, and the decoded bytes against the sha256 and size
of the mirrored commit's pointer, before the repo holds the file."""

from __future__ import annotations

import logging
import os
from typing import Any

from hver.core import xet as core_xet
from hver.core.hub import Hub
from hver.core.objects import publicly_held
from hver.db.models import Repo
from hver.errors import HverError
from hver.mirror.partial import Part, PartWriter
from hver.mirror.upstream import Upstream, UpstreamUnavailable
from hver.names import RepoType
from hver.xet.hashing import file_hash, hex_hash, raw_hash
from hver.xet.shard import Term
from hver.xet.xorb import XorbIndex

log = logging.getLogger("hver.mirror")
MAX_RANGE_BYTES = 128 * 2**20  # a xorb holds at most 64 MiB of chunks; headers and slack


def bring_xet(hub: Hub, upstream: Upstream, repo: Repo, oid: str, size: int, commit: str,
              path: str, part: Part | None = None) -> bool:
    """Have the repo hold a file the upstream stores as Xet, stored in this hub's CAS;
    False when the upstream does not store it as Xet (the caller fetches it whole). The
    decoded bytes go through `part` term by term as they arrive, and are kept as the
    file's decoded copy (`core.xet.file_cache_key`: plain HTTP reads send it)."""
    assert repo.mirror_id is not None
    repo_type = RepoType(repo.type)
    fh = upstream.xet_file_hash(repo_type, repo.mirror_id, commit, path)
    if fh is None or size == 0:  # an empty file has no terms: a blob of nothing
        return False
    try:
        raw_hash(fh)
    except ValueError:
        raise UpstreamUnavailable(f"the upstream's Xet hash {fh!r} is not one") from None
    out, staged = hub.blobs.staging_file()
    try:
        with out:
            writer = PartWriter(part, out, staged)
            info = core_xet.get_file(hub, fh)
            # A file stored here is taken on the upstream's word only when anyone may
            # read it already: an upstream naming a private file's hash gets nothing.
            if info is not None and not publicly_held(hub, xet_hash=fh):
                info = None
            if info is None:
                plan = upstream.xet_reconstruction(repo_type, repo.mirror_id, commit, fh)
                info = _ingest(hub, upstream, fh, plan, writer)
            else:
                for piece in core_xet.iter_content(hub, info, 0, info.size):
                    writer.write(piece)
            if info.size != size or writer.size != size:
                raise UpstreamUnavailable(f"Xet file {fh} holds {info.size} bytes, the "
                                          f"pointer says {size}")
            if writer.digest.hexdigest() != oid:
                raise UpstreamUnavailable(f"Xet file {fh} is not the pointer's {oid}")
            os.fsync(out.fileno())
        core_xet.record_fetched_file(hub, repo.id, oid, info)
        hub.blobs.put_staged(core_xet.file_cache_key(fh), staged)
    finally:
        staged.unlink(missing_ok=True)
    log.info("mirror: %s of %s %s brought in as Xet file %s", oid, repo.type,
             repo.mirror_id, fh)
    return True


def _ingest(hub: Hub, upstream: Upstream, fh: str, plan: dict[str, Any],
            writer: PartWriter) -> core_xet.XetFileInfo:
    """Store the xorb ranges of a plan (those not stored yet, in the order the file's
    terms need them), write each term's bytes to `writer` as soon as its range is here,
    and return the file, its terms naming what was stored; the file hash checked."""
    try:
        ranges = [(xorb, int(rng["chunks"]["start"]), int(rng["chunks"]["end"]),
                   str(entry["url"]), int(rng["bytes"]["start"]), int(rng["bytes"]["end"]))
                  for xorb, entries in plan["xorbs"].items() for entry in entries
                  for rng in entry["ranges"]]
        wanted = [(t["hash"], int(t["range"]["start"]), int(t["range"]["end"]),
                   int(t["unpacked_length"])) for t in plan["terms"]]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UpstreamUnavailable(f"the reconstruction is not one: {exc!r}"[:300]) from None
    stored: dict[int, tuple[str, int]] = {}  # index in `ranges` -> (stored xorb, offset)
    terms = []
    for xorb, a, b, unpacked in wanted:
        at = next((i for i, (x, s, e, *_) in enumerate(ranges)
                   if x == xorb and s <= a and b <= e), None)
        if at is None:
            raise UpstreamUnavailable(f"the plan has no range of {xorb} for a term")
        if at not in stored:
            _, s, e, url, start, end = ranges[at]
            stored[at] = _range(hub, upstream, xorb, s, e, url, start, end)
        home, off = stored[at]
        term = Term(raw_hash(home), a - off, b - off, unpacked)
        terms.append(term)
        _check_term(hub, term)
        one = core_xet.XetFileInfo(fh, unpacked, [term])
        for piece in core_xet.iter_content(hub, one, 0, unpacked):
            writer.write(piece)
    chunks: list[tuple[bytes, int]] = []
    indexes = core_xet.xorb_indexes(hub, {hex_hash(t.xorb) for t in terms})
    for t in terms:
        idx = indexes[hex_hash(t.xorb)]
        chunks.extend(zip(idx.hashes[t.chunk_start:t.chunk_end],
                          idx.sizes[t.chunk_start:t.chunk_end], strict=True))
    if hex_hash(file_hash(chunks)) != fh:
        raise UpstreamUnavailable(f"the plan's chunks do not hash to {fh}")
    return core_xet.XetFileInfo(fh, sum(size for _, size in chunks), terms)


def _check_term(hub: Hub, t: Term) -> None:
    idx = core_xet.xorb_indexes(hub, {hex_hash(t.xorb)})[hex_hash(t.xorb)]
    if not 0 <= t.chunk_start < t.chunk_end <= len(idx.sizes) or sum(
            idx.sizes[t.chunk_start:t.chunk_end]) != t.unpacked_bytes:
        raise UpstreamUnavailable("a term of the plan does not match its chunks")


def _range(hub: Hub, upstream: Upstream, xorb: str, a: int, b: int, url: str, start: int,
           end: int) -> tuple[str, int]:
    """Where chunks [a, b) of `xorb` are stored here, fetching them if they are not:
    (a stored xorb, the index of chunk `a`'s xorb chunk 0 in it)."""
    known = core_xet.xorb_indexes(hub, {xorb}).get(xorb)
    if known is not None and b <= len(known.sizes) and core_xet.publicly_readable(
            hub, xorb, a, b):
        return xorb, 0  # here already, and anyone may read those chunks
    if not 0 <= start <= end < start + MAX_RANGE_BYTES or not 0 <= a < b:
        raise UpstreamUnavailable(f"the plan names an odd range of xorb {xorb}")
    out, staged = hub.blobs.staging_file()
    try:
        with out:
            upstream.xet_range(url, start, end, out)
            out.flush()
            os.fsync(out.fileno())
        with staged.open("rb") as fh:
            try:
                index: XorbIndex = core_xet.index_xorb_file(fh)
            except HverError as exc:
                raise UpstreamUnavailable(f"a range of xorb {xorb}: {exc}") from None
        if len(index.sizes) != b - a:
            raise UpstreamUnavailable(f"a range of xorb {xorb} holds {len(index.sizes)} "
                                      f"chunks, not {b - a}")
        name = hex_hash(index.hash())
        core_xet.store_fetched_xorb(hub, name, index, staged)
    finally:
        staged.unlink(missing_ok=True)
    return name, a
