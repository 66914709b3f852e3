"""Git repositories on disk, through dulwich: objects, trees, commits and refs.

Every write adds objects first (each written to a lock file, fsynced, renamed)
and then moves a ref with compare-and-swap: the ref update is the commit
point, so a crash before it leaves only unreachable objects.
"""

from __future__ import annotations

import functools
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from dulwich.diff_tree import tree_changes
from dulwich.file import FileLocked
from dulwich.graph import find_merge_base
from dulwich.index import commit_tree
from dulwich.objects import Blob, Commit, ObjectID, Tag, Tree
from dulwich.refs import DiskRefsContainer, Ref, locked_ref
from dulwich.repo import Repo as DulwichRepo

from hver.errors import Conflict

FILE_MODE = 0o100644
DIR_MODE = 0o040000
LOCK_WAIT_S = 10.0  # how long a ref update waits for another writer's lock
STALE_LOCK_S = 30.0  # a ref lock this old was left by a crash (of a worker, while serving)


CACHE_DIR = "hver-cache"
CACHE_TMP_PREFIX = ".tmp-"  # a cache file being written, renamed into place when whole


class _Stale(Exception):
    """A ref no longer holds the value an update expected."""


def _check_folders(refs: DiskRefsContainer,
                   updates: Sequence[tuple[str, str | None, str | None]]) -> None:
    """Conflict if, once `updates` are made, one ref's name is a folder of another's."""
    deleted = {name for name, _, new in updates if new is None}
    names = {n.decode("utf-8", "surrogateescape") for n in refs.allkeys()} - deleted
    names |= {name for name, _, new in updates if new is not None}
    for name, _, new in updates:
        if new is None:
            continue
        parts = name.split("/")
        clash = next((p for p in ("/".join(parts[:i]) for i in range(2, len(parts)))
                      if p in names), None)
        if clash is None and any(other.startswith(name + "/") for other in names):
            clash = next(other for other in names if other.startswith(name + "/"))
        if clash is not None:
            raise Conflict(f"{name} conflicts with the existing ref {clash}.")


def _prune_folders(refs: DiskRefsContainer, name: str) -> None:
    """Remove the folders of ref `name` that hold nothing (left by a deleted ref, or by a
    lock file of an update that did not happen), up to `refs/heads`, `refs/tags`, ..."""
    parts = name.split("/")
    for i in range(len(parts) - 1, 2, -1):
        try:
            os.rmdir(refs.refpath(_ref("/".join(parts[:i]))))
        except OSError:  # not empty, gone, or not a folder
            return


def _oid(sha: str) -> ObjectID:
    return ObjectID(sha.encode())


def _ref(name: str) -> Ref:
    return Ref(name.encode())


@dataclass(frozen=True)
class TreeEntry:
    path: str
    mode: int
    sha: str

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)


@dataclass(frozen=True)
class CommitInfo:
    id: str
    title: str
    message: str
    author: str
    timestamp: int
    parents: tuple[str, ...]
    tree: str


