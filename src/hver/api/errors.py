"""The one place hver errors become HTTP responses, with the Hub's X-Error-* headers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from hver.errors import HverError

log = logging.getLogger("hver")


def _header_safe(message: str) -> str:
    """The message as a valid header value: one line of printable latin-1."""
    text = " ".join(message.split())[:1000]
    text = text.encode("latin-1", "replace").decode("latin-1")
    return "".join(ch if " " <= ch != "\x7f" else "?" for ch in text)


def error_response(
    status: int, message: str, code: str | None = None, commit: str | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    headers = {"X-Error-Message": _header_safe(message)}
    if code:
        headers["X-Error-Code"] = code
    if commit:
        headers["X-Repo-Commit"] = commit
    return JSONResponse({"error": message, **(extra or {})}, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(HverError)
    async def _hver(_: Request, exc: HverError) -> JSONResponse:
        return error_response(exc.status, exc.message, exc.code, exc.commit)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return error_response(400, "Invalid request: " + "; ".join(parts), "BadRequest")

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        code = {400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code)
        return error_response(exc.status_code, str(exc.detail), code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, "Internal server error", "InternalError")
