"""A repo's large files as objects: listing them, and deleting them for good.

What a repo holds is its `lfs_objects` rows (`core.objects`), by sha256, not by path:
one object may be named by many paths across commits, or by none. A listing gives each
object a *possible* filename, as the Hub does: a path whose pointer names it, looked
for in the trees of the repo's refs first (with that ref), then in their history, as far
as a bounded walk goes (else "").

Deleting an object ends the repo's holding of it (`core.objects.release_held`): the
repo's pointers to it, in every commit, then serve nothing (404). The history is not
rewritten: the pointers stay in git.
"""

from __future__ import annotations

import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from hver.core import access
from hver.core.accounts import Actor
from hver.core.hub import Hub
from hver.core.objects import release_held
from hver.core.refs import REF_KINDS
from hver.core.repos import DEFAULT_BRANCH
from hver.core.tree import describe
from hver.db.models import LfsObject, Repo
from hver.errors import BadRequest
from hver.storage.git import GitRepo, TreeEntry
from hver.storage.lfs import check_oid

MAX_DELETIONS = 1000  # oids in one request (the client sends batches of 1000)
MAX_HISTORY_COMMITS = 1000  # commits a listing walks to name objects no ref names
MAX_TREES = 20_000  # distinct trees a listing walks to name objects


@dataclass(frozen=True)
class LfsFile:
    oid: str
    size: int
    pushed_at: datetime
    xet_hash: str | None
    filename: str  # a path whose pointer names the object; "" when none was found
    ref: str | None  # the ref whose tree has that path; None when found in history


def list_lfs_files(hub: Hub, actor: Actor | None, repo: Repo, offset: int,
                   limit: int) -> tuple[list[LfsFile], bool]:
    """A page of the objects the repo holds, newest first; and whether more follow.
    Writers only, as on the Hub (where this is the repo's storage settings)."""
    access.require_write(actor, repo)
    with hub.db.read() as session:
        rows = session.execute(
            select(LfsObject.oid, LfsObject.size, LfsObject.created_at, LfsObject.xet_hash)
            .where(LfsObject.repo_id == repo.id)
            .order_by(LfsObject.created_at.desc(), LfsObject.oid)
            .offset(offset).limit(limit + 1)
        ).tuples().all()
    more = len(rows) > limit
    rows = rows[:limit]
    names = find_names(hub.git.open(repo.storage_key), {oid for oid, *_ in rows})
    return [LfsFile(oid, size, created, xet_hash, *names.get(oid, ("", None)))
            for oid, size, created, xet_hash in rows], more


def delete_lfs_files(hub: Hub, actor: Actor | None, repo: Repo,
                     oids: Iterable[object]) -> list[str]:
    """Delete objects from the repo for good (its admins only: nothing brings them back);
    returns those it held. Oids it does not hold are ignored."""
    access.require_admin(actor, repo)
    wanted = list(oids)
    if len(wanted) > MAX_DELETIONS:
        raise BadRequest(f"At most {MAX_DELETIONS} files per request.")
    return release_held(hub, repo.id, {check_oid(oid) for oid in wanted})


def find_names(git: GitRepo, wanted: set[str]) -> dict[str, tuple[str, str | None]]:
    """oid -> (a path whose pointer names it, the ref whose tree has it, or None when it
    was found in history). Each distinct tree is read once, in a bounded number."""
    found: dict[str, tuple[str, str | None]] = {}
    if not wanted:
        return found
    walk = _Walk(git, wanted, found)
    heads = list(_heads(git))
    for ref, commit in heads:
        walk.tree(git.commit(commit).tree, "", ref)
        if walk.done:
            return found
    seen: set[str] = set()
    for _, commit in heads:
        for info in git.history(commit):
            if info.id in seen:
                continue
            seen.add(info.id)
            walk.tree(info.tree, "", None)
            if walk.done or len(seen) >= MAX_HISTORY_COMMITS:
                return found
    return found


def _heads(git: GitRepo) -> Iterator[tuple[str, str]]:
    """(ref, commit) for every ref, the default branch first."""
    main = f"refs/heads/{DEFAULT_BRANCH}"
    head = git.ref(main)
    if head is not None:
        yield main, git.peel(head)
    for prefix in REF_KINDS.values():
        for name, sha in sorted(git.refs(prefix).items()):
            if prefix + name != main:
                yield prefix + name, git.peel(sha)


class _Walk:
    """Trees walked for pointers; a tree seen once is skipped (its objects are named)."""

    def __init__(self, git: GitRepo, wanted: set[str],
                 found: dict[str, tuple[str, str | None]]) -> None:
        self.git = git
        self.wanted = wanted
        self.found = found
        self.seen: set[str] = set()

    @property
    def done(self) -> bool:
        return len(self.found) == len(self.wanted) or len(self.seen) >= MAX_TREES

    def tree(self, sha: str, prefix: str, ref: str | None) -> None:
        if sha in self.seen or self.done:
            return
        self.seen.add(sha)
        for e in self.git.tree(sha):
            path = prefix + e.path
            if e.is_dir:
                self.tree(e.sha, f"{path}/", ref)
            elif stat.S_ISREG(e.mode):
                info = describe(self.git, TreeEntry(path, e.mode, e.sha))
                if info.lfs is not None and info.lfs.oid in self.wanted:
                    self.found.setdefault(info.lfs.oid, (path, ref))
