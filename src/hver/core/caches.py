"""What a server keeps in memory between requests, and what drops it.

- **Read from the database** (`Stamped`): token -> actor, repo id -> repo row, a repo's
  holding of a large file. An entry holds while the change stamp of its kind is what it
  was before the entry was read (`hver.core.stamps`: any process on this machine that
  commits a change to the tables in `WATCHED` bumps it), and for at most `cache_ttl`
  seconds, the bound for servers on other machines sharing the database.
- **Immutable** (`hver.core.lru.Lru`): (storage key, commit, path) -> the file's metadata
  and, for a small file kept in git, its bytes; (storage key, commit) -> what repo info
  shows of the commit (`CachedCommit`) and its card. A commit never changes. Keyed by the
  repo's storage key too: an entry says the commit was found in that repo.
- **Made from a row** (`info_bodies`): (repo row object, downloads, commit, query) ->
  the repo info body made from them. Keyed by the row object as read: the row read again
  (a change, a time-to-live run out) is another object, which finds none of these.
- **Refs are not cached**: a branch or tag is read from its loose ref file on every
  request (`loose_ref`, one small read), so a moved branch is seen at once.

Every cache is bounded (least recently used out first).
"""

from __future__ import annotations

import functools
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from dulwich.refs import Ref, check_ref_format

from hver.core.lru import Lru
from hver.core.stamps import Stamps

if TYPE_CHECKING:
    from hver.core.accounts import Actor
    from hver.core.cards import CardIndex
    from hver.core.tree import FileInfo
    from hver.db.models import Repo
    from hver.storage.git import GitStore

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# Tables whose committed writes drop the cached entries of a kind (`hver.core.stamps`).
WATCHED = {
    "accounts": "actors", "memberships": "actors", "tokens": "actors",
    "repos": "repos", "repo_redirects": "repos",
    "lfs_objects": "holdings", "xet_files": "holdings",
}
ACTORS = 10_000       # tokens
REPOS = 10_000        # repo rows
HOLDINGS = 50_000     # (repo, large file) pairs
FILES = 20_000        # (commit, path) entries
FILES_BYTES = 64 * 2**20  # bytes of small files' content kept, in all
MAX_FILE_BYTES = 64 * 1024  # the largest file whose content is kept
COMMITS = 100_000     # (repo, commit) summaries for repo info
CARDS = 10_000        # (repo, commit) cards of revisions other than a default branch's head
INFO_BODIES = 16 * 2**20  # bytes of repo info bodies kept, in all
MAX_INFO_BODY = 64 * 1024  # the largest repo info body kept


