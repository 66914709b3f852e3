"""Large files of mirrored repos, brought in from the upstream on first read.

The bytes are checked against the pointer in the mirrored commit (size and sha256)
before the repo holds them; a blob this hub stores already is held without a download
once the upstream vouched that its repo holds that object (`core.objects`: a hash alone
is no credential)."""

from __future__ import annotations

import logging
import os

from sqlalchemy import update

from hver.core import lfs as core_lfs
from hver.core.hub import Hub
from hver.core.objects import held_object, publicly_held
from hver.db.models import MirrorRepo, Repo
from hver.mirror import xet_ingest
from hver.mirror.partial import Part, PartWriter
from hver.mirror.upstream import Upstream, UpstreamUnavailable
from hver.names import RepoType
from hver.storage.lfs import blob_key

log = logging.getLogger("hver.mirror")


def bring_object(hub: Hub, upstream: Upstream, repo: Repo, oid: str, size: int,
                 where: tuple[str, str] | None = None, part: Part | None = None) -> bool:
    """Make a mirrored repo hold a large file its commits name; False when the upstream
    says its repo holds no such object. UpstreamUnavailable: nothing changed. Given
    `where` (a commit and the file's path in it), a file the upstream stores as Xet comes
    into this hub's CAS (`xet_ingest`); otherwise, and without `where`, it comes whole
    through the upstream's LFS batch API. The bytes go through `part` as they arrive,
    for the clients that stream them meanwhile."""
    if held_object(hub, repo.id, oid, size) is not None:
        return True
    assert repo.mirror_id is not None
    if where is not None and xet_ingest.bring_xet(hub, upstream, repo, oid, size, *where,
                                                  part=part):
        _count(hub, repo, size)
        return True
    found = upstream.lfs_download(RepoType(repo.type), repo.mirror_id, oid, size)
    if found is None:
        return False
    stored = hub.blobs.local_path(blob_key(oid))
    # A blob stored here is taken on the upstream's word only when anyone may read it
    # already (an upstream naming a private file's sha256 gets nothing), at its size.
    if stored is not None and hub.blobs.size(blob_key(oid)) == size and publicly_held(
            hub, oid=oid):
        if part is not None:
            part.path = stored
            part.wrote(size)
    else:
        out, staged = hub.blobs.staging_file()
        try:
            with out:
                writer = PartWriter(part, out, staged)
                upstream.download(*found, writer, size)
                if writer.size != size or writer.digest.hexdigest() != oid:
                    raise UpstreamUnavailable(f"the upstream's {oid} is other bytes")
                os.fsync(out.fileno())
            hub.blobs.put_staged(blob_key(oid), staged)
        finally:
            staged.unlink(missing_ok=True)
        log.info("mirror: %s of %s %s brought in (%d bytes)", oid, repo.type,
                 repo.mirror_id, size)
    core_lfs.register_object(hub, repo.id, oid, size)
    _count(hub, repo, size)
    return True


def _count(hub: Hub, repo: Repo, size: int) -> None:
    with hub.db.atomic() as session:
        session.execute(update(MirrorRepo).where(MirrorRepo.repo_id == repo.id).values(
            fetched_files=MirrorRepo.fetched_files + 1,
            fetched_bytes=MirrorRepo.fetched_bytes + size))