class GitRepo:
    """One bare repository. Cheap to construct: open one per operation."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @functools.cached_property
    def repo(self) -> DulwichRepo:
        """The dulwich repository, opened on first use (opening reads its config: a request
        answered from caches never pays for it)."""
        return DulwichRepo(str(self.path))

    @functools.cached_property
    def cache_dir(self) -> Path:
        """Where derived facts about this repository's objects are kept (records of what
        a tree holds): inside it, so they go with it, and safe to delete at any time."""
        return self.path / CACHE_DIR

    # -- refs -----------------------------------------------------------------
    def ref(self, name: str) -> str | None:
        try:
            return self.repo.refs[_ref(name)].decode()
        except KeyError:
            return None

    def refs(self, prefix: str) -> dict[str, str]:
        """Refs under `prefix` (e.g. 'refs/heads/'), names without the prefix."""
        out: dict[str, str] = {}
        for name, sha in self.repo.refs.as_dict(_ref(prefix.rstrip("/"))).items():
            out[name.decode()] = sha.decode()
        return out

    def cas_ref(self, name: str, old: str | None, new: str) -> bool:
        """Point `name` at `new` if it still points at `old` (None: must not exist)."""
        if old is None:
            return self._locked(lambda: self.repo.refs.add_if_new(_ref(name), _oid(new)))
        return self._locked(
            lambda: self.repo.refs.set_if_equals(_ref(name), _oid(old), _oid(new))
        )

    def set_ref(self, name: str, new: str) -> None:
        """Point `name` at `new` whatever it held: only for a ref nothing else may name yet
        (a pull request's, created under the database's write lock)."""
        self._locked(lambda: self.repo.refs.set_if_equals(_ref(name), None, _oid(new)))

    def delete_ref(self, name: str, old: str) -> bool:
        return self._locked(lambda: self.repo.refs.remove_if_equals(_ref(name), _oid(old)))

    def update_refs(self, updates: Sequence[tuple[str, str | None, str | None]]) -> bool:
        """Move several refs at once, each `(name, old, new)` (None as `old`: must not
        exist; None as `new`: delete): all of them if every one still holds its `old`,
        else none (False). Every ref's lock is held until all are checked and written,
        so no other writer sees some moved and others not; the locks are taken in name
        order, so two such updates never wait on each other in a cycle. A name that is a
        folder of another ref's (`a` and `a/b`), once the update is made, is a Conflict
        and nothing moves; folders left empty are removed, as git does."""
        refs = self.repo.refs
        assert isinstance(refs, DiskRefsContainer)
        if len({name for name, _, _ in updates}) != len(updates):
            raise ValueError("a ref named twice in one update")
        ordered = sorted(updates, key=lambda u: u[0])

        def attempt() -> bool:
            try:
                with ExitStack() as stack:
                    locks = [stack.enter_context(locked_ref(refs, _ref(name)))
                             for name, _, _ in ordered]
                    for lock, (_, old, _) in zip(locks, ordered, strict=True):
                        if not lock.ensure_equals(None if old is None else _oid(old)):
                            raise _Stale  # every lock is released, no ref changed
                    _check_folders(refs, ordered)
                    for lock, (_, _, new) in zip(locks, ordered, strict=True):
                        if new is None:
                            lock.delete()
                        else:
                            lock.set(_oid(new))  # written when its lock is released
            except _Stale:
                return False
            except FileLocked:
                raise
            except OSError as exc:  # a lock file where a folder of refs is, or under a ref
                raise Conflict(f"A ref name conflicts with an existing ref ({exc.strerror})."
                               ) from None
            finally:
                for name, _, _ in ordered:
                    _prune_folders(refs, name)
            return True

        return self._locked(attempt)

    def _locked(self, update: Callable[[], object]) -> bool:
        """Run a ref update, waiting while another writer holds the ref's lock file.

        Writers hold `<ref>.lock` for a moment only; one older than STALE_LOCK_S was
        left by a crashed process and is removed, so no repair step is ever needed.
        """
        deadline = time.monotonic() + LOCK_WAIT_S
        delay = 0.002
        while True:
            try:
                return bool(update())
            except FileLocked as e:
                lock = os.fsdecode(e.lockfilename)
                try:
                    if time.time() - os.stat(lock).st_mtime > STALE_LOCK_S:
                        os.unlink(lock)
                        continue
                except FileNotFoundError:
                    continue
                if time.monotonic() > deadline:
                    raise Conflict("The branch is busy with another write; try again.") from e
                time.sleep(delay)
                delay = min(delay * 2, 0.05)

    # -- objects --------------------------------------------------------------
    def has_commit(self, sha: str) -> bool:
        try:
            obj = self.repo.object_store[_oid(sha)]
        except KeyError:
            return False
        return isinstance(obj, Commit)

    def commits_with_prefix(self, prefix: str, limit: int) -> list[str]:
        """Up to `limit` commits whose id begins with the hex digits `prefix`."""
        out: list[str] = []
        for oid in self.repo.object_store.iter_prefix(prefix.encode()):
            if self.has_commit(oid.decode()):
                out.append(oid.decode())
                if len(out) >= limit:
                    break
        return out

    def merge_base(self, a: str, b: str) -> str | None:
        """The best common ancestor of commits `a` and `b` (None: unrelated histories)."""
        bases = find_merge_base(self.repo, [_oid(a), _oid(b)])
        return bases[0].decode() if bases else None

    def peel(self, sha: str) -> str:
        """The commit a ref value points to, through annotated tags."""
        obj = self.repo.object_store[_oid(sha)]
        while isinstance(obj, Tag):
            obj = self.repo.object_store[obj.object[1]]
        return obj.id.decode()

    def commit(self, sha: str) -> CommitInfo:
        c = self.repo.object_store[_oid(sha)]
        assert isinstance(c, Commit)
        message = c.message.decode("utf-8", "replace")
        title = message.split("\n", 1)[0]
        return CommitInfo(
            id=c.id.decode(),
            title=title,
            message=message,
            author=c.author.decode("utf-8", "replace"),
            timestamp=c.commit_time,
            parents=tuple(p.decode() for p in c.parents),
            tree=c.tree.decode(),
        )

    def blob(self, sha: str) -> bytes:
        obj = self.repo.object_store[_oid(sha)]
        assert isinstance(obj, Blob)
        return obj.as_raw_string()

    def blob_data(self, sha: str) -> bytes:
        """`blob`, read without building and re-hashing an object (for sizes, in bulk)."""
        type_num, data = self.repo.object_store.get_raw(_oid(sha))
        if type_num != Blob.type_num:
            raise KeyError(sha)
        return data

    def tree(self, sha: str) -> list[TreeEntry]:
        t = self.repo.object_store[_oid(sha)]
        assert isinstance(t, Tree)
        return [
            TreeEntry(name.decode("utf-8", "surrogateescape"), mode, s.decode())
            for name, mode, s in t.iteritems()
        ]

    def lookup(self, tree_sha: str, path: str) -> TreeEntry | None:
        """The entry at `path` ('' is the root tree itself)."""
        if path == "":
            return TreeEntry("", DIR_MODE, tree_sha)
        current = tree_sha
        parts = path.split("/")
        for i, part in enumerate(parts):
            entries = {e.path: e for e in self.tree(current)}
            entry = entries.get(part)
            if entry is None:
                return None
            if i == len(parts) - 1:
                return TreeEntry(path, entry.mode, entry.sha)
            if not entry.is_dir:
                return None
            current = entry.sha
        return None

    def walk(self, tree_sha: str, prefix: str = "", recursive: bool = True) -> Iterator[TreeEntry]:
        """Entries below a tree, full paths, parents before children, sorted by git order."""
        for e in self.tree(tree_sha):
            full = f"{prefix}{e.path}"
            yield TreeEntry(full, e.mode, e.sha)
            if recursive and e.is_dir:
                yield from self.walk(e.sha, f"{full}/", True)

    def changed_paths(self, old_tree: str,
                      new_tree: str) -> Iterator[tuple[str | None, TreeEntry | None]]:
        """(old path, new entry) of each file added, deleted or changed between two trees
        (None on the side it is missing from); identical folders are never opened."""
        for change in tree_changes(self.repo.object_store, _oid(old_tree), _oid(new_tree)):
            old, new = change.old, change.new
            yield (_name(old.path) if old is not None else None,
                   TreeEntry(_name(new.path), new.mode, new.sha.decode())
                   if new is not None else None)

    def edit_tree(self, tree_sha: str | None) -> TreeEditor:
        """Changes to a tree that read and rewrite only the folders along their paths."""
        return TreeEditor(self, tree_sha)

    def flatten(self, tree_sha: str) -> dict[str, tuple[int, str]]:
        """path -> (mode, blob sha) for every file in the tree."""
        return {e.path: (e.mode, e.sha) for e in self.walk(tree_sha) if not e.is_dir}

    def add_blob(self, data: bytes) -> str:
        blob = Blob.from_string(data)
        self.repo.object_store.add_object(blob)
        return blob.id.decode()

    def write_tree(self, files: dict[str, tuple[int, str]]) -> str:
        entries = [(p.encode(), _oid(s), m) for p, (m, s) in files.items()]
        return commit_tree(self.repo.object_store, entries).decode()

    def write_commit(
        self,
        tree: str,
        parents: Iterable[str],
        message: str,
        author: str,
        timestamp: int | None = None,
    ) -> str:
        c = Commit()
        c.tree = _oid(tree)
        c.parents = [_oid(p) for p in parents]
        c.author = c.committer = author.encode()
        c.author_time = c.commit_time = int(time.time()) if timestamp is None else timestamp
        c.author_timezone = c.commit_timezone = 0
        c.encoding = b"UTF-8"
        c.message = message.encode()
        self.repo.object_store.add_object(c)
        return c.id.decode()

    def write_tag(self, name: str, target: str, message: str, tagger: str) -> str:
        """An annotated tag object for commit `target`."""
        tag = Tag()
        tag.name = name.encode()
        tag.object = (Commit, _oid(target))
        tag.tagger = tagger.encode()
        tag.tag_time = int(time.time())
        tag.tag_timezone = 0
        tag.message = message.encode()
        self.repo.object_store.add_object(tag)
        return tag.id.decode()

    def history(
        self, sha: str, path: str | None = None, limit: int | None = None
    ) -> Iterator[CommitInfo]:
        """Commits reachable from `sha`, newest first; only those touching `path` if given."""
        walker = self.repo.get_walker(
            include=[_oid(sha)],
            paths=[path.encode()] if path else None,
            max_entries=limit,
        )
        for entry in walker:
            yield self.commit(entry.commit.id.decode())


    def commits_between(self, base: str | None, head: str, limit: int) -> list[CommitInfo]:
        """Commits reachable from `head` but not from `base`, newest first."""
        walker = self.repo.get_walker(include=[_oid(head)],
                                      exclude=[_oid(base)] if base else None, max_entries=limit)
        return [self.commit(entry.commit.id.decode()) for entry in walker]


def _name(raw: bytes | None) -> str:
    assert raw is not None
    return raw.decode("utf-8", "surrogateescape")


class _Folder:
    """A folder being edited: its entries, the subfolders opened so far among them."""

    __slots__ = ("entries",)

    def __init__(self, entries: dict[bytes, tuple[int, ObjectID] | _Folder]) -> None:
        self.entries = entries


class TreeEditor:
    """Edits to a tree as to a flat map of file paths (what `flatten` and `write_tree`
    give), done on the tree objects themselves: only the folders along an edited path are
    read, and only those rewritten, so an edit costs the depth of its path. The result is
    the tree `write_tree` would write for the same files (a folder left empty vanishes).

    Edits that would put a file where a folder is, or a folder where a file is, are not
    made: `put` answers False, and the caller decides (the flat map can hold both for a
    while; a tree cannot)."""

    def __init__(self, git: GitRepo, tree_sha: str | None) -> None:
        self.git = git
        self.root = self._open(tree_sha) if tree_sha is not None else _Folder({})

    def _open(self, sha: str) -> _Folder:
        t = self.git.repo.object_store[_oid(sha)]
        assert isinstance(t, Tree)
        return _Folder({n: (m, s) for n, m, s in t.iteritems()})

    def _child(self, folder: _Folder, name: bytes) -> _Folder | None:
        """The subfolder `name` opened for editing; None if it is missing or a file."""
        entry = folder.entries.get(name)
        if isinstance(entry, _Folder):
            return entry
        if entry is None or not stat.S_ISDIR(entry[0]):
            return None
        opened = self._open(entry[1].decode())
        folder.entries[name] = opened
        return opened

    def _path(self, path: str) -> tuple[list[_Folder], bytes] | None:
        """The folders from the root down to `path`'s parent, and its last name."""
        parts = path.encode().split(b"/")
        chain = [self.root]
        for part in parts[:-1]:
            child = self._child(chain[-1], part)
            if child is None:
                return None
            chain.append(child)
        return chain, parts[-1]

    def put(self, path: str, mode: int, sha: str) -> bool:
        """Set the file at `path`, making its folders; False (nothing changed) where a
        file stands on its folders' way or a folder at `path` itself."""
        parts = path.encode().split(b"/")
        folder = self.root
        for part in parts[:-1]:
            entry = folder.entries.get(part)
            if entry is None:
                made = _Folder({})
                folder.entries[part] = made
                folder = made
                continue
            child = self._child(folder, part)
            if child is None:
                return False  # a file where a folder must go
            folder = child
        entry = folder.entries.get(parts[-1])
        if isinstance(entry, _Folder) or (entry is not None and stat.S_ISDIR(entry[0])):
            return False  # a folder where the file must go
        folder.entries[parts[-1]] = (mode, _oid(sha))
        return True

    def remove_file(self, path: str) -> bool:
        """Remove the file at `path`; False if there is none."""
        found = self._path(path)
        if found is None:
            return False
        chain, name = found
        entry = chain[-1].entries.get(name)
        if entry is None or isinstance(entry, _Folder) or stat.S_ISDIR(entry[0]):
            return False
        del chain[-1].entries[name]
        self._prune(chain, path)
        return True

    def remove_folder(self, path: str) -> bool:
        """Remove the folder at `path` and all below it; False if there is none."""
        found = self._path(path)
        if found is None:
            return False
        chain, name = found
        entry = chain[-1].entries.get(name)
        if entry is None or not (isinstance(entry, _Folder) or stat.S_ISDIR(entry[0])):
            return False
        del chain[-1].entries[name]
        self._prune(chain, path)
        return True

    def _prune(self, chain: list[_Folder], path: str) -> None:
        """Drop the folders an edit left empty: a folder exists while a file is in it."""
        names = path.encode().split(b"/")[:-1]
        for depth in range(len(chain) - 1, 0, -1):
            if chain[depth].entries:
                return
            del chain[depth - 1].entries[names[depth - 1]]

    def write(self) -> str:
        """Write the edited folders (the others are kept as they are); the root's id."""
        return self._write(self.root).decode()

    def _write(self, folder: _Folder) -> ObjectID:
        tree = Tree()
        for name, entry in folder.entries.items():
            if isinstance(entry, _Folder):
                tree.add(name, DIR_MODE, self._write(entry))
            else:
                tree.add(name, entry[0], entry[1])
        self.git.repo.object_store.add_object(tree)
        return tree.id


