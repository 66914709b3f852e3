"""Files uploaded through a web form: a multipart/form-data body, parsed as it arrives,
each file written to a blob-store staging file while it is hashed, then committed.

Nothing here holds a whole file in memory: `FormUpload.feed` takes the body a chunk at
a time (plain bytes), text fields are kept (size-bounded), file parts go straight to
disk. A form names a guard field (the CSRF token): no file byte is accepted before
that field has arrived and passed its check. `commit_upload` then treats each file as
an API client's preupload would be told (`commits.plan_uploads`): small text files
become git blobs, the rest LFS objects in the blob store, all in one commit. Git blobs
are read into memory to be committed, so at most `max_commit_body` bytes of them (what
the API takes inline in one commit) per upload; small files beyond that go to LFS too.
On any error nothing is committed and every staging file is removed.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from python_multipart import MultipartParser
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import parse_options_header

from hver.core import access
from hver.core.accounts import Actor
from hver.core.commits import AddFile, AddLfs, Operation, create_commit, plan_uploads
from hver.core.hub import Hub
from hver.core.lfs import register_object
from hver.core.tree import branch_ref
from hver.db.models import Repo
from hver.errors import BadRequest, PayloadTooLarge
from hver.names import validate_folder, validate_path
from hver.storage.blobs import BlobStore
from hver.storage.lfs import blob_key

SAMPLE_BYTES = 512  # what huggingface_hub sends to preupload as a file's sample


@dataclass
class StagedFile:
    """One uploaded file: its name in the form, and its bytes in a staging file."""

    name: str
    staged: Path
    size: int
    oid: str  # sha256 of the content
    sample: bytes


@dataclass(frozen=True)
class FormLimits:
    max_files: int
    max_fields: int
    max_field_size: int


class FormUpload:
    """A multipart/form-data body fed chunk by chunk (`feed`), then `finish`ed.

    `check_guard(value)` is called with the guard field's value when it arrives, or
    with None if a file part comes first; it raises to refuse the form. Whatever
    goes wrong, `abort` removes the staging files (it is called before any error
    leaves `feed` or `finish`).

    `feed` runs in a worker thread, and a cancelled request calls `abort` while it may
    still be running: `abort` never waits for it. It marks the form aborted and cleans
    up if no `feed` is running; a running `feed` sees the mark when it is done and
    cleans up itself, and any later `feed` ignores its chunk.
    """

    def __init__(self, store: BlobStore, boundary: bytes, limits: FormLimits,
                 guard: str, check_guard: Callable[[str | None], None]) -> None:
        self.store = store
        self.limits = limits
        self.guard = guard
        self.check_guard = check_guard
        self.guarded = False
        self.fields: dict[str, str] = {}
        self.files: list[StagedFile] = []
        self._names: set[str] = set()  # of self.files, to refuse a name sent twice
        self._ended = False
        self._lock = threading.Lock()  # held by `feed`, and by `abort` while it cleans
        self._aborted = False
        self._headers: dict[bytes, bytes] = {}
        self._header_name = bytearray()
        self._header_value = bytearray()
        # The part being read: a text field's name and bytes, or a file being written.
        self._field: str | None = None
        self._value = bytearray()
        self._file: BinaryIO | None = None
        self._file_name = ""
        self._file_path: Path | None = None
        self._hash = hashlib.sha256()
        self._size = 0
        self._sample = bytearray()
        self._skip = False
        try:
            self.parser = MultipartParser(boundary, {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            })
        except FormParserError as exc:
            raise BadRequest(f"The upload could not be read: {exc}", code="InvalidForm") from None

    # -- feeding ---------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        with self._lock:
            if self._aborted:
                return
            try:
                self.parser.write(chunk)
            except FormParserError as exc:
                self._aborted = True
                self._discard()
                raise BadRequest(f"The upload could not be read: {exc}",
                                 code="InvalidForm") from None
            except BaseException:
                self._aborted = True
                self._discard()
                raise
        if self._aborted:  # `abort` came while the chunk was being written
            self._discard_if_idle()

    def finish(self) -> None:
        """The body has ended: it must have been a complete form with the guard field."""
        try:
            if not self._ended:
                raise BadRequest("The upload ended before the form was complete.",
                                 code="InvalidForm")
            if not self.guarded:
                self.check_guard(None)
                self.guarded = True
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Remove every staging file, finished or not, now or when `feed` is done."""
        self._aborted = True
        self._discard_if_idle()

    def _discard_if_idle(self) -> None:
        # Whoever holds the lock now is an `abort` that cleans up, or a `feed` that
        # will see `_aborted` once it lets go: either way nothing is left behind.
        if self._lock.acquire(blocking=False):
            try:
                self._discard()
            finally:
                self._lock.release()

    def _discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._file_path is not None:
            self._file_path.unlink(missing_ok=True)
            self._file_path = None
        discard(self.files)
        self.files = []
        self._names.clear()

    # -- parser callbacks --------------------------------------------------------------

    def _part_begin(self) -> None:
        self._headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[bytes(self._header_name).lower()] = bytes(self._header_value).strip()
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition"))
        name = _text(options.get(b"name"), "field name")
        filename = options.get(b"filename")
        if filename is None:
            if len(self.fields) >= self.limits.max_fields:
                raise BadRequest("The form has too many fields.", code="InvalidForm")
            self._field, self._value = name, bytearray()
            return
        if not self.guarded:
            self.check_guard(None)
            self.guarded = True
        self._field = None
        self._file_name = _text(filename, "file name")
        # An empty file input sends a part with no name and no content: nothing chosen.
        self._skip = self._file_name == ""
        if self._skip:
            return
        validate_path(self._file_name)
        if self._file_name in self._names:
            raise BadRequest(f"{self._file_name} was sent twice.", code="InvalidForm")
        if len(self.files) >= self.limits.max_files:
            raise PayloadTooLarge(f"At most {self.limits.max_files} files per upload.")
        self._file, self._file_path = self.store.staging_file()
        self._hash = hashlib.sha256()
        self._size = 0
        self._sample = bytearray()

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._field is not None:
            self._value += data[start:end]
            if len(self._value) > self.limits.max_field_size:
                raise PayloadTooLarge(f"The form field {self._field!r} is too large.")
            return
        if self._file is None:
            if self._skip and end > start:
                raise BadRequest("A file part without a file name.", code="InvalidForm")
            return
        piece = data[start:end]
        self._file.write(piece)
        self._hash.update(piece)
        self._size += len(piece)
        if len(self._sample) < SAMPLE_BYTES:
            self._sample += piece[: SAMPLE_BYTES - len(self._sample)]

    def _part_end(self) -> None:
        if self._field is not None:
            name, value = self._field, _text(bytes(self._value), f"field {self._field!r}")
            self._field = None
            if name == self.guard and not self.guarded:
                self.check_guard(value)
                self.guarded = True
            self.fields.setdefault(name, value)
            return
        if self._file is None or self._file_path is None:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self.files.append(StagedFile(self._file_name, self._file_path, self._size,
                                     self._hash.hexdigest(), bytes(self._sample)))
        self._names.add(self._file_name)
        self._file = None
        self._file_path = None

    def _end(self) -> None:
        self._ended = True


