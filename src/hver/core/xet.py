"""Xet storage: xorbs in the blob store, file reconstructions and the dedup index in SQL.

A file uploaded through Xet is a list of terms, each a chunk range of a xorb. Xorbs
are content-addressed and shared by every file (and repo) whose chunks they hold;
that sharing is the deduplication. The same stored chunks serve Xet clients
(reconstruction plans whose byte ranges they fetch themselves) and plain HTTP
clients (the file decoded here, `iter_content`).

Access, checked on every CAS call (`authorize`): a CAS token names one repo (by id and
storage key, which no later repo shares) and one Hub token, and works only while that
repo exists, that Hub token is live, its user enabled, and they may still read (write,
for a write token) the repo. It reconstructs the files its repo holds (`core.objects`).

Possession: a shard may reference only chunk ranges its uploader proved to have, that is
every chunk of a xorb they uploaded, or the ranges of files held by repos they may read
(private, gated and token scopes all apply). Global-dedup answers list chunk hashes keyed
with a fresh HMAC key, so a client recognises only chunks it already has, and list only
chunks the asker may reference; the others are random.
"""

from __future__ import annotations

import hashlib
import hmac
import mmap
import os
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hver.community import pulls
from hver.core.access import can_read, can_write
from hver.core.accounts import Actor, actor_for_token_id
from hver.core.gating import has_access
from hver.core.hub import Hub
from hver.core.objects import held_objects, holds_xet_file, holds_xorb, record_contribution
from hver.core.signing import Signer
from hver.db.models import (
    LfsObject,
    Repo,
    XetChunk,
    XetFile,
    XetFileXorb,
    XetXorb,
    XetXorbUpload,
)
from hver.errors import BadRequest, Forbidden, HverError, NotFound, Unauthorized
from hver.storage.lfs import blob_key
from hver.xet.hashing import (
    file_hash,
    hex_hash,
    keyed_chunk_hash,
    raw_hash,
    verification_hash,
)
from hver.xet.shard import CasInfo, Shard, ShardError, Term, parse_shard, serialize_shard
from hver.xet.xorb import XorbError, XorbIndex, XorbParser, decode_range, index_xorb

MAX_SHARD_SIZE = 64 * 1024 * 1024
DEDUP_MAX_XORBS = 64  # xorbs described in one global-dedup answer
DEDUP_ANSWER_TTL = 24 * 3600  # how long the client may keep using one
READ_BATCH = 4 * 1024 * 1024  # stored bytes decoded at a time when serving a file
MAX_CLAIM_REPEAT = 8  # a contributor's files: logical bytes per distinct chunk byte
CLAIM_SLACK = 64 * 1024 * 1024
MAX_SHARD_CHUNKS = 1 << 22  # chunks named by one shard's terms (256 GiB of 64 KiB chunks)
MAX_RANGE_ROWS = 2000  # (file, repo) pairs read to learn which chunk ranges one may reference
DEDUP_CANDIDATES = 64  # xorbs looked at for the one a dedup answer names
HIDDEN_CHUNK_SIZE = 64 * 1024  # the size a dedup answer gives chunks it does not show
_TERM = struct.Struct("<32sIII")
_RANGE = struct.Struct("<II")


class RangeNotSatisfiable(HverError):
    status = 416
    code = "RangeNotSatisfiable"


# -- tokens -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CasToken:
    """What a CAS access token grants: `scope` ("read" or "write") on one repo (its id and
    storage key), until `exp`, for the Hub token `token_id` (None: anonymous) of account
    `account_id`."""

    repo_id: int
    storage_key: str
    account_id: int | None
    token_id: int | None
    scope: str
    exp: int

    @property
    def can_write(self) -> bool:
        return self.scope == "write"


TOKEN_PREFIX = "xet2"


def issue_token(signer: Signer, repo: Repo, actor: Actor | None, scope: str,
                ttl: int) -> tuple[str, int]:
    """A signed token and its expiry (unix seconds); the caller checked the actor's access."""
    account = actor.id if actor is not None else 0
    hub_token = (actor.token_id or 0) if actor is not None else 0
    exp = int(time.time()) + ttl
    fields = (repo.id, repo.storage_key, account, hub_token, scope)
    _, sig = signer.sign("xet-token", *fields, expires=exp)
    return ".".join([TOKEN_PREFIX, *(str(f) for f in fields), str(exp), sig]), exp


def parse_token(signer: Signer, text: str | None) -> CasToken:
    """The grant a token carries; Unauthorized (401) when it is missing, forged or expired."""
    parts = (text or "").split(".")
    if len(parts) != 8 or parts[0] != TOKEN_PREFIX or parts[5] not in ("read", "write"):
        raise Unauthorized("Missing or invalid CAS access token.", code="InvalidToken")
    _, repo_id, storage_key, account, hub_token, scope, exp, sig = parts
    try:
        repo_i, account_i, token_i, exp_i = int(repo_id), int(account), int(hub_token), int(exp)
    except ValueError:
        raise Unauthorized("Missing or invalid CAS access token.", code="InvalidToken") from None
    _, expected = signer.sign("xet-token", repo_i, storage_key, account_i, token_i, scope,
                              expires=exp_i)
    if not hmac.compare_digest(expected, sig):
        raise Unauthorized("Missing or invalid CAS access token.", code="InvalidToken")
    if exp_i <= time.time():
        raise Unauthorized("The CAS access token has expired.", code="TokenExpired")
    return CasToken(repo_i, storage_key, account_i or None, token_i or None, scope, exp_i)