class GitStore:
    """All repositories, each in its own directory named by a stable storage key."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.git"

    def init(self, key: str) -> GitRepo:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        DulwichRepo.init_bare(str(path), mkdir=True)
        repo = GitRepo(path)
        repo.repo.refs.set_symbolic_ref(_ref("HEAD"), _ref("refs/heads/main"))
        return repo

    def open(self, key: str) -> GitRepo:
        return GitRepo(self.path(key))

    def delete(self, key: str) -> None:
        shutil.rmtree(self.path(key), ignore_errors=True)

    def remove_stale_locks(self, before: float) -> int:
        """Remove the lock files a killed server left in the repositories: every `*.lock`
        (refs, packed-refs, config, loose objects) last changed before `before`, the time
        this server started, and the cache files it was writing (`CACHE_TMP_PREFIX`). Run
        once at start, before serving: this server's writers take their locks later, and
        another server must not be writing to the same repos then. Returns how many lock
        files were removed."""
        removed = 0
        for repo in self.root.glob("*/*.git"):
            for folder, _dirs, files in os.walk(repo):
                for name in files:
                    if name.endswith(".lock") and _remove_if_older(
                            os.path.join(folder, name), before):
                        removed += 1
                    elif name.startswith(CACHE_TMP_PREFIX):
                        _remove_if_older(os.path.join(folder, name), before)
        return removed


def _remove_if_older(path: str, before: float) -> bool:
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_mtime >= before:
            return False
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