def _text(raw: bytes | None, what: str) -> str:
    if raw is None:
        raise BadRequest(f"A form part has no {what}.", code="InvalidForm")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"The {what} is not valid UTF-8.", code="InvalidForm") from None


def discard(files: Sequence[StagedFile]) -> None:
    for f in files:
        f.staged.unlink(missing_ok=True)


def repo_path(folder: str, name: str) -> str:
    """Where an uploaded file goes: its name (which may hold folders) under `folder`."""
    folder = folder.strip().strip("/")
    path = f"{validate_folder(folder)}/{name}" if folder else name
    return validate_path(path)


def default_summary(count: int) -> str:
    return "Upload 1 file" if count == 1 else f"Upload {count} files"


def commit_upload(hub: Hub, actor: Actor | None, repo: Repo, revision: str, folder: str,
                  files: Sequence[StagedFile], summary: str, description: str) -> str:
    """Commit uploaded files to branch `revision` under `folder`; returns the commit id.

    Each file travels as preupload would have told a client: LFS for large or binary
    files (and paths that .gitattributes sends to LFS), a git blob otherwise, as long
    as the git blobs, read into memory for the commit, stay within `max_commit_body`
    bytes in all; the files beyond it go to LFS as well. The staging files are gone
    afterwards, committed or not.
    """
    try:
        access.require_write(actor, repo)
        if not files:
            raise BadRequest("Choose at least one file to upload.", code="NoFiles")
        paths = [repo_path(folder, f.name) for f in files]
        if len(set(paths)) != len(paths):
            raise BadRequest("Two files would have the same path.", code="InvalidForm")
        git = hub.git.open(repo.storage_key)
        branch_ref(git, revision)  # uploads go to a branch: fail before storing anything
        plans = plan_uploads(hub, repo, revision,
                             [(p, f.size, f.sample) for p, f in zip(paths, files, strict=True)],
                             git_ignore=None)
        ops: list[Operation] = []
        inline_left = hub.settings.max_commit_body
        for path, f, plan in zip(paths, files, plans, strict=True):
            inline = plan.mode != "lfs" and f.size <= inline_left
            if inline:
                inline_left -= f.size
                ops.append(AddFile(path, f.staged.read_bytes()))
            else:
                hub.blobs.put_staged(blob_key(f.oid), f.staged)
                register_object(hub, repo.id, f.oid, f.size)
                ops.append(AddLfs(path, f.oid, f.size))
        return create_commit(hub, actor, repo, revision, ops,
                             summary.strip() or default_summary(len(files)), description).sha
    finally:
        discard(files)
