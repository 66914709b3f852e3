"""Xorb upload grants: how hf_xet 1.8 uploads xorbs (xet-core PR #974).

1. `request_grant`: a write token asks to upload one xorb of `length` bytes. The answer is
   a grant (an id, and where to send the bytes: `BlobStore.upload_target`, for the local
   store the hub's own signed PUT URL), or None when the token's account has sent that
   xorb before (the client then skips it, as `POST /v1/xorbs` answers `was_inserted`).
2. The client sends the bytes to the target, without CAS credentials. The hub's own URL
   is signed for the grant id, the xorb, the length, the repo (id and storage key) and
   the account, until the grant expires (`check_upload`); it only stages the bytes
   (`UploadWriter`), under a name bound to the xorb, the repo and the account, so a
   repeated grant replaces what an earlier one staged.
3. `commit_grant`: the same token's holder takes the staged bytes and checks them as
   `POST /v1/xorbs` does (`core.xet.store_xorb_file`): the token is authorised again, the
   xorb validated and hashed where it lies, and the staged file itself (a footer cut
   off) moved into the store, not copied: stored once (first writer wins), the stored
   copy indexed and the xorb recorded for the account. Until then staged bytes are
   nobody's: no route reads them, a commit by another account or repo finds nothing
   under its own name, and those never committed are swept once older than the grant's
   lifetime.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from hver.core.hub import Hub
from hver.core.lfs import repo_by_pk
from hver.core.signing import Signer
from hver.core.xet import CasToken, authorize, check_hash, store_xorb_file
from hver.db.models import XetXorbUpload
from hver.errors import BadRequest, Forbidden, NotFound
from hver.storage.blobs import UploadTarget
from hver.xet.xorb import MAX_XORB_BODY

# The serialized xorb may carry a footer (about 40 bytes a chunk) after its chunks.
MAX_GRANT_LENGTH = MAX_XORB_BODY + 1024 * 1024
GRANT_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_DECIMAL = re.compile(r"[0-9]{1,20}")
SWEEP_EVERY = 60.0  # seconds between sweeps of stale staged uploads, at most one per process
_SIGNED = "xet-grant"


@dataclass(frozen=True)
class Grant:
    id: str
    target: UploadTarget

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "method": self.target.method, "url": self.target.url,
                "headers": self.target.headers}


def parse_request(body: Any) -> tuple[int, int]:
    """(length, CRC-64/NVME checksum) of a grant request body:
    `{"length": n, "checksum": {"algo": "crc64nvme", "value": "<decimal>"}}`."""
    if not isinstance(body, dict):
        raise BadRequest("Body must be a JSON object with 'length' and 'checksum'.")
    length = body.get("length")
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        raise BadRequest("'length' must be a positive integer.")
    if length > MAX_GRANT_LENGTH:
        raise BadRequest(f"A xorb is at most {MAX_GRANT_LENGTH} bytes.", status=413,
                         code="PayloadTooLarge")
    checksum = body.get("checksum")
    if not isinstance(checksum, dict) or checksum.get("algo") != "crc64nvme":
        raise BadRequest("'checksum' must be {\"algo\": \"crc64nvme\", \"value\": ...}.")
    value = checksum.get("value")
    if not isinstance(value, str) or not _DECIMAL.fullmatch(value) or int(value) >= 1 << 64:
        raise BadRequest("The checksum value must be a decimal string of a 64-bit number.")
    return length, int(value)


def _upload_name(signer: Signer, xorb: str, repo_pk: int, storage_key: str,
                 account: int) -> str:
    """Where the bytes of a grant are staged: one name per xorb, repo and account."""
    _, mac = signer.sign(_SIGNED, "staged", xorb, repo_pk, storage_key, account, expires=0)
    return f"xet-{mac[:48]}"


def _sent_by(hub: Hub, xorb: str, account: int) -> bool:
    with hub.db.read() as session:
        return session.get(XetXorbUpload, (xorb, account)) is not None


def request_grant(hub: Hub, signer: Signer, token: CasToken, xorb: str, body: Any,
                  cas_url: str) -> Grant | None:
    """A grant to upload `xorb` (module docstring, 1); None when the account sent it before.
    `cas_url` is the CAS base URL the hub's own upload URL is made under."""
    check_hash(xorb)
    length, checksum = parse_request(body)
    with hub.db.read() as session:
        authorize(session, token, write=True)
    assert token.account_id is not None  # write tokens are a user's
    if _sent_by(hub, xorb, token.account_id):
        return None
    grant_id = secrets.token_urlsafe(24)
    exp = int(time.time()) + hub.settings.signed_url_ttl
    fields = (grant_id, xorb, length, token.repo_id, token.storage_key, token.account_id)
    _, sig = signer.sign(_SIGNED, *fields, expires=exp)
    query = urlencode({"xorb": xorb, "len": length, "repo": token.repo_id,
                       "account": token.account_id, "exp": exp, "sig": sig})
    own_url = f"{cas_url}/uploads/{grant_id}?{query}"
    name = _upload_name(signer, xorb, token.repo_id, token.storage_key, token.account_id)
    return Grant(grant_id, hub.blobs.upload_target(name, length, checksum, exp, own_url))


