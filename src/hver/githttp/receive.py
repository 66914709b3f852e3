"""The smart protocol's push side (`git-receive-pack`): a push lands as commits through
the API do, or not at all.

1. The pack goes into a quarantine object store: a temporary directory whose
   `alternates` name the repository's objects, so that thin packs resolve their bases.
   Nothing of a refused push ever enters the repository, so no byte reaches a reader
   through a commit id that no ref accepted.
2. Every ref update is decided before any ref moves (`_decide`): the ref's kind
   (`refs/heads/*`, `refs/tags/*`, `refs/pr/N`), who may move it (writers; a pull
   request's ref by `hver.community.pulls.commit_target`, the one decision for commits),
   a rewrite only by a writer, never the default branch deleted, and the content of every
   commit new to the repo: each added or changed file's path as the API accepts it, no
   file over `max_inline_file_size` outside LFS (the Hub's hint to use git-lfs), no
   symbolic link or submodule, and every LFS pointer naming an object this repo holds
   or the pusher uploaded to it (the possession rule).
3. The quarantined pack moves into the repository, then each accepted ref moves by
   compare-and-swap; a pull request's through `pulls.advance` (recorded on its thread),
   and the default branch's listing index is refreshed, as after any commit.

With the `atomic` capability (`git push --atomic`), one refused ref refuses them all.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, cast

from dulwich.diff_tree import tree_changes
from dulwich.errors import (
    ApplyDeltaError,
    ChecksumMismatch,
    GitProtocolError,
    MissingCommitError,
    ObjectFormatException,
)
from dulwich.lru_cache import LRUCache
from dulwich.object_store import BaseObjectStore, DiskObjectStore
from dulwich.objects import Blob, Commit, ObjectID, ShaFile, Tag, Tree
from dulwich.pack import PackHint, UnresolvedDeltas, write_pack_from_container
from dulwich.protocol import CAPABILITY_ATOMIC, ReceivableProtocol
from dulwich.refs import Ref
from dulwich.server import ReceivePackHandler
from dulwich.walk import Walker

from hver.community import pulls
from hver.core import access
from hver.core.accounts import Actor
from hver.core.hub import Hub
from hver.core.objects import held_objects, promote
from hver.core.repos import DEFAULT_BRANCH, refresh_index
from hver.db.models import Repo
from hver.errors import HverError
from hver.githttp.service import MALFORMED, OneRepo
from hver.names import validate_branch, validate_path
from hver.storage.git import GitRepo
from hver.storage.lfs import Pointer, parse_pointer

RECEIVE_PACK = "git-receive-pack"
ZERO = "0" * 40
_HEX_ID = re.compile(r"[0-9a-f]{40}")
GITLINK = 0o160000
PARSED_KEPT = 4096  # trees and commits a push keeps parsed (a few MB)
LFS_HINT = ("Your push was rejected because it contains files larger than {limit} MiB "
            "({path}). Please use https://git-lfs.github.com/ to store large files.")


class Refused(Exception):
    """One ref update refused, with the reason git shows the pusher."""


@dataclass
class _Update:
    ref: str
    old: str | None
    new: str | None
    pr_num: int | None = None
    oids: set[str] = field(default_factory=set)  # LFS objects its new commits name
    # What it brings that the repo lacks: all of the push that may enter the repo.
    objects: list[tuple[ObjectID, PackHint | None]] = field(default_factory=list)


class _Push:
    def __init__(self, hub: Hub, actor: Actor, repo: Repo, git: GitRepo) -> None:
        self.hub, self.actor, self.repo, self.git = hub, actor, repo, git
        self.existing = _commits(git)
        # What this push has read, each object once: types, fsck-checked objects, blobs'
        # sizes and pointers, and which objects the repository already has.
        self.types: dict[ObjectID, int] = {}
        self.checked: set[ObjectID] = set()
        self.blobs: dict[ObjectID, tuple[int, Pointer | None]] = {}
        self.in_repo: dict[ObjectID, bool] = {}

    # -- deciding ---------------------------------------------------------------------
    def decide(self, store: BaseObjectStore, ref: str, old: str | None,
               new: str | None) -> _Update:
        update = _Update(ref, old, new)
        if any(sha is not None and not _HEX_ID.fullmatch(sha) for sha in (old, new)):
            raise Refused("malformed command: object ids are 40 lower-case hex digits")
        if self.git.ref(ref) != old:
            raise Refused("fetch first: the ref moved since you fetched")
        kind = self._kind(update)
        try:
            if update.pr_num is not None:
                pulls.commit_target(self.hub, self.actor, self.repo, ref, False)
            else:
                access.require_write(self.actor, self.repo)
        except HverError as exc:
            raise Refused(str(exc)) from None
        if new is None:
            if kind == "pr":
                raise Refused("pull request refs are not deleted by pushes")
            if ref == f"refs/heads/{DEFAULT_BRANCH}":
                raise Refused("the default branch cannot be deleted")
            return update
        try:
            commit = self._commit(store, new, kind)
            # A writer may rewrite history (a forced push); for anyone else a rewrite is
            # refused, which needs the walk: writers skip it.
            if (old is not None and kind != "tag" and not access.can_write(self.actor, self.repo)
                    and not self._descends(store, commit, old)):
                raise Refused("non-fast-forward: only the repo's writers may rewrite history")
            update.objects, update.oids = self._check_update(store, ObjectID(new.encode()),
                                                                commit)
        except (KeyError, AttributeError, AssertionError, ObjectFormatException,
                MissingCommitError) as exc:
            raise Refused(f"malformed objects in the push ({type(exc).__name__})") from None
        return update

    def _check_update(self, store: BaseObjectStore, tip: ObjectID, head: Commit
                      ) -> tuple[list[tuple[ObjectID, PackHint | None]], set[str]]:
        """One walk over what an update brings, from `tip` (`head`, or a tag of it) to
        what the repo has. Returns the objects it brings (all of it that may enter the
        repo) and the LFS oids its new commits name.

        - Every object new to the repo is well formed (git fsck's rules: sorted unique tree
          entries, no `/`, `.`, `..` or `.git` names, known modes) and of the type what
          names it says: a tree's folders are trees and its files blobs, a commit's tree a
          tree and its parents commits; no submodule, no symbolic link.
        - Every commit new to the repo's refs adds or changes only files whose path the
          API accepts, none over `max_inline_file_size` outside LFS (the Hub's hint to use
          git-lfs), and LFS pointers only to objects the repo holds or the pusher
          uploaded to it (the possession rule).

        Objects are parsed once and the latest few thousand kept (`_Parsed`): a commit's
        trees, read for their checks, are what its diff against its parent reads next."""
        parsed = _Parsed(store)
        brought: list[tuple[ObjectID, PackHint | None]] = []
        mine: set[ObjectID] = set()  # brought by this update
        pointers: dict[str, tuple[int, str]] = {}  # oid -> (size, path)
        limit = self.hub.settings.max_inline_file_size

        def visit(sha: ObjectID, type_num: int, what: str) -> ShaFile | None:
            """Check an object that `what` names as of type `type_num`: the object, if it
            is new to the repo (and this update), else None."""
            if sha in mine or self._held(sha):
                if self._type(store, sha, what) != type_num:
                    raise Refused(f"{what} is not a {_TYPE_NAMES.get(type_num, '?')}")
                return None
            if type_num == Blob.type_num:
                self._blob(store, sha, what)  # its type checked, its size and pointer read
                obj: ShaFile | None = None
            else:
                try:
                    obj = parsed[sha]
                except KeyError:
                    raise Refused(f"{what} is missing from the push") from None
                if obj.type_num != type_num:
                    raise Refused(f"{what} is not a {_TYPE_NAMES.get(type_num, '?')}")
                if sha not in self.checked:
                    obj.check()
                    self.checked.add(sha)
            mine.add(sha)
            brought.append((sha, None))
            return obj

        def walk_tree(root: ObjectID, what: str) -> None:
            stack = [(root, what)]
            while stack:
                sha, name = stack.pop()
                tree = visit(sha, Tree.type_num, name)
                if tree is None:
                    continue
                assert isinstance(tree, Tree)
                for item in tree.iteritems():
                    if stat.S_ISDIR(item.mode):
                        stack.append((item.sha, f"folder {item.path!r}"))
                    elif item.mode == GITLINK or stat.S_ISLNK(item.mode):
                        label = item.path.decode("utf-8", "replace")
                        raise Refused(f"{label}: submodules and symbolic links are not "
                                      "accepted")
                    else:
                        visit(item.sha, Blob.type_num, f"file {item.path!r}")

        sha = tip
        while self._type(store, sha, "the pushed object") == Tag.type_num:  # a tag's chain
            visit(sha, Tag.type_num, "a tag")
            kind, sha = cast(Tag, parsed[sha]).object
            if self._type(store, sha, "a tag's object") != kind.type_num:
                raise Refused(f"a tag's object is not a {_TYPE_NAMES.get(kind.type_num, '?')}")

        for entry in Walker(cast(BaseObjectStore, parsed), [head.id], exclude=self.existing):
            commit = entry.commit
            visit(commit.id, Commit.type_num, "a commit")
            if not self._held(commit.id):
                walk_tree(commit.tree, "a commit's tree")
                for parent in commit.parents:
                    visit(parent, Commit.type_num, "a commit's parent")
            parent_tree = (cast(Commit, parsed[commit.parents[0]]).tree
                           if commit.parents else None)
            for change in tree_changes(cast(BaseObjectStore, parsed), parent_tree,
                                       commit.tree):
                new = change.new
                if new is None or new.path is None or new.sha is None or new.mode is None:
                    continue  # a deletion
                path = new.path.decode("utf-8", "surrogateescape")
                try:
                    validate_path(path)
                except HverError as exc:
                    raise Refused(f"{exc} (in commit {commit.id.decode()[:12]})") from None
                if new.mode == GITLINK or stat.S_ISLNK(new.mode):
                    raise Refused(f"{path}: submodules and symbolic links are not accepted")
                size, pointer = self._blob(store, new.sha, f"file {path!r}")
                if pointer is not None:
                    seen = pointers.setdefault(pointer.oid, (pointer.size, path))
                    if seen[0] != pointer.size:
                        raise Refused(f"LFS object {pointer.oid} is named with two sizes "
                                      f"({seen[1]}: {seen[0]}, {path}: {pointer.size})")
                elif size > limit:
                    raise Refused(LFS_HINT.format(limit=limit // (1024 * 1024), path=path))
        if pointers:
            held = held_objects(self.hub, self.repo.id, pointers, contributor=self.actor.id)
            for oid, (size, path) in pointers.items():
                obj_ = held.get(oid)
                if obj_ is None:
                    raise Refused(f"LFS object {oid} ({path}) was never uploaded to this "
                                  "repo: push it with git-lfs first (git lfs push --all)")
                if obj_.size != size:
                    raise Refused(f"LFS object {oid} ({path}) is {obj_.size} bytes, "
                                  f"not {size}")
        return brought, set(pointers)

    def _held(self, sha: ObjectID) -> bool:
        """Whether the repository has the object (and so all it reaches)."""
        known = self.in_repo.get(sha)
        if known is None:
            target = self.git.repo.object_store
            known = self.in_repo[sha] = target.contains_packed(sha) or target.contains_loose(sha)
        return known

    def _type(self, store: BaseObjectStore, sha: ObjectID, what: str) -> int:
        if sha not in self.types:
            try:
                self.types[sha] = store.get_raw(sha)[0]
            except KeyError:
                raise Refused(f"{what} is missing from the push") from None
        return self.types[sha]

    def _blob(self, store: BaseObjectStore, sha: ObjectID, what: str
              ) -> tuple[int, Pointer | None]:
        """A blob's size, and the LFS pointer it is if it is one: read once per push."""
        facts = self.blobs.get(sha)
        if facts is None:
            try:
                type_num, data = store.get_raw(sha)
            except KeyError:
                raise Refused(f"{what} is missing from the push") from None
            self.types[sha] = type_num
            if type_num != Blob.type_num:
                raise Refused(f"{what} is not a blob")
            facts = self.blobs[sha] = (len(data), parse_pointer(data))
        return facts

    def _kind(self, update: _Update) -> str:
        ref = update.ref
        match = pulls.PR_REF.fullmatch(ref)
        if match is not None:
            update.pr_num = int(match.group(1))
            return "pr"
        for prefix, kind in (("refs/heads/", "branch"), ("refs/tags/", "tag")):
            if ref.startswith(prefix):
                try:
                    validate_branch(ref.removeprefix(prefix))
                except HverError as exc:
                    raise Refused(str(exc)) from None
                return kind
        raise Refused("only refs/heads/*, refs/tags/* and refs/pr/N are accepted")

    @staticmethod
    def _commit(store: BaseObjectStore, sha: str, kind: str) -> Commit:
        try:
            obj = store[ObjectID(sha.encode())]
            while isinstance(obj, Tag) and kind == "tag":
                obj = store[obj.object[1]]
        except KeyError:
            raise Refused(f"missing object {sha}") from None
        if not isinstance(obj, Commit):
            raise Refused("a ref must name a commit (or, for a tag, a tag of one)")
        return obj

    @staticmethod
    def _descends(store: BaseObjectStore, commit: Commit, old: str) -> bool:
        """Whether `old` is an ancestor of `commit` (a fast-forward)."""
        target = ObjectID(old.encode())
        return any(entry.commit.id == target for entry in Walker(store, [commit.id]))

    # -- applying ---------------------------------------------------------------------
    def apply(self, updates: list[_Update]) -> None:
        """Move the refs of `updates`, all or none: each must still hold the value the
        push was decided on. What a pull request records (its commit events) and what the
        pusher uploaded as a contributor (held from now on) are written in the same
        transaction, which the ref moves end: refused, no ref moves and nothing is
        recorded. (The objects, stored before, stay in the repository where no ref
        reaches them, as with git: they passed every check of the push.)"""
        git = self.git

        def move() -> None:
            if not git.update_refs([(u.ref, u.old, u.new) for u in updates]):
                raise Refused("fetch first: the ref moved meanwhile")

        try:
            if not any(u.pr_num is not None or u.oids for u in updates):
                move()  # nothing to record: no transaction held while the refs move
            else:
                with self.hub.db.write() as session:
                    for update in updates:
                        if update.pr_num is not None:
                            assert update.new is not None
                            pulls.take_commit(session, git, self.actor, self.repo,
                                              update.pr_num, update.new)
                        if update.oids:
                            promote(session, self.repo.id, self.actor.id, update.oids)
                    move()
        except HverError as exc:
            raise Refused(str(exc)) from None
        if any(u.ref == f"refs/heads/{DEFAULT_BRANCH}" for u in updates):
            refresh_index(self.hub, self.repo, git)


