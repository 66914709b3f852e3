"""The one place hver errors become HTTP responses, with the Hub's X-Error-* headers."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from hver.api.request_id import REQUEST_ID_HEADER, request_id
from hver.errors import HverError, RepoMoved, RepoNotFound

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


def plain_error_response(status: int, message: str, code: str | None = None) -> Response:
    """An error whose body is the message as text, for clients that ask for text (the
    Hub's `validate-yaml`: huggingface_hub raises `ValueError(response.text)`)."""
    headers = {"X-Error-Message": _header_safe(message)}
    if code:
        headers["X-Error-Code"] = code
    return PlainTextResponse(message, status_code=status, headers=headers)


def moved_response(request: Request, exc: RepoMoved) -> Response:
    """A request to an id a repo was moved from, sent on to the same route at the repo's
    id: 307 for the API and files (method and body kept; huggingface_hub follows
    redirects on its own host), 301 for a page. A route that names no repo in its path
    (a JSON body does) answers as if the repo were missing."""
    location = _moved_location(request, exc.namespace, exc.name)
    if location is None:
        missing = RepoNotFound()
        return error_response(missing.status, missing.message, missing.code)
    page = getattr(request.state, "hver_page", False) and request.method in ("GET", "HEAD")
    # A repo may take the old id again: no client may keep the redirect.
    return RedirectResponse(location, status_code=301 if page else 307,
                            headers={"Cache-Control": "no-store"})


def _moved_location(request: Request, namespace: str, name: str) -> str | None:
    """The request's URL with its route's repo id (`{ns}` and `{name}`) replaced and its
    query kept; None when the route has no repo id in its path."""
    from hver.api.deps import base_url  # deps imports the domain, which imports errors

    template = getattr(request.scope.get("route"), "path", "")
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root):]
    # The route matched this path with `%2F` kept: its segments line up with the raw ones.
    segments, pattern = path.split("/"), template.split("/")
    found = set()
    for i, part in enumerate(pattern[:len(segments)]):
        if part == "{ns}" or part.startswith("{ns:"):
            segments[i] = quote(namespace, safe="")
            found.add("ns")
        elif part == "{name}":
            # The git-lfs routes take `name.git` (a repo name never ends in `.git`).
            suffix = ".git" if segments[i].endswith(".git") else ""
            segments[i] = quote(name, safe="") + suffix
            found.add("name")
    if found != {"ns", "name"}:
        return None
    query = request.url.query
    return f"{base_url(request)}{'/'.join(segments)}" + (f"?{query}" if query else "")


def install(app: FastAPI) -> None:
    @app.exception_handler(HverError)
    async def _hver(request: Request, exc: HverError) -> Response:
        if isinstance(exc, RepoMoved):
            return moved_response(request, exc)
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
        # Starlette runs this handler outside every middleware, the request id's too:
        # the id is added here.
        rid = request_id(request.scope)
        log.exception("unexpected error on %s %s (request id %s)", request.method,
                      request.url.path, rid)
        response = error_response(500, "Internal server error", "InternalError")
        if rid is not None:
            response.headers[REQUEST_ID_HEADER] = rid
        return response
