"""May this repo serve this object? The one place that answers it.

Knowing a hash gives no bytes. A large file is readable only through a repo that
*holds* it: an `lfs_objects` row for (repo, sha256), written when someone who may
write the repo proved possession of the bytes in it:

- an LFS upload to the repo (the sha256 is computed from the bytes as they arrive);
- a web upload to the repo (the same, server side);
- a Xet shard registered with the repo's CAS token, whose file terms name only chunk
  ranges the uploader may reference (see `core.xet`).

An LFS pointer in a commit is only a name. Commits may name only objects their repo
holds (`core.commits`), and every read checks the row again, here: resolve, the LFS
batch and download routes, web pages, the dataset viewer and safetensors headers
(through `core.content`), and Xet reconstructions (`holds_xet_file`). A pointer whose
object the repo does not hold is served as nothing (404), whatever other repo holds
those bytes.

A row, once written, never changes what it names except to correct a Xet claim
proven false (`core.xet`), so a commit keeps serving the bytes it was made with.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from hver.core.hub import Hub
from hver.db.models import LfsObject, XetFile
from hver.storage.lfs import blob_key


@dataclass(frozen=True)
class HeldObject:
    """A large file a repo holds: its sha256, size, and the Xet file storing it (None:
    the LFS blob of that sha256, whose content was hashed when it was stored)."""

    oid: str
    size: int
    xet_hash: str | None


def held_objects(hub: Hub, repo_pk: int, oids: Iterable[str]) -> dict[str, HeldObject]:
    """Those of `oids` that the repo with primary key `repo_pk` holds and whose content
    is stored."""
    wanted = set(oids)
    if not wanted:
        return {}
    with hub.db.read() as session:
        rows = session.execute(
            select(LfsObject.oid, LfsObject.size, LfsObject.xet_hash, XetFile.file_hash)
            .outerjoin(XetFile, XetFile.file_hash == LfsObject.xet_hash)
            .where(LfsObject.repo_id == repo_pk, LfsObject.oid.in_(wanted))
        ).tuples().all()
    out = {}
    for oid, size, xet_hash, xet_stored in rows:
        if xet_hash is not None:
            if xet_stored is None:
                continue
        elif not hub.blobs.exists(blob_key(oid)):
            continue
        out[oid] = HeldObject(oid, size, xet_hash)
    return out


def held_object(hub: Hub, repo_pk: int, oid: str, size: int | None = None) -> HeldObject | None:
    """The object `oid` if the repo holds it (and, given `size`, at that size), else None."""
    obj = held_objects(hub, repo_pk, [oid]).get(oid)
    if obj is None or (size is not None and obj.size != size):
        return None
    return obj


def holds_xet_file(session: Session, repo_pk: int, file_hash: str) -> bool:
    """Whether the repo holds a large file stored as the Xet file `file_hash`."""
    return session.scalar(select(LfsObject.oid).where(
        LfsObject.repo_id == repo_pk, LfsObject.xet_hash == file_hash).limit(1)) is not None


def open_blob(hub: Hub, obj: HeldObject) -> BinaryIO:
    """The LFS blob of an object held as one (`obj.xet_hash` is None)."""
    assert obj.xet_hash is None
    return hub.blobs.open(blob_key(obj.oid))
