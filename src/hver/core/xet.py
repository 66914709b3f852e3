"""Xet storage: xorbs in the blob store, file reconstructions and the dedup index in SQL.

A file uploaded through Xet is a list of terms, each a chunk range of a xorb. Xorbs
are content-addressed and shared by every file (and repo) whose chunks they hold;
that sharing is the deduplication. The same stored chunks serve Xet clients
(reconstruction plans whose byte ranges they fetch themselves) and plain HTTP
clients (the file decoded here, `iter_content`).

Access: a CAS token is issued for one repo and one Hub token, and lives only as long
as that Hub token and its user do. It reconstructs the files its repo holds. A xorb
may be referenced in a new shard, or offered for deduplication, only to an account
that uploaded it or may read the files of a repo holding a file made of it (private,
gated and token scopes all apply).
"""

from __future__ import annotations

import hmac
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from hver.core.access import can_read
from hver.core.accounts import Actor, actor_for_token_id
from hver.core.gating import has_access
from hver.core.hub import Hub
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
from hver.xet.hashing import file_hash, hex_hash, raw_hash, verification_hash
from hver.xet.shard import CasInfo, Shard, ShardError, Term, parse_shard, serialize_shard
from hver.xet.xorb import XorbError, XorbIndex, XorbParser, decode_chunks

MAX_SHARD_SIZE = 64 * 1024 * 1024
DEDUP_MAX_XORBS = 64  # xorbs described in one global-dedup answer
DEDUP_ANSWER_TTL = 24 * 3600  # how long the client may keep using one
READ_BATCH = 4 * 1024 * 1024  # stored bytes decoded at a time when serving a file
_TERM = struct.Struct("<32sIII")


class RangeNotSatisfiable(HverError):
    status = 416
    code = "RangeNotSatisfiable"


# -- tokens -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CasToken:
    """What a CAS access token grants: `scope` ("read" or "write") on one repo, until `exp`,
    for the Hub token `token_id` (None: anonymous) of account `account_id`."""

    repo_id: int
    account_id: int | None
    token_id: int | None
    scope: str
    exp: int

    @property
    def can_write(self) -> bool:
        return self.scope == "write"


TOKEN_PREFIX = "xet1"


def issue_token(signer: Signer, repo: Repo, actor: Actor | None, scope: str,
                ttl: int) -> tuple[str, int]:
    """A signed token and its expiry (unix seconds); the caller checked the actor's access."""
    account = actor.id if actor is not None else 0
    hub_token = (actor.token_id or 0) if actor is not None else 0
    exp = int(time.time()) + ttl
    _, sig = signer.sign("xet-token", repo.id, account, hub_token, scope, expires=exp)
    return f"{TOKEN_PREFIX}.{repo.id}.{account}.{hub_token}.{scope}.{exp}.{sig}", exp


def parse_token(signer: Signer, text: str | None) -> CasToken:
    """The grant a token carries; Unauthorized (401) when it is missing, forged or expired."""
    parts = (text or "").split(".")
    if len(parts) != 7 or parts[0] != TOKEN_PREFIX or parts[4] not in ("read", "write"):
        raise Unauthorized("Missing or invalid CAS access token.", code="InvalidToken")
    _, repo_id, account, hub_token, scope, exp, sig = parts
    try:
        repo_i, account_i, token_i, exp_i = int(repo_id), int(account), int(hub_token), int(exp)
    except ValueError:
        raise Unauthorized("Missing or invalid CAS access token.", code="InvalidToken") from None
    _, expected = signer.sign("xet-token", repo_i, account_i, token_i, scope, expires=exp_i)
    if not hmac.compare_digest(expected, sig):
        raise Unauthorized("Missing or invalid CAS access token.", code="InvalidToken")
    if exp_i <= time.time():
        raise Unauthorized("The CAS access token has expired.", code="TokenExpired")
    return CasToken(repo_i, account_i or None, token_i or None, scope, exp_i)