def _token_actor(session: Session, token: CasToken) -> Actor | None:
    """Who uses a CAS token: the Hub token it was issued for, with that token's scopes and
    its user's roles as they are now (revoked or disabled: 401)."""
    if token.token_id is None:
        return None
    actor = actor_for_token_id(session, token.token_id)
    if actor.id != token.account_id:
        raise Unauthorized("Missing or invalid CAS access token.", code="InvalidToken")
    return actor


def authorize(session: Session, token: CasToken, write: bool = False) -> tuple[Actor | None, Repo]:
    """The one check of every CAS call: the token's repo and holder as they are now.

    401 (so the client asks the Hub for a new token, and learns there what changed) when
    the repo is gone or is another repo now, the Hub token is revoked, its user disabled,
    or they may no longer read the repo's files (write, with `write`); 403 when a read
    token is used to write.
    """
    repo = session.get(Repo, token.repo_id)
    if repo is None or not hmac.compare_digest(repo.storage_key, token.storage_key):
        raise Unauthorized("The repo of this CAS access token no longer exists.",
                           code="InvalidToken")
    actor = _token_actor(session, token)
    if write:
        if not token.can_write:
            raise Forbidden("This CAS token may only read.")
        if not pulls.may_upload(session, actor, repo):
            raise Unauthorized("This CAS access token no longer grants write access.",
                               code="InvalidToken")
    elif not (can_read(actor, repo) and has_access(session, actor, repo)):
        raise Unauthorized("This CAS access token no longer grants read access.",
                           code="InvalidToken")
    return actor, repo


def check_hash(text: str) -> str:
    """A Xet hash from a URL: 64 lowercase hex characters."""
    try:
        raw_hash(text)
    except ValueError:
        raise BadRequest(f"Invalid Xet hash {text!r}: expected 64 hex characters.",
                         code="InvalidHash") from None
    return text


# -- xorbs --------------------------------------------------------------------------------------


def xorb_key(xorb: str) -> str:
    return f"xet/xorbs/{xorb[:2]}/{xorb}"


def dedup_eligible(chunk: bytes) -> bool:
    """Chunks the client asks the global-dedup API about (besides each file's first)."""
    return int.from_bytes(chunk[24:32], "little") % 1024 == 0


class _IndexCache:
    """Chunk indexes of recently used xorbs; xorbs never change, so entries never go stale."""

    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self.items: OrderedDict[str, XorbIndex] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, session: Session, xorbs: Iterable[str]) -> dict[str, XorbIndex]:
        out: dict[str, XorbIndex] = {}
        missing = []
        with self.lock:
            for h in xorbs:
                idx = self.items.get(h)
                if idx is None:
                    missing.append(h)
                else:
                    self.items.move_to_end(h)
                    out[h] = idx
        if missing:
            rows = session.execute(
                select(XetXorb.hash, XetXorb.chunk_index).where(XetXorb.hash.in_(missing))
            ).tuples().all()
            with self.lock:
                for h, blob in rows:
                    out[h] = self.items[h] = XorbIndex.from_bytes(blob)
                while len(self.items) > self.capacity:
                    self.items.popitem(last=False)
        return out


_indexes = _IndexCache()


class XorbUpload:
    """Streams an uploaded xorb through the parser into a staging file; `commit` stores it.

    The parser checks and hashes each chunk where it lies in the piece received; the
    pieces are written as they came (only a chunk split between two pieces is copied)."""

    def __init__(self, hub: Hub, token: CasToken, xorb: str) -> None:
        with hub.db.read() as session:
            authorize(session, token, write=True)
        self.hub = hub
        self.token = token
        self.xorb = check_hash(xorb)
        self.parser = XorbParser()
        self.file, self.path = hub.blobs.staging_file()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self.file.writelines(self.parser.feed_parts(data))
        except XorbError as exc:
            raise BadRequest(f"Invalid xorb: {exc}", code="InvalidXorb") from None

    def commit(self) -> bool:
        """Check the whole xorb, store it once; True when it was not stored before.

        Two clients may encode the same chunks differently (compression), so the same
        xorb hash can arrive as different bytes. The first stored copy wins for good, and
        the chunk index in SQL always describes the stored copy: whoever finds a copy
        stored by another (a concurrent upload, or one cut short by a crash before its
        row was written) and no row yet, indexes the stored bytes, not its own.
        """
        try:
            try:
                index = self.parser.finish()
            except XorbError as exc:
                raise BadRequest(f"Invalid xorb: {exc}", code="InvalidXorb") from None
            _check_xorb_hash(index, self.xorb)
            self.file.flush()
            os.fsync(self.file.fileno())
            self.file.close()
            ours = self.hub.blobs.put_staged(xorb_key(self.xorb), self.path)
        except BaseException:
            self.abort()
            raise
        assert self.token.account_id is not None  # write tokens are a user's
        return _stored(self.hub, self.xorb, index, ours, self.token.account_id)

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.path.unlink(missing_ok=True)


