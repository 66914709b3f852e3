"""Request -> actor, repo and revision. The one place a private repo is made to look missing."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated
from urllib.parse import unquote

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from hver.core import repos as core_repos
from hver.core import sessions
from hver.core.accounts import Actor, authenticate_token
from hver.core.hub import Hub
from hver.core.signing import Signer
from hver.db.models import Repo
from hver.errors import InvalidName, NotFound, Unauthorized
from hver.names import RepoType


def get_hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


def get_signer(request: Request) -> Signer:
    signer: Signer = request.app.state.signer
    return signer


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer" and value:
        return value
    if scheme == "basic" and value:  # git and git-lfs: the token is the password
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise Unauthorized("Invalid credentials in Authorization header") from None
        password = decoded.partition(":")[2]
        return password or None
    raise Unauthorized("Invalid credentials in Authorization header")


SESSION_COOKIE = "hver_session"


def session_secret(request: Request) -> str | None:
    """The browser session's secret, where the cookie may stand for its user: on the web
    UI's own pages and forms (which mark the request as a page, and whose forms check a
    CSRF token) and on file downloads (`/resolve/`, GET and HEAD). Never on an API call:
    clients authenticate with a token."""
    route = request.scope.get("route")
    download = (request.method in ("GET", "HEAD")
                and "/resolve/{revision}/" in getattr(route, "path", ""))
    if not (download or getattr(request.state, "hver_page", False)):
        return None
    return request.cookies.get(SESSION_COOKIE) or None


async def get_actor(request: Request) -> Actor | None:
    if "hver_actor" in request.state._state:
        actor: Actor | None = request.state.hver_actor
        return actor
    token = bearer_token(request)
    actor = None
    hub = get_hub(request)
    if token is not None:

        def lookup() -> Actor:
            return authenticate_token(hub.db, token)

        actor = await run_in_threadpool(lookup)
    elif (secret := session_secret(request)) is not None:

        def lookup_session() -> Actor | None:
            try:
                return sessions.resolve(hub.db, secret)
            except Unauthorized:
                return None  # an ended session: browse on as a visitor

        actor = await run_in_threadpool(lookup_session)
        if actor is not None:
            request.state.hver_session = secret
    request.state.hver_actor = actor
    return actor


HubDep = Annotated[Hub, Depends(get_hub)]
ActorDep = Annotated[Actor | None, Depends(get_actor)]
SignerDep = Annotated[Signer, Depends(get_signer)]


def param(value: str) -> str:
    """A path parameter as the client meant it: the router saw it with %2F and %25 kept."""
    return unquote(value)


def repo_type_from_plural(plural: str) -> RepoType:
    try:
        return RepoType.from_plural(plural)
    except InvalidName:
        raise NotFound(f"Unknown repo type {plural!r}") from None


def load_repo(hub: Hub, actor: Actor | None, repo_type: RepoType, ns: str, name: str) -> Repo:
    """The repo, readable by `actor`, with its listing index caught up; else RepoNotFound."""
    with hub.db.read() as session:
        repo = core_repos.get_repo(session, actor, repo_type, param(ns), param(name))
    return core_repos.refresh_index(hub, repo)


def base_url(request: Request) -> str:
    """The endpoint as the client sees it, for absolute URLs in responses."""
    hub = get_hub(request)
    if hub.settings.public_url:
        return hub.settings.public_url.rstrip("/")
    return str(request.base_url).rstrip("/")
