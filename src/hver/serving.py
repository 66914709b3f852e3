"""uvicorn's httptools protocol with the changes big transfers need.

- `http.response.pathsend` (the ASGI zero-copy extension, which Starlette's FileResponse
  uses when offered): the file goes out with `os.sendfile` from the event loop, so the
  server neither reads nor copies the bytes it serves. uvicorn 0.54 does not offer the
  extension itself, and uvloop has no `loop.sendfile`. A pathsend message may also carry
  `offset` (hver's `PATHSEND_RANGE` extension, offered beside it): the response's
  Content-Length bytes from there, which is how ranged responses go out by sendfile too.
- A request body is handed to the application piece by piece, each the very `bytes`
  object the parser produced: uvicorn joins them into a bytearray and copies that again
  into `bytes` on every `receive()`, two copies of every uploaded byte. Reading pauses
  once `BODY_HIGH_WATER` bytes wait, not 64 KiB: far fewer pause/resume turns per GiB.
- Memory: glibc's arenas are capped (`hver.memory.tune_malloc`) in the serving process.

`cmd_serve` selects it with `http="hver.serving:HverHttpToolsProtocol"`.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from hver.memory import tune_malloc

BODY_HIGH_WATER = 1024 * 1024
PATHSEND = "http.response.pathsend"
PATHSEND_RANGE = "hver.pathsend.offset"
tune_malloc()  # imported by the serving process only, before its threads start


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


async def sendfile(transport: asyncio.Transport, path: str, count: int, offset: int = 0) -> int:
    """Send `count` bytes of `path` from `offset` on the transport's socket; returns how
    many went out.

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
                    n = os.sendfile(sock.fileno(), fh.fileno(), offset + sent, count - sent)
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
    pieces: deque[bytes]
    buffered: int

    async def receive(self) -> Any:
        """The next piece of the body as the parser produced it (no join, no copy); the
        rest as uvicorn's own `receive`."""
        if self.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.waiting_for_100_continue = False
        if not self.pieces and not self.disconnected and not self.response_complete:
            self.flow.resume_reading()
            await self.message_event.wait()
            self.message_event.clear()
        if self.disconnected or self.response_complete:
            return {"type": "http.disconnect"}
        body = self.pieces.popleft() if self.pieces else b""
        self.buffered -= len(body)
        if not self.pieces:
            self.message_event.clear()  # set again by the next piece, the end or a disconnect
        if self.buffered <= BODY_HIGH_WATER:
            self.flow.resume_reading()
        return {"type": "http.request", "body": body,
                "more_body": self.more_body or bool(self.pieces)}

    async def send(self, message: Any) -> None:
        if message["type"] != PATHSEND:
            return await super().send(message)
        if not self.response_started or self.response_complete:
            raise RuntimeError(f"Unexpected ASGI message '{PATHSEND}'.")
        if self.disconnected:
            return
        if self.flow.write_paused:
            await self.flow.drain()
        offset = int(message.get("offset", 0))
        if self.chunked_encoding:
            # Never offered this way by Starlette (it sends content-length); stay correct.
            with open(message["path"], "rb") as fh:
                fh.seek(offset)
                while chunk := fh.read(1024 * 1024):
                    await super().send({"type": "http.response.body", "body": chunk,
                                        "more_body": True})
            return await super().send({"type": "http.response.body", "body": b""})
        count = self.expected_content_length
        if self.scope["method"] != "HEAD" and count:
            sent = await sendfile(self.transport, message["path"], count, offset)
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
        extensions = self.scope.setdefault("extensions", {})
        extensions[PATHSEND] = {}
        extensions[PATHSEND_RANGE] = {}

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        # The new cycle's task is only scheduled, not started: give it pathsend.
        cycle = self.cycle
        if type(cycle) is RequestResponseCycle:
            cycle.__class__ = PathsendCycle
            assert isinstance(cycle, PathsendCycle)
            cycle.pieces = deque()
            cycle.buffered = 0

    def on_body(self, body: bytes) -> None:
        upgrade = self.parser.should_upgrade() and self._should_upgrade()
        if upgrade or self.cycle.response_complete:
            return
        cycle = self.cycle
        if isinstance(cycle, PathsendCycle):
            cycle.pieces.append(body)
            cycle.buffered += len(body)
            if cycle.buffered > BODY_HIGH_WATER:
                self.flow.pause_reading()
        else:
            cycle.body += body
            if len(cycle.body) > BODY_HIGH_WATER:
                self.flow.pause_reading()
        cycle.message_event.set()