class _Parsed:
    """An object store's objects, each parsed once while it is among the latest
    `PARSED_KEPT` read: what a push's walk and its diffs read over and over."""

    def __init__(self, store: BaseObjectStore) -> None:
        self.store = store
        self.kept: LRUCache[ObjectID, ShaFile] = LRUCache(PARSED_KEPT)

    def __getitem__(self, sha: ObjectID) -> ShaFile:
        obj = self.kept.get(sha)
        if obj is None:
            obj = self.kept[sha] = self.store[sha]
        return obj


_TYPE_NAMES = {Blob.type_num: "blob", Tree.type_num: "tree", Commit.type_num: "commit",
               Tag.type_num: "tag"}


def _sha(raw: bytes) -> str | None:
    """An object id of a command line; None for git's zero id (no object)."""
    sha = raw.decode("ascii", "replace")
    return None if sha == ZERO else sha


def _commits(git: GitRepo) -> list[ObjectID]:
    """The commits the repo's refs name (tags peeled): what a push's walk stops at."""
    store = git.repo.object_store
    out = []
    for sha in set(git.repo.refs.as_dict().values()):
        try:
            obj = store[sha]
            while isinstance(obj, Tag):
                obj = store[obj.object[1]]
        except KeyError:
            continue
        if isinstance(obj, Commit):
            out.append(obj.id)
    return out


