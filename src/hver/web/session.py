"""Who is browsing, and the checks every form of the web UI goes through.

A page's actor is found by `hver.api.deps.get_actor`: an `Authorization` header, else
the session cookie that signing in sets. Forms (POST) are accepted only from this
site: a cross-site `Origin` is refused, and a session-authenticated form must carry
the session's CSRF token in its `csrf` field (`hver.core.sessions.csrf_token`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import Request
from starlette.datastructures import FormData

from hver.api.deps import SESSION_COOKIE, base_url, get_actor
from hver.core import sessions
from hver.core.accounts import Actor
from hver.errors import BadRequest, Forbidden, HverError

MAX_FORM_FIELDS = 200
MAX_FORM_FIELD_SIZE = 1024 * 1024  # a README edited in the browser fits


class SignInRequired(HverError):
    """A page that needs a signed-in user, asked for by a visitor: sent to sign in."""

    status = 401
    code = "SignInRequired"

    def __init__(self, next_url: str) -> None:
        super().__init__("Sign in to continue.")
        self.next_url = next_url


def login_url(next_url: str) -> str:
    return f"/login?next={quote(next_url, safe='/')}"


def safe_next(value: str | None) -> str:
    """A redirect target after sign-in: a path on this site, never another origin."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 0x20 or c == "\x7f" for c in value):
        return "/"
    try:
        parts = urlsplit(value)
    except ValueError:
        return "/"
    if parts.scheme or parts.netloc:
        return "/"
    return value


def _here(request: Request) -> str:
    query = request.url.query
    return request.url.path + (f"?{query}" if query else "")


async def page_actor(request: Request) -> Actor | None:
    request.state.hver_page = True
    return await get_actor(request)


async def require_user(request: Request) -> Actor:
    """The signed-in user; visitors are sent to sign in and come back here after."""
    actor = await page_actor(request)
    if actor is None:
        raise SignInRequired(_here(request) if request.method == "GET" else "/")
    return actor


def csrf_for(request: Request) -> str:
    secret: str | None = getattr(request.state, "hver_session", None)
    return sessions.csrf_token(secret) if secret else ""


def check_origin(request: Request, allow_opaque: bool = True) -> None:
    """Refuse a form sent from another site. `Origin: null` (a sandboxed frame, some
    redirects) is allowed where a CSRF token protects the form (`allow_opaque`); the
    login form has none, so it refuses it."""
    origin = request.headers.get("origin")
    if not origin:
        return
    if origin == "null":
        if allow_opaque:
            return
        raise Forbidden("Forms are accepted only from this site.", code="CrossSiteRequest")
    own = urlsplit(base_url(request))
    try:
        theirs = urlsplit(origin)
        same = (theirs.scheme, theirs.netloc) == (own.scheme, own.netloc)
    except ValueError:
        same = False
    if not same:
        raise Forbidden("Forms are accepted only from this site.", code="CrossSiteRequest")


def check_csrf(request: Request, token: str | None) -> None:
    """Refuse a session-authenticated form without its CSRF token. Token-authenticated
    requests need none: a browser never adds an `Authorization` header by itself."""
    secret: str | None = getattr(request.state, "hver_session", None)
    if secret is not None and not sessions.check_csrf(secret, token or ""):
        raise Forbidden("This form has expired; reload the page and try again.",
                        code="InvalidCsrfToken")


async def read_form(request: Request) -> FormData:
    """A small form (url-encoded or multipart without files), size-bounded."""
    try:
        form = await request.form(max_files=0, max_fields=MAX_FORM_FIELDS,
                                  max_part_size=MAX_FORM_FIELD_SIZE)
    except HverError:
        raise
    except Exception as exc:  # the parser's own errors: malformed or oversized bodies
        raise BadRequest(f"The form could not be read: {exc}", code="InvalidForm") from None
    return form


async def form_user(request: Request) -> tuple[Actor, FormData]:
    """The user sending a form, and the form, after the origin and CSRF checks."""
    check_origin(request)
    actor = await require_user(request)
    form = await read_form(request)
    token = form.get("csrf")
    check_csrf(request, token if isinstance(token, str) else None)
    return actor, form


def field(form: FormData, name: str, default: str = "") -> str:
    value = form.get(name, default)
    if not isinstance(value, str):
        raise BadRequest(f"'{name}' must be a text field.", code="InvalidForm")
    return value.strip()


def cookie_settings(request: Request) -> dict[str, Any]:
    secure = urlsplit(base_url(request)).scheme == "https"
    return {"key": SESSION_COOKIE, "httponly": True, "samesite": "lax", "path": "/",
            "secure": secure}