def store_xorb_file(hub: Hub, token: CasToken, xorb: str, path: Path) -> bool:
    """`XorbUpload` for a body already in a staging file of the store's (a grant's upload):
    checked and hashed where it lies, a footer cut off, and the file itself moved into
    the store, so its bytes are neither read into memory nor copied. The file is gone
    afterwards either way. True when the token's account had not sent the xorb before."""
    try:
        with hub.db.read() as session:
            authorize(session, token, write=True)
        check_hash(xorb)
        with path.open("r+b") as fh:
            index = _index_file(fh)
            _check_xorb_hash(index, xorb)
            if os.fstat(fh.fileno()).st_size != index.offsets[-1]:
                fh.truncate(index.offsets[-1])  # the footer: not part of the stored xorb
            os.fsync(fh.fileno())
        ours = hub.blobs.put_staged(xorb_key(xorb), path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    assert token.account_id is not None  # write tokens are a user's
    return _stored(hub, xorb, index, ours, token.account_id)


def _index_file(fh: BinaryIO) -> XorbIndex:
    """The checked index of the xorb body in an open file, read through a mapping."""
    if os.fstat(fh.fileno()).st_size == 0:
        raise BadRequest("Invalid xorb: empty xorb", code="InvalidXorb")
    problem = None
    with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        try:
            index = index_xorb(memoryview(mapped))
        except XorbError as exc:
            problem = str(exc)  # leaves the except block: no frame keeps a view of the map
    if problem is not None:
        raise BadRequest(f"Invalid xorb: {problem}", code="InvalidXorb")
    return index


def _check_xorb_hash(index: XorbIndex, xorb: str) -> None:
    actual = hex_hash(index.hash())
    if actual != xorb:
        raise BadRequest(f"Xorb hash mismatch: the body hashes to {actual}.",
                         code="HashMismatch")


def _stored(hub: Hub, xorb: str, index: XorbIndex, ours: bool, account_id: int) -> bool:
    """Record a xorb once its bytes are in the store (`ours`: by this upload)."""
    if not ours and not _xorb_recorded(hub, xorb):
        index = _index_stored(hub, xorb)
    return _record_xorb(hub, xorb, index, account_id)


def _xorb_recorded(hub: Hub, xorb: str) -> bool:
    with hub.db.read() as session:
        return session.get(XetXorb, xorb) is not None


def _index_stored(hub: Hub, xorb: str) -> XorbIndex:
    """The chunk index of the stored copy of a xorb (which was checked when it was stored)."""
    with hub.blobs.open(xorb_key(xorb)) as fh:
        try:
            index = _index_file(fh)
        except BadRequest as exc:
            raise HverError(f"Stored xorb {xorb} is not a valid xorb.") from exc
    if hex_hash(index.hash()) != xorb:  # the store lost or changed bytes: nothing to index
        raise HverError(f"Stored xorb {xorb} does not hash to its name.")
    return index


def _record_xorb(hub: Hub, xorb: str, index: XorbIndex, account_id: int | None) -> bool:
    """Record the xorb (once) and that the account sent it (None: a mirror fetched it,
    and no account may name its chunks for having sent them). True when this account had
    not sent it before: whether anyone else had is not the uploader's to learn."""
    for _ in range(3):  # a concurrent upload of the same xorb may insert it first
        try:
            with hub.db.write() as session:
                if session.get(XetXorb, xorb) is None:
                    session.add(XetXorb(
                        hash=xorb, size=index.offsets[-1], unpacked_size=sum(index.sizes),
                        num_chunks=len(index.sizes), chunk_index=index.to_bytes()))
                    session.flush()
                    chunks = {hex_hash(h) for h in index.hashes if dedup_eligible(h)}
                    _add_dedup_chunks(session, chunks, xorb)
                if account_id is None:  # fetched by a mirror: sent by nobody here
                    return False
                if session.get(XetXorbUpload, (xorb, account_id)) is not None:
                    return False
                session.add(XetXorbUpload(xorb_hash=xorb, account_id=account_id))
            return True
        except IntegrityError:
            continue
    raise BadRequest("Could not record the xorb; try again.", status=409, code="Conflict")


def _add_dedup_chunks(session: Session, chunks: set[str], xorb: str) -> None:
    if not chunks:
        return
    known = set(session.scalars(select(XetChunk.chunk_hash).where(
        XetChunk.chunk_hash.in_(chunks), XetChunk.xorb_hash == xorb)))
    session.add_all(XetChunk(chunk_hash=c, xorb_hash=xorb) for c in chunks - known)


# -- possession ---------------------------------------------------------------------------------

Ranges = list[tuple[int, int]]  # sorted, merged [start, end) chunk ranges


def _uploaded_xorbs(session: Session, actor: Actor | None, xorbs: set[str]) -> set[str]:
    """The xorbs whose every chunk `actor` sent us: they may reference all of them."""
    if actor is None or not xorbs:
        return set()
    return set(session.scalars(select(XetXorbUpload.xorb_hash).where(
        XetXorbUpload.account_id == actor.id, XetXorbUpload.xorb_hash.in_(xorbs))))


def _readable_ranges(session: Session, actor: Actor | None, xorbs: set[str]) -> dict[str, Ranges]:
    """Per xorb, the chunk ranges of files held by repos whose files `actor` may read.

    A reader may download those files anyway, so referencing their chunks shows nothing
    new; the other chunks of the same xorb (another repo's files packed beside them) are
    not theirs to name. At most MAX_RANGE_ROWS (file, repo) pairs are looked at.
    """
    if not xorbs:
        return {}
    rows = session.execute(
        select(XetFileXorb.xorb_hash, XetFileXorb.ranges, Repo)
        .join(LfsObject, LfsObject.xet_hash == XetFileXorb.file_hash)
        .join(Repo, Repo.id == LfsObject.repo_id)
        .where(XetFileXorb.xorb_hash.in_(xorbs))
        .limit(MAX_RANGE_ROWS)
    ).tuples().all()
    readable: dict[int, bool] = {}
    spans: dict[str, Ranges] = {}
    for xorb, packed, repo in rows:
        if repo.id not in readable:
            readable[repo.id] = can_read(actor, repo) and has_access(session, actor, repo)
        if readable[repo.id]:
            spans.setdefault(xorb, []).extend(_unpack_ranges(packed or b""))
    return {x: _merge(r) for x, r in spans.items()}


def _pack_ranges(ranges: Ranges) -> bytes:
    return b"".join(_RANGE.pack(a, b) for a, b in _merge(ranges))


def _unpack_ranges(data: bytes) -> Ranges:
    return [(a, b) for a, b in _RANGE.iter_unpack(data)]


def _merge(ranges: Ranges) -> Ranges:
    out: Ranges = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


def _covers(ranges: Ranges, start: int, end: int) -> bool:
    return any(a <= start and end <= b for a, b in ranges)


# -- files --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class XetFileInfo:
    file_hash: str
    size: int
    terms: list[Term]


def _pack_terms(terms: list[Term]) -> bytes:
    return b"".join(_TERM.pack(t.xorb, t.chunk_start, t.chunk_end, t.unpacked_bytes)
                    for t in terms)


def _unpack_terms(data: bytes) -> list[Term]:
    return [Term(*fields) for fields in _TERM.iter_unpack(data)]


def _info(row: XetFile) -> XetFileInfo:
    return XetFileInfo(row.file_hash, row.size, _unpack_terms(row.terms))


def get_file(hub: Hub, file_hash: str) -> XetFileInfo | None:
    with hub.db.read() as session:
        row = session.get(XetFile, file_hash)
        return _info(row) if row is not None else None


def readable_file(hub: Hub, token: CasToken, file_id: str) -> XetFileInfo:
    """The file `file_id`, once the token is shown to still grant reading its repo
    (`authorize`) and that repo to hold the file; else 404, as for a missing file."""
    check_hash(file_id)
    with hub.db.read() as session:
        authorize(session, token)
        row = session.get(XetFile, file_id) if holds_xet_file(
            session, token.repo_id, file_id) else None
        if row is None:
            raise NotFound(f"File {file_id} not found.", code="EntryNotFound")
        return _info(row)


def file_chunks(hub: Hub, file: XetFileInfo) -> list[tuple[list[bytes], list[int]]]:
    """Per term of the file, the hashes and sizes of its chunks."""
    with hub.db.read() as session:
        indexes = _indexes.get(session, {hex_hash(t.xorb) for t in file.terms})
    out = []
    for t in file.terms:
        idx = indexes[hex_hash(t.xorb)]
        out.append((idx.hashes[t.chunk_start:t.chunk_end], idx.sizes[t.chunk_start:t.chunk_end]))
    return out


def readable_xorb_size(hub: Hub, token: CasToken, xorb: str) -> int:
    """The stored size of `xorb`, once the token is shown to still grant reading its repo
    (`authorize`) and the xorb to be the account's own upload or part of a file the repo
    holds; else 404, as for a missing xorb."""
    check_hash(xorb)
    with hub.db.read() as session:
        authorize(session, token)
        row = session.get(XetXorb, xorb)
        own = token.account_id is not None and session.get(
            XetXorbUpload, (xorb, token.account_id)) is not None
        held = own or holds_xorb(session, token.repo_id, xorb)
        if row is None or not held:
            raise NotFound(f"Xorb {xorb} not found.", code="EntryNotFound")
        return row.size


# -- shards -------------------------------------------------------------------------------------


def register_shard(hub: Hub, token: CasToken, data: bytes,
                   on_commit: Callable[[], None] | None = None) -> bool:
    """Validate an uploaded shard and record its files for the token's repo.

    Every xorb its CAS info describes must have been uploaded by the uploader; every file
    term must name chunks the uploader may reference (module docstring), fit its xorb,
    and the terms must hash to the file hash. The sha256 each file carries is the
    writer's word, as an LFS pointer in a commit is: it binds the file to that sha256 in
    the token's repo only, and never rebinds a sha256 the repo already holds to other
    content. A contributor's (who may open pull requests, not write) is checked against
    the bytes (`_check_claims`), and held apart until a commit of theirs names it
    (`core.objects.record_contribution`).
    Returns True when at least one file was new. `on_commit` is called once the shard is
    validated, before its files are recorded (`POST /v2/shards` reports it).
    """
    if len(data) > MAX_SHARD_SIZE:
        raise BadRequest("Shard is larger than 64 MiB.", status=413, code="PayloadTooLarge")
    with hub.db.read() as session:
        actor, repo = authorize(session, token, write=True)
    contributor = actor.id if actor is not None and not can_write(actor, repo) else None
    try:
        shard = parse_shard(data)
    except ShardError as exc:
        raise BadRequest(f"Invalid shard: {exc}", code="InvalidShard") from None
    described = {hex_hash(c.xorb) for c in shard.xorbs}
    referenced = {hex_hash(t.xorb) for f in shard.files for t in f.terms}
    with hub.db.read() as session:
        uploaded = _uploaded_xorbs(session, actor, described | referenced)
        ranges = _readable_ranges(session, actor, referenced - uploaded)
        indexes = _indexes.get(session, uploaded | set(ranges))
    for xorb in sorted(described - uploaded):
        raise _not_uploaded(xorb)
    _check_cas_info(shard, indexes)
    named = sum(max(0, t.chunk_end - t.chunk_start) for f in shard.files for t in f.terms)
    if named > MAX_SHARD_CHUNKS:
        raise BadRequest(f"Shard names {named} chunks; at most {MAX_SHARD_CHUNKS} are "
                         "accepted in one shard.", code="InvalidShard")

    def allowed(xorb: str, start: int, end: int) -> bool:
        return xorb in uploaded or _covers(ranges.get(xorb, []), start, end)

    files: dict[str, XetFileInfo] = {}
    claimed: dict[str, XetFileInfo] = {}
    for recipe in shard.files:
        fh = hex_hash(recipe.file_hash)
        if recipe.sha256 is None:
            raise BadRequest(f"File {fh} carries no sha256 in the shard.", code="InvalidShard")
        size = _check_recipe(fh, recipe.terms, recipe.verification, indexes, allowed)
        files[fh] = claimed[recipe.sha256.hex()] = XetFileInfo(fh, size, list(recipe.terms))
    if contributor is not None:
        _check_claims(hub, token.repo_id, contributor, claimed)
    if on_commit is not None:
        on_commit()
    return _record_files(hub, token.repo_id, files, claimed, contributor)


def _check_claims(hub: Hub, repo_pk: int, contributor: int,
                  claimed: dict[str, XetFileInfo]) -> None:
    """A contributor's sha256 claims, checked against the bytes their terms decode to
    (those the repo or the contributor already hold as that file excepted): a binding
    they make never names other content, so it cannot poison the owner's later upload
    of the true bytes, nor show a trusted sha256 over other bytes in a pull request.

    Hashing costs what the files' logical size is, which repeated terms over a few
    chunks could make huge: files over MAX_CLAIM_REPEAT times the distinct chunk bytes
    they use (plus CLAIM_SLACK) are refused, so the work stays within a small multiple of
    what was uploaded."""
    known = held_objects(hub, repo_pk, claimed, contributor)
    todo = {sha: info for sha, info in claimed.items()
            if (held := known.get(sha)) is None or held.xet_hash != info.file_hash}
    if not todo:
        return
    with hub.db.read() as session:
        indexes = _indexes.get(session, {hex_hash(t.xorb) for f in todo.values()
                                         for t in f.terms})
    distinct: set[tuple[str, int]] = set()
    for info in todo.values():
        for t in info.terms:
            distinct.update((hex_hash(t.xorb), c) for c in range(t.chunk_start, t.chunk_end))
    unique = sum(indexes[x].sizes[c] for x, c in distinct)
    if sum(f.size for f in todo.values()) > MAX_CLAIM_REPEAT * unique + CLAIM_SLACK:
        raise BadRequest("The shard's files repeat their chunks too often for a "
                         "contribution to be checked; a writer of the repo may upload them.",
                         code="InvalidShard")
    for sha, info in todo.items():
        digest = hashlib.sha256()
        for piece in iter_content(hub, info, 0, info.size):
            digest.update(piece)
        if digest.hexdigest() != sha:
            raise BadRequest(f"File {info.file_hash} does not hash to the sha256 {sha} it "
                             "claims.", code="HashMismatch")


def _not_uploaded(xorb: str) -> BadRequest:
    # The same answer whether the xorb is missing or only not the uploader's to name.
    return BadRequest(f"Shard references xorb {xorb}, which was not uploaded.",
                      code="XorbNotFound")


def _check_cas_info(shard: Shard, indexes: dict[str, XorbIndex]) -> None:
    for cas in shard.xorbs:
        idx = indexes[hex_hash(cas.xorb)]
        if cas.chunk_hashes != idx.hashes or cas.chunk_sizes != idx.sizes:
            raise BadRequest(f"Shard describes xorb {hex_hash(cas.xorb)} with other chunks "
                             "than were uploaded.", code="InvalidShard")


def _check_recipe(fh: str, terms: list[Term], verification: list[bytes] | None,
                  indexes: dict[str, XorbIndex],
                  allowed: Callable[[str, int, int], bool]) -> int:
    """The file's size, once its terms are shown to name chunks the uploader may reference,
    fit their xorbs and hash to `fh`."""
    if not terms:
        raise BadRequest(f"File {fh} has no terms.", code="InvalidShard")
    if verification is not None and len(verification) != len(terms):
        raise BadRequest(f"File {fh} has {len(verification)} verification entries for "
                         f"{len(terms)} terms.", code="InvalidShard")
    chunks: list[tuple[bytes, int]] = []
    for n, term in enumerate(terms):
        xorb = hex_hash(term.xorb)
        if not allowed(xorb, term.chunk_start, term.chunk_end):
            raise _not_uploaded(xorb)
        idx = indexes[xorb]
        if not 0 <= term.chunk_start < term.chunk_end <= len(idx.sizes):
            raise BadRequest(f"File {fh}: term {n} names chunks {term.chunk_start}.."
                             f"{term.chunk_end} of a xorb with {len(idx.sizes)}.",
                             code="InvalidShard")
        hashes = idx.hashes[term.chunk_start:term.chunk_end]
        sizes = idx.sizes[term.chunk_start:term.chunk_end]
        if sum(sizes) != term.unpacked_bytes:
            raise BadRequest(f"File {fh}: term {n} claims {term.unpacked_bytes} bytes, its "
                             f"chunks hold {sum(sizes)}.", code="InvalidShard")
        if verification is not None and verification[n] != verification_hash(hashes):
            raise BadRequest(f"File {fh}: term {n} fails verification.", code="InvalidShard")
        chunks.extend(zip(hashes, sizes, strict=True))
    actual = hex_hash(file_hash(chunks))
    if actual != fh:
        raise BadRequest(f"File hash mismatch: the terms hash to {actual}, not {fh}.",
                         code="HashMismatch")
    return sum(size for _, size in chunks)


def _record_files(hub: Hub, repo_id: int, files: dict[str, XetFileInfo],
                  claimed: dict[str, XetFileInfo], contributor: int | None = None) -> bool:
    """Store new files and bind each sha256 the repo does not hold yet to its file; True if
    the repo holds a sha256 it did not before (whether the files were stored already, for
    another repo, is not the uploader's to learn).

    A sha256 the repo holds keeps its content: the same file again changes nothing, an
    LFS blob (hashed when it was stored) stays, and another Xet file is refused with
    HashMismatch, in the same transaction, so no commit ever starts serving other bytes.
    A contributor's (checked) claims are noted for them (`record_contribution`) instead.
    """
    for _ in range(3):
        try:
            bound = False
            with hub.db.write() as session:
                held = {row.oid: row for row in session.scalars(select(LfsObject).where(
                    LfsObject.repo_id == repo_id, LfsObject.oid.in_(claimed)))}
                for sha, info in claimed.items():
                    row = held.get(sha)
                    if contributor is not None:
                        continue  # checked against the bytes; a held sha256 stays as it is
                    if row is not None and row.xet_hash not in (None, info.file_hash):
                        raise BadRequest(
                            f"This repo already holds sha256 {sha} as other content; "
                            f"file {info.file_hash} cannot take its place.",
                            code="HashMismatch")
                known = set(session.scalars(select(XetFile.file_hash).where(
                    XetFile.file_hash.in_(files))))
                for fh, info in files.items():
                    if fh in known:
                        continue
                    session.add(XetFile(file_hash=fh, size=info.size,
                                        terms=_pack_terms(info.terms)))
                    session.flush()
                    spans: dict[str, Ranges] = {}
                    for t in info.terms:
                        spans.setdefault(hex_hash(t.xorb), []).append(
                            (t.chunk_start, t.chunk_end))
                    session.add_all(XetFileXorb(file_hash=fh, xorb_hash=x,
                                                ranges=_pack_ranges(r))
                                    for x, r in spans.items())
                    first = info.terms[0]
                    idx = _indexes.get(session, [hex_hash(first.xorb)])[hex_hash(first.xorb)]
                    _add_dedup_chunks(session, {hex_hash(idx.hashes[first.chunk_start])},
                                      hex_hash(first.xorb))
                for sha, info in claimed.items():
                    if contributor is not None:
                        bound |= record_contribution(session, repo_id, contributor, sha,
                                                     info.size, info.file_hash)
                    elif sha not in held:
                        bound = True
                        session.add(LfsObject(repo_id=repo_id, oid=sha, size=info.size,
                                              xet_hash=info.file_hash))
            return bound
        except IntegrityError:
            continue  # a concurrent shard registered the same file: look again
    raise BadRequest("Could not record the shard; try again.", status=409, code="Conflict")


# -- reconstruction -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Fetch:
    """A chunk range of a xorb and the stored bytes [byte_start, byte_end) that hold it."""

    xorb: str
    chunk_start: int
    chunk_end: int
    byte_start: int
    byte_end: int


@dataclass(frozen=True)
class Plan:
    offset_into_first_range: int
    terms: list[Term]
    fetches: list[Fetch]


def plan(hub: Hub, file: XetFileInfo, start: int, end: int) -> Plan:
    """The terms covering bytes [start, end) of the file, trimmed to whole chunks."""
    if start >= max(file.size, 1) or end <= start:
        raise RangeNotSatisfiable(f"Range start {start} is beyond the file's {file.size} bytes.")
    end = min(end, file.size)
    with hub.db.read() as session:
        indexes = _indexes.get(session, {hex_hash(t.xorb) for t in file.terms})
    terms: list[Term] = []
    offset = 0
    pos = 0
    for term in file.terms:
        if pos >= end:
            break
        term_end = pos + term.unpacked_bytes
        if term_end <= start:
            pos = term_end
            continue
        xorb = hex_hash(term.xorb)
        idx = indexes[xorb]
        first, last = term.chunk_start, term.chunk_end
        chunk_pos = pos
        for c in range(term.chunk_start, term.chunk_end):  # drop chunks before `start`
            if chunk_pos + idx.sizes[c] > start:
                break
            chunk_pos += idx.sizes[c]
            first = c + 1
        if not terms:
            offset = start - chunk_pos
        tail = term_end
        for c in range(term.chunk_end - 1, first, -1):  # and chunks from `end` on
            if tail - idx.sizes[c] < end:
                break
            tail -= idx.sizes[c]
            last = c
        terms.append(Term(term.xorb, first, last, sum(idx.sizes[first:last])))
        pos = term_end
    return Plan(offset, terms, _fetches(terms, indexes))


def _fetches(terms: list[Term], indexes: dict[str, XorbIndex]) -> list[Fetch]:
    """Per xorb, the chunk ranges the terms need, sorted and merged where they overlap or
    touch: a client looks up each term in the first range that starts at or before it."""
    spans: dict[str, list[tuple[int, int]]] = {}
    for t in terms:
        spans.setdefault(hex_hash(t.xorb), []).append((t.chunk_start, t.chunk_end))
    out: list[Fetch] = []
    for xorb, ranges in spans.items():
        ranges.sort()
        merged = [ranges[0]]
        for start, end in ranges[1:]:
            if start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], end))
            else:
                merged.append((start, end))
        offsets = indexes[xorb].offsets
        out.extend(Fetch(xorb, a, b, offsets[a], offsets[b]) for a, b in merged)
    return out


