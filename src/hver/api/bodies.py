"""Big request bodies into a writer, off the event loop, without copying them.

`hver.serving` hands the body over as the parser's own pieces; they are collected (not
joined) up to `BATCH` bytes, and each batch goes to the writer in the thread pool while
the next one arrives. At most two batches per upload are held: memory stays flat
whatever the size and however many uploads run.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from hver.memory import transfer

BATCH = 2 * 1024 * 1024


class BodyWriter(Protocol):
    def write(self, data: bytes) -> None: ...
    def abort(self) -> None: ...


def _write_all(writer: BodyWriter, parts: list[bytes]) -> None:
    for part in parts:
        writer.write(part)


async def receive_into(request: Request, writer: BodyWriter, batch: int = BATCH) -> None:
    """Stream the request body into `writer`; `writer.abort()` on any failure."""
    parts: list[bytes] = []
    size = 0
    pending: asyncio.Future[None] | None = None
    with transfer():
        try:
            async for chunk in request.stream():
                parts.append(chunk)
                size += len(chunk)
                if size >= batch:
                    if pending is not None:
                        await pending
                    pending = asyncio.ensure_future(run_in_threadpool(_write_all, writer, parts))
                    parts, size = [], 0
            if pending is not None:
                await pending
            if parts:
                await run_in_threadpool(_write_all, writer, parts)
        except BaseException:
            if pending is not None and not pending.done():
                with contextlib.suppress(BaseException):
                    await pending  # the file must not close under a write in flight
            writer.abort()
            raise
