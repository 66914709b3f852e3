"""Request -> actor, repo and revision. The one place a private repo is made to look missing."""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections.abc import AsyncIterator, Hashable
from contextlib import asynccontextmanager
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import Depends, Request
from sqlalchemy import inspect as sa_inspect
from starlette.concurrency import run_in_threadpool

from hver.core import access, sessions
from hver.core import repos as core_repos
from hver.core.accounts import Actor, authenticate_token, cached_actor
from hver.core.caches import loose_ref, repo_key
from hver.core.hub import Hub
from hver.core.lru import Lru
from hver.core.repos import DEFAULT_BRANCH
from hver.core.signing import Signer
from hver.db.models import Repo
from hver.errors import InvalidName, NotFound, RepoNotFound, Unauthorized
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
        # A token seen lately costs no thread and no query (`hver.core.caches`).
        actor = cached_actor(hub.caches.actors, token)
        if actor is None:

            def lookup() -> Actor:
                return authenticate_token(hub.db, token, hub.caches.actors)

            async with first_of_a_kind(("token", token)) as first:
                if not first:  # another request just looked it up
                    actor = cached_actor(hub.caches.actors, token)
                if actor is None:
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


_filling: dict[tuple[asyncio.AbstractEventLoop, Hashable], asyncio.Event] = {}


@asynccontextmanager
async def first_of_a_kind(key: Hashable) -> AsyncIterator[bool]:
    """Whether this request is the first of those now in flight to fill the caches for
    `key`: the others wait until it is done, then look in the caches again (and read for
    themselves if they still miss; no answer is shared). After a quiet spell, a burst of
    requests for one file or token costs one read, not one each."""
    loop = asyncio.get_running_loop()
    done = _filling.get((loop, key))
    if done is not None:
        await done.wait()
        yield False
        return
    done = _filling[(loop, key)] = asyncio.Event()
    try:
        yield True
    finally:
        del _filling[(loop, key)]
        done.set()


# Coroutines: FastAPI runs a plain function dependency in a worker thread, a thread hop
# per dependency per request for what is an attribute read.
async def _hub_dep(request: Request) -> Hub:
    return get_hub(request)


async def _signer_dep(request: Request) -> Signer:
    return get_signer(request)


HubDep = Annotated[Hub, Depends(_hub_dep)]
ActorDep = Annotated[Actor | None, Depends(get_actor)]
SignerDep = Annotated[Signer, Depends(_signer_dep)]


def param(value: str) -> str:
    """A path parameter as the client meant it: the router saw it with %2F and %25 kept."""
    return unquote(value)


def repo_type_from_plural(plural: str) -> RepoType:
    try:
        return RepoType.from_plural(plural)
    except InvalidName:
        raise NotFound(f"Unknown repo type {plural!r}") from None


def load_repo(hub: Hub, actor: Actor | None, repo_type: RepoType, ns: str, name: str) -> Repo:
    """The repo, readable by `actor`, with its listing index caught up and the downloads
    this process counted and has not written yet; else RepoNotFound. A repo this hub
    does not hold is looked for upstream when it mirrors one (`hver.mirror`), and a
    mirrored repo is caught up with the upstream when it is due.

    The row comes from the repo cache while nothing changed it (`hver.core.caches`);
    the default branch's head is read from its ref file every time, and only when it is
    not the row's `sha` (a crash between a commit and its index update) is the index
    refreshed through git."""
    ns, name = param(ns), param(name)
    cache = hub.caches.repos
    key = repo_key(repo_type.value, ns, name)
    mirror = hub.mirror
    looked_upstream = False
    while True:
        epoch = hub.downloads.settled_epoch()
        stamp = cache.stamp()  # before the read, see hver.core.stamps
        hit = cache.get(key, stamp, renew=True) if key is not None else None
        if hit is not None and hit[1] == epoch:
            repo = hit[0]
            if not access.can_read(actor, repo):
                raise RepoNotFound()
        else:  # not cached, or read before this process last wrote download counts
            try:
                with hub.db.read() as session:
                    repo = core_repos.get_repo(session, actor, repo_type, ns, name)
            except RepoNotFound:
                if mirror is None or looked_upstream:
                    raise
                mirror.find(repo_type, ns, name)  # brought in, or RepoNotFound
                looked_upstream = True
                continue
            if key is not None:
                cache.put(key, (repo, epoch), stamp)
        if mirror is not None and mirror.due(repo):
            repo = mirror.check(repo)
            if not access.can_read(actor, repo):  # hidden as gone from the upstream
                raise RepoNotFound()
        head = loose_ref(hub.caches.repo_dir(hub.git, repo.storage_key),
                         f"refs/heads/{DEFAULT_BRANCH}")
        if head is None or head != repo.sha:
            repo = core_repos.refresh_index(hub, repo)
        pending = hub.downloads.pending_at(epoch, repo.id)
        if pending is not None:  # else a flush of the counts overlapped: read again
            return with_downloads(repo, repo.downloads + pending) if pending else repo


def cached_repo(hub: Hub, actor: Actor | None, repo_type: RepoType, ns: str,
                name: str) -> tuple[Repo, int] | None:
    """What `load_repo` answers, from the caches alone (no thread, no query, one ref file
    read): the repo row and its downloads (this process's pending ones added). None
    whenever `load_repo` must decide: not cached, read before this process last wrote
    download counts, being renewed, the index behind the branch, a mirrored repo due a
    check, or not readable by `actor` (`load_repo` then answers the very same
    RepoNotFound)."""
    key = repo_key(repo_type.value, param(ns), param(name))
    if key is None:
        return None
    epoch = hub.downloads.settled_epoch()
    hit = hub.caches.repos.get(key)
    if hit is None or hit[1] != epoch:
        return None
    repo = hit[0]
    if not access.can_read(actor, repo) or (hub.mirror is not None and hub.mirror.due(repo)):
        return None
    head = loose_ref(hub.caches.repo_dir(hub.git, repo.storage_key),
                     f"refs/heads/{DEFAULT_BRANCH}")
    if head is None or head != repo.sha:
        return None
    pending = hub.downloads.pending_at(epoch, repo.id)
    if pending is None:
        return None
    return repo, repo.downloads + pending


def with_downloads(repo: Repo, downloads: int) -> Repo:
    """A copy of a repo row (shared by requests: never changed) with another count."""
    copy = Repo(**{a.key: getattr(repo, a.key) for a in sa_inspect(Repo).column_attrs})
    copy.downloads = downloads
    return copy


def base_url(request: Request) -> str:
    """The endpoint as the client sees it, for absolute URLs in responses."""
    hub = get_hub(request)
    if hub.settings.public_url:
        return hub.settings.public_url.rstrip("/")
    # What Starlette builds it from; remembered, as it is the same for most requests.
    scope = request.scope
    key = (scope.get("scheme"), scope.get("server"), scope.get("root_path", ""),
           request.headers.get("host"))
    url = _base_urls.get(key)
    if url is None:
        url = _base_urls.put(key, str(request.base_url).rstrip("/"))
    return url


_base_urls: Lru[tuple[Any, ...], str] = Lru(capacity=1024)
