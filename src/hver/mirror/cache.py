"""The mirror's quota: the large files mirrored repos hold, kept under `mirror_quota`
bytes by releasing the least recently read ones that no pin keeps.

Reads are noted in memory (`Reads`: a dictionary write on the request path, no I/O)
and written in one transaction every `download_flush_interval` seconds, when the
server stops, and before each eviction pass, as `hver.core.downloads` does for
download counts: `mirror_objects.last_access` and `mirror_repos.hits`. A file brought
in is written at once (`brought`). Misses are the files brought in, counted where they
arrive (`hver.mirror.fetch`).

An eviction pass (`evict`, after each fetch and from `hver mirror sync`) counts the
bytes of every large file mirrored repos hold, each sha256 once. Past the quota it
releases (`core.objects.release_held`) files from the least recently read up, until
the rest fit. A file is kept when a mirrored repo's pin selects it (the pinned
revision's files its include/exclude globs keep), when a repo of another upstream
holds it, and while it is being fetched. Local repos are never touched; nor is
anything on an offline hub, which could not fetch it again. A released file is
fetched again on its next read (`Mirror.start`). Releasing frees an LFS blob no repo
holds any more and the decoded copy of a Xet file; the Xet file's xorbs stay (no
garbage collection of xorbs yet), so an evicted Xet file frees only its decoded copy.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from hver.core import tree as core_tree
from hver.core.objects import release_held
from hver.db.models import LfsObject, MirrorObject, MirrorRepo, Repo

if TYPE_CHECKING:
    from hver.core.hub import Hub
    from hver.db.engine import Database
    from hver.mirror import Mirror

log = logging.getLogger("hver.mirror")


class Reads:
    """Reads of mirrored repos' large files, gathered in memory and written in batches."""

    def __init__(self, db: Database, interval: float) -> None:
        self.db = db
        self.interval = interval
        self._lock = threading.Lock()
        self._at: dict[tuple[int, str], tuple[float, int]] = {}  # (repo, oid) -> (when, size)
        self._xet: dict[tuple[int, str], float] = {}  # (repo, Xet file hash) -> when
        self._hits: Counter[int] = Counter()  # repo -> reads of files it held
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def read(self, repo_pk: int, oid: str, size: int, hit: bool) -> None:
        """Note a read of a large file a mirrored repo holds (`hit`: count it as one)."""
        with self._lock:
            self._at[(repo_pk, oid)] = (time.time(), size)
            if hit:
                self._hits[repo_pk] += 1
            self._started()

    def read_xet(self, repo_pk: int, file_hash: str) -> None:
        """Note a read of a file through Xet, by its file hash (any repo's: at the flush,
        those of mirrored repos are kept)."""
        with self._lock:
            self._xet[(repo_pk, file_hash)] = time.time()
            self._started()

    def _started(self) -> None:
        if self._thread is None and not self._stop.is_set():
            self._thread = threading.Thread(target=self._run, name="hver-mirror-reads",
                                            daemon=True)
            self._thread.start()

    def flush(self) -> None:
        """Write what was noted, in one transaction."""
        with self._lock:
            if not (self._at or self._xet or self._hits):
                return
            at, xet, hits = self._at, self._xet, self._hits
            self._at, self._xet, self._hits = {}, {}, Counter()
        try:
            with self.db.write() as session:
                if xet:  # file hash -> the sha256 its mirrored repo holds it under
                    for repo_pk, oid, size, file_hash in session.execute(
                            select(LfsObject.repo_id, LfsObject.oid, LfsObject.size,
                                   LfsObject.xet_hash)
                            .join(Repo, Repo.id == LfsObject.repo_id)
                            .where(Repo.mirror_upstream.is_not(None),
                                   LfsObject.repo_id.in_({r for r, _ in xet}),
                                   LfsObject.xet_hash.in_({h for _, h in xet}))).tuples():
                        when = xet.get((repo_pk, file_hash or ""))
                        if when is not None and when > at.get((repo_pk, oid), (0.0, 0))[0]:
                            at[(repo_pk, oid)] = (when, size)
                _write_access(session, at)
                for repo_pk, n in sorted(hits.items()):
                    session.execute(update(MirrorRepo).where(MirrorRepo.repo_id == repo_pk)
                                    .values(hits=MirrorRepo.hits + n))
        except Exception:
            log.exception("writing %d mirror reads failed; kept for the next try", len(at))
            with self._lock:
                for key, (when, size) in at.items():
                    if when > self._at.get(key, (0.0, 0))[0]:
                        self._at[key] = (when, size)
                self._hits.update(hits)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def close(self) -> None:
        """Stop the writer thread and write what is left."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=30)
        self.flush()


def _write_access(session: Session, at: dict[tuple[int, str], tuple[float, int]]) -> None:
    """Upsert the last reads of (repo, sha256)s (never moving one back)."""
    by_repo: dict[int, set[str]] = defaultdict(set)
    for repo_pk, oid in at:
        by_repo[repo_pk].add(oid)
    for repo_pk, oids in sorted(by_repo.items()):
        rows = {row.oid: row for row in session.scalars(select(MirrorObject).where(
            MirrorObject.repo_id == repo_pk, MirrorObject.oid.in_(oids)))}
        for oid in sorted(oids):
            when, size = at[(repo_pk, oid)]
            row = rows.get(oid)
            if row is None:
                session.add(MirrorObject(repo_id=repo_pk, oid=oid, size=size,
                                         last_access=when))
            elif when > row.last_access:
                row.last_access = when


def brought(hub: Hub, repo_pk: int, oid: str, size: int) -> None:
    """A large file was brought in for a mirrored repo: read now, as far as the quota
    is concerned."""
    with hub.db.write() as session:
        _write_access(session, {(repo_pk, oid): (time.time(), size)})


def held_bytes(hub: Hub) -> int:
    """The bytes of the large files mirrored repos hold, each sha256 counted once."""
    with hub.db.read() as session:
        per_oid = (select(func.max(LfsObject.size).label("size"))
                   .join(Repo, Repo.id == LfsObject.repo_id)
                   .where(Repo.mirror_upstream.is_not(None))
                   .group_by(LfsObject.oid).subquery())
        return int(session.scalar(select(func.coalesce(func.sum(per_oid.c.size), 0))) or 0)


@dataclass(frozen=True)
class Evicted:
    oids: list[str]  # released by every mirrored repo that held them
    bytes: int
    held: int  # bytes held after the pass


_passes = threading.Lock()  # one eviction pass at a time in a process


def evict(mirror: Mirror, keep: Iterable[str] = ()) -> Evicted:
    """Release least recently read files until what mirrored repos hold fits the quota
    (see the module's text); `keep`: sha256s not to release in this pass (a file just
    fetched, which its readers are about to be served)."""
    hub = mirror.hub
    quota = hub.settings.mirror_quota
    if quota <= 0 or mirror.offline:
        return Evicted([], 0, 0)
    with _passes:
        mirror.reads.flush()
        if (total := held_bytes(hub)) <= quota:
            return Evicted([], 0, total)
        with hub.db.read() as session:
            rows = session.execute(
                select(LfsObject.repo_id, LfsObject.oid, LfsObject.size,
                       Repo.mirror_upstream, MirrorObject.last_access)
                .join(Repo, Repo.id == LfsObject.repo_id)
                .outerjoin(MirrorObject, (MirrorObject.repo_id == LfsObject.repo_id)
                           & (MirrorObject.oid == LfsObject.oid))
                .where(Repo.mirror_upstream.is_not(None))).tuples().all()
            pins = session.execute(
                select(Repo, MirrorRepo.pinned, MirrorRepo.include, MirrorRepo.exclude)
                .join(MirrorRepo, MirrorRepo.repo_id == Repo.id)
                .where(MirrorRepo.pinned.is_not(None))).tuples().all()
        kept = set(keep) | {oid for _, oid, _, upstream, _ in rows
                            if upstream != mirror.upstream.url}
        for repo, pinned, include, exclude in pins:
            if pinned is not None:
                kept |= _pinned(hub, repo, pinned, include, exclude)
        sizes: dict[str, int] = {}
        last: dict[str, float] = {}
        holders: dict[str, set[int]] = defaultdict(set)
        for repo_pk, oid, size, _, when in rows:
            sizes[oid] = max(size, sizes.get(oid, 0))
            last[oid] = max(when or 0.0, last.get(oid, 0.0))
            holders[oid].add(repo_pk)
        total = sum(sizes.values())
        chosen: list[str] = []
        freed = 0
        for oid in sorted((o for o in sizes if o not in kept), key=lambda o: (last[o], o)):
            if total - freed <= quota:
                break
            chosen.append(oid)
            freed += sizes[oid]
        by_repo: dict[int, list[str]] = defaultdict(list)
        for oid in chosen:
            for repo_pk in holders[oid]:
                by_repo[repo_pk].append(oid)
        for repo_pk, oids in sorted(by_repo.items()):
            release_held(hub, repo_pk, oids)
            with hub.db.write() as session:
                session.execute(delete(MirrorObject).where(MirrorObject.repo_id == repo_pk,
                                                           MirrorObject.oid.in_(oids)))
        if chosen:
            log.info("mirror: quota %d bytes: released %d large files (%d bytes), %d bytes "
                     "held", quota, len(chosen), freed, total - freed)
        return Evicted(chosen, freed, total - freed)


def _pinned(hub: Hub, repo: Repo, revision: str, include: list[str] | None,
            exclude: list[str] | None) -> set[str]:
    """The sha256s of the large files a repo's pin selects; every file the repo holds
    when the pinned revision cannot be read (better kept than lost)."""
    from hver.mirror.ahead import selected  # ahead builds on the Mirror, which uses this

    try:
        git = hub.git.open(repo.storage_key)
        commit = core_tree.resolve_revision(git, revision)
        return {f.lfs.oid for f in core_tree.files_at(git, commit).files
                if f.lfs is not None and selected(f.path, include, exclude)}
    except Exception:
        log.exception("mirror: reading the pin %s of %s %s; its files are kept", revision,
                      repo.type, repo.repo_id)
        with hub.db.read() as session:
            return set(session.scalars(select(LfsObject.oid).where(
                LfsObject.repo_id == repo.id)))
