"""`X-Request-Id` on every response: the id huggingface_hub prints in its error messages
("(Request ID: ...)"), so that a user's report can be matched with the server's log.

The client sends its own id on every request (`X-Amzn-Trace-Id`, a uuid4, which it also
writes to its debug log; or the caller's `X-Request-Id`, which it copies there): a
well-formed one is kept, so both ends name the request alike. Otherwise the server makes
a random one. Pure ASGI: the header is added to the response's start message, and the
body, streamed or not, passes through untouched.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import MutableMapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID_HEADER = "X-Request-Id"
_HEADER = REQUEST_ID_HEADER.lower().encode()
# Request headers whose value may stand for the request, in order.
_CLIENT_HEADERS = (_HEADER, b"x-amzn-trace-id")
# What a client's id may look like to be kept: short, and nothing a log line or a header
# could be confused by (AWS trace ids, `Root=1-...;Parent=...`, fit).
_CLIENT_ID = re.compile(rb"[A-Za-z0-9][A-Za-z0-9._:;=+/-]{0,127}")
_STATE_KEY = "hver_request_id"


def request_id(scope: MutableMapping[str, Any]) -> str | None:
    """The id of the request, once the middleware has seen it."""
    state = scope.get("state")
    value: object = state.get(_STATE_KEY) if isinstance(state, dict) else None
    return value if isinstance(value, str) else None


def _from_client(scope: Scope) -> str | None:
    sent: dict[bytes, bytes] = dict(scope.get("headers") or [])
    for name in _CLIENT_HEADERS:
        value = sent.get(name)
        if value is not None and _CLIENT_ID.fullmatch(value):
            return value.decode("ascii")
    return None


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _from_client(scope) or uuid.uuid4().hex
        # In the scope's state, which the outermost error handler sees too (it renders
        # 500s outside every middleware, this one included).
        scope.setdefault("state", {})[_STATE_KEY] = rid
        value = rid.encode("ascii")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != _HEADER]
                message = {**message, "headers": [*headers, (_HEADER, value)]}
            await send(message)

        await self.app(scope, receive, send_with_id)