def _quarantine(git: GitRepo, root: Path) -> DiskObjectStore:
    store = DiskObjectStore.init(str(root))
    store.add_alternate_path(os.path.abspath(os.path.join(git.path, "objects")))
    return store


def _store_pack(git: GitRepo, store: DiskObjectStore,
                objects: list[tuple[ObjectID, PackHint | None]]) -> None:
    """Write `objects` (read from `store`) into the repository as one new pack, streamed
    into its pack folder and indexed before it is visible."""
    if not objects or _move_whole(git, store, {oid for oid, _ in objects}):
        return
    target = git.repo.object_store
    f, commit, abort = target.add_pack()
    try:
        # Whole objects: a delta reused from the incoming pack could have its base in
        # what stays out.
        write_pack_from_container(f.write, store, objects, reuse_deltas=False,
                                  deltify=False, object_format=git.repo.object_format)
    except BaseException:
        abort()
        raise
    commit()


def _move_whole(git: GitRepo, store: DiskObjectStore, objects: set[ObjectID]) -> bool:
    """The usual case, a push all of which is accepted: the quarantined pack (completed,
    indexed and every object of it read by dulwich) moves into the repository as it is,
    when each object in it is one of `objects` or one the repository already has (a
    thin pack's bases). False, and nothing done, otherwise."""
    packs = store.packs
    if len(packs) != 1:
        return False
    pack = packs[0]
    target = git.repo.object_store

    def held(oid: ObjectID) -> bool:
        return target.contains_packed(oid) or target.contains_loose(oid)

    inside = set(pack)
    if any(oid not in objects and not held(oid) for oid in inside) or any(
            oid not in inside and not held(oid) for oid in objects):
        return False
    pack.close()
    folder = Path(target.pack_dir)
    data, index = Path(pack._data_path), Path(pack._idx_path)
    try:
        os.replace(data, folder / data.name)
    except OSError:  # another file system: written again, as when a part is refused
        return False
    try:
        os.replace(index, folder / index.name)  # the index last: then it is visible
    except OSError:
        os.replace(folder / data.name, data)
        return False
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