def iter_content(hub: Hub, file: XetFileInfo, start: int, end: int) -> Generator[bytes]:
    """Bytes [start, end) of the file, decoded from its xorbs a few MiB at a time (one
    piece per read: a consumer in another thread pays one hop per piece)."""
    if end <= start:
        return
    p = plan(hub, file, start, end)
    skip = p.offset_into_first_range
    remaining = min(end, file.size) - start
    with hub.db.read() as session:
        indexes = _indexes.get(session, {hex_hash(t.xorb) for t in p.terms})
    for term in p.terms:
        xorb = hex_hash(term.xorb)
        idx = indexes[xorb]
        with hub.blobs.open(xorb_key(xorb)) as fh:
            c = term.chunk_start
            while c < term.chunk_end and remaining > 0:
                stop = c + 1
                while (stop < term.chunk_end
                       and idx.offsets[stop + 1] - idx.offsets[c] <= READ_BATCH):
                    stop += 1
                fh.seek(idx.offsets[c])
                piece = decode_range(fh.read(idx.offsets[stop] - idx.offsets[c]))
                c = stop
                if skip >= len(piece):
                    skip -= len(piece)
                    continue
                if skip or len(piece) - skip > remaining:
                    piece = piece[skip:skip + remaining]
                skip = 0
                remaining -= len(piece)
                yield piece


