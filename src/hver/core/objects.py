"""May this repo serve this object? The one place that answers it.

Knowing a hash gives no bytes. A large file is readable only through a repo that
*holds* it: an `lfs_objects` row for (repo, sha256), written when someone who may
write the repo proved possession of the bytes in it:

- an LFS upload to the repo (the sha256 is computed from the bytes as they arrive);
- a web upload to the repo (the same, server side);
- a Xet shard registered with the repo's CAS token, whose file terms name only chunk
  ranges the uploader may reference (see `core.xet`);
- a copy from another repo that holds it (`copy_held`), by someone who may read that
  repo's files and write this one: what they could download and upload again anyway;
- a commit of a contributor (who may open pull requests but not write) naming what
  they uploaded to the repo: until then their uploads are a `contributed_objects` row,
  which only they may name in a commit and nobody may read (`record_contribution`,
  `promote`). Their Xet claims are checked against the bytes (`core.xet`), so no
  contributor ever binds a sha256 to other content.

An LFS pointer in a commit is only a name. Commits may name only objects their repo
holds (`core.commits`), and every read checks the row again, here: resolve, the LFS
batch and download routes, web pages, the dataset viewer and safetensors headers
(through `core.content`), Xet reconstructions (`holds_xet_file`) and xorb HEADs
(`holds_xorb`). A pointer whose object the repo does not hold is served as nothing
(404), whatever other repo holds those bytes.

A row, once written, never changes what it names except to correct a Xet claim
proven false (`core.xet`), so a commit keeps serving the bytes it was made with. It
ends only when the repo's admin deletes the object for good (`release_held`): the
repo's pointers to it then serve nothing, and an LFS blob no repo holds any more is
removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import BinaryIO

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from hver.core import access, gating
from hver.core.accounts import Actor
from hver.core.hub import Hub
from hver.db.models import ContributedObject, LfsObject, Repo, XetFile, XetFileXorb
from hver.errors import EntryNotFound, GatedRepo, RepoNotFound
from hver.storage.lfs import blob_key


@dataclass(frozen=True)
class HeldObject:
    """A large file a repo holds: its sha256, size, and the Xet file storing it (None:
    the LFS blob of that sha256, whose content was hashed when it was stored)."""

    oid: str
    size: int
    xet_hash: str | None


def held_objects(hub: Hub, repo_pk: int, oids: Iterable[str],
                 contributor: int | None = None) -> dict[str, HeldObject]:
    """Those of `oids` that the repo with primary key `repo_pk` holds and whose content
    is stored. With `contributor` (an account id), also those that account uploaded to
    the repo for a pull request and no commit has named yet (`record_contribution`): what
    it may name in a commit, never what anyone may read."""
    wanted = set(oids)
    if not wanted:
        return {}
    with hub.db.read() as session:
        rows = list(session.execute(
            select(LfsObject.oid, LfsObject.size, LfsObject.xet_hash, XetFile.file_hash)
            .outerjoin(XetFile, XetFile.file_hash == LfsObject.xet_hash)
            .where(LfsObject.repo_id == repo_pk, LfsObject.oid.in_(wanted))
        ).tuples().all())
        if contributor is not None:
            found = {row[0] for row in rows}
            rows += [row for row in session.execute(
                select(ContributedObject.oid, ContributedObject.size,
                       ContributedObject.xet_hash, XetFile.file_hash)
                .outerjoin(XetFile, XetFile.file_hash == ContributedObject.xet_hash)
                .where(ContributedObject.repo_id == repo_pk,
                       ContributedObject.account_id == contributor,
                       ContributedObject.oid.in_(wanted))
            ).tuples().all() if row[0] not in found]
    out = {}
    for oid, size, xet_hash, xet_stored in rows:
        if xet_hash is not None:
            if xet_stored is None:
                continue
        elif not hub.blobs.exists(blob_key(oid)):
            continue
        out[oid] = HeldObject(oid, size, xet_hash)
    return out


def record_contribution(session: Session, repo_pk: int, account_id: int, oid: str, size: int,
                        xet_hash: str | None = None) -> bool:
    """Note that `account_id` proved possession of `oid` uploading it to the repo for a
    pull request (the bytes were hashed by this server). Nothing if the repo holds it
    already or the account noted it before. True if noted now."""
    if session.get(LfsObject, (repo_pk, oid)) is not None:
        return False
    if session.get(ContributedObject, (repo_pk, account_id, oid)) is not None:
        return False
    session.add(ContributedObject(repo_id=repo_pk, account_id=account_id, oid=oid, size=size,
                                  xet_hash=xet_hash))
    return True


def promote(session: Session, repo_pk: int, account_id: int, oids: Iterable[str]) -> None:
    """A commit of `account_id` names `oids`: those the account contributed become held by
    the repo (in the transaction that moves the commit's ref). A sha256 the repo came to
    hold meanwhile keeps its content."""
    rows = list(session.scalars(select(ContributedObject).where(
        ContributedObject.repo_id == repo_pk, ContributedObject.account_id == account_id,
        ContributedObject.oid.in_(set(oids)))))
    for row in rows:
        if session.get(LfsObject, (repo_pk, row.oid)) is None:
            session.add(LfsObject(repo_id=repo_pk, oid=row.oid, size=row.size,
                                  xet_hash=row.xet_hash))
        session.delete(row)
    session.flush()


def held_object(hub: Hub, repo_pk: int, oid: str, size: int | None = None,
                contributor: int | None = None) -> HeldObject | None:
    """The object `oid` if the repo holds it (and, given `size`, at that size), else None."""
    obj = held_objects(hub, repo_pk, [oid], contributor).get(oid)
    if obj is None or (size is not None and obj.size != size):
        return None
    return obj


def publicly_held(hub: Hub, oid: str | None = None, xet_hash: str | None = None) -> bool:
    """Whether a repo anyone may read, without a token or a grant (public, not gated),
    holds the LFS object `oid` or a file stored as the Xet file `xet_hash`: bytes any
    client can download already. A mirror may bind those to a mirrored repo on its
    upstream's word alone; anything else it must fetch and check (`hver.mirror`)."""
    where: list[ColumnElement[bool]] = [Repo.private.is_(False), Repo.gated.is_(None)]
    if oid is not None:
        where.append(LfsObject.oid == oid)
    if xet_hash is not None:
        where.append(LfsObject.xet_hash == xet_hash)
    with hub.db.read() as session:
        return session.scalar(select(LfsObject.oid).join(Repo, Repo.id == LfsObject.repo_id)
                              .where(*where).limit(1)) is not None


def xet_hashes(hub: Hub, repo_pk: int, oids: Iterable[str]) -> dict[str, str]:
    """sha256 -> Xet file hash, for those of `oids` the repo holds as stored Xet files
    (the `xetHash` of tree entries; a client reconstructs through `holds_xet_file`)."""
    wanted = set(oids)
    if not wanted:
        return {}
    with hub.db.read() as session:
        return dict(session.execute(
            select(LfsObject.oid, XetFile.file_hash)
            .join(XetFile, XetFile.file_hash == LfsObject.xet_hash)
            .where(LfsObject.repo_id == repo_pk, LfsObject.oid.in_(wanted))
        ).tuples().all())


def holds_xet_file(session: Session, repo_pk: int, file_hash: str) -> bool:
    """Whether the repo holds a large file stored as the Xet file `file_hash`."""
    return session.scalar(select(LfsObject.oid).where(
        LfsObject.repo_id == repo_pk, LfsObject.xet_hash == file_hash).limit(1)) is not None


def holds_xorb(session: Session, repo_pk: int, xorb: str) -> bool:
    """Whether a large file the repo holds is stored (in part) in the Xet xorb `xorb`."""
    return session.scalar(
        select(XetFileXorb.file_hash)
        .join(LfsObject, LfsObject.xet_hash == XetFileXorb.file_hash)
        .where(XetFileXorb.xorb_hash == xorb, LfsObject.repo_id == repo_pk)
        .limit(1)) is not None


def open_blob(hub: Hub, obj: HeldObject) -> BinaryIO:
    """The LFS blob of an object held as one (`obj.xet_hash` is None)."""
    assert obj.xet_hash is None
    return hub.blobs.open(blob_key(obj.oid))


def copy_held(hub: Hub, actor: Actor | None, source: Repo, target: Repo,
              wanted: Sequence[tuple[str, str | None]]) -> list[HeldObject]:
    """Make `target` hold objects `source` holds, without moving a byte: `wanted` names
    each by sha256 and, optionally, the Xet file hash the asker saw for it (a different
    one names nothing). The decision for cross-repo copies (`lfs-files/duplicate`):

    - the actor may read `source` (else RepoNotFound, as for a missing repo) and its
      files (a gated repo: GatedRepo without access);
    - the actor may write `target`;
    - `source` holds every object named, at that Xet hash if one is given, and its
      content is stored (else EntryNotFound, for all: nothing is copied).

    An object `target` holds already keeps its content (a binding never changes). All
    of it in one write transaction, so a concurrent `release_held` on `source` either
    sees the new row (and keeps the blob) or is seen (and nothing is copied). Returns
    the objects, as `source` holds them."""
    access.require_read(actor, source)
    access.require_write(actor, target)
    with hub.db.write() as session:
        if session.get(Repo, source.id) is None:
            raise RepoNotFound()
        if session.get(Repo, target.id) is None:
            raise RepoNotFound()
        if not gating.has_access(session, actor, source):
            raise GatedRepo(f"Access to {source.repo_id} is restricted: its files cannot be "
                            "copied without access to them.",
                            status=401 if actor is None else 403)
        oids = {oid for oid, _ in wanted}
        rows = session.execute(
            select(LfsObject.oid, LfsObject.size, LfsObject.xet_hash, XetFile.file_hash)
            .outerjoin(XetFile, XetFile.file_hash == LfsObject.xet_hash)
            .where(LfsObject.repo_id == source.id, LfsObject.oid.in_(oids))
        ).tuples().all()
        held = {oid: HeldObject(oid, size, xet_hash)
                for oid, size, xet_hash, stored in rows
                if (stored is not None if xet_hash is not None
                    else hub.blobs.exists(blob_key(oid)))}
        out = []
        for oid, xet_hash in wanted:
            obj = held.get(oid)
            if obj is None or (xet_hash is not None and xet_hash != obj.xet_hash):
                raise EntryNotFound(f"{source.repo_id} holds no object {oid}"
                                    + (f" stored as Xet file {xet_hash}." if xet_hash else "."))
            out.append(obj)
        have = set(session.scalars(select(LfsObject.oid).where(
            LfsObject.repo_id == target.id, LfsObject.oid.in_(oids))))
        for obj in {o.oid: o for o in out}.values():
            if obj.oid not in have:
                session.add(LfsObject(repo_id=target.id, oid=obj.oid, size=obj.size,
                                      xet_hash=obj.xet_hash))
    return out


def release_held(hub: Hub, repo_pk: int, oids: Iterable[str]) -> list[str]:
    """Make the repo stop holding `oids` (those it holds; the others are ignored), for
    good: its pointers to them serve nothing from then on. Returns the oids released.

    An LFS blob that no repo holds any more is removed, inside the same write
    transaction: every new holding of a blob (an upload's `core.lfs.register_object`, a
    copy) checks, under the same lock, that the blob is still there, so none can come to
    name a removed blob. Xet chunks are not collected here; the decoded copy of a Xet
    file that no repo holds any more (`core.xet.file_cache_key`) is removed."""
    from hver.core.xet import file_cache_key  # core.xet builds on this module

    wanted = set(oids)
    if not wanted:
        return []
    with hub.db.write() as session:
        rows = list(session.scalars(select(LfsObject).where(
            LfsObject.repo_id == repo_pk, LfsObject.oid.in_(wanted))))
        released = sorted(row.oid for row in rows)
        xet_hashes = {row.xet_hash for row in rows if row.xet_hash is not None}
        for row in rows:
            session.delete(row)
        session.flush()
        still = set(session.scalars(select(LfsObject.oid).where(
            LfsObject.oid.in_(released)))) | set(session.scalars(
                select(ContributedObject.oid).where(ContributedObject.oid.in_(released))))
        for oid in released:
            if oid not in still:
                hub.blobs.delete(blob_key(oid))
        named = set(session.scalars(select(LfsObject.xet_hash).where(
            LfsObject.xet_hash.in_(xet_hashes)))) | set(session.scalars(
                select(ContributedObject.xet_hash).where(
                    ContributedObject.xet_hash.in_(xet_hashes))))
        for file_hash in xet_hashes - named:
            hub.blobs.delete(file_cache_key(file_hash))
    return released