# What a broken or cut pack raises while it is read and indexed (PackInputTooLarge, over
# `max_input`, is an OSError).
_UNPACK_ERRORS = (OSError, ChecksumMismatch, ApplyDeltaError, AssertionError,
                  ObjectFormatException, ValueError, zlib.error, UnresolvedDeltas,
                  GitProtocolError)


class _Handler(ReceivePackHandler):
    """dulwich's receive-pack, with the pack quarantined and every update decided by
    `_Push` before any is applied."""

    def __init__(self, push: _Push, proto: ReceivableProtocol, max_input: int,
                 advertise: bool) -> None:
        super().__init__(OneRepo(push.git.repo), ["/"], proto, stateless_rpc=True,
                         advertise_refs=advertise)
        self.push = push
        self.max_input = max_input
        self.pack_error: str | None = None

    def _apply_pack(self, refs: list[tuple[ObjectID, ObjectID, Ref]]
                    ) -> Iterator[tuple[bytes, bytes]]:
        commands = [(ref.decode("utf-8", "surrogateescape"), _sha(old), _sha(new))
                    for old, new, ref in refs]
        with tempfile.TemporaryDirectory(prefix="push-",
                                         dir=self.push.hub.settings.tmp_dir) as tmp:
            root = Path(tmp) / "objects"
            store: BaseObjectStore = self.push.git.repo.object_store
            quarantine: DiskObjectStore | None = None
            if self.pack_error is not None:  # never read: it would be inflated whole
                yield (b"unpack", self.pack_error.encode()[:200])
                for ref, _, _ in commands:
                    yield (ref.encode("utf-8", "surrogateescape"), b"pack refused")
                return
            if any(new is not None for _, _, new in commands):
                quarantine = _quarantine(self.push.git, root)
                try:
                    quarantine.add_thin_pack(self.proto.read, getattr(self.proto, "recv", None),
                                             max_input_size=self.max_input)
                except _UNPACK_ERRORS as exc:
                    yield (b"unpack", str(exc).replace("\n", " ").encode()[:200])
                    for ref, _, _ in commands:
                        yield (ref.encode("utf-8", "surrogateescape"), b"unpacker error")
                    return
                store = quarantine
            yield (b"unpack", b"ok")
            decided: list[_Update | Refused] = []
            seen: set[str] = set()
            for ref, old, new in commands:
                try:
                    if ref in seen:
                        raise Refused("the ref is named twice in the push")
                    seen.add(ref)
                    decided.append(self.push.decide(store, ref, old, new))
                except Refused as exc:
                    decided.append(exc)
            atomic = self.has_capability(CAPABILITY_ATOMIC)
            if atomic and any(isinstance(d, Refused) for d in decided):
                decided = [d if isinstance(d, Refused) else Refused("atomic push failed")
                           for d in decided]
            if quarantine is not None:
                # Only what the accepted updates reach goes in, as a pack of its own: a
                # refused ref's objects, and whatever else the pack held, stay out.
                brought = {oid: hint for d in decided if isinstance(d, _Update)
                           for oid, hint in d.objects}
                _store_pack(self.push.git, quarantine, list(brought.items()))
            if atomic:  # every ref moves, or none does
                accepted = [d for d in decided if isinstance(d, _Update)]
                try:
                    if accepted:
                        self.push.apply(accepted)
                except Refused as exc:
                    decided = [exc if isinstance(d, _Update) else d for d in decided]
            else:
                for i, outcome in enumerate(decided):
                    if isinstance(outcome, _Update):
                        try:
                            self.push.apply([outcome])
                        except Refused as exc:
                            decided[i] = exc
            for (ref, _, _), outcome in zip(commands, decided, strict=True):
                name = ref.encode("utf-8", "surrogateescape")
                yield (name, _reason(outcome) if isinstance(outcome, Refused) else b"ok")