# -- whole files for plain HTTP -----------------------------------------------------------------
#
# A plain HTTP client reads a Xet file decoded, which costs the server about a second of CPU
# per GiB. The first whole read of a file keeps what it decoded as a blob, `file_cache_key`;
# later reads (and ranges of them) are sent from it by sendfile. The blob is named by the
# Xet file hash: it is found only from a file a reader was already allowed to read (the
# caller's `core.objects` check), and no route serves a blob key it is given. It is written
# to a staging file, fsynced and moved into place (first writer wins), so readers never see
# a partial one; it can be removed at any time (the next whole read makes it again).

CACHE_MIN_SIZE = 4 * 1024 * 1024  # smaller files decode fast enough


def file_cache_key(file_hash: str) -> str:
    return f"xet/files/{file_hash[:2]}/{file_hash}"


def cached_file(hub: Hub, file: XetFileInfo) -> Path | None:
    """Where the whole decoded file is kept as a blob, if it is. A copy of the wrong size
    (damaged outside the hub) is removed, so that the next whole read makes it again."""
    key = file_cache_key(check_hash(file.file_hash))
    path = hub.blobs.local_path(key)
    if path is None:
        return None
    try:
        if path.stat().st_size == file.size:
            return path
    except FileNotFoundError:
        return None
    hub.blobs.delete(key)
    return None


