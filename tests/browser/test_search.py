"""Searching and filtering the listings in a real browser: the URL holds the state."""

from __future__ import annotations

import io
import uuid
from urllib.parse import parse_qs, urlsplit

from a11y import assert_accessible
from huggingface_hub import CommitOperationAdd
from playwright.sync_api import Page, expect


def _model(api, repo_factory, front: str) -> str:  # type: ignore[no-untyped-def]
    repo_id: str = repo_factory()
    card = f"---\n{front}\n---\n# card\n".encode()
    api.create_commit(repo_id, [CommitOperationAdd(path_in_repo="README.md",
                                                   path_or_fileobj=io.BytesIO(card))],
                      commit_message="card")
    return repo_id


def test_search_filter_and_sort(page: Page, api, repo_factory) -> None:  # type: ignore[no-untyped-def]
    word = f"fjord{uuid.uuid4().hex[:6]}"
    icelandic = _model(api, repo_factory, f"language: [is]\npipeline_tag: text-generation\n"
                                          f"tags: [{word}]")
    english = _model(api, repo_factory, f"language: [en]\npipeline_tag: text-generation\n"
                                        f"tags: [{word}]")
    other = _model(api, repo_factory, "language: [is]\npipeline_tag: fill-mask")
    owner = icelandic.split("/")[0]

    # The header's search box: a search over repo ids.
    page.goto("/")
    page.get_by_role("searchbox", name="Search models").first.fill(owner)
    page.get_by_role("button", name="Search").first.click()
    expect(page).to_have_url(f"/models?search={owner}")
    for repo_id in (icelandic, english, other):
        expect(page.get_by_role("link", name=repo_id)).to_be_visible()

    # Narrow it with the listing's filters: task and language.
    form = page.get_by_role("form", name="Filter models")
    form.get_by_label("Pipeline tag").fill("text-generation")
    form.get_by_label("Language").fill("is")
    form.get_by_role("button", name="Apply").click()
    query = parse_qs(urlsplit(page.url).query)
    assert query["search"] == [owner] and query["pipeline_tag"] == ["text-generation"]
    assert query["language"] == ["is"]
    expect(page.get_by_role("link", name=icelandic)).to_be_visible()
    expect(page.get_by_role("link", name=english)).to_have_count(0)
    expect(page.get_by_role("link", name=other)).to_have_count(0)
    expect(form.get_by_label("Language")).to_have_value("is")
    assert_accessible(page)

    # The state is in the URL: opening it again in a fresh page shows the same view.
    shared = page.url
    fresh = page.context.new_page()
    fresh.goto(shared)
    expect(fresh.get_by_role("link", name=icelandic)).to_be_visible()
    expect(fresh.get_by_role("link", name=english)).to_have_count(0)
    fresh.close()

    # A tag from a card's metadata links to the listing filtered by it.
    page.goto(f"/{english}")
    page.get_by_role("link", name=word, exact=True).click()
    expect(page.get_by_role("link", name=english)).to_be_visible()
    expect(page.get_by_role("link", name=icelandic)).to_be_visible()
    expect(page.get_by_role("link", name=other)).to_have_count(0)

    # Sorting keeps the filters.
    page.goto(f"/models?search={owner}")
    form = page.get_by_role("form", name="Filter models")
    form.get_by_label("Sort").select_option(label="Recently created")
    form.get_by_role("button", name="Apply").click()
    assert parse_qs(urlsplit(page.url).query)["sort"] == ["createdAt"]
    links = page.locator(".repo-link").all_inner_texts()
    assert links.index(other) < links.index(english) < links.index(icelandic)
