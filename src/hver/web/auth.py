"""Signing in and out in the browser.

Password sign-ins are throttled per account (`hver.core.login_throttle`): a throttled
attempt is answered 429 with `Retry-After` and the Hub's `X-Error-*` headers, on the
sign-in page, without checking the password. Per client address, `hver.api.limits`
limits the attempts, whatever `Authorization` header they carry.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from hver.api.deps import get_hub
from hver.core import sessions
from hver.core.login_throttle import LoginThrottle, SignInThrottled
from hver.core.sessions import SESSION_TTL
from hver.db.engine import Database
from hver.errors import Unauthorized
from hver.web.pages import _common, render
from hver.web.session import (
    check_csrf,
    check_origin,
    cookie_settings,
    field,
    page_actor,
    read_form,
    safe_next,
)

router = APIRouter(include_in_schema=False)


def _throttle(request: Request) -> LoginThrottle:
    """This app's throttle, made on first use (in the event loop: no race)."""
    state = request.app.state
    throttle: LoginThrottle | None = getattr(state, "login_throttle", None)
    if throttle is None:
        throttle = state.login_throttle = LoginThrottle(db=state.hub.db,
                                                        secret=state.signer.key)
    return throttle


def _sign_in(throttle: LoginThrottle, db: Database, name: str, password: str,
             source: str | None) -> str:
    """A password check under the account's throttle (blocking: from a worker thread)."""
    with throttle.attempt(name):
        return sessions.sign_in(db, name, password, source)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request) -> Response:
    actor = await page_actor(request)
    next_url = safe_next(request.query_params.get("next"))
    if actor is not None:
        return RedirectResponse(next_url, status_code=303)
    return render("login.html", next_url=next_url, error=None, username="", **_common(request))


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    request.state.hver_page = True
    check_origin(request, allow_opaque=False)
    form = await read_form(request)
    name, password = field(form, "username"), form.get("password", "")
    next_url = safe_next(field(form, "next"))
    hub = get_hub(request)
    source = request.client.host if request.client else None
    try:
        if not name or not isinstance(password, str) or not password:
            raise Unauthorized("Enter your username and password.")
        secret = await run_in_threadpool(_sign_in, _throttle(request), hub.db, name, password,
                                         source)
    except SignInThrottled as exc:
        request.state.hver_actor = None
        page = render("login.html", status=exc.status, next_url=next_url,
                      error=exc.message, username=name, **_common(request))
        # The Hub's error headers, as the API's own 429s carry them.
        page.headers["X-Error-Code"] = exc.code or "TooManyRequests"
        page.headers["X-Error-Message"] = exc.message
        page.headers["Retry-After"] = str(exc.retry_after)
        return page
    except Unauthorized as exc:
        request.state.hver_actor = None
        return render("login.html", status=401, next_url=next_url, error=exc.message,
                      username=name, **_common(request))
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(value=secret, max_age=int(SESSION_TTL.total_seconds()),
                        **cookie_settings(request))
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    check_origin(request)
    actor = await page_actor(request)
    secret: str | None = getattr(request.state, "hver_session", None)
    if actor is not None and secret is not None:
        form = await read_form(request)
        token = form.get("csrf")
        check_csrf(request, token if isinstance(token, str) else None)
        await run_in_threadpool(sessions.sign_out, get_hub(request).db, secret)
    response = RedirectResponse("/", status_code=303)
    settings = cookie_settings(request)
    response.delete_cookie(settings.pop("key"), **settings)
    return response
