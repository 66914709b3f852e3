"""Large files of mirrored repos, brought in from the upstream on first read.

The bytes are checked against the pointer in the mirrored commit (size and sha256)
before the repo holds them; a blob this hub stores already is held without a download
once the upstream vouched that its repo holds that object (`core.objects`: a hash alone
is no credential)."""

from __future__ import annotations

import logging

from sqlalchemy import update

from hver.core import lfs as core_lfs
from hver.core.hub import Hub
from hver.core.objects import held_object
from hver.db.models import MirrorRepo, Repo
from hver.errors import BadRequest
from hver.mirror import xet_ingest
from hver.mirror.upstream import Upstream, UpstreamUnavailable
from hver.names import RepoType
from hver.storage.lfs import blob_key, store_staged

log = logging.getLogger("hver.mirror")


def bring_object(hub: Hub, upstream: Upstream, repo: Repo, oid: str, size: int,
                 where: tuple[str, str] | None = None) -> bool:
    """Make a mirrored repo hold a large file its commits name; False when the upstream
    says its repo holds no such object. UpstreamUnavailable: nothing changed. Given
    `where` (a commit and the file's path in it), a file the upstream stores as Xet comes
    into this hub's CAS (`xet_ingest`); otherwise, and without `where`, it comes whole
    through the upstream's LFS batch API."""
    if held_object(hub, repo.id, oid, size) is not None:
        return True
    assert repo.mirror_id is not None
    if where is not None and xet_ingest.bring_xet(hub, upstream, repo, oid, size, *where):
        _count(hub, repo, size)
        return True
    found = upstream.lfs_download(RepoType(repo.type), repo.mirror_id, oid, size)
    if found is None:
        return False
    if not hub.blobs.exists(blob_key(oid)):
        out, staged = hub.blobs.staging_file()
        try:
            with out:
                upstream.download(*found, out, size)
            try:
                store_staged(hub.blobs, staged, oid, size)  # the size and sha256 checked
            except BadRequest as exc:
                raise UpstreamUnavailable(f"the upstream's {oid}: {exc.message}") from None
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
