"""A browser's conversation with the web UI over plain HTTP: sign in through the login
form, then send forms with the CSRF token their page carries."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

HTML = {"Accept": "text/html"}


def browser(server: Any) -> httpx.Client:
    """A client that keeps cookies and asks for pages, as a browser does."""
    return httpx.Client(base_url=server.endpoint, headers=HTML, timeout=60)


def sign_in(client: httpx.Client, name: str, password: str, next_url: str = "/") -> httpx.Response:
    return client.post("/login", data={"username": name, "password": password, "next": next_url})


def csrf(html: str) -> str:
    """The CSRF token of the page's forms."""
    m = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert m, "no CSRF token on the page"
    return m.group(1)


def alert(html: str) -> str:
    """The text of the page's error message."""
    m = re.search(r'<p class="alert" role="alert">(.*?)</p>', html, re.S)
    assert m, "no alert on the page"
    return m.group(1)


@contextmanager
def signed_in(server: Any, who: Any) -> Iterator[httpx.Client]:
    """A browser signed in as `who` (a user with a password)."""
    with browser(server) as client:
        assert sign_in(client, who.name, who.password).status_code == 303
        yield client