class _Filling:
    """The files this process is caching now: one request fills a file, the others decode."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.files: set[str] = set()

    def claim(self, file_hash: str) -> bool:
        with self.lock:
            if file_hash in self.files:
                return False
            self.files.add(file_hash)
            return True

    def release(self, file_hash: str) -> None:
        with self.lock:
            self.files.discard(file_hash)


_filling = _Filling()


class CacheFill:
    """Keeps the pieces of one whole read of a file, in order; `finish` stores them as the
    file's cached blob if they are all there, `abort` drops them. Exactly one of the two
    must be called."""

    def __init__(self, hub: Hub, file: XetFileInfo) -> None:
        self.hub = hub
        self.file = file
        self.size = 0
        self.out, self.path = hub.blobs.staging_file()

    @classmethod
    def start(cls, hub: Hub, file: XetFileInfo) -> CacheFill | None:
        """A fill for a file worth caching that no other request of this process fills."""
        if file.size < CACHE_MIN_SIZE or not _filling.claim(file.file_hash):
            return None
        try:
            return cls(hub, file)
        except BaseException:
            _filling.release(file.file_hash)
            raise

    def write(self, piece: bytes) -> None:
        self.size += len(piece)
        self.out.write(piece)

    def finish(self) -> bool:
        """Store the file's blob if every byte was written; True when this call stored it."""
        try:
            if self.size != self.file.size:
                return False
            self.out.flush()
            os.fsync(self.out.fileno())
            self.out.close()
            return self.hub.blobs.put_staged(file_cache_key(self.file.file_hash), self.path)
        finally:
            self.abort()

    def abort(self) -> None:
        if not self.out.closed:
            self.out.close()
        self.path.unlink(missing_ok=True)
        _filling.release(self.file.file_hash)


