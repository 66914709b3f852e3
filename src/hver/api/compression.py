"""Compressed JSON for the Xet CAS: zstd or gzip, when the client's `Accept-Encoding` asks.

Reconstruction plans of large files run to megabytes of JSON (a signed URL per xorb
range), which compress well; the spec says a CAS SHOULD offer gzip and zstd. Only
`application/json` answers under `/xet/` are compressed: file and xorb bytes (already
compressed chunks, and byte ranges a client checks against `Content-Range`) and
streamed NDJSON pass through as they are.
"""

from __future__ import annotations

import gzip

import zstandard
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MINIMUM_SIZE = 1024  # smaller answers are sent as they are
_ENCODERS = {
    "zstd": lambda data: zstandard.ZstdCompressor(level=3).compress(data),
    "gzip": lambda data: gzip.compress(data, compresslevel=6, mtime=0),
}


def choose_encoding(accept: str) -> str | None:
    """zstd, else gzip, if `accept` (an Accept-Encoding value) allows it."""
    allowed = set()
    for item in accept.split(","):
        name, *params = item.split(";")
        q = 1.0
        for param in params:
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            allowed.add(name.strip().lower())
    return next((e for e in ("zstd", "gzip") if e in allowed), None)


class CompressJsonMiddleware:
    def __init__(self, app: ASGIApp, prefix: str = "/xet/") -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        encoding = None
        if scope["type"] == "http" and scope["path"].startswith(self.prefix):
            encoding = choose_encoding(Headers(scope=scope).get("accept-encoding", ""))
        if encoding is None:
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, _Compressing(send, encoding))


class _Compressing:
    """Holds back a JSON answer until its body is complete, then sends it compressed."""

    def __init__(self, send: Send, encoding: str) -> None:
        self.send = send
        self.encoding = encoding
        self.start: Message | None = None
        self.body = bytearray()

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = Headers(raw=message["headers"])
            if (headers.get("content-type", "").startswith("application/json")
                    and "content-encoding" not in headers):
                self.start = message
                return
        elif message["type"] == "http.response.body" and self.start is not None:
            self.body += message.get("body", b"")
            if message.get("more_body", False):
                return
            await self._finish()
            return
        await self.send(message)

    async def _finish(self) -> None:
        assert self.start is not None
        body = bytes(self.body)
        headers = MutableHeaders(raw=self.start["headers"])
        headers.add_vary_header("Accept-Encoding")
        if len(body) >= MINIMUM_SIZE:
            body = _ENCODERS[self.encoding](body)
            headers["Content-Encoding"] = self.encoding
            headers["Content-Length"] = str(len(body))
        await self.send(self.start)
        await self.send({"type": "http.response.body", "body": body})
