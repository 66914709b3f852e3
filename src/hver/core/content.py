"""A repo file's content as a seekable, read-only file, wherever it is kept.

Git blobs are read from the object store, LFS objects from the blob store, and files
stored as Xet chunks are decoded range by range, so a reader that only needs a header
(a safetensors header, a parquet footer and its first row group, the first lines of a
csv) reads only those bytes, whatever the file's size.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from hver.core import xet as core_xet
from hver.core.hub import Hub
from hver.core.objects import held_object, open_blob
from hver.core.tree import FileInfo
from hver.errors import NotFound
from hver.storage.git import GitRepo


class _XetReader(io.RawIOBase):
    """Random access into a Xet file: each read decodes only the chunks it spans."""

    def __init__(self, hub: Hub, file: core_xet.XetFileInfo) -> None:
        self._hub = hub
        self._file = file
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._file.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        end = min(self._file.size, self._pos + len(buffer))
        if end <= self._pos:
            return 0
        n = 0
        view = memoryview(buffer).cast("B")
        for piece in core_xet.iter_content(self._hub, self._file, self._pos, end):
            view[n:n + len(piece)] = piece
            n += len(piece)
        self._pos += n
        return n


def open_file(hub: Hub, git: GitRepo, repo_id: int, info: FileInfo) -> BinaryIO:
    """The content of `info` (a file of the repo with primary key `repo_id`), seekable.

    NotFound when it is an LFS pointer to an object the repo does not hold
    (`core.objects`): other repos' copies of those bytes are never read.
    """
    if info.lfs is None:
        return io.BytesIO(git.blob(info.oid))
    obj = held_object(hub, repo_id, info.lfs.oid, info.lfs.size)
    xet_file = core_xet.get_file(hub, obj.xet_hash) if obj and obj.xet_hash else None
    if obj is None or (obj.xet_hash is not None and xet_file is None):
        raise NotFound(f"The content of {info.path} is not stored on this hub.",
                       code="EntryNotFound")
    if xet_file is None:
        return open_blob(hub, obj)
    return io.BufferedReader(_XetReader(hub, xet_file), buffer_size=1 << 20)