# -- global dedup -------------------------------------------------------------------------------


def dedup_shard(hub: Hub, token: CasToken, chunk: str) -> bytes | None:
    """A shard describing a xorb holding `chunk` that the asker may reference there, and
    the other xorbs of readable files made of it; None when there is none.

    One hit lets the client skip every chunk a new version shares with an old one. The
    chunk hashes are keyed with a fresh HMAC key (the footer carries it): the client finds
    only the chunks it already has. Chunks the asker may not reference (module docstring)
    are listed as random hashes of one made-up size, which match nothing and tell nothing
    (content-defined chunk sizes would fingerprint the data).
    """
    raw = raw_hash(check_hash(chunk))
    with hub.db.read() as session:
        actor, _ = authorize(session, token, write=token.can_write)
        candidates = set(session.scalars(select(XetChunk.xorb_hash).where(
            XetChunk.chunk_hash == chunk).limit(DEDUP_CANDIDATES)))
        uploaded = _uploaded_xorbs(session, actor, candidates)
        ranges = _readable_ranges(session, actor, candidates - uploaded)
        indexes = _indexes.get(session, candidates)
        xorb = next((x for x in sorted(uploaded)), None) or next(
            (x for x in sorted(ranges) if any(
                _covers(ranges[x], i, i + 1)
                for i, h in enumerate(indexes[x].hashes) if h == raw)), None)
        if xorb is None:
            return None
        siblings = _sibling_xorbs(session, actor, xorb)
        uploaded |= _uploaded_xorbs(session, actor, siblings)
        ranges |= _readable_ranges(session, actor, siblings - uploaded)
        chosen = [xorb] + sorted(siblings & (uploaded | set(ranges)))[:DEDUP_MAX_XORBS - 1]
        indexes = _indexes.get(session, chosen)
    key = os.urandom(32)
    infos = []
    for x in chosen:
        idx = indexes[x]
        spans = None if x in uploaded else ranges.get(x, [])
        shown = [spans is None or _covers(spans, i, i + 1) for i in range(len(idx.hashes))]
        infos.append(CasInfo(
            raw_hash(x),
            [keyed_chunk_hash(h, key) if ok else os.urandom(32)
             for h, ok in zip(idx.hashes, shown, strict=True)],
            [size if ok else HIDDEN_CHUNK_SIZE
             for size, ok in zip(idx.sizes, shown, strict=True)],
            idx.offsets[-1] if spans is None else 0))
    return serialize_shard(Shard(files=[], xorbs=infos), hmac_key=key,
                           expires_at=int(time.time()) + DEDUP_ANSWER_TTL)


