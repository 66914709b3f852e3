"""Browsing files in a real browser: the revision selector, a commit's diff, highlighted
source and a file's history, each checked for what it shows and with axe-core."""

from __future__ import annotations

import io
import re

from a11y import assert_accessible
from huggingface_hub import CommitOperationAdd, CommitOperationDelete
from playwright.sync_api import Page, expect


def _repo_with_history(api, repo_factory) -> str:  # type: ignore[no-untyped-def]
    repo_id: str = repo_factory()

    def commit(message: str, files: dict[str, bytes], delete: tuple[str, ...] = ()) -> None:
        ops: list[CommitOperationAdd | CommitOperationDelete] = [
            CommitOperationAdd(path_in_repo=p, path_or_fileobj=io.BytesIO(d))
            for p, d in files.items()]
        ops += [CommitOperationDelete(path_in_repo=p) for p in delete]
        api.create_commit(repo_id, ops, commit_message=message)

    commit("Add the app", {"app.py": b"def greet(name):\n    return 'hello ' + name\n",
                           "old.txt": b"only at v1\n"})
    api.create_tag(repo_id, tag="v1")
    commit("Greet loudly", {"app.py": b"def greet(name):\n    return 'HELLO ' + name\n"},
           delete=("old.txt",))
    return repo_id


def test_browse_files_at_a_tag_with_the_selector(page: Page, api, repo_factory) -> None:  # type: ignore[no-untyped-def]
    repo_id = _repo_with_history(api, repo_factory)
    page.goto(f"/{repo_id}/tree/main")
    files = page.get_by_role("table")
    expect(files.get_by_role("link", name="app.py")).to_be_visible()
    expect(files.get_by_role("link", name="old.txt")).to_have_count(0)
    selector = page.locator("details.rev-select")
    expect(selector.get_by_role("link", name="v1")).to_be_hidden()  # closed until opened
    page.get_by_text("Revision: main").click()
    expect(selector.get_by_role("link", name="main")).to_have_attribute("aria-current", "true")
    selector.get_by_role("link", name="v1").click()
    expect(page).to_have_url(re.compile(rf"/{re.escape(repo_id)}/tree/v1$"))
    expect(files.get_by_role("link", name="old.txt")).to_be_visible()
    page.get_by_text("Revision: v1").click()
    expect(selector.get_by_role("link", name="v1")).to_have_attribute("aria-current", "true")
    assert_accessible(page)


def test_commit_diff_from_the_commits_list(page: Page, api, repo_factory) -> None:  # type: ignore[no-untyped-def]
    repo_id = _repo_with_history(api, repo_factory)
    page.goto(f"/{repo_id}")
    page.get_by_role("navigation", name="Repository").get_by_role("link", name="Commits").click()
    page.get_by_role("link", name="Greet loudly").click()
    expect(page).to_have_url(re.compile(rf"/{re.escape(repo_id)}/commit/[0-9a-f]{{40}}$"))
    expect(page.get_by_role("heading", name="Greet loudly")).to_be_visible()
    changed = page.get_by_role("list", name="Changed files")
    expect(changed).to_contain_text("app.py modified")
    expect(changed).to_contain_text("old.txt deleted")
    diff = page.get_by_role("region", name="Diff of app.py")
    expect(diff.locator("tr.del")).to_have_count(1)
    expect(diff.locator("tr.del")).to_contain_text("Removed: -    return 'hello ' + name")
    expect(diff.locator("tr.add")).to_contain_text("Added: +    return 'HELLO ' + name")
    # The sign is visible, not only the colour; the label is for screen readers.
    expect(diff.locator("tr.add .sign")).to_be_visible()
    expect(diff.locator("tr.add .visually-hidden")).to_have_text("Added: ")
    assert_accessible(page)
    page.get_by_role("link", name=re.compile(r"^[0-9a-f]{7}$")).click()  # the parent
    expect(page.get_by_role("heading", name="Add the app")).to_be_visible()
    expect(page.get_by_role("list", name="Changed files")).to_contain_text("old.txt added")


def test_highlighted_blob_and_its_history(page: Page, api, repo_factory) -> None:  # type: ignore[no-untyped-def]
    repo_id = _repo_with_history(api, repo_factory)
    page.goto(f"/{repo_id}/blob/main/app.py")
    code = page.locator("pre.highlight")
    expect(code).to_contain_text("return 'HELLO ' + name")
    expect(code.locator("span.k").first).to_have_text("def")
    expect(code.locator("span.nf")).to_have_text("greet")
    expect(page.locator("pre.line-numbers")).to_have_text("1\n2\n")
    assert_accessible(page)
    page.get_by_role("link", name="History").click()
    expect(page).to_have_url(re.compile(rf"/{re.escape(repo_id)}/commits/main/app\.py$"))
    expect(page.get_by_role("heading", level=2)).to_contain_text("History of app.py")
    titles = page.locator("a.commit-title")
    expect(titles).to_have_text(["Greet loudly", "Add the app"])
    assert_accessible(page)
