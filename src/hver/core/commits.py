"""Commits: operations -> tree -> commit -> ref compare-and-swap.

A commit lands whole or not at all: every object is written before the ref
moves, and the ref moves only if it still points where the commit was built
from. Without `parent_commit`, a lost race rebuilds on the new head, so two
writers both land in some order; with it, a moved head is a conflict.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pathspec

from hver.community import pulls, threads
from hver.core.accounts import Actor
from hver.core.hub import Hub
from hver.core.objects import held_objects, promote
from hver.core.repos import DEFAULT_BRANCH, author_line, refresh_index
from hver.core.tree import get_file, paths_info, resolve_revision
from hver.db.models import Repo
from hver.errors import (
    BadRequest,
    Conflict,
    EntryNotFound,
    LfsObjectMissing,
    PayloadTooLarge,
    PreconditionFailed,
    RevisionNotFound,
)
from hver.names import validate_folder, validate_path
from hver.storage.git import FILE_MODE, GitRepo
from hver.storage.lfs import Pointer, check_oid, parse_pointer

MAX_CAS_ATTEMPTS = 100


@dataclass(frozen=True)
class AddFile:
    path: str
    content: bytes


@dataclass(frozen=True)
class AddLfs:
    path: str
    oid: str
    size: int | None = None  # absent on copies: taken from the stored object


@dataclass(frozen=True)
class DeleteFile:
    path: str


@dataclass(frozen=True)
class DeleteFolder:
    path: str


Operation = AddFile | AddLfs | DeleteFile | DeleteFolder


def validate_operation(op: Operation) -> Operation:
    if isinstance(op, DeleteFolder):
        return DeleteFolder(validate_folder(op.path))
    validate_path(op.path)
    if isinstance(op, AddLfs):
        check_oid(op.oid)
        if op.size is not None and (not isinstance(op.size, int) or op.size < 0):
            raise BadRequest(f"Invalid LFS size for {op.path!r}.")
    return op


def decode_base64(data: str, path: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (ValueError, TypeError):
        raise BadRequest(f"Invalid base64 content for {path!r}.") from None


@dataclass(frozen=True)
class Landed:
    """A commit that landed, and the pull request it went to (None: a branch)."""

    sha: str
    pr_num: int | None = None


def create_commit(
    hub: Hub,
    actor: Actor | None,
    repo: Repo,
    revision: str,
    operations: Sequence[Operation],
    summary: str,
    description: str = "",
    parent_commit: str | None = None,
    create_pr: bool = False,
) -> Landed:
    """Apply `operations` on top of branch `revision` (or of a pull request's ref), or with
    `create_pr` open a pull request off it holding them."""
    target = pulls.commit_target(hub, actor, repo, revision, create_pr)
    assert actor is not None
    settings = hub.settings
    if len(operations) > settings.max_commit_files:
        raise PayloadTooLarge(
            f"Too many operations in one commit: {len(operations)} > {settings.max_commit_files}."
        )
    ops = [_pointer_as_lfs(validate_operation(op)) for op in operations]
    for op in ops:
        if isinstance(op, AddFile) and len(op.content) > settings.max_inline_file_size:
            raise PayloadTooLarge(
                f"{op.path} is {len(op.content)} bytes, over the "
                f"{settings.max_inline_file_size}-byte limit for regular files: upload it "
                "with LFS."
            )
    git = hub.git.open(repo.storage_key)
    named = [op for op in ops if isinstance(op, AddLfs)]
    lfs_sizes = _check_lfs_objects(hub, repo, named, actor.id)
    oids = {op.oid for op in named}

    # Blobs are content-addressed: write them once, whatever the number of attempts.
    blob_ids: dict[int, str] = {}
    for i, op in enumerate(ops):
        if isinstance(op, AddFile):
            blob_ids[i] = git.add_blob(op.content)
        elif isinstance(op, AddLfs):
            blob_ids[i] = git.add_blob(Pointer(op.oid, lfs_sizes[op.oid]).encode())

    message = summary.strip() or "Update files"
    if description.strip():
        message = f"{message}\n\n{description.strip()}"
    author = author_line(actor)

    def build(head: str) -> str:
        if parent_commit is not None and parent_commit != head:
            raise PreconditionFailed(
                "The branch was updated since you opened this page. Please refresh and try "
                "again."
            )
        tree = build_tree(git, git.commit(head).tree, ops, blob_ids)
        return git.write_commit(tree, [head], message, author)

    if target.ref is None:
        assert target.base is not None
        sha = build(_head(git, target.base))
        thread = pulls.open_pull_request(
            hub, actor, repo, threads.title_from(summary), threads.text_from(description),
            base=target.base, head=sha, status="open", promote=oids)
        return Landed(sha, thread.num)
    ref = target.ref
    for _ in range(MAX_CAS_ATTEMPTS):
        head = _head(git, ref)
        sha = build(head)
        if target.pr_num is not None:
            if pulls.advance(hub, actor, repo, target.pr_num, head, sha, oids):
                break
            continue
        if oids:  # what the author uploaded as a contributor, held from this commit on
            with hub.db.write() as session:
                promote(session, repo.id, actor.id, oids)
        if git.cas_ref(ref, head, sha):
            break
    else:
        raise Conflict("The branch is moving too fast; try again.")
    if ref == f"refs/heads/{DEFAULT_BRANCH}":
        refresh_index(hub, repo, git)
    return Landed(sha, target.pr_num)


def _head(git: GitRepo, ref: str) -> str:
    head = git.ref(ref)
    if head is None:  # deleted since the commit was authorised
        raise RevisionNotFound(f"Invalid rev id: {ref.removeprefix('refs/heads/')}")
    return head


def _pointer_as_lfs(op: Operation) -> Operation:
    """A regular file whose content is an LFS pointer names that object, so it is held to
    the rules of one: the repo must hold the object. It is never stored as text that a
    reader would take for a pointer to someone else's bytes."""
    if isinstance(op, AddFile):
        pointer = parse_pointer(op.content)
        if pointer is not None:
            return AddLfs(op.path, pointer.oid, pointer.size)
    return op


def _check_lfs_objects(hub: Hub, repo: Repo, ops: list[AddLfs],
                       author: int) -> dict[str, int]:
    """Sizes of the LFS objects the operations name; the repo must hold each one, or the
    author have uploaded it to the repo as a contributor."""
    if not ops:
        return {}
    held = held_objects(hub, repo.id, {op.oid for op in ops}, contributor=author)
    for op in ops:
        obj = held.get(op.oid)
        if obj is None:
            raise LfsObjectMissing(
                f"LFS object {op.oid} for {op.path} was never uploaded to this repo; "
                "upload it before committing."
            )
        if op.size is not None and op.size != obj.size:
            raise BadRequest(
                f"LFS object {op.oid} for {op.path} is {obj.size} bytes, not {op.size}."
            )
    return {oid: obj.size for oid, obj in held.items()}


def build_tree(git: GitRepo, parent_tree: str, ops: Sequence[Operation],
               blob_ids: dict[int, str]) -> str:
    """The tree of `parent_tree` with `ops` applied in order (`blob_ids`: the blob of each
    add, by index), rewriting only the folders along the changed paths.

    The operations act on the flat map of file paths (`_apply`), which may hold a file and
    a folder of the same name for a while, as long as no clash is left at the end. The
    first edit that would make one here sends the whole commit to the flat build
    (`build_tree_flat`), which gives the same tree, or the same error, as ever."""
    editor = git.edit_tree(parent_tree)
    for i, op in enumerate(ops):
        if isinstance(op, (AddFile, AddLfs)):
            if not editor.put(op.path, FILE_MODE, blob_ids[i]):
                return build_tree_flat(git, parent_tree, ops, blob_ids)
        elif not ((isinstance(op, DeleteFile) and editor.remove_file(op.path))
                  or editor.remove_folder(op.path)):
            what = "file" if isinstance(op, DeleteFile) else "folder"
            raise EntryNotFound(f"Cannot delete {what} {op.path}: no such {what}.")
    return editor.write()


def build_tree_flat(git: GitRepo, parent_tree: str, ops: Sequence[Operation],
                    blob_ids: dict[int, str]) -> str:
    """`build_tree` through the flat map of every file: reads and writes the whole tree."""
    files = git.flatten(parent_tree)
    for i, op in enumerate(ops):
        _apply(files, op, blob_ids.get(i))
    _check_no_file_folder_clash(files)
    return git.write_tree(files)


def _apply(files: dict[str, tuple[int, str]], op: Operation, blob: str | None) -> None:
    if isinstance(op, (AddFile, AddLfs)):
        assert blob is not None
        files[op.path] = (FILE_MODE, blob)
        return
    if isinstance(op, DeleteFile) and files.pop(op.path, None) is not None:
        return
    # A folder, named by `deletedFolder` or (as the Hub also takes it) by `deletedFile`.
    prefix = f"{op.path}/"
    doomed = [p for p in files if p.startswith(prefix)]
    if not doomed:
        what = "file" if isinstance(op, DeleteFile) else "folder"
        raise EntryNotFound(f"Cannot delete {what} {op.path}: no such {what}.")
    for p in doomed:
        del files[p]


def _check_no_file_folder_clash(files: dict[str, tuple[int, str]]) -> None:
    for path in files:
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in files:
                raise BadRequest(
                    f"Cannot have both a file {parent!r} and a file {path!r} inside it."
                )


# -- preupload ------------------------------------------------------------------


@dataclass(frozen=True)
class UploadPlan:
    path: str
    mode: str  # "lfs" | "regular"
    should_ignore: bool
    oid: str | None


def _gitattributes_lfs(git: GitRepo, commit: str) -> pathspec.PathSpec[Any] | None:
    patterns = []
    for line in _read_text(git, commit, ".gitattributes").splitlines():
        parts = line.split()
        if len(parts) >= 2 and not parts[0].startswith("#") and "filter=lfs" in parts[1:]:
            patterns.append(parts[0])
    return pathspec.PathSpec.from_lines("gitwildmatch", patterns) if patterns else None


def _read_text(git: GitRepo, commit: str, path: str) -> str:
    try:
        info = get_file(git, commit, path)
    except EntryNotFound:
        return ""
    if info.lfs is not None:
        return ""
    return git.blob(info.oid).decode("utf-8", "replace")


def plan_uploads(
    hub: Hub, repo: Repo, revision: str, files: Sequence[tuple[str, int, bytes]],
    git_ignore: str | None,
) -> list[UploadPlan]:
    """How each file should travel: 'lfs' for large or binary files, else 'regular'.

    `files` holds (path, size, first bytes). Also returns the current oid of each
    path at `revision` (sha256 for LFS files, git blob id otherwise) so the
    client can skip unchanged files.
    """
    git = hub.git.open(repo.storage_key)
    try:
        commit: str | None = resolve_revision(git, revision)
    except RevisionNotFound:  # a branch about to be created: plan against nothing
        commit = None
    lfs = _gitattributes_lfs(git, commit) if commit else None
    ignore_text = git_ignore if git_ignore is not None else (
        _read_text(git, commit, ".gitignore") if commit else ""
    )
    ignore = pathspec.PathSpec.from_lines("gitwildmatch", ignore_text.splitlines())
    existing: dict[str, str] = {}
    if commit is not None:
        for info in paths_info(git, commit, [p for p, _, _ in files]):
            if not info.is_dir:
                existing[info.path] = info.lfs.oid if info.lfs else info.oid
    out = []
    for path, size, sample in files:
        validate_path(path)
        is_lfs = (
            size >= hub.settings.max_inline_file_size
            or b"\x00" in sample
            or (lfs is not None and lfs.match_file(path))
        )
        out.append(UploadPlan(
            path=path,
            mode="lfs" if is_lfs and size > 0 else "regular",
            should_ignore=bool(ignore.match_file(path)),
            oid=existing.get(path),
        ))
    return out
