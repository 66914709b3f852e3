"""Writing from a real browser: a new repo, a drag-and-drop upload, editing the card,
branches and tags; and the upload form with JavaScript off."""

from __future__ import annotations

import uuid

from a11y import assert_accessible
from playwright.sync_api import Browser, Page, expect
from signin import sign_in

DROP = """() => {
    const zone = document.querySelector('[data-dropzone]');
    const data = new DataTransfer();
    data.items.add(new File(['hello from a drop\\n'], 'hello.txt', {type: 'text/plain'}));
    const fire = (type) => zone.dispatchEvent(
        new DragEvent(type, {dataTransfer: data, bubbles: true, cancelable: true}));
    fire('dragenter');
    fire('dragover');
    const highlighted = zone.classList.contains('dragover');
    fire('drop');
    return {highlighted, after: zone.classList.contains('dragover'),
            chosen: Array.from(document.getElementById('upload-files').files, f => f.name)};
}"""


def test_create_upload_edit_and_refs(page: Page, signed_in) -> None:  # type: ignore[no-untyped-def]
    name = f"made-here-{uuid.uuid4().hex[:6]}"
    repo_id = f"{signed_in.name}/{name}"

    # A new model, from the account menu's "New".
    page.goto("/")
    page.get_by_role("navigation", name="Account").get_by_role("link", name="New").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Create a new model")
    expect(page.get_by_label("Owner")).to_have_value(signed_in.name)
    expect(page.get_by_label("Public")).to_be_checked()
    assert_accessible(page)
    page.get_by_label("Model name").fill(name)
    page.get_by_role("button", name="Create model").click()
    expect(page).to_have_url(f"/{repo_id}")
    expect(page.get_by_role("heading", level=1).first).to_contain_text(name)

    # Upload by drag and drop onto the drop zone.
    page.get_by_role("navigation", name="Repository").get_by_role("link", name="Files").click()
    page.get_by_role("link", name="Upload files").click()
    expect(page.get_by_role("heading", name="Upload files")).to_be_visible()
    expect(page.get_by_text("or drop them here")).to_be_visible()  # shown once the script runs
    assert_accessible(page)
    dropped = page.evaluate(DROP)
    assert dropped == {"highlighted": True, "after": False, "chosen": ["hello.txt"]}
    chosen = page.get_by_role("list", name="Chosen files")
    expect(chosen.get_by_role("listitem")).to_have_text(["hello.txt (18 B)"])
    assert_accessible(page)
    page.get_by_label("Commit summary").fill("Add hello")
    page.get_by_role("button", name="Commit changes").click()
    expect(page).to_have_url(f"/{repo_id}/tree/main")
    page.get_by_role("link", name="hello.txt").click()
    expect(page.locator("pre.blob")).to_have_text("hello from a drop\n")

    # Edit the card in the textarea; the repo page renders it.
    page.get_by_role("navigation", name="Repository").get_by_role(
        "link", name="Model card").click()
    expect(page.get_by_role("article", name="Card")).to_contain_text("No card yet")
    page.get_by_role("link", name="Edit model card").click()
    expect(page.get_by_role("heading", name="Create model card")).to_be_visible()
    assert_accessible(page)
    page.get_by_label("Content of README.md").fill(
        "---\nlicense: apache-2.0\n---\n# Written in Chromium\n\nA card from the browser.\n")
    page.get_by_label("Commit summary").fill("Write the card")
    page.get_by_role("button", name="Commit changes").click()
    expect(page).to_have_url(f"/{repo_id}")
    card = page.get_by_role("article", name="Card")
    expect(card.get_by_role("heading", name="Written in Chromium")).to_be_visible()
    expect(card).to_contain_text("A card from the browser.")
    expect(page.get_by_role("region", name="Metadata")).to_contain_text("apache-2.0")

    # A branch and a tag on the refs page.
    page.get_by_role("navigation", name="Repository").get_by_role("link", name="Files").click()
    page.get_by_role("link", name="Branches and tags").click()
    expect(page.get_by_role("heading", level=2)).to_have_text("Branches and tags")
    assert_accessible(page)
    page.get_by_label("Branch name").fill("experiment")
    page.get_by_role("button", name="Create branch").click()
    branches = page.get_by_role("table", name=f"Branches of {repo_id}")
    expect(branches.get_by_role("link", name="experiment")).to_be_visible()
    page.get_by_label("Tag name").fill("v1.0")
    page.get_by_label("Revision", exact=True).fill("experiment")
    page.get_by_label("Message (optional)").fill("First release")
    page.get_by_role("button", name="Create tag").click()
    tags = page.get_by_role("table", name=f"Tags of {repo_id}")
    expect(tags.get_by_role("link", name="v1.0")).to_be_visible()
    expect(page.get_by_role("button", name="Delete branch experiment")).to_be_visible()
    expect(page.get_by_role("button", name="Delete branch main")).to_have_count(0)
    assert_accessible(page)
    # The new branch is in the Files tab's revision selector too.
    page.get_by_role("link", name="experiment").click()
    expect(page).to_have_url(f"/{repo_id}/tree/experiment")
    expect(page.get_by_role("link", name="hello.txt")).to_be_visible()


def test_upload_without_javascript(browser: Browser, server, web_user) -> None:  # type: ignore[no-untyped-def]
    from huggingface_hub import HfApi

    repo_id = f"{web_user.name}/no-js-{uuid.uuid4().hex[:6]}"
    HfApi(endpoint=server.endpoint, token=web_user.token).create_repo(repo_id)
    context = browser.new_context(base_url=server.endpoint, java_script_enabled=False)
    try:
        page = context.new_page()
        sign_in(page, web_user.name, web_user.password, f"/{repo_id}/upload/main")
        # Without the script: no drop hint, the plain file input does the work. (axe-core
        # cannot run here: page.evaluate needs JavaScript; the JS test checks this page.)
        expect(page.get_by_text("or drop them here")).to_be_hidden()
        page.get_by_label("Folder").fill("docs")
        page.get_by_label("Files", exact=True).set_input_files(
            [{"name": "a.md", "mimeType": "text/markdown", "buffer": b"# A\n"},
             {"name": "b.md", "mimeType": "text/markdown", "buffer": b"# B\n"}])
        page.get_by_role("button", name="Commit changes").click()
        expect(page).to_have_url(f"/{repo_id}/tree/main/docs")
        expect(page.get_by_role("link", name="a.md")).to_be_visible()
        expect(page.get_by_role("link", name="b.md")).to_be_visible()
    finally:
        context.close()