def _reason(exc: Refused) -> bytes:
    return str(exc).replace("\n", " ").encode("utf-8", "replace")[:500]


def advertise(hub: Hub, actor: Actor, repo: Repo, write: Callable[[bytes], Any]) -> None:
    """The reply to `GET info/refs?service=git-receive-pack`."""
    git = hub.git.open(repo.storage_key)

    def nothing(_: int) -> bytes:
        return b""

    handler = _Handler(_Push(hub, actor, repo, git), _proto(nothing, write), 0, True)
    handler.proto.write_pkt_line(b"# service=" + RECEIVE_PACK.encode() + b"\n")
    handler.proto.write_pkt_line(None)
    handler.handle()


def receive_pack(hub: Hub, actor: Actor, repo: Repo, body: IO[bytes],
                 write: Callable[[bytes], Any], max_input: int) -> None:
    """Answer one `POST git-receive-pack` from its spooled `body` (blocking: run it in a
    worker thread). The pack is scanned first (`scan_pack`): an object too large to be
    accepted is refused before anything inflates it whole."""
    git = hub.git.open(repo.storage_key)
    cap = max(MIN_OBJECT_CAP, 4 * hub.settings.max_inline_file_size)
    try:
        scan_pack(body, cap)
        pack_error = None
    except PackRefused as exc:
        pack_error = str(exc)
    body.seek(0)
    proto = _proto(body.read, write)
    handler = _Handler(_Push(hub, actor, repo, git), proto, max_input, False)
    handler.pack_error = pack_error
    try:
        handler.handle()
    except MALFORMED as exc:  # a malformed request: git prints the ERR line
        proto.write_pkt_line(b"ERR " + str(exc).encode("utf-8", "replace")[:500])


