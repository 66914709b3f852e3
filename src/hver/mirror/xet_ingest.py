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

import hashlib
import logging
import os
from typing import Any

from hver.core import xet as core_xet
from hver.core.hub import Hub
from hver.db.models import Repo
from hver.errors import HverError
from hver.mirror.upstream import Upstream, UpstreamUnavailable
from hver.names import RepoType
from hver.xet.hashing import file_hash, hex_hash, raw_hash
from hver.xet.shard import Term
from hver.xet.xorb import XorbIndex

log = logging.getLogger("hver.mirror")


def bring_xet(hub: Hub, upstream: Upstream, repo: Repo, oid: str, size: int, commit: str,
              path: str) -> bool:
    """Have the repo hold a file the upstream stores as Xet, stored in this hub's CAS;
    False when the upstream does not store it as Xet (the caller fetches it whole)."""
    assert repo.mirror_id is not None
    repo_type = RepoType(repo.type)
    fh = upstream.xet_file_hash(repo_type, repo.mirror_id, commit, path)
    if fh is None:
        return False
    try:
        raw_hash(fh)
    except ValueError:
        raise UpstreamUnavailable(f"the upstream's Xet hash {fh!r} is not one") from None
    info = core_xet.get_file(hub, fh)  # the upstream vouched for it: no bytes to move
    if info is None:
        plan = upstream.xet_reconstruction(repo_type, repo.mirror_id, commit, fh)
        info = _ingest(hub, upstream, fh, plan)
    if info.size != size:
        raise UpstreamUnavailable(f"Xet file {fh} holds {info.size} bytes, the pointer "
                                  f"says {size}")
    digest = hashlib.sha256()
    for piece in core_xet.iter_content(hub, info, 0, size):
        digest.update(piece)
    if digest.hexdigest() != oid:
        raise UpstreamUnavailable(f"Xet file {fh} is not the pointer's {oid}")
    core_xet.record_fetched_file(hub, repo.id, oid, info)
    log.info("mirror: %s of %s %s brought in as Xet file %s", oid, repo.type,
             repo.mirror_id, fh)
    return True


def _ingest(hub: Hub, upstream: Upstream, fh: str, plan: dict[str, Any]
            ) -> core_xet.XetFileInfo:
    """Store the xorb ranges of a plan (those not stored yet) and the file's terms
    naming them; the file hash checked."""
    try:
        stored: dict[tuple[str, int, int], tuple[str, int]] = {}  # (xorb, A, B) -> (xorb, A')
        for xorb, entries in plan["xorbs"].items():
            for entry in entries:
                for rng in entry["ranges"]:
                    a, b = int(rng["chunks"]["start"]), int(rng["chunks"]["end"])
                    stored[(xorb, a, b)] = _range(hub, upstream, xorb, a, b, entry["url"],
                                                  int(rng["bytes"]["start"]),
                                                  int(rng["bytes"]["end"]))
        terms = []
        for t in plan["terms"]:
            xorb = t["hash"]
            a, b = int(t["range"]["start"]), int(t["range"]["end"])
            home = next(((x, off) for (name, s, e), (x, off) in stored.items()
                         if name == xorb and s <= a and b <= e), None)
            if home is None:
                raise UpstreamUnavailable(f"the plan has no range of {xorb} for a term")
            terms.append(Term(raw_hash(home[0]), a - home[1], b - home[1],
                              int(t["unpacked_length"])))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UpstreamUnavailable(f"the reconstruction is not one: {exc!r}"[:300]) from None
    chunks: list[tuple[bytes, int]] = []
    indexes = core_xet.xorb_indexes(hub, {hex_hash(t.xorb) for t in terms})
    for t in terms:
        idx = indexes[hex_hash(t.xorb)]
        if not 0 <= t.chunk_start < t.chunk_end <= len(idx.sizes) or sum(
                idx.sizes[t.chunk_start:t.chunk_end]) != t.unpacked_bytes:
            raise UpstreamUnavailable("a term of the plan does not match its chunks")
        chunks.extend(zip(idx.hashes[t.chunk_start:t.chunk_end],
                          idx.sizes[t.chunk_start:t.chunk_end], strict=True))
    if hex_hash(file_hash(chunks)) != fh:
        raise UpstreamUnavailable(f"the plan's chunks do not hash to {fh}")
    return core_xet.XetFileInfo(fh, sum(size for _, size in chunks), terms)


def _range(hub: Hub, upstream: Upstream, xorb: str, a: int, b: int, url: str, start: int,
           end: int) -> tuple[str, int]:
    """Where chunks [a, b) of `xorb` are stored here, fetching them if they are not:
    (a stored xorb, the index of chunk `a`'s xorb chunk 0 in it)."""
    known = core_xet.xorb_indexes(hub, {xorb}).get(xorb)
    if known is not None and b <= len(known.sizes):
        return xorb, 0  # the whole xorb is here already
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