class Stamped(Generic[K, V]):
    """A bounded LRU map of values read from the database, each kept with the stamp taken
    before it was read: `get` returns it only while `stamp()` is still that and its
    time-to-live has not run out. `ttl <= 0` caches nothing.

    In the last third of an entry's life, one caller is answered None, as on a miss, so
    that it reads the value again while every other caller still gets the entry: under
    load, entries are renewed one read at a time instead of by every request at once
    when they run out."""

    def __init__(self, stamp: Callable[[], Hashable], ttl: float, capacity: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stamp = stamp
        self.ttl = ttl
        self.capacity = capacity
        self.clock = clock
        # key -> [value, stamp, not yet renewing, deadline, renew after]
        self._data: OrderedDict[K, list[Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, stamp: Hashable | None = None, renew: bool = False) -> V | None:
        """The value if still valid; `stamp`, when given, is the caller's `stamp()`.
        `renew`: None in the last third of the entry's life, whoever renews it (for the
        reader that fills the cache, which a caller answered None goes on to call)."""
        with self._lock:
            hit = self._data.get(key)
            if hit is None:
                return None
            now = self.clock()
            if hit[1] != (self.stamp() if stamp is None else stamp) or now >= hit[3]:
                del self._data[key]
                return None
            if now >= hit[4] and (renew or hit[2]):
                hit[2] = False  # this caller renews it
                return None
            self._data.move_to_end(key)
            value: V = hit[0]
            return value

    def put(self, key: K, value: V, stamp: Hashable) -> None:
        """Keep `value`, read after `stamp` (the `stamp()` taken before the read) was."""
        if self.ttl <= 0:
            return
        with self._lock:
            now = self.clock()
            self._data[key] = [value, stamp, True, now + self.ttl, now + self.ttl * 2 / 3]
            self._data.move_to_end(key)
            while len(self._data) > self.capacity:
                self._data.popitem(last=False)

    def discard(self, key: K) -> None:
        with self._lock:
            self._data.pop(key, None)


@dataclass(frozen=True)
class CachedFile:
    """A file at a commit: its metadata, and its bytes when kept in git and small."""

    info: FileInfo
    data: bytes | None


@dataclass(frozen=True)
class CachedCommit:
    """What repo info shows of a commit, besides its card and file list."""

    used_storage: int  # the size of its files, in all
    has_config: bool  # a `config.json` at the root


def _weight(entry: CachedFile) -> int:
    return 256 + (len(entry.data) if entry.data is not None else 0)


class Caches:
    """Every cache of one hub (one server process)."""

    def __init__(self, stamps: Stamps, ttl: float) -> None:
        self.stamps = stamps
        self.actors: Stamped[str, Actor] = Stamped(
            lambda: stamps.read("actors"), ttl, ACTORS)
        # A repo row, with the download-count epoch it was read at (`hver.api.deps.load_repo`
        # reads it again when this process has written counts since).
        self.repos: Stamped[tuple[str, str, str], tuple[Repo, int]] = Stamped(
            lambda: stamps.read("repos"), ttl, REPOS)
        self.holdings: Stamped[tuple[int, str, int], Any] = Stamped(
            lambda: stamps.read("holdings"), ttl, HOLDINGS)
        self.files: Lru[tuple[str, str, str], CachedFile] = Lru(
            capacity=FILES_BYTES + FILES * 256, weight=_weight)
        self.commits: Lru[tuple[str, str], CachedCommit] = Lru(capacity=COMMITS)
        self.cards: Lru[tuple[str, str], CardIndex] = Lru(capacity=CARDS)
        # (repo row, downloads, commit, blobs, expand) -> body; see the module's docstring.
        self.info_bodies: Lru[tuple[Repo, int, str, bool, tuple[str, ...]], bytes] = Lru(
            capacity=INFO_BODIES, weight=lambda body: 2048 + len(body))  # + the row
        self._dirs: Lru[str, str] = Lru(capacity=REPOS)

    def repo_dir(self, git: GitStore, storage_key: str) -> str:
        """Where a repo's git directory is (a storage key never moves)."""
        path = self._dirs.get(storage_key)
        if path is None:
            path = self._dirs.put(storage_key, str(git.path(storage_key)))
        return path


def repo_key(repo_type: str, namespace: str, name: str) -> tuple[str, str, str] | None:
    """Repo ids are the same whatever their ASCII case (`hver.core.repos.find_repo`); None
    for a non-ASCII id, which names no repo (`"\u212a".lower()` is "k"): ask the database."""
    if not (namespace.isascii() and name.isascii()):
        return None
    return repo_type, namespace.lower(), name.lower()


_SHA = re.compile(rb"[0-9a-f]{40}\n?")  # a loose ref file's content
_COMMIT_ID = re.compile(r"[0-9a-f]{40}")  # a revision that is a full commit id


@functools.lru_cache(maxsize=4096)
def _valid_ref(name: str) -> bool:
    return name.isascii() and check_ref_format(Ref(name.encode()))


def loose_ref(repo_dir: str | Path, name: str) -> str | None:
    """The object id a ref names, read from its loose file: None when that cannot say
    (no loose file, a symbolic ref, an odd name), and the caller must ask git."""
    if not _valid_ref(name):
        return None
    try:
        fd = os.open(os.path.join(repo_dir, name), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        raw = os.read(fd, 64)
    except OSError:  # a folder of refs (`refs/heads` itself, `feat` of `feat/x`)
        return None
    finally:
        os.close(fd)
    if _SHA.fullmatch(raw) is None:
        return None
    return raw[:40].decode()


def revision_ref(repo_dir: str | Path, revision: str) -> str | None:
    """What `hver.core.tree.resolve_revision` resolves a branch or tag name to first (a
    branch before a tag), from loose ref files only; None when git must be asked: no
    loose file for the branch (it may be in packed-refs), or not a name."""
    if revision.startswith("refs/"):
        return loose_ref(repo_dir, revision)
    sha = loose_ref(repo_dir, f"refs/heads/{revision}")
    if sha is not None:
        return sha
    if os.path.exists(os.path.join(repo_dir, "packed-refs")):
        return None  # the branch may be packed; git decides
    sha = loose_ref(repo_dir, f"refs/tags/{revision}")
    if sha is None and _COMMIT_ID.fullmatch(revision) is not None:
        return revision  # a commit id, as no branch or tag is named so
    return sha