MIN_OBJECT_CAP = 64 * 1024 * 1024  # bytes an object may inflate to (trees of big repos)
SCAN_CHUNK = 64 * 1024
_OFS_DELTA, _REF_DELTA = 6, 7


class PackRefused(Exception):
    """A pushed pack refused before it is read: an object over the cap, or no pack."""


def scan_pack(body: IO[bytes], cap: int) -> None:
    """Skip the push's commands, then walk its pack object by object, inflating each into
    nothing (a bounded buffer), and refuse any object whose size, or a delta whose
    result, is over `cap`. dulwich then inflates each object whole, bounded by the size
    its header declares: this makes that bound `cap`, whatever the compression ratio."""
    while True:  # pkt-lines up to the flush
        head = body.read(4)
        if len(head) < 4:
            return  # no pack: dulwich reports what is wrong with the commands
        try:
            size = int(head, 16)
        except ValueError:
            return
        if size == 0:
            break
        if size < 4:
            return
        body.seek(size - 4, os.SEEK_CUR)
    scan_pack_data(body, cap)


def scan_pack_data(body: IO[bytes], cap: int) -> None:
    """`scan_pack` of a pack alone (from its `PACK` header on): one a fetch brought."""
    header = body.read(12)
    if not header:
        return  # deletions only
    if len(header) < 12 or header[:4] != b"PACK":
        return  # dulwich refuses it, reading only the header
    reader = _Reader(body)
    for _ in range(int.from_bytes(header[8:12], "big")):
        _scan_object(reader, cap)