def check_upload(hub: Hub, signer: Signer, grant_id: str,
                 query: Mapping[str, str]) -> tuple[str, int]:
    """The staged name and length the hub's own upload URL grants; Forbidden (403, which
    makes the client ask for a new grant) when it is forged, altered or expired."""
    try:
        xorb, length = query["xorb"], int(query["len"])
        repo_pk, account = int(query["repo"]), int(query["account"])
    except (KeyError, ValueError):
        raise Forbidden("Invalid upload URL.") from None
    repo = repo_by_pk(hub, repo_pk)
    storage_key = repo.storage_key if repo is not None else ""
    signer.verify(_SIGNED, grant_id, xorb, length, repo_pk, storage_key, account,
                  exp=query.get("exp", ""), sig=query.get("sig", ""))
    return _upload_name(signer, xorb, repo_pk, storage_key, account), length


class UploadWriter:
    """Writes the body sent to a grant's URL into a staging file; `finish` stages it."""

    def __init__(self, hub: Hub, name: str, length: int) -> None:
        self.hub = hub
        self.name = name
        self.length = length
        self.size = 0
        self.file, self.path = hub.blobs.staging_file()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.size += len(data)
        if self.size > self.length:
            raise BadRequest(f"The body is longer than the {self.length} bytes granted.")
        self.file.write(data)

    def finish(self) -> None:
        try:
            if self.size != self.length:
                raise BadRequest(f"The body has {self.size} bytes, not the {self.length} "
                                 "bytes granted.")
            # Not fsynced here: staged bytes are nobody's until committed, and the
            # commit fsyncs the very file it stores (a crash before it only costs a
            # new grant and upload).
            self.file.close()
            self.hub.blobs.put_upload(self.name, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.path.unlink(missing_ok=True)


def commit_grant(hub: Hub, signer: Signer, token: CasToken, xorb: str, grant_id: str) -> bool:
    """Check and store the bytes staged for `xorb` by the token's repo and account (module
    docstring, 3); True when the account had not sent this xorb before. NotFound (the
    client asks for a new grant and uploads again) when nothing is staged for them."""
    check_hash(xorb)
    if not GRANT_ID.fullmatch(grant_id):
        raise NotFound("No upload grant with this id.", code="EntryNotFound")
    sweep(hub)
    with hub.db.read() as session:
        authorize(session, token, write=True)  # as every CAS call
    assert token.account_id is not None
    name = _upload_name(signer, xorb, token.repo_id, token.storage_key, token.account_id)
    taken = hub.blobs.take_upload(name, hub.settings.signed_url_ttl)
    if taken is None:
        if _sent_by(hub, xorb, token.account_id):
            return False  # committed already (a retried commit)
        raise NotFound("Nothing was uploaded for this grant.", code="EntryNotFound")
    # Checked where it lies and moved into the store: the staged file is the xorb.
    return store_xorb_file(hub, token, xorb, taken)


class _Sweeper:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.last = float("-inf")

    def due(self) -> bool:
        with self.lock:
            now = time.monotonic()
            if now - self.last < SWEEP_EVERY:
                return False
            self.last = now
            return True


_sweeper = _Sweeper()


def sweep(hub: Hub, force: bool = False) -> int:
    """Remove staged uploads never committed, older than a grant's lifetime (at most once a
    minute unless forced: `hver serve` forces it at start). Returns how many."""
    if not force and not _sweeper.due():
        return 0
    return hub.blobs.clean_uploads(hub.settings.signed_url_ttl)
