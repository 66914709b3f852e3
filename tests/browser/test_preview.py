"""The dataset viewer in a real browser: its table, switching splits, accessibility."""

from __future__ import annotations

import io

from a11y import assert_accessible
from huggingface_hub import CommitOperationAdd
from playwright.sync_api import Page, expect


def test_dataset_viewer_table_and_split_links(page: Page, api, repo_factory) -> None:  # type: ignore[no-untyped-def]
    repo_id = repo_factory("dataset")
    files = {"train.csv": b"id,word\n1,apple\n2,<pear>\n",
             "test.jsonl": b'{"id": 9, "word": "plum"}\n'}
    api.create_commit(repo_id, [CommitOperationAdd(p, io.BytesIO(d)) for p, d in files.items()],
                      commit_message="add data", repo_type="dataset")

    response = page.goto(f"/datasets/{repo_id}/viewer")
    assert response is not None and response.status == 200
    expect(page).to_have_title(f"Dataset viewer · {repo_id} · hver")
    table = page.get_by_role("table", name="Split train of config default: the first 2 rows")
    expect(table).to_be_visible()
    expect(table.get_by_role("columnheader")).to_have_text(["id int64", "word string"])
    expect(table.locator("tbody tr")).to_have_count(2)
    expect(table.locator("tbody tr").nth(1).locator("td")).to_have_text(["2", "<pear>"])
    splits = page.get_by_role("navigation", name="Splits")
    expect(splits.get_by_role("link", name="train")).to_have_attribute("aria-current", "page")
    assert_accessible(page)

    splits.get_by_role("link", name="test").click()
    page.wait_for_url(f"**/datasets/{repo_id}/viewer/default/test")
    table = page.get_by_role("table", name="Split test of config default: the first 1 row")
    expect(table.locator("tbody td")).to_have_text(["9", "plum"])
    expect(page.get_by_role("navigation", name="Splits").get_by_role("link", name="test")) \
        .to_have_attribute("aria-current", "page")
    expect(page.get_by_text("Rows from test.jsonl")).to_be_visible()
    assert_accessible(page)

    page.get_by_role("link", name="Dataset card").click()
    expect(page.get_by_role("region", name="Dataset preview")
           .get_by_role("cell", name="apple")).to_be_visible()
    assert_accessible(page)
    page.get_by_role("link", name="Open the dataset viewer").click()
    page.wait_for_url(f"**/datasets/{repo_id}/viewer/default/train")
    assert_accessible(page)
