"""Reading a repo at a revision: resolving revisions, trees, paths-info, file metadata."""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from hver.errors import EntryNotFound, RevisionNotFound
from hver.storage.git import GitRepo, TreeEntry
from hver.storage.lfs import Pointer, parse_pointer

_SHA_RE = re.compile(r"^[0-9a-f]{40}$")
# An abbreviated commit id, as git and the Hub take one: 7 hex digits or more.
_SHORT_SHA_RE = re.compile(r"^[0-9a-fA-F]{7,39}$")


@dataclass(frozen=True)
class FileInfo:
    path: str
    oid: str  # git blob (or tree) sha1
    is_dir: bool
    size: int = 0  # the real content size, also for LFS files
    lfs: Pointer | None = None
    pointer_size: int = 0


class _BlobMetaCache:
    """Blob sha -> (size, pointer). Blobs are immutable, so entries never go stale."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._data: OrderedDict[str, tuple[int, Pointer | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, git: GitRepo, sha: str) -> tuple[int, Pointer | None]:
        with self._lock:
            hit = self._data.get(sha)
            if hit is not None:
                self._data.move_to_end(sha)
                return hit
        data = git.blob(sha)
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


def list_tree(git: GitRepo, commit: str, path: str, recursive: bool) -> Iterator[FileInfo]:
    """Entries below `path`; a file path yields that one file. EntryNotFound if missing."""
    base = get_entry(git, commit, path)
    if not base.is_dir:
        yield base
        return
    prefix = f"{path}/" if path else ""
    for entry in git.walk(base.oid, prefix, recursive):
        yield describe(git, entry)


def paths_info(git: GitRepo, commit: str, paths: Iterable[str]) -> list[FileInfo]:
    """Entries for the given paths; missing paths are left out."""
    tree = root_tree(git, commit)
    out: list[FileInfo] = []
    for p in paths:
        entry = git.lookup(tree, p.strip("/"))
        if entry is not None and entry.path:
            out.append(describe(git, entry))
    return out


def list_files(git: GitRepo, commit: str) -> list[FileInfo]:
    return [f for f in list_tree(git, commit, "", True) if not f.is_dir]