def _token_actor(session: Session, token: CasToken) -> Actor | None:
    """Who uses a CAS token: the Hub token it was issued for, with that token's scopes and
    its user's roles as they are now (revoked or disabled: 401)."""
    if token.token_id is None:
        return None
    actor = actor_for_token_id(session, token.token_id)
    if actor.id != token.account_id:
        raise Unauthorized("Missing or invalid CAS access token.", code="InvalidToken")
    return actor


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
    """Streams an uploaded xorb through the parser into a staging file; `commit` stores it."""

    def __init__(self, hub: Hub, token: CasToken, xorb: str) -> None:
        if not token.can_write:
            raise Forbidden("This CAS token may only read.")
        self.hub = hub
        self.token = token
        self.xorb = check_hash(xorb)
        self.parser = XorbParser()
        self.file, self.path = hub.blobs.staging_file()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        try:
            self.file.write(self.parser.feed(data))
        except XorbError as exc:
            raise BadRequest(f"Invalid xorb: {exc}", code="InvalidXorb") from None

    def commit(self) -> bool:
        """Check the whole xorb, store it once; True when it was not stored before."""
        try:
            try:
                index = self.parser.finish()
            except XorbError as exc:
                raise BadRequest(f"Invalid xorb: {exc}", code="InvalidXorb") from None
            actual = hex_hash(index.hash())
            if actual != self.xorb:
                raise BadRequest(f"Xorb hash mismatch: the body hashes to {actual}.",
                                 code="HashMismatch")
            self.file.flush()
            self.file.close()
            self.hub.blobs.put_staged(xorb_key(self.xorb), self.path)
        except BaseException:
            self.abort()
            raise
        return _record_xorb(self.hub, self.xorb, index, self.token.account_id)

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.path.unlink(missing_ok=True)


def _record_xorb(hub: Hub, xorb: str, index: XorbIndex, account_id: int | None) -> bool:
    inserted = False
    for _ in range(3):  # a concurrent upload of the same xorb may insert it first
        try:
            with hub.db.write() as session:
                if session.get(XetXorb, xorb) is None:
                    inserted = True
                    session.add(XetXorb(
                        hash=xorb, size=index.offsets[-1], unpacked_size=sum(index.sizes),
                        num_chunks=len(index.sizes), chunk_index=index.to_bytes()))
                    session.flush()
                    chunks = {hex_hash(h) for h in index.hashes if dedup_eligible(h)}
                    _add_dedup_chunks(session, chunks, xorb)
                if account_id is not None and session.get(
                        XetXorbUpload, (xorb, account_id)) is None:
                    session.add(XetXorbUpload(xorb_hash=xorb, account_id=account_id))
            return inserted
        except IntegrityError:
            inserted = False
    raise BadRequest("Could not record the xorb; try again.", status=409, code="Conflict")


def _add_dedup_chunks(session: Session, chunks: set[str], xorb: str) -> None:
    if not chunks:
        return
    known = set(session.scalars(select(XetChunk.chunk_hash).where(
        XetChunk.chunk_hash.in_(chunks))))
    session.add_all(XetChunk(chunk_hash=c, xorb_hash=xorb) for c in chunks - known)


def _accessible_xorbs(session: Session, actor: Actor | None, xorbs: set[str]) -> set[str]:
    """The xorbs `actor` holds: uploaded by them, or part of a file in a repo they can read."""
    if not xorbs:
        return set()
    ok: set[str] = set()
    if actor is not None:
        ok |= set(session.scalars(select(XetXorbUpload.xorb_hash).where(
            XetXorbUpload.account_id == actor.id, XetXorbUpload.xorb_hash.in_(xorbs))))
    rest = xorbs - ok
    if rest:
        rows = session.execute(
            select(XetFileXorb.xorb_hash, Repo)
            .join(LfsObject, LfsObject.xet_hash == XetFileXorb.file_hash)
            .join(Repo, Repo.id == LfsObject.repo_id)
            .where(XetFileXorb.xorb_hash.in_(rest))
        ).tuples().all()
        ok |= {xorb for xorb, repo in rows
               if can_read(actor, repo) and has_access(session, actor, repo)}
    return ok


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


