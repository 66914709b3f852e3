"""Signing in and out in a real browser."""

from __future__ import annotations

from a11y import assert_accessible
from playwright.sync_api import Page, expect
from signin import sign_in


def test_sign_in_and_out(page: Page, web_user) -> None:  # type: ignore[no-untyped-def]
    page.goto("/")
    account = page.get_by_role("navigation", name="Account")
    account.get_by_role("link", name="Sign in").click()
    expect(page).to_have_title("Sign in · hver")
    assert_accessible(page)
    # A wrong password: told so, still signed out.
    page.get_by_label("Username").fill(web_user.name)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Invalid username or password.")
    expect(page.get_by_label("Username")).to_have_value(web_user.name)
    assert_accessible(page)
    page.get_by_label("Password").fill(web_user.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url("/")
    account = page.get_by_role("navigation", name="Account")
    expect(account.get_by_role("link", name=web_user.name)).to_be_visible()
    assert_accessible(page)
    # The session cookie cannot be read by scripts.
    assert "hver_session" not in page.evaluate("() => document.cookie")
    account.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url("/")
    expect(page.get_by_role("navigation", name="Account").get_by_role(
        "link", name="Sign in")).to_be_visible()


def test_sign_in_returns_to_the_page(page: Page, web_user) -> None:  # type: ignore[no-untyped-def]
    sign_in(page, web_user.name, web_user.password, next_url="/datasets")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Datasets")
    expect(page.get_by_role("navigation", name="Account").get_by_role(
        "link", name=web_user.name)).to_be_visible()
