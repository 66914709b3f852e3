"""The stores every domain operation works on, bundled once at start-up."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hver.config import Settings
from hver.core.caches import WATCHED, Caches
from hver.core.downloads import DownloadCounter
from hver.core.rate_limits import SharedBuckets
from hver.core.stamps import Stamps
from hver.db.engine import Database
from hver.storage.blobs import BlobStore, open_blob_store
from hver.storage.git import GitStore

if TYPE_CHECKING:
    from hver.mirror import Mirror

log = logging.getLogger("hver")


@dataclass
class Hub:
    settings: Settings
    db: Database
    git: GitStore
    blobs: BlobStore
    stamps: Stamps
    caches: Caches
    downloads: DownloadCounter
    rate_buckets: SharedBuckets
    opened_at: float = field(default_factory=time.time)
    mirror: Mirror | None = None  # the upstream hub this one mirrors, if any


    @classmethod
    def open(cls, settings: Settings, migrate: bool = True) -> Hub:
        opened_at = time.time()
        settings.data.mkdir(parents=True, exist_ok=True)
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        # Every process on this data directory (workers, the command line) bumps these
        # when it commits a change to what the caches hold; see hver.core.stamps.
        stamps = Stamps(settings.data / "stamps")
        db = Database(settings.resolved_database_url, WATCHED, stamps.bump)
        if migrate:
            db.migrate()
        downloads = DownloadCounter(db, settings.download_flush_interval)
        hub = cls(
            settings=settings,
            db=db,
            git=GitStore(settings.repos_dir),
            blobs=open_blob_store(settings.resolved_blob_url, settings.tmp_dir),
            stamps=stamps,
            caches=Caches(stamps, settings.cache_ttl),
            downloads=downloads,
            rate_buckets=SharedBuckets(db),
            opened_at=opened_at,
        )
        from hver.mirror import Mirror  # it builds on the domain, which imports this

        hub.mirror = Mirror.open(hub)
        return hub

    def remove_stale_locks(self) -> int:
        """Start-up recovery for `hver serve` (in the parent, before any worker): the git
        lock files a killed server left, older than this hub, would make commits wait and
        fail with 409 (`refs/heads/main.lock`) and `git fsck` complain (loose objects).
        Never from a command that may run beside a serving process: its locks are live."""
        removed = self.git.remove_stale_locks(before=self.opened_at)
        if removed:
            log.warning("removed %d git lock file(s) left by a stopped server", removed)
        return removed

    def close(self) -> None:
        self.downloads.close()  # the counts gathered in memory, written before the end
        self.rate_buckets.close()  # and what was spent from the rate limits
        if self.mirror is not None:
            self.mirror.close()
        self.db.dispose()
        self.stamps.close()