def repo_file(hub: Hub, repo_id: int, oid: str) -> XetFileInfo | None:
    """The Xet file behind a repo's LFS object, if it was uploaded through Xet."""
    with hub.db.read() as session:
        row = session.scalar(select(XetFile).join(
            LfsObject, LfsObject.xet_hash == XetFile.file_hash).where(
            LfsObject.repo_id == repo_id, LfsObject.oid == oid))
        return _info(row) if row is not None else None


def hashes_for(hub: Hub, repo_id: int, oids: Iterable[str]) -> dict[str, str]:
    """sha256 -> Xet file hash, for those of a repo's LFS objects stored as Xet files."""
    wanted = set(oids)
    if not wanted:
        return {}
    with hub.db.read() as session:
        return {oid: fh for oid, fh in session.execute(
            select(LfsObject.oid, LfsObject.xet_hash).where(
                LfsObject.repo_id == repo_id, LfsObject.oid.in_(wanted))
        ).tuples().all() if fh is not None}


def require_file_access(hub: Hub, token: CasToken, file: XetFileInfo) -> None:
    """404, as for a file that does not exist, unless the token's repo holds the file.

    The Hub checked the token's holder may read that repo's files when it issued the
    token; the holder is checked again here (a revoked token or disabled user: 401).
    """
    with hub.db.read() as session:
        _token_actor(session, token)
        held = session.scalar(select(LfsObject.oid).where(
            LfsObject.repo_id == token.repo_id, LfsObject.xet_hash == file.file_hash).limit(1))
    if held is None:
        raise NotFound(f"File {file.file_hash} not found.", code="EntryNotFound")


# -- shards -------------------------------------------------------------------------------------


def register_shard(hub: Hub, token: CasToken, data: bytes) -> bool:
    """Validate an uploaded shard and record its files for the token's repo.

    Every xorb it names must be stored and held by the uploader, and every file's
    terms must fit their xorbs and hash to its file hash. The sha256 each file
    carries is the uploader's word, as an LFS pointer in a commit is: it binds the
    file to that sha256 in the token's repo only, which the uploader may write anyway.
    Returns True when at least one file was new.
    """
    if not token.can_write:
        raise Forbidden("This CAS token may only read.")
    if len(data) > MAX_SHARD_SIZE:
        raise BadRequest("Shard is larger than 64 MiB.", status=413, code="PayloadTooLarge")
    try:
        shard = parse_shard(data)
    except ShardError as exc:
        raise BadRequest(f"Invalid shard: {exc}", code="InvalidShard") from None
    with hub.db.read() as session:
        named = {hex_hash(t.xorb) for f in shard.files for t in f.terms}
        named |= {hex_hash(c.xorb) for c in shard.xorbs}
        actor = _token_actor(session, token)
        held = _accessible_xorbs(session, actor, named)
        missing = sorted(named - held)
        if missing:
            raise BadRequest(f"Shard references xorb {missing[0]}, which was not uploaded.",
                             code="XorbNotFound")
        indexes = _indexes.get(session, named)
    _check_cas_info(shard, indexes)
    files: dict[str, XetFileInfo] = {}
    claimed: dict[str, XetFileInfo] = {}
    for recipe in shard.files:
        fh = hex_hash(recipe.file_hash)
        if recipe.sha256 is None:
            raise BadRequest(f"File {fh} carries no sha256 in the shard.", code="InvalidShard")
        size = _check_recipe(fh, recipe.terms, recipe.verification, indexes)
        files[fh] = claimed[recipe.sha256.hex()] = XetFileInfo(fh, size, list(recipe.terms))
    return _record_files(hub, token.repo_id, files, claimed)


def _check_cas_info(shard: Shard, indexes: dict[str, XorbIndex]) -> None:
    for cas in shard.xorbs:
        idx = indexes[hex_hash(cas.xorb)]
        if cas.chunk_hashes != idx.hashes or cas.chunk_sizes != idx.sizes:
            raise BadRequest(f"Shard describes xorb {hex_hash(cas.xorb)} with other chunks "
                             "than were uploaded.", code="InvalidShard")


