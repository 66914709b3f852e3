"""The hub's pages in a real browser: they load, say what they are, and are accessible."""

from __future__ import annotations

import pytest
from a11y import assert_accessible, axe_violations
from playwright.sync_api import Page, expect

import hver


def test_health_json_in_browser(page: Page) -> None:
    response = page.goto("/api/health")
    assert response is not None and response.status == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "ok", "version": hver.__version__}


def test_home_page(page: Page) -> None:
    response = page.goto("/")
    assert response is not None and response.status == 200
    assert response.headers["content-type"].startswith("text/html")
    expect(page).to_have_title("Home · hver")
    expect(page.get_by_role("heading", level=1)).to_have_text("hver")
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    assert_accessible(page)


def test_missing_repo_is_an_html_404(page: Page, user) -> None:  # type: ignore[no-untyped-def]
    response = page.goto(f"/{user.name}/does-not-exist")
    assert response is not None and response.status == 404
    assert response.headers["content-type"].startswith("text/html")
    expect(page).to_have_title("Page not found · hver")
    expect(page.get_by_role("heading", level=1)).to_contain_text("404")
    assert_accessible(page)


def _open_repo_with_card(page: Page, api, repo_factory) -> str:  # type: ignore[no-untyped-def]
    repo_id: str = repo_factory()
    api.upload_file(path_or_fileobj=b"# A browser-tested model\n\nHello from the card.\n",
                    path_in_repo="README.md", repo_id=repo_id)
    response = page.goto(f"/{repo_id}")
    assert response is not None and response.status == 200
    return repo_id


def test_repo_page_shows_its_card(page: Page, api, repo_factory) -> None:  # type: ignore[no-untyped-def]
    repo_id = _open_repo_with_card(page, api, repo_factory)
    expect(page).to_have_title(f"{repo_id} · hver")
    expect(page.get_by_role("heading", level=1).first).to_contain_text(repo_id.split("/")[1])
    expect(page.get_by_role("article", name="Card")).to_contain_text("Hello from the card.")


def test_repo_page_is_accessible(page: Page, api, repo_factory) -> None:  # type: ignore[no-untyped-def]
    _open_repo_with_card(page, api, repo_factory)
    assert_accessible(page)


def test_models_listing(page: Page, repo_factory) -> None:  # type: ignore[no-untyped-def]
    repo_id = repo_factory()
    response = page.goto("/models?sort=lastModified")
    assert response is not None and response.status == 200
    expect(page.get_by_role("link", name=repo_id)).to_be_visible()
    assert_accessible(page)


def test_assert_accessible_reports_serious_violations(page: Page) -> None:
    page.set_content(
        '<html lang="en"><head><title>t</title></head>'
        '<body><main><h1>t</h1><img src="x.png"><button></button></main></body></html>'
    )
    assert {v["id"] for v in axe_violations(page)} == {"image-alt", "button-name"}
    with pytest.raises(AssertionError, match=r"(?s)\[critical\] image-alt: .*<img"):
        assert_accessible(page)


def test_assert_accessible_passes_a_clean_page(page: Page) -> None:
    page.set_content(
        '<html lang="en"><head><title>t</title></head>'
        '<body><main><h1>t</h1><img src="x.png" alt="x"><button>Go</button></main></body></html>'
    )
    assert_accessible(page)
