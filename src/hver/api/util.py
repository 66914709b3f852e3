"""Small wire-format helpers: datetimes, pagination links, ranges, JSON bodies."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from itertools import accumulate
from typing import Any
from urllib.parse import urlencode

from fastapi import Request

from hver.api.deps import base_url
from hver.errors import BadRequest


def iso(dt: datetime | str | None) -> str | None:
    """The Hub's datetime format: millisecond precision, `Z` suffix. Also of a date as
    SQLite holds it (SQLAlchemy's text, `2026-01-31 12:34:56.789012`), without parsing."""
    if dt is None:
        return None
    if isinstance(dt, str):
        if len(dt) == 26 and dt[10] == " " and dt[19] == ".":
            return f"{dt[:10]}T{dt[11:23]}Z"
        dt = datetime.fromisoformat(dt)  # as SQLAlchemy reads it
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def iso_ts(ts: int) -> str:
    return iso(datetime.fromtimestamp(ts, UTC).replace(tzinfo=None)) or ""


def cursor(request: Request) -> int:
    raw = request.query_params.get("cursor", "0")
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"Invalid cursor {raw!r}.") from None
    if value < 0:
        raise BadRequest(f"Invalid cursor {raw!r}.")
    return value


def next_link(request: Request, next_cursor: int | str) -> str:
    """`Link` header value for the next page: absolute, every original parameter kept."""
    params = [(k, v) for k, v in request.query_params.multi_items() if k != "cursor"]
    params.append(("cursor", str(next_cursor)))
    raw_path = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
    raw_path = raw_path.split("?", 1)[0]
    root = request.scope.get("root_path", "")
    if root and raw_path.startswith(root):
        raw_path = raw_path[len(root):]
    return f'<{base_url(request)}{raw_path}?{urlencode(params)}>; rel="next"'


def query_bool(request: Request, name: str, default: bool = False) -> bool:
    value = request.query_params.get(name)
    if value is None:
        return default
    return value.lower() in ("1", "true", "yes", "on")


class RangeNotSatisfiable(Exception):
    pass


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """A single `bytes=a-b`, `a-` or `-n` range -> (start, end exclusive); None to send all.

    An end past the file is clamped; a start at or past the end is unsatisfiable.
    Anything that is not a single byte range is ignored, as RFC 9110 allows.
    """
    if not header:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if first == "":
            n = int(last)
            if n <= 0:
                raise RangeNotSatisfiable
            return max(0, size - n), size
        start = int(first)
        end = int(last) + 1 if last else size
    except ValueError:
        return None
    if start >= size or start < 0:
        raise RangeNotSatisfiable
    if end <= start:
        return None
    return start, min(end, size)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole request body, refused with 413 past `limit` bytes."""
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise BadRequest(f"Body is larger than {limit} bytes.", status=413,
                             code="PayloadTooLarge")
    return bytes(buf)


MAX_JSON_DEPTH = 64  # nested arrays and objects; real Hub bodies need a handful
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
# Brackets to +1 (as a signed byte) and -1, everything else deleted.
_BRACKETS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
_NOT_BRACKETS = bytes(set(range(256)) - set(b"[{]}"))


def too_deep(data: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the arrays and objects of a JSON text nest deeper than `limit`, brackets
    in strings aside.

    A scan in C-speed steps (a regex, `translate`, `accumulate`), never a parse: Python's
    json recurses once per level, so a body of 10,000 `[` ends in RecursionError before
    any syntax error is seen. Invalid text is measured too (json rejects it after).
    """
    if data.count(b"[") + data.count(b"{") <= limit:
        return False  # too few brackets to nest deeper
    brackets = _JSON_STRING.sub(b"", data).translate(_BRACKETS, _NOT_BRACKETS)
    return max(accumulate(memoryview(brackets).cast("b")), default=0) > limit


def parse_json(data: bytes | str, invalid: str = "Body must be JSON.") -> Any:
    """A JSON text from a client, or BadRequest: `invalid` for text that is not JSON, and
    a fixed message for nesting deeper than MAX_JSON_DEPTH. Every JSON body and NDJSON
    line a route reads goes through here."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if too_deep(raw):
        raise BadRequest(f"JSON is nested too deeply: at most {MAX_JSON_DEPTH} levels of "
                         "arrays and objects.")
    try:
        return json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: cannot happen after the scan
        raise BadRequest(invalid) from None


async def read_json(request: Request, invalid: str = "Body must be JSON.") -> Any:
    """The request's body as JSON (`parse_json`)."""
    return parse_json(await request.body(), invalid)


# On every response that carries a repo's file content. Files are anyone's uploads,
# served from the hub's own origin, where a browser session lives: a browser must never
# run them (no sniffing into HTML, no scripts, no plugins, a sandboxed document).
FILE_HEADERS = {"X-Content-Type-Options": "nosniff",
                "Content-Security-Policy": "default-src 'none'; sandbox"}
# The types a browser may show inline as they are; everything else is text or bytes.
INLINE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp",
                                "image/bmp", "image/avif"})