def _sibling_xorbs(session: Session, actor: Actor | None, xorb: str) -> set[str]:
    """The other xorbs of a few files made of `xorb` that are held by repos `actor` may read."""
    rows = session.execute(
        select(XetFileXorb.file_hash, Repo)
        .join(LfsObject, LfsObject.xet_hash == XetFileXorb.file_hash)
        .join(Repo, Repo.id == LfsObject.repo_id)
        .where(XetFileXorb.xorb_hash == xorb).limit(MAX_RANGE_ROWS)).tuples().all()
    files: list[str] = []
    for fh, repo in rows:
        if fh not in files and can_read(actor, repo) and has_access(session, actor, repo):
            files.append(fh)
            if len(files) == 4:
                break
    if not files:
        return set()
    return set(session.scalars(select(XetFileXorb.xorb_hash).where(
        XetFileXorb.file_hash.in_(files)).distinct().limit(DEDUP_MAX_XORBS * 2))) - {xorb}


# -- stats --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StorageStats:
    """Large-file bytes as the repos see them (logical) and as stored on disk."""

    files: int
    xet_files: int
    logical_bytes: int
    stored_bytes: int
    xorbs: int

    @property
    def dedup_ratio(self) -> float:
        return self.logical_bytes / self.stored_bytes if self.stored_bytes else 1.0

    def as_dict(self) -> dict[str, float | int]:
        return {"files": self.files, "xetFiles": self.xet_files,
                "logicalBytes": self.logical_bytes, "storedBytes": self.stored_bytes,
                "xorbs": self.xorbs, "dedupRatio": round(self.dedup_ratio, 4)}


def storage_stats(hub: Hub, repo_id: int | None = None) -> StorageStats:
    """Stats for one repo, or for the whole hub when `repo_id` is None.

    Logical bytes count every large file each repo holds; stored bytes count each
    xorb and each LFS blob once.
    """
    with hub.db.read() as session:
        held = select(LfsObject.oid, LfsObject.size, LfsObject.xet_hash)
        if repo_id is not None:
            held = held.where(LfsObject.repo_id == repo_id)
        rows = session.execute(held).tuples().all()
        xet_files = {fh for _, _, fh in rows if fh is not None}
        totals = select(func.count(), func.coalesce(func.sum(XetXorb.size), 0))
        if repo_id is not None:
            totals = totals.where(XetXorb.hash.in_(
                select(XetFileXorb.xorb_hash).where(XetFileXorb.file_hash.in_(xet_files))))
        xorbs, xorb_bytes = session.execute(totals).one()
    blobs = {oid for oid, _, fh in rows if fh is None}
    lfs_bytes = sum(hub.blobs.size(blob_key(oid)) or 0 for oid in blobs)
    return StorageStats(files=len(rows), xet_files=sum(fh is not None for _, _, fh in rows),
                        logical_bytes=sum(size for _, size, _ in rows),
                        stored_bytes=int(xorb_bytes) + lfs_bytes, xorbs=int(xorbs))


# -- mirrored content (`hver.mirror.xet_ingest`) ------------------------------------------------


def xorb_indexes(hub: Hub, xorbs: Iterable[str]) -> dict[str, XorbIndex]:
    """The chunk indexes of those of `xorbs` stored here."""
    with hub.db.read() as session:
        return _indexes.get(session, xorbs)


def publicly_readable(hub: Hub, xorb: str, start: int, end: int) -> bool:
    """Whether files of repos anyone may read (public, not gated) hold chunks [start,
    end) of a xorb: what a mirror may take from this hub's copy on its upstream's word
    (`core.objects.publicly_held` for whole files)."""
    with hub.db.read() as session:
        return _covers(_readable_ranges(session, None, {xorb}).get(xorb, []), start, end)


def index_xorb_file(fh: BinaryIO) -> XorbIndex:
    """The checked chunk index of a xorb (or a range of one) in an open file."""
    return _index_file(fh)


def store_fetched_xorb(hub: Hub, xorb: str, index: XorbIndex, staged: Path) -> None:
    """A xorb a mirror fetched from its upstream (chunks checked by `index_xorb_file`,
    hashing to `xorb`), stored once and recorded as sent by no account: it becomes
    readable only through a file a repo holds (`core.objects.holds_xorb`)."""
    ours = hub.blobs.put_staged(xorb_key(xorb), staged)
    if not ours and not _xorb_recorded(hub, xorb):
        index = _index_stored(hub, xorb)
    _record_xorb(hub, xorb, index, None)


def record_fetched_file(hub: Hub, repo_id: int, oid: str, info: XetFileInfo) -> None:
    """A mirrored repo holds `oid` as the Xet file `info`, whose terms name stored
    xorbs, whose chunks hash to its file hash and decode to the bytes of `oid` (the
    mirror checked all three)."""
    _record_files(hub, repo_id, {info.file_hash: info}, {oid: info})
