"""uvicorn's httptools protocol with two changes for big transfers.

- `http.response.pathsend` (the ASGI zero-copy extension, which Starlette's FileResponse
  uses when offered): the file goes out with `os.sendfile` from the event loop, so the
  server neither reads nor copies the bytes it serves. uvicorn 0.54 does not offer the
  extension itself, and uvloop has no `loop.sendfile`.
- A request body is buffered up to `BODY_HIGH_WATER` before reading pauses, not 64 KiB:
  far fewer pause/resume and receive() turns per GiB uploaded.

`cmd_serve` selects it with `http="hver.serving:HverHttpToolsProtocol"`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

BODY_HIGH_WATER = 1024 * 1024
PATHSEND = "http.response.pathsend"


async def _writable(loop: asyncio.AbstractEventLoop, fd: int) -> None:
    fut: asyncio.Future[None] = loop.create_future()

    def ready() -> None:
        if not fut.done():
            fut.set_result(None)

    loop.add_writer(fd, ready)
    try:
        await fut
    finally:
        loop.remove_writer(fd)


async def sendfile(transport: asyncio.Transport, path: str, count: int) -> int:
    """Send `count` bytes of `path` on the transport's socket; returns how many went out.

    Runs on the event loop thread, so the transport cannot close its socket between the
    `is_closing` check and a `sendfile` call. Readiness is awaited on a dup of the socket:
    the loop refuses a second registration of the transport's own descriptor.
    """
    loop = asyncio.get_running_loop()
    sock = transport.get_extra_info("socket")
    while transport.get_write_buffer_size() and not transport.is_closing():
        await asyncio.sleep(0.001)  # the status line and headers are still queued
    sent = 0
    watch = os.dup(sock.fileno())
    try:
        with open(path, "rb") as fh:
            while sent < count and not transport.is_closing():
                try:
                    n = os.sendfile(sock.fileno(), fh.fileno(), sent, count - sent)
                except BlockingIOError:
                    await _writable(loop, watch)
                    continue
                except OSError:
                    break  # the peer went away
                if n == 0:
                    break  # the file is shorter than announced
                sent += n
    finally:
        os.close(watch)
    return sent


class PathsendCycle(RequestResponseCycle):
    async def send(self, message: Any) -> None:
        if message["type"] != PATHSEND:
            return await super().send(message)
        if not self.response_started or self.response_complete:
            raise RuntimeError(f"Unexpected ASGI message '{PATHSEND}'.")
        if self.disconnected:
            return
        if self.flow.write_paused:
            await self.flow.drain()
        if self.chunked_encoding:
            # Never offered this way by Starlette (it sends content-length); stay correct.
            with open(message["path"], "rb") as fh:
                while chunk := fh.read(1024 * 1024):
                    await super().send({"type": "http.response.body", "body": chunk,
                                        "more_body": True})
            return await super().send({"type": "http.response.body", "body": b""})
        count = self.expected_content_length
        if self.scope["method"] != "HEAD" and count:
            sent = await sendfile(self.transport, message["path"], count)
            if sent != count:
                self.transport.close()
                self.disconnected = True
                return
            self.expected_content_length = 0
        await super().send({"type": "http.response.body", "body": b"",
                            "more_body": False})


class HverHttpToolsProtocol(HttpToolsProtocol):
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.scope.setdefault("extensions", {})[PATHSEND] = {}

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        # The new cycle's task is only scheduled, not started: give it pathsend.
        if type(self.cycle) is RequestResponseCycle:
            self.cycle.__class__ = PathsendCycle

    def on_body(self, body: bytes) -> None:
        upgrade = self.parser.should_upgrade() and self._should_upgrade()
        if upgrade or self.cycle.response_complete:
            return
        self.cycle.body += body
        if len(self.cycle.body) > BODY_HIGH_WATER:
            self.flow.pause_reading()
        self.cycle.message_event.set()
