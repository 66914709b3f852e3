"""Reading a repo at a revision: resolving revisions, trees, paths-info, file metadata."""

from __future__ import annotations

import bisect
import re
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from hver.core.lru import Lru
from hver.errors import EntryNotFound, RevisionNotFound
from hver.storage.git import GitRepo, TreeEntry
from hver.storage.lfs import Pointer, parse_pointer

_SHA_RE = re.compile(r"[0-9a-f]{40}\Z")
# An abbreviated commit id, as git and the Hub take one: 7 hex digits or more.
_SHORT_SHA_RE = re.compile(r"[0-9a-fA-F]{7,39}\Z")


@dataclass(frozen=True, slots=True)
class FileInfo:
    path: str
    oid: str  # git blob (or tree) sha1
    is_dir: bool
    size: int = 0  # the real content size, also for LFS files
    lfs: Pointer | None = None
    pointer_size: int = 0


class _BlobMetaCache:
    """Blob sha -> (size, pointer). Blobs are immutable, so entries never go stale.

    Room for a listing of a repo of 250,000 files (about 250 bytes an entry): a listing
    walks in the same order every time, so a cache smaller than the repo misses on every
    entry."""

    def __init__(self, capacity: int = 250_000) -> None:
        self.capacity = capacity
        self._data: OrderedDict[str, tuple[int, Pointer | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, git: GitRepo, sha: str) -> tuple[int, Pointer | None]:
        with self._lock:
            hit = self._data.get(sha)
            if hit is not None:
                self._data.move_to_end(sha)
                return hit
        data = git.blob_data(sha)
        value = (len(data), parse_pointer(data))
        with self._lock:
            self._data[sha] = value
            if len(self._data) > self.capacity:
                self._data.popitem(last=False)
        return value


_meta = _BlobMetaCache()



def resolve_revision(git: GitRepo, revision: str) -> str:
    """Branch, tag, full ref, commit sha or a unique prefix of one -> commit sha.

    Names come first, as in git: a branch or tag that looks like a commit prefix wins.
    A prefix that matches no commit, or more than one, is RevisionNotFound.
    """
    candidates: list[str]
    if revision.startswith("refs/"):
        candidates = [revision]
    else:
        candidates = [f"refs/heads/{revision}", f"refs/tags/{revision}"]
    for name in candidates:
        sha = git.ref(name)
        if sha is not None:
            return git.peel(sha)
    if _SHA_RE.match(revision) and git.has_commit(revision):
        return revision
    if _SHORT_SHA_RE.match(revision):
        found = git.commits_with_prefix(revision.lower(), limit=2)
        if len(found) == 1:
            return found[0]
        if found:
            raise RevisionNotFound(f"Invalid rev id: {revision} is ambiguous: it begins more "
                                   "than one commit id.")
    raise RevisionNotFound(f"Invalid rev id: {revision}")


def branch_ref(git: GitRepo, revision: str) -> str:
    """The ref a commit to `revision` moves: a branch or a pull-request ref."""
    if revision.startswith(("refs/heads/", "refs/pr/")):
        name = revision
    else:
        name = f"refs/heads/{revision}"
    if git.ref(name) is None:
        raise RevisionNotFound(f"Invalid rev id: {revision} is not a branch.")
    return name


def describe(git: GitRepo, entry: TreeEntry) -> FileInfo:
    if entry.is_dir:
        return FileInfo(path=entry.path, oid=entry.sha, is_dir=True)
    size, pointer = _meta.get(git, entry.sha)
    if pointer is not None:
        return FileInfo(entry.path, entry.sha, False, pointer.size, pointer, size)
    return FileInfo(entry.path, entry.sha, False, size)


def root_tree(git: GitRepo, commit: str) -> str:
    return git.commit(commit).tree


def get_entry(git: GitRepo, commit: str, path: str) -> FileInfo:
    entry = git.lookup(root_tree(git, commit), path)
    if entry is None:
        raise EntryNotFound(f"{path} does not exist at revision {commit}", commit=commit)
    return describe(git, entry)


def get_file(git: GitRepo, commit: str, path: str) -> FileInfo:
    info = get_entry(git, commit, path)
    if info.is_dir:
        raise EntryNotFound(f"{path} is a folder, not a file, at revision {commit}", commit=commit)
    return info


def list_tree(git: GitRepo, commit: str, path: str, recursive: bool,
              after: str | None = None) -> Iterator[FileInfo]:
    """Entries below `path`, in git's order; a file path yields that one file.
    EntryNotFound if missing.

    `after` (an entry's `entry_key`) resumes the listing after that entry, seeking through
    each folder's sorted names: a page of a listing costs the page, not the pages before."""
    base = get_entry(git, commit, path)
    if not base.is_dir:
        if after is None:
            yield base
        return
    yield from _walk(git, base.oid, f"{path}/" if path else "", recursive, after)


def entry_key(info: FileInfo) -> str:
    """Where an entry comes in `list_tree` order: its path, a folder's with a `/` after it.
    Git sorts a tree's names so (a folder `a` after a file `a-b`), and a walk keeps that
    order across levels, so these keys sort exactly as the entries are listed."""
    return f"{info.path}/" if info.is_dir else info.path


@dataclass(frozen=True)
class _Folder:
    """A tree's entries at a path, described, and their `entry_key`s."""

    entries: tuple[FileInfo, ...]
    keys: list[str]


# (tree id, path) -> the folder described, weighed in entries (~350 bytes each).
_folders = Lru[tuple[str, str], _Folder](capacity=250_000, weight=lambda f: len(f.keys) + 1)


def _folder(git: GitRepo, tree_sha: str, prefix: str) -> _Folder:
    hit = _folders.get((tree_sha, prefix))
    if hit is None:
        entries = tuple(describe(git, TreeEntry(f"{prefix}{e.path}", e.mode, e.sha))
                        for e in git.tree(tree_sha))
        hit = _folders.put((tree_sha, prefix), _Folder(entries, [entry_key(f) for f in entries]))
    return hit


def _walk(git: GitRepo, tree_sha: str, prefix: str, recursive: bool,
          after: str | None) -> Iterator[FileInfo]:
    folder = _folder(git, tree_sha, prefix)
    start = 0
    if after is not None:
        start = bisect.bisect_right(folder.keys, after)
        if recursive and start > 0:
            last, key = folder.entries[start - 1], folder.keys[start - 1]
            if last.is_dir and after.startswith(key):  # resume inside that folder
                yield from _walk(git, last.oid, key, True, after)
    for f in folder.entries[start:]:
        yield f
        if recursive and f.is_dir:
            yield from _walk(git, f.oid, f"{f.path}/", True, None)


def paths_info(git: GitRepo, commit: str, paths: Iterable[str]) -> list[FileInfo]:
    """Entries for the given paths; missing paths are left out."""
    tree = root_tree(git, commit)
    out: list[FileInfo] = []
    for p in paths:
        entry = git.lookup(tree, p.strip("/"))
        if entry is not None and entry.path:
            out.append(describe(git, entry))
    return out


@dataclass(frozen=True)
class Files:
    """Every file of a commit, in listing order, and their total size."""

    files: tuple[FileInfo, ...]
    total_size: int
    paths: frozenset[str]


# Commit id -> its files, weighed in files: about 300 bytes each, so ~100 MB at most.
_files = Lru[str, Files](capacity=300_000, weight=lambda f: len(f.files) + 1)


def files_at(git: GitRepo, commit: str) -> Files:
    """The files of `commit`, computed once per commit (a commit never changes): from its
    first parent's, when those are known, by the changes between the two trees (what a
    commit costs: the folders it changed), else by walking the whole tree."""
    hit = _files.get(commit)
    if hit is not None:
        return hit
    info = git.commit(commit)
    parent = _files.get(info.parents[0]) if info.parents else None
    if parent is None:
        files = tuple(f for f in list_tree(git, commit, "", True) if not f.is_dir)
    else:
        files = _apply_changes(git, parent.files, git.commit(info.parents[0]).tree, info.tree)
    return _files.put(commit, Files(files, sum(f.size for f in files),
                                    frozenset(f.path for f in files)))


def _apply_changes(git: GitRepo, before: tuple[FileInfo, ...], old_tree: str,
                   new_tree: str) -> tuple[FileInfo, ...]:
    # Files walk in the order of their paths (`walk_key` of a file is its path).
    paths = [f.path for f in before]
    out = list(before)
    for old, new in git.changed_paths(old_tree, new_tree):
        if old is not None:
            i = bisect.bisect_left(paths, old)
            if i < len(paths) and paths[i] == old:
                del paths[i], out[i]
        if new is not None:
            i = bisect.bisect_left(paths, new.path)
            paths.insert(i, new.path)
            out.insert(i, describe(git, new))
    return tuple(out)


def list_files(git: GitRepo, commit: str) -> list[FileInfo]:
    return list(files_at(git, commit).files)


# Tree id -> the extensions (".safetensors", ...) of every file below it.
_suffixes = Lru[str, frozenset[str]](capacity=200_000)


def suffixes_below(git: GitRepo, tree_sha: str) -> frozenset[str]:
    """The extensions of the files in a tree and all its folders, cached by tree id: a
    commit opens again only the folders it changed."""
    hit = _suffixes.get(tree_sha)
    if hit is not None:
        return hit
    found: set[str] = set()
    for e in git.tree(tree_sha):
        if stat.S_ISDIR(e.mode):
            found |= suffixes_below(git, e.sha)
        else:
            dot = e.path.rfind(".")
            if dot >= 0:
                found.add(e.path[dot:])
    return _suffixes.put(tree_sha, frozenset(found))
