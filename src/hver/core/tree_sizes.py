"""A tree's entries with their sizes (and LFS pointers), kept on disk by tree id.

A listing needs every file's size, which git keeps only in the blob: reading 100,000 blobs
through dulwich takes seconds. A tree never changes under its id, so what its entries are
and how big each one is never changes either: computed once, it is written to a file of
its own (`GitRepo.cache_dir`/trees/ab/cdef...), and a fresh server reads one small file a
folder instead of every blob (and of dulwich's tree objects).

The files are a cache, safe to lose: written to a temporary name and renamed, never
fsynced, and checked when read. A record names its tree and carries a SHA-1 of its body
(a torn or changed file fails it); one that fails is ignored and written again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import stat
import tempfile
from dataclasses import dataclass

from hver.core.lru import Lru
from hver.storage.git import CACHE_TMP_PREFIX, GitRepo
from hver.storage.lfs import Pointer, parse_pointer

log = logging.getLogger("hver")

MAGIC = b"hver-tree-v2"


@dataclass(frozen=True)
class Entries:
    """A tree's entries in git's order, as columns: a record is read in a few steps for the
    whole tree (splits and JSON arrays), none per entry."""

    names: list[str]
    modes: list[int]
    shas: list[str]
    sizes: list[int]  # the blob's size (an LFS pointer's own), 0 for a folder
    folders: list[int]  # the indexes of the folders
    lfs: dict[int, tuple[str, int]]  # index -> (oid, size) of each LFS pointer

    def __len__(self) -> int:
        return len(self.names)


# Blob id -> (size, pointer): blobs never change. Room for the new files of many commits;
# a listing reads whole records and never goes through here for what they hold.
_blobs = Lru[str, tuple[int, Pointer | None]](capacity=250_000)


def blob_meta(git: GitRepo, sha: str) -> tuple[int, Pointer | None]:
    """A blob's size and the LFS pointer it is, if it is one; read once per blob id."""
    hit = _blobs.get(sha)
    if hit is None:
        data = git.blob_data(sha)
        hit = _blobs.put(sha, (len(data), parse_pointer(data)))
    return hit


def entries(git: GitRepo, tree_sha: str) -> Entries:
    """The entries of a tree, each with its size: from the tree's record when there is a
    sound one, else from the tree and its blobs (and the record written)."""
    path = record_path(git, tree_sha)
    found = read_record(path, tree_sha)
    if found is None:
        found = _compute(git, tree_sha)
        write_record(path, tree_sha, found)
    return found


def _compute(git: GitRepo, tree_sha: str) -> Entries:
    found = Entries([], [], [], [], [], {})
    for k, e in enumerate(git.tree(tree_sha)):
        found.names.append(e.path)
        found.modes.append(e.mode)
        found.shas.append(e.sha)
        if stat.S_ISDIR(e.mode) or stat.S_IFMT(e.mode) == _GITLINK:
            found.sizes.append(0)  # a submodule's commit is not in this repo
            if stat.S_ISDIR(e.mode):
                found.folders.append(k)
            continue
        size, pointer = blob_meta(git, e.sha)
        found.sizes.append(size)
        if pointer is not None:
            found.lfs[k] = (pointer.oid, pointer.size)
    return found


_GITLINK = 0o160000


def record_path(git: GitRepo, tree_sha: str) -> str:
    return f"{git.cache_dir}/trees/{tree_sha[:2]}/{tree_sha[2:]}"


def encode(tree_sha: str, found: Entries) -> bytes:
    body = json.dumps({
        "names": "\0".join(found.names), "modes": found.modes, "shas": ",".join(found.shas),
        "sizes": found.sizes, "folders": found.folders,
        "lfs": [[k, oid, size] for k, (oid, size) in found.lfs.items()],
    }, separators=(",", ":")).encode()
    return b"%s %s %s\n%s" % (MAGIC, tree_sha.encode(), hashlib.sha1(body).hexdigest().encode(),
                              body)


def decode(raw: bytes, tree_sha: str) -> Entries | None:
    """The entries a record holds; None unless it is whole (its body's SHA-1), of this
    version, filed under this tree, and of one length in every column. Checked so, a
    record is what `encode` wrote for this tree or nothing: damage (a torn write, a changed
    byte) never gives a wrong size."""
    head, newline, body = raw.partition(b"\n")
    if not newline or head.split(b" ") != [MAGIC, tree_sha.encode(),
                                           hashlib.sha1(body).hexdigest().encode()]:
        return None
    try:
        data = json.loads(body)
        names, shas = data["names"], data["shas"]
        found = Entries(names.split("\0") if names else [], data["modes"],
                        shas.split(",") if shas else [], data["sizes"], data["folders"],
                        {k: (oid, size) for k, oid, size in data["lfs"]})
    except (ValueError, TypeError, KeyError, AttributeError):  # not a record of this shape
        return None
    n = len(found.names)
    if not (len(found.modes) == len(found.shas) == len(found.sizes) == n
            and all(0 <= k < n for k in found.folders) and all(0 <= k < n for k in found.lfs)):
        return None
    return found


def read_record(path: str, tree_sha: str) -> Entries | None:
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError:  # none yet (or unreadable): computed again
        return None
    found = decode(raw, tree_sha)
    if found is None:
        log.warning("ignoring the damaged tree record %s", path)
    return found


def write_record(path: str, tree_sha: str, found: Entries) -> None:
    """Write a record under a temporary name, then rename it into place: a reader sees a
    whole record or none. Failing to write (a full or read-only disk) costs only time."""
    data = encode(tree_sha, found)
    try:
        folder = os.path.dirname(path)
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=CACHE_TMP_PREFIX, dir=folder)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as e:
        global _write_failed
        # Once at warning (a full or read-only disk fails every record alike), then quietly.
        log.log(logging.DEBUG if _write_failed else logging.WARNING,
                "could not write the tree record %s: %s", path, e)
        _write_failed = True


_write_failed = False


