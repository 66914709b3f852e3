"""Settings in a real browser: tokens, profile, repo settings and access requests, likes,
profiles and organization members."""

from __future__ import annotations

import re
import uuid

import httpx
from a11y import assert_accessible
from huggingface_hub import CommitOperationAdd, HfApi
from playwright.sync_api import Browser, Page, expect
from signin import sign_in

README = b"---\nlicense: other\nextra_gated_fields:\n  Company: text\n---\n# Gated\n"


def test_create_and_revoke_token(page: Page, signed_in, server) -> None:  # type: ignore[no-untyped-def]
    page.goto("/")
    page.get_by_role("navigation", name="Account").get_by_role("link", name="Settings").click()
    expect(page).to_have_url(re.compile(r"/settings/tokens$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Access tokens")
    assert_accessible(page)
    page.get_by_label("Token name").fill("laptop")
    page.get_by_label("Role").select_option("write")
    page.get_by_role("button", name="Create token").click()
    secret_field = page.get_by_label("Your new token")
    expect(secret_field).to_have_value(re.compile(r"^hf_[A-Za-z0-9]{30,}$"))
    expect(secret_field).to_have_attribute("readonly", "")
    expect(page.get_by_text("it will not be shown again")).to_be_visible()
    assert_accessible(page)
    secret = secret_field.input_value()
    assert HfApi(endpoint=server.endpoint, token=secret).whoami()["name"] == signed_in.name
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name="laptop"))
    expect(row).to_contain_text("Write")
    # Shown once: a reload has the table row but not the secret.
    page.goto("/settings/tokens")
    expect(page.get_by_label("Your new token")).to_have_count(0)
    expect(row).to_have_count(1)
    assert secret not in page.content()
    row.get_by_role("button", name="Revoke laptop").click()
    expect(page).to_have_url(re.compile(r"/settings/tokens$"))
    expect(page.get_by_role("rowheader", name="laptop")).to_have_count(0)
    r = httpx.get(f"{server.endpoint}/api/whoami-v2",
                  headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 401


def test_profile_settings_and_profile_page(page: Page, signed_in) -> None:  # type: ignore[no-untyped-def]
    page.goto("/settings/profile")
    assert_accessible(page)
    page.get_by_label("Full name").fill("Grace Hopper")
    page.get_by_role("button", name="Save profile").click()
    expect(page.get_by_role("status")).to_have_text("Your profile was saved.")
    expect(page.get_by_label("Full name")).to_have_value("Grace Hopper")
    page.get_by_role("link", name="View your profile").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Grace Hopper")
    expect(page.get_by_role("heading", name=re.compile(r"^Models"))).to_be_visible()
    assert_accessible(page)


def test_manage_an_access_request(page: Page, browser: Browser, signed_in, server,  # type: ignore[no-untyped-def]
                                  web_user_factory) -> None:
    owner, asker = signed_in, web_user_factory("asker")
    repo_id = f"{owner.name}/gated-{uuid.uuid4().hex[:8]}"
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    api.create_repo(repo_id)
    api.create_commit(repo_id, [CommitOperationAdd("README.md", README)], commit_message="card")
    api.update_repo_settings(repo_id, gated="manual")
    # The requester asks through the repo page's form, in a browser of their own.
    context = browser.new_context(base_url=server.endpoint, locale="en-US")
    try:
        theirs = context.new_page()
        sign_in(theirs, asker.name, asker.password, f"/{repo_id}")
        expect(theirs.get_by_role("heading", name="Gated model")).to_be_visible()
        assert_accessible(theirs)
        theirs.get_by_label("Company").fill("Acme")
        theirs.get_by_role("button", name="Request access").click()
        expect(theirs.get_by_role("status")).to_contain_text("Your request is pending")
    finally:
        context.close()
    # The owner accepts it in the repo's settings.
    page.goto(f"/{repo_id}")
    page.get_by_role("navigation", name="Repository").get_by_role("link", name="Settings").click()
    expect(page).to_have_url(re.compile(rf"/{re.escape(repo_id)}/settings$"))
    pending = page.get_by_role("table", name="Pending")
    expect(pending.get_by_role("rowheader", name=re.compile(asker.name))).to_be_visible()
    expect(pending).to_contain_text("Acme")
    assert_accessible(page)
    pending.get_by_role("button", name=f"Accept {asker.name}").click()
    accepted = page.get_by_role("table", name="Accepted")
    expect(accepted.get_by_role("rowheader", name=re.compile(asker.name))).to_be_visible()
    expect(page.get_by_role("table", name="Pending")).to_have_count(0)
    expect(page.get_by_text("No pending requests.")).to_be_visible()
    assert_accessible(page)


def test_like_button(page: Page, signed_in, api, repo_factory) -> None:  # type: ignore[no-untyped-def]
    repo_id = repo_factory()
    page.goto(f"/{repo_id}")
    like = page.get_by_role("button", name="Like", exact=True)
    expect(like).to_have_attribute("aria-pressed", "false")
    expect(page.get_by_text("0 likes", exact=True)).to_be_visible()
    like.click()
    unlike = page.get_by_role("button", name="Unlike")
    expect(unlike).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_text("1 like", exact=True)).to_be_visible()
    assert api.model_info(repo_id).likes == 1
    assert_accessible(page)
    unlike.click()
    expect(page.get_by_role("button", name="Like", exact=True)).to_be_visible()
    expect(page.get_by_text("0 likes", exact=True)).to_be_visible()


def test_org_profile_and_members(page: Page, signed_in, server, web_user_factory) -> None:  # type: ignore[no-untyped-def]
    newcomer = web_user_factory("newcomer")
    org = f"org-{uuid.uuid4().hex[:8]}"
    server.hver("org", "create", org, "--owner", signed_in.name)
    page.goto(f"/{org}")
    expect(page.get_by_role("heading", level=1)).to_have_text(org)
    assert_accessible(page)
    page.get_by_role("link", name="Manage members").click()
    expect(page).to_have_url(re.compile(rf"/organizations/{org}/settings/members$"))
    assert_accessible(page)
    page.get_by_label("Username").fill(newcomer.name)
    page.get_by_label("Role", exact=True).select_option("write")
    page.get_by_role("button", name="Add member").click()
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=newcomer.name))
    expect(row.get_by_label(f"Role of {newcomer.name}")).to_have_value("write")
    row.get_by_label(f"Role of {newcomer.name}").select_option("admin")
    row.get_by_role("button", name=f"Save role of {newcomer.name}").click()
    expect(row.get_by_label(f"Role of {newcomer.name}")).to_have_value("admin")
    assert_accessible(page)
    members = httpx.get(f"{server.endpoint}/api/organizations/{org}/members").json()
    assert {m["user"]: m["role"] for m in members}[newcomer.name] == "admin"
    row.get_by_role("button", name=f"Remove {newcomer.name}").click()
    expect(page.get_by_role("rowheader", name=newcomer.name)).to_have_count(0)
