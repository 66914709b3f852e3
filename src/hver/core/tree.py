"""Reading a repo at a revision: resolving revisions, trees, paths-info, file metadata."""

from __future__ import annotations

import bisect
import re
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from hver.core import tree_sizes
from hver.core.lru import Lru
from hver.errors import EntryNotFound, RevisionNotFound
from hver.storage.git import GitRepo, TreeEntry
from hver.storage.lfs import Pointer

_SHA_RE = re.compile(r"[0-9a-f]{40}\Z")
# An abbreviated commit id, as git and the Hub take one: 7 hex digits or more.
_SHORT_SHA_RE = re.compile(r"[0-9a-fA-F]{7,39}\Z")


class FileInfo(NamedTuple):
    """A file or folder of a tree. A named tuple: a listing makes one per entry, and a
    tuple is made several times faster than a frozen dataclass."""

    path: str
    oid: str  # git blob (or tree) sha1
    is_dir: bool
    size: int = 0  # the real content size, also for LFS files
    lfs: Pointer | None = None
    pointer_size: int = 0


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
    size, pointer = tree_sizes.blob_meta(git, entry.sha)
    if pointer is not None:
        return FileInfo(entry.path, entry.sha, False, pointer.size, pointer, size)
    return FileInfo(entry.path, entry.sha, False, size)


# (repository, commit id) -> its root tree's id: a commit never changes.
_roots = Lru[tuple[str, str], str](capacity=100_000)


def root_tree(git: GitRepo, commit: str) -> str:
    key = (str(git.path), commit)
    hit = _roots.get(key)
    if hit is None:
        hit = _roots.put(key, git.commit(commit).tree)
    return hit


def has_commit(git: GitRepo, sha: str) -> bool:
    """Whether `sha` is a commit of this repository (remembered once known)."""
    if _roots.get((str(git.path), sha)) is not None:
        return True
    return git.has_commit(sha)


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
    for folder, i, j in list_runs(git, commit, path, recursive, after):
        yield from folder.entries[i:j]


def list_runs(git: GitRepo, commit: str, path: str, recursive: bool,
              after: str | None = None) -> Iterator[Run]:
    """`list_tree` as runs of one folder's entries, `folder.entries[i:j]`: what takes a
    listing's page a folder at a time (each folder is the same object while it is cached,
    so what is made of it can be kept with it)."""
    base = get_entry(git, commit, path)
    if not base.is_dir:
        if after is None:
            yield Folder.of_file(base), 0, 1
        return
    yield from _runs(git, base.oid, f"{path}/" if path else "", recursive, after)


def page_runs(git: GitRepo, commit: str, path: str, recursive: bool, after: str | None,
              limit: int) -> tuple[list[Run], bool]:
    """The first `limit` entries of `list_tree` as runs, and whether more follow."""
    out: list[Run] = []
    room = limit
    runs = list_runs(git, commit, path, recursive, after)
    for folder, i, j in runs:
        if i == j:
            continue
        if room == 0:
            return out, True
        if j - i > room:
            out.append((folder, i, i + room))
            return out, True
        out.append((folder, i, j))
        room -= j - i
    return out, False


def entry_key(info: FileInfo) -> str:
    """Where an entry comes in `list_tree` order: its path, a folder's with a `/` after it.
    Git sorts a tree's names so (a folder `a` after a file `a-b`), and a walk keeps that
    order across levels, so these keys sort exactly as the entries are listed."""
    return f"{info.path}/" if info.is_dir else info.path


class Folder:
    """A tree's entries at a path: the tree's columns (`tree_sizes.Entries`), each entry's
    path and `entry_key`, made a folder at a time; the entries as `FileInfo`s made when
    first asked for (a listing's page is encoded from the columns)."""

    __slots__ = ("columns", "paths", "keys", "_entries")

    def __init__(self, prefix: str, columns: tree_sizes.Entries) -> None:
        self.columns = columns
        names = columns.names
        self.paths = (prefix + ("\0" + prefix).join(names)).split("\0") if names else []
        self.keys = list(self.paths)
        for d in columns.folders:
            self.keys[d] += "/"
        self._entries: tuple[FileInfo, ...] | None = None

    @classmethod
    def of_file(cls, info: FileInfo) -> Folder:
        lfs = {0: (info.lfs.oid, info.lfs.size)} if info.lfs is not None else {}
        size = info.pointer_size if info.lfs is not None else info.size
        return cls("", tree_sizes.Entries([info.path], [0o100644], [info.oid], [size], [], lfs))

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def entries(self) -> tuple[FileInfo, ...]:
        if self._entries is None:  # two threads may both make them: the same either way
            c, new = self.columns, tuple.__new__  # FileInfo(...) without its keywords
            made = [new(FileInfo, (path, sha, False, size, None, 0))
                    for path, sha, size in zip(self.paths, c.shas, c.sizes, strict=True)]
            for k in (*c.folders, *c.lfs):
                made[k] = self.entry(k)
            self._entries = tuple(made)
        return self._entries

    def entry(self, k: int) -> FileInfo:
        c = self.columns
        if stat.S_ISDIR(c.modes[k]):
            return FileInfo(self.paths[k], c.shas[k], True)
        pointed = c.lfs.get(k)
        if pointed is None:
            return FileInfo(self.paths[k], c.shas[k], False, c.sizes[k])
        return FileInfo(self.paths[k], c.shas[k], False, pointed[1], Pointer(*pointed), c.sizes[k])


Run = tuple[Folder, int, int]  # folder.entries[i:j]

# (tree id, path) -> the folder described, weighed in entries (~350 bytes each).
_folders = Lru[tuple[str, str], Folder](capacity=250_000, weight=lambda f: len(f) + 1)


def _folder(git: GitRepo, tree_sha: str, prefix: str) -> Folder:
    hit = _folders.get((tree_sha, prefix))
    if hit is None:
        hit = _folders.put((tree_sha, prefix), Folder(prefix, tree_sizes.entries(git, tree_sha)))
    return hit


def _runs(git: GitRepo, tree_sha: str, prefix: str, recursive: bool,
          after: str | None) -> Iterator[Run]:
    folder = _folder(git, tree_sha, prefix)
    start, end = 0, len(folder)
    if after is not None:
        start = bisect.bisect_right(folder.keys, after)
        if recursive and start > 0:
            key = folder.keys[start - 1]
            if key.endswith("/") and after.startswith(key):  # resume inside that folder
                yield from _runs(git, folder.columns.shas[start - 1], key, True, after)
    if recursive:  # each folder's entries right after it
        folders = folder.columns.folders
        for d in folders[bisect.bisect_left(folders, start):]:
            yield folder, start, d + 1
            yield from _runs(git, folder.columns.shas[d], folder.keys[d], True, None)
            start = d + 1
    if start < end:
        yield folder, start, end


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
