"""The stores every domain operation works on, bundled once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from hver.config import Settings
from hver.db.engine import Database
from hver.storage.blobs import BlobStore, open_blob_store
from hver.storage.git import GitStore


@dataclass
class Hub:
    settings: Settings
    db: Database
    git: GitStore
    blobs: BlobStore

    @classmethod
    def open(cls, settings: Settings, migrate: bool = True) -> Hub:
        settings.data.mkdir(parents=True, exist_ok=True)
        settings.tmp_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.resolved_database_url)
        if migrate:
            db.migrate()
        return cls(
            settings=settings,
            db=db,
            git=GitStore(settings.repos_dir),
            blobs=open_blob_store(settings.resolved_blob_url, settings.tmp_dir),
        )

    def close(self) -> None:
        self.db.dispose()