class _Reader:
    """A pack's bytes, a chunk at a time, read byte by byte or as zlib streams."""

    def __init__(self, body: IO[bytes]) -> None:
        self.body, self.buf, self.pos = body, b"", 0

    def fill(self) -> None:
        if self.pos >= len(self.buf):
            self.buf, self.pos = self.body.read(SCAN_CHUNK), 0
            if not self.buf:
                raise PackRefused("the pack ends inside an object")

    def byte(self) -> int:
        self.fill()
        self.pos += 1
        return self.buf[self.pos - 1]

    def inflate(self, limit: int) -> bytes:
        """Inflate one zlib stream into nothing, past `limit` bytes refused; returns its
        first 20 bytes (a delta's header)."""
        inflate = zlib.decompressobj()
        seen, head = 0, b""
        while not inflate.eof:
            self.fill()
            data = memoryview(self.buf)[self.pos:]
            out = inflate.decompress(data, SCAN_CHUNK)
            # What it did not take (output bound reached, or past the stream's end).
            left = len(inflate.unconsumed_tail) if not inflate.eof else len(inflate.unused_data)
            self.pos = len(self.buf) - left
            seen += len(out)
            if seen > limit:
                raise PackRefused("an object inflates past its declared size")
            if len(head) < 20:
                head += out[:20 - len(head)]
        return head


def _scan_object(reader: _Reader, cap: int) -> None:
    c = reader.byte()
    kind, size, shift = (c >> 4) & 7, c & 15, 4
    while c & 0x80:
        c = reader.byte()
        size |= (c & 0x7F) << shift
        shift += 7
        if shift > 70:
            raise PackRefused("a malformed object header")
    if size > cap:
        raise PackRefused(f"an object of {size} bytes is over the {cap}-byte limit")
    if kind == _OFS_DELTA:
        while reader.byte() & 0x80:
            pass
    elif kind == _REF_DELTA:
        for _ in range(20):
            reader.byte()
    head = reader.inflate(size)
    if kind in (_OFS_DELTA, _REF_DELTA):
        _, at = _varint(head, 0)  # the base's size, then the result's
        result, _ = _varint(head, at)
        if result > cap:
            raise PackRefused(f"an object of {result} bytes is over the {cap}-byte limit")


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while at < len(data):
        c = data[at]
        at += 1
        value |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            break
    return value, at


def _proto(read: Callable[[int], bytes], write: Callable[[bytes], Any]) -> ReceivableProtocol:
    def write_all(data: bytes) -> int:
        write(data)
        return len(data)

    return ReceivableProtocol(read, write_all)
