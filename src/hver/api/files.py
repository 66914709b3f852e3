"""Responses that send stored files with sendfile, whole or in part.

`hver.serving` offers `http.response.pathsend` and, beside it, `PATHSEND_RANGE`: a
pathsend that starts at an offset. Starlette's FileResponse uses pathsend for a whole
file only and reads and writes every ranged response through Python; these send both by
sendfile when the server offers it, and read in 1 MiB pieces when it does not.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import anyio
from fastapi import Response
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import Receive, Scope, Send

from hver.serving import PATHSEND, PATHSEND_RANGE

PIECE = 1024 * 1024


def _offers_range(scope: Scope) -> bool:
    extensions = scope.get("extensions") or {}
    return scope["type"] == "http" and PATHSEND in extensions and PATHSEND_RANGE in extensions


class BigFileResponse(FileResponse):
    """A FileResponse that reads 1 MiB at a time where it must read, and sends a single
    range by sendfile where the server offers it."""

    chunk_size = PIECE
    _ranged_sendfile = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._ranged_sendfile = _offers_range(scope)
        await super().__call__(scope, receive, send)

    async def _handle_single_range(self, send: Send, start: int, end: int, file_size: int,
                                   send_header_only: bool) -> None:
        if send_header_only or not self._ranged_sendfile:
            return await super()._handle_single_range(send, start, end, file_size,
                                                      send_header_only)
        headers = MutableHeaders(raw=list(self.raw_headers))
        headers["content-range"] = f"bytes {start}-{end - 1}/{file_size}"
        headers["content-length"] = str(end - start)
        await send({"type": "http.response.start", "status": 206, "headers": headers.raw})
        await send({"type": PATHSEND, "path": str(self.path), "offset": start})


class FilePartResponse(Response):
    """Bytes [start, end) of a file, with the status and headers the caller decided
    (Content-Length among them); nothing is read from the request."""

    def __init__(self, path: Path, start: int, end: int, status_code: int,
                 headers: dict[str, str], media_type: str) -> None:
        self.path, self.start, self.end = path, start, end
        super().__init__(status_code=status_code, media_type=media_type,
                         headers=headers | {"Content-Length": str(end - start)})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})
        if scope["method"] == "HEAD" or self.end <= self.start:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        elif _offers_range(scope):
            await send({"type": PATHSEND, "path": str(self.path), "offset": self.start})
        else:
            await self._read_and_send(send)

    async def _read_and_send(self, send: Send) -> None:
        fh = await run_in_threadpool(open, self.path, "rb")
        try:
            pos = self.start
            while pos < self.end:
                piece: Any = await run_in_threadpool(
                    os.pread, fh.fileno(), min(PIECE, self.end - pos), pos)
                if not piece:
                    raise RuntimeError(f"{self.path} is shorter than expected.")
                pos += len(piece)
                await send({"type": "http.response.body", "body": piece,
                            "more_body": pos < self.end})
        finally:
            with anyio.CancelScope(shield=True):
                await run_in_threadpool(fh.close)
