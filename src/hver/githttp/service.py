"""The smart protocol's fetch side (`git-upload-pack`), stateless as over HTTP.

Both calls write pkt-lines through `write` as dulwich produces them, so a pack streams
out while it is being built and never sits whole in memory; `read` gives the request
body. They block (object reads, pack building): run them in a worker thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from dulwich.errors import GitProtocolError
from dulwich.protocol import ReceivableProtocol
from dulwich.repo import Repo as DulwichRepo
from dulwich.server import Backend, BackendRepo, UploadPackHandler

UPLOAD_PACK = "git-upload-pack"
# What dulwich raises on a malformed request (bad pkt-line lengths assert, bad hex is a
# ValueError, the rest GitProtocolError).
MALFORMED = (GitProtocolError, AssertionError, ValueError)
SERVICES = (UPLOAD_PACK,)


class OneRepo(Backend):
    """dulwich's handlers open their repository through a backend: here, the one repo
    the caller opened for this request, whatever path the handler asks for."""

    def __init__(self, repo: DulwichRepo) -> None:
        self.repo = repo

    def open_repository(self, path: str) -> BackendRepo:
        return cast(BackendRepo, self.repo)


def _handler(repo: DulwichRepo, read: Callable[[int], bytes], write: Callable[[bytes], Any],
             advertise: bool) -> UploadPackHandler:
    def write_all(data: bytes) -> int:
        write(data)
        return len(data)

    proto = ReceivableProtocol(read, write_all)
    args: Sequence[str] = ["/"]
    return UploadPackHandler(OneRepo(repo), args, proto, stateless_rpc=True,
                             advertise_refs=advertise)


def advertise(repo: DulwichRepo, service: str, write: Callable[[bytes], Any]) -> None:
    """The reply to `GET info/refs?service=...`: the service line, then the refs and
    capabilities (protocol v0, which every client speaks)."""
    if service not in SERVICES:
        raise ValueError(service)

    def nothing(_: int) -> bytes:
        return b""

    handler = _handler(repo, nothing, write, advertise=True)
    handler.proto.write_pkt_line(b"# service=" + service.encode() + b"\n")
    handler.proto.write_pkt_line(None)
    handler.handle()


def upload_pack(repo: DulwichRepo, read: Callable[[int], bytes],
                write: Callable[[bytes], Any]) -> None:
    """Answer one `POST git-upload-pack`: negotiation, then the pack (side-band)."""
    handler = _handler(repo, read, write, advertise=False)
    try:
        handler.handle()
    except MALFORMED as exc:  # a malformed request: git prints the ERR line
        handler.proto.write_pkt_line(b"ERR " + str(exc).encode("utf-8", "replace")[:500])
