"""create_app(settings): wires the stores, the routers and the error handlers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import unquote

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from hver import __version__
from hver.api import (
    auth,
    commit,
    discussions,
    gating,
    git,
    info,
    lfs,
    lfs_files,
    likes,
    no_namespace,
    orgs,
    repos,
    resolve,
    safetensors,
    squash,
    tree,
    treesize,
    xet,
    xet_grants,
)
from hver.api import errors as api_errors
from hver.api import mirror as mirror_admin
from hver.api.compression import CompressJsonMiddleware
from hver.api.limits import LimitsMiddleware
from hver.api.request_id import RequestIdMiddleware
from hver.config import Settings
from hver.core.hub import Hub
from hver.core.signing import Signer, load_instance_id, load_key
from hver.web import install as install_web

log = logging.getLogger("hver")


class RawPathMiddleware:
    """Route on the raw path, keeping `%2F` (and `%25`) encoded.

    Clients send a revision such as `refs/pr/1` as one segment, `refs%2Fpr%2F1`;
    a router that matched the decoded path could not tell it from two segments.
    Handlers decode such parameters once more (`api.deps.param`).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("raw_path"):
            raw = scope["raw_path"].split(b"?", 1)[0].decode("latin-1")
            kept = raw.replace("%25", "%2525").replace("%2F", "%252F").replace("%2f", "%252F")
            try:
                path = unquote(kept, encoding="utf-8", errors="strict")
            except UnicodeDecodeError:
                response = api_errors.error_response(
                    400, "The request path is not valid UTF-8.", "InvalidPath")
                await response(scope, receive, send)
                return
            root = scope.get("root_path", "")
            scope = dict(scope)
            scope["path"] = path if not root or path.startswith(root) else root + path
        await self.app(scope, receive, send)


def create_app(settings: Settings, hub: Hub | None = None) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        app.state.hub.close()

    app = FastAPI(title="hver", version=__version__, lifespan=lifespan,
                  docs_url="/api/docs", openapi_url="/api/openapi.json", redoc_url=None)
    hub = hub or Hub.open(settings)
    app.state.hub = hub
    app.state.signer = Signer(load_key(settings.secret, settings.data), settings.signed_url_ttl)
    app.state.cas_instance = load_instance_id(settings.data)
    api_errors.install(app)

    @app.get("/api/health", include_in_schema=False)
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__}

    # Downloads first, where no later route could match them (`api.resolve.early_router`).
    app.include_router(resolve.early_router)
    # Repo info too, where no later route could match it (`api.info.early_router`).
    app.include_router(info.early_router)
    # Fixed routes before the `/api/{plural}/...` patterns that would also match them.
    for router in (auth.router, likes.router, orgs.router, xet_grants.router, xet.router,
                   mirror_admin.router,
                   discussions.router,
                   repos.router, gating.router,
                   commit.router, tree.router, info.router, lfs.router, lfs_files.router,
                   squash.router, treesize.router, safetensors.router, resolve.router):
        app.include_router(router)
    # git over HTTP (`/{ns}/{name}/info/refs`, `.../git-upload-pack`): before the pages.
    app.include_router(git.router)
    # Then the GET-only HTML pages, and HTML error pages for browsers (the API keeps JSON).
    install_web(app)
    # Last: ids without a namespace, which neither a page nor a repo route took.
    app.include_router(no_namespace.router)

    app.add_middleware(CompressJsonMiddleware)
    # Inside RawPathMiddleware: the limits see paths as the router does.
    app.add_middleware(LimitsMiddleware, settings=settings, signer=app.state.signer,
                       shared=hub.rate_buckets)
    app.add_middleware(RawPathMiddleware)
    app.add_middleware(RequestIdMiddleware)  # outermost: every response names its request
    return app


def app_from_env() -> FastAPI:
    """Factory for `uvicorn --factory` and multi-worker serving."""
    return create_app(Settings.from_env())
