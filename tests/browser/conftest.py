"""End-to-end tests in a real headless Chromium, driven by Playwright's sync API.

The browser is Debian's `chromium` package (`apt-get install -y chromium`), never one
downloaded by `playwright install`. Without it these tests fail, with that advice,
unless HVER_SKIP_BROWSER_TESTS=1 is set; HVER_CHROMIUM names another executable.

The `server` fixture of tests/conftest.py serves the pages. Under pytest-xdist each
worker is its own process and so launches its own browser.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from signin import sign_in

CHROMIUM = Path(os.environ.get("HVER_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update"]
SKIP_ENV = "HVER_SKIP_BROWSER_TESTS"


def _require_chromium() -> None:
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"browser tests skipped: {SKIP_ENV}=1")
    if not CHROMIUM.is_file():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: the browser tests need it. Install it with "
            f"`apt-get install -y chromium` (Debian/Ubuntu), point HVER_CHROMIUM at another "
            f"Chromium, or set {SKIP_ENV}=1 to skip these tests.",
            pytrace=False,
        )


# Module scope, not session: while the sync API is running, the worker's main thread
# has a running asyncio loop, so a browser kept for the whole session would break
# asyncio.run() in whatever non-browser test that worker runs next.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    _require_chromium()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, server) -> Iterator[Page]:  # type: ignore[no-untyped-def]
    """A fresh page (own cookies and storage) whose relative URLs go to the test server.

    Fails the test if the page threw an uncaught JavaScript error.
    """
    context = browser.new_context(base_url=server.endpoint, locale="en-US")
    context.set_default_timeout(10_000)
    page = context.new_page()
    yield page
    errors = [str(e) for e in page.page_errors()]
    context.close()
    assert not errors, f"uncaught JavaScript errors on the page: {errors}"


@pytest.fixture
def web_user(web_user_factory):  # type: ignore[no-untyped-def]
    """A user with a password, not yet signed in."""
    return web_user_factory("web")


@pytest.fixture
def signed_in(page: Page, web_user):  # type: ignore[no-untyped-def]
    """`page`, signed in as `web_user` (which the test can also use: name, token)."""
    sign_in(page, web_user.name, web_user.password)
    return web_user
