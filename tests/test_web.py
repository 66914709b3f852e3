"""The server-rendered pages: what a browser is shown, and that the API is unaffected."""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from huggingface_hub import CommitOperationAdd

# Not `from tests.conftest import ...`: importing conftest a second time would pick a new
# port and point HF_ENDPOINT at it for every later test.
Server = Any
User = Any

HTML = {"Accept": "text/html"}
SCRIPT = "<script>alert('pwned')</script>"


def _get(server: Server, path: str, token: str | None = None, **kw: object) -> httpx.Response:
    headers = dict(HTML)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(f"{server.endpoint}{path}", headers=headers, timeout=30, **kw)  # type: ignore[arg-type]


def _card(front: str, body: str) -> bytes:
    return f"---\n{front}\n---\n{body}\n".encode()


def _upload(api, repo_id: str, files: dict[str, bytes], repo_type: str = "model",  # type: ignore[no-untyped-def]
            revision: str | None = None, message: str = "add files") -> None:
    ops = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=io.BytesIO(d))
           for p, d in files.items()]
    api.create_commit(repo_id, ops, commit_message=message, repo_type=repo_type,
                      revision=revision)


@pytest.fixture(autouse=True)
def _clean(no_server_errors: None) -> None:
    pass


def test_home_and_layout(server: Server, api, repo_factory: Callable[..., str]) -> None:  # type: ignore[no-untyped-def]
    model = repo_factory()
    dataset = repo_factory("dataset")
    r = _get(server, "/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    page = r.text
    assert '<html lang="en">' in page
    assert '<header class="site-header">' in page and "<main" in page and "<footer" in page
    assert '<a class="logo" href="/">hver</a>' in page
    assert 'action="/models"' in page and 'name="search"' in page
    assert '<label for="site-search"' in page
    for link in ('href="/models"', 'href="/datasets"', 'href="/spaces"'):
        assert link in page
    assert "Recently updated models" in page and "Most downloaded datasets" in page
    assert f'href="/{model}"' in page
    assert f'href="/datasets/{dataset}"' in page
    css = httpx.get(f"{server.endpoint}/static/hver.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_listing_search_filters_sort_paging(server: Server, api, user: User,  # type: ignore[no-untyped-def]
                                            user_factory: Callable[..., User]) -> None:
    liker = user_factory("liker")  # not `other`: other tests count what the session users like
    uid = uuid.uuid4().hex[:8]
    names = {k: f"{user.name}/web-{uid}-{k}" for k in ("fr", "en", "plain")}
    for n in names.values():
        api.create_repo(n)
    _upload(api, names["fr"], {"README.md": _card(
        f"license: mit\nlanguage: [fr]\npipeline_tag: text-classification\n"
        f"library_name: transformers\ntags: [tag-{uid}]", "# French")})
    _upload(api, names["en"], {"README.md": _card(
        "license: apache-2.0\nlanguage: [en]\npipeline_tag: translation", "# English")})
    httpx.post(f"{server.endpoint}/api/models/{names['plain']}/like",
               headers={"Authorization": f"Bearer {liker.token}"}).raise_for_status()

    def shown(query: str) -> set[str]:
        r = _get(server, f"/models?{query}")
        assert r.status_code == 200, r.text
        return {k for k, n in names.items() if f'href="/{n}"' in r.text}

    assert shown(f"search=web-{uid}") == {"fr", "en", "plain"}
    assert shown(f"search=web-{uid}-fr") == {"fr"}
    assert shown(f"search=web-{uid}&license=mit") == {"fr"}
    assert shown(f"search=web-{uid}&language=en") == {"en"}
    assert shown(f"search=web-{uid}&pipeline_tag=translation") == {"en"}
    assert shown(f"search=web-{uid}&library=transformers") == {"fr"}
    assert shown(f"filter=tag-{uid}") == {"fr"}
    assert shown(f"search=web-{uid}&author={liker.name}") == set()
    assert shown(f"search=web-{uid}&author={user.name}") == {"fr", "en", "plain"}

    # The URL holds the state: the form shows it back.
    page = _get(server, f"/models?search=web-{uid}&license=mit&sort=likes").text
    assert f'value="web-{uid}"' in page and 'value="mit"' in page
    assert '<option value="likes" selected>' in page

    # Sort: the liked repo first by likes; the last created first by createdAt.
    def order(sort: str) -> list[str]:
        page = _get(server, f"/models?search=web-{uid}&sort={sort}").text
        return sorted(names, key=lambda k: page.index(f'href="/{names[k]}"'))

    assert order("likes")[0] == "plain"
    assert order("createdAt") == ["plain", "en", "fr"]
    assert order("modified") == order("lastModified")  # the Hub's web name for the sort

    # Paging: 30 a page; p=1 of a search with 3 results is empty and links back.
    page = _get(server, f"/models?search=web-{uid}&p=1").text
    assert not any(f'href="/{n}"' in page for n in names.values())
    assert 'rel="prev"' in page and "Page 2" in page
    assert _get(server, "/models?p=x").status_code == 400
    assert _get(server, "/models?sort=bogus").status_code == 400


def test_listing_paging_links(server: Server, api, user: User) -> None:  # type: ignore[no-untyped-def]
    uid = uuid.uuid4().hex[:8]
    for i in range(31):
        api.create_repo(f"{user.name}/pg-{uid}-{i:02d}", repo_type="space", space_sdk="static")
    first = _get(server, f"/spaces?search=pg-{uid}&sort=createdAt").text
    assert first.count(f'href="/spaces/{user.name}/pg-{uid}-') == 30
    assert f'href="/spaces?search=pg-{uid}&amp;sort=createdAt&amp;p=1" rel="next"' in first
    second = _get(server, f"/spaces?search=pg-{uid}&sort=createdAt&p=1").text
    assert second.count(f'href="/spaces/{user.name}/pg-{uid}-') == 1
    assert f'href="/spaces/{user.name}/pg-{uid}-00"' in second
    assert 'rel="next"' not in second


def test_repo_page_card_metadata_and_usage(server: Server, api,  # type: ignore[no-untyped-def]
                                           repo_factory: Callable[..., str]) -> None:
    base = repo_factory()
    repo_id = repo_factory()
    front = (f"license: mit\nlanguage: [fr, de]\ntags: [tiny]\nbase_model: {base}\n"
             "datasets: [someone/corpus]\npipeline_tag: fill-mask")
    body = f"# Hello card\n\n{SCRIPT}\n\nSome *emphasis* & <b onclick=\"x()\">bold</b>."
    _upload(api, repo_id, {"README.md": _card(front, body), "config.json": b"{}"})
    r = _get(server, f"/{repo_id}")
    assert r.status_code == 200
    page = r.text
    assert "<h1>Hello card</h1>" in page and "<em>emphasis</em>" in page
    assert "<script>alert" not in page and "onclick" not in page
    assert "license: mit" not in page  # the front matter is metadata, not card text
    assert 'href="/models?license=mit"' in page
    assert ">fr</a>" in page and ">de</a>" in page and ">tiny</a>" in page
    assert f'<a href="/{base}">{base}</a>' in page
    assert '<a href="/datasets/someone/corpus">someone/corpus</a>' in page
    assert "fill-mask" in page and "<dt>Downloads</dt>" in page and "0 likes" in page
    assert "Use this model" in page
    assert f"HF_ENDPOINT={server.endpoint}" in page
    assert f'os.environ[&#34;HF_ENDPOINT&#34;] = &#34;{server.endpoint}&#34;' in page
    assert f"AutoModel.from_pretrained(&#34;{repo_id}&#34;)" in page
    assert f"hf download {repo_id}" in page
    assert f"git clone {server.endpoint}/{repo_id}\n" in page and "git lfs install" in page


def test_dataset_and_space_pages(server: Server, api, repo_factory: Callable[..., str]) -> None:  # type: ignore[no-untyped-def]
    ds = repo_factory("dataset")
    _upload(api, ds, {"README.md": b"# Data card", "data/train.csv": b"a,b\n1,2\n"},
            repo_type="dataset")
    page = _get(server, f"/datasets/{ds}").text
    assert "<h1>Data card</h1>" in page and "Use this dataset" in page
    assert f"load_dataset(&#34;{ds}&#34;)" in page
    assert f"hf download {ds} --repo-type dataset" in page
    assert f"git clone {server.endpoint}/datasets/{ds}\n" in page
    tree = _get(server, f"/datasets/{ds}/tree/main/data").text
    assert f'href="/datasets/{ds}/blob/main/data/train.csv"' in tree
    blob = _get(server, f"/datasets/{ds}/blob/main/data/train.csv").text
    assert "a,b\n1,2" in blob
    # A dataset is not a model: /ns/name for it is a 404, as is a model under /datasets.
    assert _get(server, f"/{ds}").status_code == 404
    space_id = f"{ds.split('/')[0]}/sp-{uuid.uuid4().hex[:6]}"
    api.create_repo(space_id, repo_type="space", space_sdk="static")
    page = _get(server, f"/spaces/{space_id}").text
    assert "Use this space" in page and "--repo-type space" in page
    assert _get(server, f"/spaces/{space_id}/commits/main").status_code == 200


def test_private_repo_page_is_the_missing_page(server: Server, user: User, other: User,
                                               repo_factory: Callable[..., str]) -> None:
    private = repo_factory(private=True)
    missing = f"{user.name}/does-not-exist-{uuid.uuid4().hex[:6]}"
    for suffix in ("", "/tree/main", "/blob/main/.gitattributes", "/commits/main"):
        hidden = _get(server, f"/{private}{suffix}", token=other.token)
        absent = _get(server, f"/{missing}{suffix}", token=other.token)
        anon = _get(server, f"/{private}{suffix}")
        anon_absent = _get(server, f"/{missing}{suffix}")
        assert {r.status_code for r in (hidden, absent, anon, anon_absent)} == {404}
        # Byte for byte the same page, but for the path itself, which a visitor's page
        # echoes in its sign-in link (`/login?next=...`).
        assert hidden.text == absent.text
        assert other.name in hidden.text and private.split("/")[1] not in hidden.text
        assert anon.text == anon_absent.text.replace(missing, private)
        assert anon.text.count(private) == 1 and f"?next=/{private}{suffix}" in anon.text
        assert hidden.headers["content-type"].startswith("text/html")
    owner = _get(server, f"/{private}", token=user.token)
    assert owner.status_code == 200 and "private" in owner.text


def test_files_at_tag_and_slash_branch(server: Server, api,  # type: ignore[no-untyped-def]
                                       repo_factory: Callable[..., str]) -> None:
    repo_id = repo_factory()
    _upload(api, repo_id, {
        "notes/readme.txt": f"plain text {SCRIPT}".encode(),
        "weights.bin": b"\0\1" * 600,
        "logo.png": b"\x89PNG\r\n\x1a\n" + b"\0" * 64,
        "odd <name>.txt": b"odd",
    }, message="first <commit>")
    api.create_tag(repo_id, tag="v1.0")
    api.create_branch(repo_id, branch="feature/web")
    _upload(api, repo_id, {"notes/new.txt": b"on the branch"}, revision="feature/web",
            message="branch commit")
    branch = quote("feature/web", safe="")
    for rev in ("v1.0", branch):
        tree = _get(server, f"/{repo_id}/tree/{rev}")
        assert tree.status_code == 200, (rev, tree.text)
        page = tree.text
        assert f'href="/{repo_id}/tree/{rev}/notes"' in page
        assert f'href="/{repo_id}/blob/{rev}/weights.bin"' in page
        assert "1.2 kB" in page and ">LFS</span>" in page
        assert "odd &lt;name&gt;.txt" in page and "<name>" not in page
        assert f'href="/{repo_id}/blob/{rev}/odd%20%3Cname%3E.txt"' in page

        blob = _get(server, f"/{repo_id}/blob/{rev}/notes/readme.txt").text
        assert "plain text &lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in blob
        assert "<script>" not in blob
        lfs = _get(server, f"/{repo_id}/blob/{rev}/weights.bin").text
        assert "Git LFS" in lfs and "SHA256" in lfs
        assert f'href="/{repo_id}/resolve/{rev}/weights.bin"' in lfs
        img = _get(server, f"/{repo_id}/blob/{rev}/logo.png").text
        assert f'<img class="blob-image" src="/{repo_id}/resolve/{rev}/logo.png"' in img
        assert 'alt="logo.png"' in img

        commits = _get(server, f"/{repo_id}/commits/{rev}")
        assert commits.status_code == 200
        assert "first &lt;commit&gt;" in commits.text and "initial commit" in commits.text

    on_branch = _get(server, f"/{repo_id}/tree/{branch}/notes").text
    assert "new.txt" in on_branch and "feature/web" in on_branch
    assert "new.txt" not in _get(server, f"/{repo_id}/tree/v1.0/notes").text
    assert "branch commit" in _get(server, f"/{repo_id}/commits/{branch}").text
    assert "branch commit" not in _get(server, f"/{repo_id}/commits/v1.0").text
    # Unknown revisions, paths and a folder as a blob: 404 pages.
    assert _get(server, f"/{repo_id}/tree/nope").status_code == 404
    assert _get(server, f"/{repo_id}/blob/main/missing.txt").status_code == 404
    assert _get(server, f"/{repo_id}/blob/main/notes").status_code == 404
    assert _get(server, f"/{repo_id}/tree/main/weights.bin").status_code == 404


def test_error_pages_and_api_unaffected(server: Server, user: User,
                                        repo_factory: Callable[..., str]) -> None:
    repo_id = repo_factory()
    page = _get(server, "/no/such/page/here")
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "Page not found" in page.text and "Traceback" not in page.text
    # Without text/html, an unknown path is the API's JSON 404.
    plain = httpx.get(f"{server.endpoint}/no/such/page/here")
    assert plain.status_code == 404 and plain.headers["content-type"] == "application/json"
    # API paths stay JSON even for a browser, and are never caught by `/{ns}/{name}`.
    for path in ("/api/nothing", "/api/models/x", "/xet/abc", "/_lfs/objects"):
        r = _get(server, path)
        assert r.headers["content-type"] == "application/json", path
    info = _get(server, f"/api/models/{repo_id}")
    assert info.status_code == 200 and info.json()["id"] == repo_id
    missing = _get(server, f"/api/models/{user.name}/nope-{uuid.uuid4().hex[:6]}")
    assert missing.status_code == 404 and missing.headers["x-error-code"] == "RepoNotFound"
    assert missing.json()["error"]
    resolve = _get(server, f"/{repo_id}/resolve/main/missing.txt")
    assert resolve.status_code == 404 and resolve.headers["x-error-code"] == "EntryNotFound"
    # HTML pages answer GET only.
    assert httpx.post(f"{server.endpoint}/{repo_id}").status_code in (404, 405)
    assert httpx.get(f"{server.endpoint}/api/health").json()["status"] == "ok"


def test_server_error_page_leaks_nothing(server_factory: Callable[..., Server]) -> None:
    """A repo whose storage vanished from disk: a 500 page for browsers, JSON for the API."""
    import shutil

    srv = server_factory()
    name, _, api = srv.new_user_api("broken")
    repo_id = f"{name}/gone"
    api.create_repo(repo_id)
    shutil.rmtree(srv.data / "repos")
    page = _get(srv, f"/{repo_id}/tree/main")
    assert page.status_code == 500 and page.headers["content-type"].startswith("text/html")
    assert "Something went wrong" in page.text
    for leak in ("Traceback", "Error:", str(srv.data), "dulwich"):
        assert leak not in page.text
    api_error = _get(srv, f"/api/models/{repo_id}/tree/main")
    assert api_error.status_code == 500
    assert api_error.json() == {"error": "Internal server error"}
