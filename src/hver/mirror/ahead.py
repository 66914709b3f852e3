"""Mirroring ahead of time (`hver mirror add`, `sync`, `status`): a repo brought in and
caught up now, whatever the TTL, and the large files of a pinned revision fetched
(those the include globs match and the exclude globs do not), before anyone asks."""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update

from hver.core import repos as core_repos
from hver.core import tree as core_tree
from hver.core.objects import held_objects
from hver.db.models import LfsObject, MirrorRepo, Repo
from hver.errors import BadRequest, RepoNotFound
from hver.mirror import Mirror, cache
from hver.names import RepoType

Progress = Callable[[int, int, int, int], None]  # files done, files, bytes done, bytes


@dataclass(frozen=True)
class Pinned:
    repo: Repo
    commit: str
    files: int  # large files the patterns select at the commit
    fetched: int  # of those, brought in now
    bytes: int


def selected(path: str, include: Sequence[str] | None, exclude: Sequence[str] | None) -> bool:
    """A path the patterns keep (fnmatch globs, as huggingface_hub's allow/ignore)."""
    if include and not any(fnmatch.fnmatch(path, g) for g in include):
        return False
    return not (exclude and any(fnmatch.fnmatch(path, g) for g in exclude))


def add(mirror: Mirror, repo_type: RepoType, namespace: str, name: str,
        revision: str | None, include: Sequence[str] | None,
        exclude: Sequence[str] | None, progress: Progress | None = None) -> Pinned:
    """Bring a repo in (or catch it up now), pin `revision` with the patterns, and
    fetch the large files they select."""
    hub = mirror.hub
    repo = _local(mirror, repo_type, namespace, name)
    repo = mirror.check(repo, force=True)
    with hub.db.write() as session:
        session.execute(update(MirrorRepo).where(MirrorRepo.repo_id == repo.id).values(
            pinned=revision or core_repos.DEFAULT_BRANCH, include=list(include or []) or None,
            exclude=list(exclude or []) or None))
    return _fetch(mirror, repo, revision or core_repos.DEFAULT_BRANCH, include, exclude,
                  progress)


def sync(mirror: Mirror, repo: Repo, progress: Progress | None = None) -> Pinned:
    """Catch a mirrored repo up now and fetch what its pin selects at the new tip; then
    keep the quota (`cache.evict`: files the old tip pinned may go now)."""
    repo = mirror.check(repo, force=True)
    with mirror.hub.db.read() as session:
        row = session.get(MirrorRepo, repo.id)
    pin = row.pinned if row is not None else None
    if row is None or pin is None:
        pinned = Pinned(repo, repo.sha or "", 0, 0, 0)
    else:
        pinned = _fetch(mirror, repo, pin, row.include, row.exclude, progress)
    cache.evict(mirror)
    return pinned


def mirrored_repos(mirror: Mirror) -> list[Repo]:
    with mirror.hub.db.read() as session:
        return list(session.scalars(select(Repo).where(Repo.mirror_upstream.is_not(None))
                                    .order_by(Repo.type, Repo.namespace, Repo.name)))


def status(mirror: Mirror) -> list[dict[str, Any]]:
    """Each mirrored repo: where from, when last checked, what it pins, the large files
    it holds (count, bytes) and brought in, and its reads: hits (of files it held),
    misses (files brought in) and the hit ratio (None before the first read)."""
    hub = mirror.hub
    out = []
    with hub.db.read() as session:
        rows = session.execute(
            select(Repo, MirrorRepo).join(MirrorRepo, MirrorRepo.repo_id == Repo.id)
            .order_by(Repo.type, Repo.namespace, Repo.name)).tuples().all()
        held = {repo_id: (n, size) for repo_id, n, size in session.execute(
            select(LfsObject.repo_id, func.count(), func.coalesce(func.sum(LfsObject.size), 0))
            .join(MirrorRepo, MirrorRepo.repo_id == LfsObject.repo_id)
            .group_by(LfsObject.repo_id)).tuples().all()}
    for repo, state in rows:
        files, size = held.get(repo.id, (0, 0))
        out.append({
            "type": repo.type, "id": repo.repo_id, "upstream": repo.mirror_upstream,
            "upstreamId": repo.mirror_id, "sha": repo.sha,
            "lastSync": _iso(state.checked_at), "lastError": state.last_error,
            "pinned": state.pinned, "include": state.include, "exclude": state.exclude,
            "heldFiles": int(files), "heldBytes": int(size or 0),
            "fetchedFiles": state.fetched_files, "fetchedBytes": state.fetched_bytes,
            "hits": state.hits, "misses": state.fetched_files,
            "hitRatio": _ratio(state.hits, state.fetched_files)})
    return out


def totals(mirror: Mirror, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """What all mirrored repos hold against the quota (each file counted once), and
    their hits and misses together (`rows`: `status`)."""
    hits = sum(r["hits"] for r in rows)
    misses = sum(r["misses"] for r in rows)
    return {"repos": len(rows), "heldBytes": cache.held_bytes(mirror.hub),
            "quota": mirror.hub.settings.mirror_quota or None, "hits": hits,
            "misses": misses, "hitRatio": _ratio(hits, misses)}


def _ratio(hits: int, misses: int) -> float | None:
    return round(hits / (hits + misses), 4) if hits + misses else None


def _iso(at: float) -> str | None:
    if not at:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def _local(mirror: Mirror, repo_type: RepoType, namespace: str, name: str) -> Repo:
    with mirror.hub.db.read() as session:
        repo = core_repos.find_repo(session, repo_type, namespace, name)
    if repo is None:
        mirror.find(repo_type, namespace, name)
        with mirror.hub.db.read() as session:
            repo = core_repos.find_repo(session, repo_type, namespace, name)
    if repo is None:
        raise RepoNotFound()
    if repo.mirror_upstream is None:
        raise BadRequest(f"{repo.repo_id} is a local repo, not a mirror.")
    return repo


def _fetch(mirror: Mirror, repo: Repo, revision: str, include: Sequence[str] | None,
           exclude: Sequence[str] | None, progress: Progress | None) -> Pinned:
    hub = mirror.hub
    git = hub.git.open(repo.storage_key)
    commit = core_tree.resolve_revision(git, revision)
    wanted = [f for f in core_tree.files_at(git, commit).files
              if f.lfs is not None and selected(f.path, include, exclude)]
    total = sum(f.size for f in wanted)
    held = held_objects(hub, repo.id, {f.lfs.oid for f in wanted if f.lfs is not None})
    done = fetched = done_bytes = 0
    for f in wanted:
        assert f.lfs is not None
        if progress is not None:
            progress(done, len(wanted), done_bytes, total)
        if f.lfs.oid not in held and mirror.bring_object(repo, f.lfs.oid, f.lfs.size,
                                                         (commit, f.path)):
            fetched += 1
        done += 1
        done_bytes += f.size
    if progress is not None:
        progress(done, len(wanted), done_bytes, total)
    return Pinned(repo, commit, len(wanted), fetched, total)
