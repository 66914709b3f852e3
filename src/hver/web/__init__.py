"""Server-rendered pages for browsers: listings, repo cards, files, commits, error pages."""

from hver.web.pages import install, router

__all__ = ["install", "router"]
