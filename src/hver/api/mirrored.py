"""A mirrored repo's large file while the mirror fetches it (`hver.mirror.partial`):
sent as it arrives, Range requests included, so that no client waits for all of it
before its first byte (clients time out after some seconds without one)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import BinaryIO

from fastapi import Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from hver.api.util import RangeNotSatisfiable, parse_range
from hver.mirror.partial import Part, PartFailed, read_part

STALL_S = 60.0  # nothing new from the upstream for this long: the response is cut


async def partial_response(request: Request, part: Part, headers: dict[str, str],
                           filename: str | None) -> Response:
    size = part.size
    try:
        rng = parse_range(request.headers.get("range"), size)
    except RangeNotSatisfiable:
        return Response(status_code=416, headers=headers | {
            "Content-Range": f"bytes */{size}"})
    start, end = rng if rng is not None else (0, size)
    headers = headers | {"Accept-Ranges": "bytes", "Content-Length": str(end - start),
                         "Cache-Control": "no-store"}  # its final answer will be cached
    if filename:
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{filename}"
    status = 206 if rng is not None else 200
    if rng is not None:
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    try:  # the first bytes (or the failure) before the status line goes out
        await run_in_threadpool(part.wait, start, STALL_S)
    except PartFailed as exc:
        from hver.mirror import MirrorUnavailable

        raise MirrorUnavailable(f"The upstream hub did not send this file: {exc}") from None
    assert part.path is not None
    fh = part.path.open("rb")  # held open: the finished file moves, this stays readable
    return StreamingResponse(_body(part, fh, start, end), status_code=status,
                             headers=headers, media_type="application/octet-stream")


async def _body(part: Part, fh: BinaryIO, start: int, end: int) -> AsyncIterator[bytes]:
    try:
        pos = start
        while pos < end:
            data = await run_in_threadpool(read_part, part, fh, pos, end, 1 << 20, STALL_S)
            pos += len(data)
            yield data
    finally:
        fh.close()
