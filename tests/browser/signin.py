"""Signing in through the real form, shared by the browser tests."""

from __future__ import annotations

from playwright.sync_api import Page


def sign_in(page: Page, name: str, password: str, next_url: str = "/") -> None:
    """Sign in through the real form, as a person would."""
    page.goto(f"/login?next={next_url}")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"**{next_url}")
