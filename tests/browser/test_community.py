"""The Community tab in a real browser: a reader opens a pull request by editing another
user's card and comments on it; the owner sees the diff, comments and merges it; a
discussion is opened, closed and reopened from its page."""

from __future__ import annotations

import uuid

from a11y import assert_accessible
from huggingface_hub import HfApi
from playwright.sync_api import Browser, Page, expect
from signin import sign_in


def test_open_comment_and_merge_a_pull_request(browser: Browser, page: Page, server,  # type: ignore[no-untyped-def]
                                               web_user_factory) -> None:
    owner, reader = web_user_factory("owner"), web_user_factory("reader")
    repo_id = f"{owner.name}/card-{uuid.uuid4().hex[:6]}"
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"# Old card\n", path_in_repo="README.md", repo_id=repo_id)

    # The reader proposes a change: the edit form can only open a pull request for them.
    sign_in(page, reader.name, reader.password)
    page.goto(f"/{repo_id}")
    page.get_by_role("link", name="Edit model card").click()
    expect(page.get_by_text("your change opens a pull request")).to_be_visible()
    assert_accessible(page)
    page.get_by_label("Content of README.md").fill("# New card\n\nNow in Icelandic too.\n")
    page.get_by_label("Commit summary").fill("Better card")
    page.get_by_role("button", name="Open a pull request").click()
    expect(page).to_have_url(f"/{repo_id}/discussions/1")
    expect(page.get_by_role("heading", level=2)).to_contain_text("Better card")
    expect(page.locator(".diff-table")).to_contain_text("Now in Icelandic too.")
    assert_accessible(page)
    page.get_by_label("Comment (markdown)").fill("Please take **this** one.")
    page.get_by_role("button", name="Comment").click()
    expect(page.locator(".markdown strong")).to_have_text("this")
    expect(page.get_by_role("button", name="Merge pull request")).to_have_count(0)
    assert api.list_repo_files(repo_id) == [".gitattributes", "README.md"]

    # The owner, in a browser of their own, merges it from the Community tab.
    context = browser.new_context(base_url=server.endpoint, locale="en-US")
    owner_page = context.new_page()
    sign_in(owner_page, owner.name, owner.password)
    owner_page.goto(f"/{repo_id}")
    owner_page.get_by_role("navigation", name="Repository").get_by_role(
        "link", name="Community").click()
    expect(owner_page).to_have_url(f"/{repo_id}/discussions")
    assert_accessible(owner_page)
    owner_page.get_by_role("link", name="Better card").click()
    owner_page.get_by_label("Comment (markdown)").fill("Thanks!")
    owner_page.get_by_role("button", name="Comment").click()
    owner_page.get_by_role("button", name="Merge pull request").click()
    expect(owner_page.locator(".thread-head .badge")).to_have_text("Merged")
    assert_accessible(owner_page)
    context.close()
    with open(api.hf_hub_download(repo_id, "README.md"), "rb") as fh:
        assert b"Icelandic" in fh.read()

def test_a_discussion_from_the_web(page: Page, signed_in) -> None:  # type: ignore[no-untyped-def]

    repo_id = f"{signed_in.name}/talk-{uuid.uuid4().hex[:6]}"
    page.goto("/new")
    page.get_by_label("Model name").fill(repo_id.split("/")[1])
    page.get_by_role("button", name="Create model").click()
    page.goto(f"/{repo_id}/discussions")
    expect(page.get_by_text("No open threads yet.")).to_be_visible()
    page.get_by_label("Title").fill("Where is the data from?")
    page.get_by_label("Description (markdown)").fill("A question about <script>x</script> it.")
    page.get_by_role("button", name="Start discussion").click()
    expect(page).to_have_url(f"/{repo_id}/discussions/1")
    expect(page.locator(".markdown")).not_to_contain_text("<script>")
    page.get_by_role("button", name="Close discussion").click()
    expect(page.locator(".thread-head .badge")).to_have_text("Closed")
    page.get_by_role("button", name="Reopen discussion").click()
    expect(page.locator(".thread-head .badge")).to_have_text("Open")
    assert_accessible(page)
    page.goto(f"/{repo_id}/discussions?status=all")
    expect(page.get_by_role("link", name="Where is the data from?")).to_be_visible()