def _check_recipe(fh: str, terms: list[Term], verification: list[bytes] | None,
                  indexes: dict[str, XorbIndex]) -> int:
    """The file's size, once its terms are shown to fit their xorbs and hash to `fh`."""
    if not terms:
        raise BadRequest(f"File {fh} has no terms.", code="InvalidShard")
    if verification is not None and len(verification) != len(terms):
        raise BadRequest(f"File {fh} has {len(verification)} verification entries for "
                         f"{len(terms)} terms.", code="InvalidShard")
    chunks: list[tuple[bytes, int]] = []
    for n, term in enumerate(terms):
        idx = indexes[hex_hash(term.xorb)]
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
                  claimed: dict[str, XetFileInfo]) -> bool:
    """Store new files and bind each sha256 to its file in the repo; True if any was new."""
    for _ in range(3):
        try:
            new = False
            with hub.db.write() as session:
                known = set(session.scalars(select(XetFile.file_hash).where(
                    XetFile.file_hash.in_(files))))
                for fh, info in files.items():
                    if fh in known:
                        continue
                    new = True
                    session.add(XetFile(file_hash=fh, size=info.size,
                                        terms=_pack_terms(info.terms)))
                    session.flush()
                    session.add_all(XetFileXorb(file_hash=fh, xorb_hash=x)
                                    for x in {hex_hash(t.xorb) for t in info.terms})
                    first = info.terms[0]
                    idx = _indexes.get(session, [hex_hash(first.xorb)])[hex_hash(first.xorb)]
                    _add_dedup_chunks(session, {hex_hash(idx.hashes[first.chunk_start])},
                                      hex_hash(first.xorb))
                held = {row.oid: row for row in session.scalars(select(LfsObject).where(
                    LfsObject.repo_id == repo_id, LfsObject.oid.in_(claimed)))}
                for sha, info in claimed.items():
                    row = held.get(sha)
                    if row is None:
                        session.add(LfsObject(repo_id=repo_id, oid=sha, size=info.size,
                                              xet_hash=info.file_hash))
                    else:
                        row.size, row.xet_hash = info.size, info.file_hash
            return new
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


def iter_content(hub: Hub, file: XetFileInfo, start: int, end: int) -> Iterator[bytes]:
    """Bytes [start, end) of the file, decoded from its xorbs a few MiB at a time."""
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
                data = fh.read(idx.offsets[stop] - idx.offsets[c])
                for piece in decode_chunks(data):
                    if skip >= len(piece):
                        skip -= len(piece)
                        continue
                    out = piece[skip:skip + remaining]
                    skip = 0
                    remaining -= len(out)
                    yield out
                    if remaining <= 0:
                        return
                c = stop


# -- global dedup -------------------------------------------------------------------------------


def dedup_shard(hub: Hub, token: CasToken, chunk: str) -> bytes | None:
    """A shard describing the xorbs around `chunk`, if the token's user holds it; else None.

    The answer lists the xorb holding the chunk and the other xorbs of a file made of
    it, so one hit lets the client skip every chunk a new version shares with an old one.
    """
    check_hash(chunk)
    with hub.db.read() as session:
        xorb = session.scalar(select(XetChunk.xorb_hash).where(XetChunk.chunk_hash == chunk))
        if xorb is None:
            return None
        actor = _token_actor(session, token)
        if not _accessible_xorbs(session, actor, {xorb}):
            return None
        siblings = session.scalars(
            select(XetFileXorb.xorb_hash).where(XetFileXorb.file_hash.in_(
                select(XetFileXorb.file_hash).where(XetFileXorb.xorb_hash == xorb).limit(4)))
            .distinct().limit(DEDUP_MAX_XORBS * 2)).all()
        wanted = {xorb} | _accessible_xorbs(session, actor, set(siblings) - {xorb})
        chosen = [xorb] + sorted(wanted - {xorb})[:DEDUP_MAX_XORBS - 1]
        indexes = _indexes.get(session, chosen)
    return serialize_shard(Shard(files=[], xorbs=[
        CasInfo(raw_hash(x), list(indexes[x].hashes), list(indexes[x].sizes),
                indexes[x].offsets[-1]) for x in chosen]),
        expires_at=int(time.time()) + DEDUP_ANSWER_TTL)


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
