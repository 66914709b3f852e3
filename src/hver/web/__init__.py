"""Server-rendered pages for browsers: listings, repo cards, files, commits, sign-in,
error pages."""

from fastapi import FastAPI

from hver.web import auth, community, pages, profiles, settings, write
from hver.web.pages import router


def install(app: FastAPI) -> None:
    """Add the pages, after every API route, and HTML error pages for browsers."""
    app.include_router(auth.router)
    app.include_router(write.router)
    app.include_router(settings.router)
    app.include_router(community.router)
    pages.install(app)
    app.include_router(profiles.router)  # last: `/{name}` must not shadow any other page


__all__ = ["install", "router"]
