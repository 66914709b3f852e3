"""Writing from the browser, over HTTP: new repos, uploads (streamed multipart, git or
LFS), editing a file, branches and tags, and who may do which."""

from __future__ import annotations

import hashlib
import os
import re
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from huggingface_hub import HfApi, RepoFile, hf_hub_download
from webforms import alert as _alert
from webforms import browser as _browser
from webforms import csrf as _csrf
from webforms import sign_in as _sign_in
from webforms import signed_in as _signed_in

from hver.core.web_upload import FormLimits, FormUpload
from hver.storage.blobs import LocalBlobStore

Server = Any
HTML = {"Accept": "text/html"}


@pytest.fixture(autouse=True)
def _clean(no_server_errors: None) -> None:
    pass


def _head(api: HfApi, repo_id: str, repo_type: str = "model", revision: str = "main") -> str:
    refs = api.list_repo_refs(repo_id, repo_type=repo_type)
    return next(b.target_commit for b in refs.branches if b.name == revision)


def _staged(server: Server) -> set[str]:
    """Upload staging files in the server's data directory."""
    return {p.name for p in (server.data / "tmp").glob("upload-*")}


def _own_server_user(srv: Server, prefix: str) -> tuple[str, HfApi, str]:
    """A user with a write token and a password on a server of `server_factory`."""
    name, _, api = srv.new_user_api(prefix)
    password = f"pw-{uuid.uuid4().hex}"
    srv.hver("user", "set-password", name, stdin=f"{password}\n")
    return name, api, password


# Module-scoped users: making one takes a few CLI runs. Each test uses its own repos.
@pytest.fixture(scope="module")
def writer(web_user_factory):  # type: ignore[no-untyped-def]
    return web_user_factory("writer")


@pytest.fixture(scope="module")
def reader(web_user_factory):  # type: ignore[no-untyped-def]
    """A signed-in user with no rights on the writer's repos."""
    return web_user_factory("reader")


@pytest.fixture(scope="module")
def writer_api(server: Server, writer: Any) -> HfApi:
    return HfApi(endpoint=server.endpoint, token=writer.token)


@pytest.fixture
def model(writer_api: HfApi, writer: Any) -> str:
    repo_id = f"{writer.name}/model-{uuid.uuid4().hex[:6]}"
    writer_api.create_repo(repo_id)
    return repo_id


# --- new repos -------------------------------------------------------------------------


def test_create_repos(server: Server, writer: Any, writer_api: HfApi) -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"
    server.hver("org", "create", org, "--owner", writer.name)
    anon = HfApi(endpoint=server.endpoint, token=False)
    with _signed_in(server, writer) as b:
        page = b.get("/new")
        assert page.status_code == 200
        assert '<label for="new-name">' in page.text and 'name="visibility"' in page.text
        assert f'<option value="{writer.name}" selected>' in page.text
        assert f'<option value="{org}">' in page.text
        csrf = _csrf(page.text)

        r = b.post("/new", data={"csrf": csrf, "owner": writer.name, "name": "web-model",
                                 "visibility": "public"})
        assert r.status_code == 303 and r.headers["location"] == f"/{writer.name}/web-model"
        info = anon.model_info(f"{writer.name}/web-model")
        assert info.private is False
        assert b.get(r.headers["location"]).status_code == 200

        r = b.post("/new-dataset", data={"csrf": csrf, "owner": org, "name": "web-data",
                                         "visibility": "private"})
        assert r.status_code == 303 and r.headers["location"] == f"/datasets/{org}/web-data"
        assert writer_api.dataset_info(f"{org}/web-data").private is True
        assert httpx.get(f"{server.endpoint}/datasets/{org}/web-data",
                         headers=HTML).status_code == 404
        assert b.get(f"/datasets/{org}/web-data").status_code == 200

        page = b.get("/new-space")
        assert '<select id="new-sdk" name="sdk"' in page.text
        r = b.post("/new-space", data={"csrf": csrf, "owner": writer.name, "name": "web-app",
                                       "visibility": "public", "sdk": "docker"})
        assert r.status_code == 303 and r.headers["location"] == f"/spaces/{writer.name}/web-app"
        assert anon.space_info(f"{writer.name}/web-app").sdk == "docker"


def test_create_repo_errors(server: Server, writer: Any, reader: Any,
                            writer_api: HfApi) -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"
    server.hver("org", "create", org, "--owner", reader.name)
    server.hver("org", "add-member", org, writer.name, "--role", "read")
    writer_api.create_repo(f"{writer.name}/taken")
    with _signed_in(server, writer) as b:
        page = b.get("/new")
        csrf = _csrf(page.text)
        assert f'<option value="{org}"' not in page.text  # read-only membership

        def create(**fields: str) -> httpx.Response:
            return b.post("/new", data={"csrf": csrf, "owner": writer.name,
                                        "visibility": "public", **fields})

        r = create(name="bad--name")
        assert r.status_code == 400 and "Invalid name" in _alert(r.text)
        assert 'value="bad--name"' in r.text  # the form keeps what was typed
        r = create(name="taken")
        assert r.status_code == 409 and "already exists" in _alert(r.text)
        r = create(name="in-org", owner=org)
        assert r.status_code == 403 and "rights" in _alert(r.text)
        r = create(name="odd", visibility="secret")
        assert r.status_code == 400 and "public or private" in _alert(r.text)
        # Without the page's CSRF token nothing is created.
        r = b.post("/new", data={"owner": writer.name, "name": "no-token",
                                 "visibility": "public"})
        assert r.status_code == 403
    assert not HfApi(endpoint=server.endpoint, token=writer.token).repo_exists(
        f"{writer.name}/no-token")
    # Visitors are sent to sign in.
    with _browser(server) as anon:
        r = anon.get("/new-dataset")
        assert r.status_code == 303 and r.headers["location"] == "/login?next=/new-dataset"


# --- uploads ---------------------------------------------------------------------------


def test_upload_lfs_and_git_files(server: Server, writer: Any, writer_api: HfApi,
                                  model: str, tmp_path: Path) -> None:
    big = os.urandom(30 * 1024 * 1024)  # over the 10 MiB cap of ordinary request bodies
    with _signed_in(server, writer) as b:
        tree = b.get(f"/{model}/tree/main")
        assert f'href="/{model}/upload/main">Upload files</a>' in tree.text
        page = b.get(f"/{model}/upload/main")
        assert page.status_code == 200
        assert 'type="file" name="files" multiple' in page.text
        assert 'enctype="multipart/form-data"' in page.text
        before = _staged(server)
        r = b.post(f"/{model}/upload/main",
                   data={"csrf": _csrf(page.text), "path": "weights", "summary": "Add weights",
                         "description": "Random bytes."},
                   files=[("files", ("big.bin", big, "application/octet-stream")),
                          ("files", ("notes.txt", b"hello from the browser\n", "text/plain"))])
        assert r.status_code == 303, r.text
        assert r.headers["location"] == f"/{model}/tree/main/weights"
        listing = b.get(r.headers["location"]).text
        assert ">big.bin</a>" in listing and ">notes.txt</a>" in listing
        assert _staged(server) <= before  # nothing left behind

    commit = writer_api.list_repo_commits(model)[0]
    assert commit.title == "Add weights" and commit.message.strip() == "Random bytes."
    infos = {i.path: i for i in writer_api.get_paths_info(
        model, ["weights/big.bin", "weights/notes.txt"])}
    lfs = infos["weights/big.bin"].lfs
    assert lfs is not None and lfs.sha256 == hashlib.sha256(big).hexdigest()
    assert lfs.size == len(big)
    assert infos["weights/notes.txt"].lfs is None
    path = hf_hub_download(model, "weights/big.bin", cache_dir=tmp_path)
    assert hashlib.sha256(Path(path).read_bytes()).digest() == hashlib.sha256(big).digest()
    text = hf_hub_download(model, "weights/notes.txt", cache_dir=tmp_path)
    assert Path(text).read_bytes() == b"hello from the browser\n"


def test_upload_defaults_to_the_root_and_a_summary(server: Server, writer: Any,
                                                   writer_api: HfApi) -> None:
    with _signed_in(server, writer) as b:
        csrf = _csrf(b.get("/new-dataset").text)
        r = b.post("/new-dataset", data={"csrf": csrf, "owner": writer.name, "name": "up-data",
                                         "visibility": "private"})
        assert r.status_code == 303
        url = f"/datasets/{writer.name}/up-data"
        r = b.post(f"{url}/upload/main", data={"csrf": csrf},
                   files=[("files", ("a.csv", b"x,y\n1,2\n", "text/csv")),
                          ("files", ("b.csv", b"x,y\n3,4\n", "text/csv"))])
        assert r.status_code == 303 and r.headers["location"] == f"{url}/tree/main"
        # The folder from the URL, as the tree page links it.
        r = b.post(f"{url}/upload/main/more", data={"csrf": csrf},
                   files=[("files", ("c.csv", b"x,y\n5,6\n", "text/csv"))])
        assert r.status_code == 303 and r.headers["location"] == f"{url}/tree/main/more"
    repo_id = f"{writer.name}/up-data"
    titles = [c.title for c in writer_api.list_repo_commits(repo_id, repo_type="dataset")]
    assert titles[:2] == ["Upload 1 file", "Upload 2 files"]
    files = set(writer_api.list_repo_files(repo_id, repo_type="dataset"))
    assert {"a.csv", "b.csv", "more/c.csv"} <= files


def test_upload_refusals_write_nothing(server: Server, writer: Any, writer_api: HfApi,
                                       reader: Any, model: str) -> None:
    head = _head(writer_api, model)
    before = _staged(server)
    one = [("files", ("x.txt", b"x" * 100_000, "text/plain"))]
    with _signed_in(server, writer) as b:
        csrf = _csrf(b.get(f"/{model}/upload/main").text)
        # No token, a wrong one, or the token after a file: refused before any file byte.
        assert b.post(f"/{model}/upload/main", files=one).status_code == 403
        r = b.post(f"/{model}/upload/main", data={"csrf": "0" * 64}, files=one)
        assert r.status_code == 403 and "expired" in r.text
        late = httpx.Request("POST", "/", files=[one[0], ("csrf", (None, csrf))])
        late.read()
        r = b.post(f"/{model}/upload/main", content=late.content,
                   headers={"Content-Type": late.headers["content-type"]})
        assert r.status_code == 403
        # Paths that would escape the repo, as a file name or as the folder.
        for data, name in (({"csrf": csrf}, "../x"), ({"csrf": csrf, "path": ".."}, "x.txt"),
                           ({"csrf": csrf}, ".git/config")):
            r = b.post(f"/{model}/upload/main", data=data,
                       files=[("files", (name, b"data", "text/plain"))])
            assert r.status_code == 422 and "Invalid file path" in _alert(r.text), name
        # No file chosen (an empty file input), and a branch that does not exist.
        r = b.post(f"/{model}/upload/main", data={"csrf": csrf},
                   files=[("files", ("", b"", "application/octet-stream"))])
        assert r.status_code == 400 and "at least one file" in _alert(r.text)
        assert b.post(f"/{model}/upload/nope", data={"csrf": csrf}, files=one).status_code == 404
        # Not multipart at all.
        r = b.post(f"/{model}/upload/main", data={"csrf": csrf})
        assert r.status_code == 400
        # The same file name twice.
        r = b.post(f"/{model}/upload/main", data={"csrf": csrf},
                   files=[("files", ("a.txt", b"1", "text/plain")), *one,
                          ("files", ("a.txt", b"2", "text/plain"))])
        assert r.status_code == 400 and "a.txt was sent twice" in _alert(r.text)
    with _signed_in(server, reader) as b:
        assert b.get(f"/{model}/upload/main").status_code == 403
        tree = b.get(f"/{model}/tree/main").text
        assert "Upload files" not in tree and f'href="/{model}/refs"' in tree
        csrf = _csrf(b.get(f"/{model}").text)
        r = b.post(f"/{model}/upload/main", data={"csrf": csrf}, files=one)
        assert r.status_code == 403 and "write access" in r.text
    with _browser(server) as anon:
        r = anon.get(f"/{model}/upload/main")
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")
        assert anon.post(f"/{model}/upload/main", files=one).status_code == 303
    assert _head(writer_api, model) == head
    assert writer_api.list_repo_files(model) == [".gitattributes"]
    assert _staged(server) <= before


def test_private_repo_stays_missing(server: Server, writer: Any, writer_api: HfApi,
                                    reader: Any) -> None:
    outsider = reader
    repo_id = f"{writer.name}/hidden-{uuid.uuid4().hex[:6]}"
    writer_api.create_repo(repo_id, private=True)
    with _signed_in(server, outsider) as b:
        csrf = _csrf(b.get("/").text)
        for url in (f"/{repo_id}/upload/main", f"/{repo_id}/edit/main/README.md",
                    f"/{repo_id}/refs"):
            assert b.get(url).status_code == 404, url
        r = b.post(f"/{repo_id}/upload/main", data={"csrf": csrf},
                   files=[("files", ("x.txt", b"x", "text/plain"))])
        assert r.status_code == 404
        r = b.post(f"/{repo_id}/refs/branch", data={"csrf": csrf, "name": "dev"})
        assert r.status_code == 404
    assert [b.name for b in writer_api.list_repo_refs(repo_id).branches] == ["main"]


def test_upload_size_limit(server_factory) -> None:  # type: ignore[no-untyped-def]
    srv = server_factory(max_web_upload="200000")
    name, api, password = _own_server_user(srv, "small")
    api.create_repo(f"{name}/limited")
    head = _head(api, f"{name}/limited")
    with _browser(srv) as b:
        assert _sign_in(b, name, password).status_code == 303
        csrf = _csrf(b.get(f"/{name}/limited/upload/main").text)
        ok = b.post(f"/{name}/limited/upload/main", data={"csrf": csrf},
                    files=[("files", ("small.bin", os.urandom(100_000), "application/x"))])
        assert ok.status_code == 303
        head = _head(api, f"{name}/limited")
        r = b.post(f"/{name}/limited/upload/main", data={"csrf": csrf},
                   files=[("files", ("big.bin", os.urandom(300_000), "application/x"))])
        assert r.status_code == 413 and "larger than 200000 bytes" in _alert(r.text)
    assert _head(api, f"{name}/limited") == head
    assert not list((srv.data / "tmp").glob("upload-*"))


def test_small_files_beyond_the_commit_body_go_to_lfs(  # type: ignore[no-untyped-def]
        server_factory, tmp_path: Path) -> None:
    # Git blobs are held in memory for the commit: at most max_commit_body bytes of them.
    srv = server_factory(max_commit_body="65536")
    name, api, password = _own_server_user(srv, "inline")
    repo_id = f"{name}/texts"
    api.create_repo(repo_id)
    texts = {f"t{i}.txt": (f"line {i}\n" * 2500).encode()[:20_000] for i in range(5)}
    with _browser(srv) as b:
        assert _sign_in(b, name, password).status_code == 303
        csrf = _csrf(b.get(f"/{repo_id}/upload/main").text)
        r = b.post(f"/{repo_id}/upload/main", data={"csrf": csrf},
                   files=[("files", (n, data, "text/plain")) for n, data in texts.items()])
        assert r.status_code == 303, r.text
    infos = {i.path: i for i in api.get_paths_info(repo_id, list(texts))
             if isinstance(i, RepoFile)}
    # In form order: three fit in 65,536 bytes (60,000), the other two do not.
    assert [infos[n].lfs is None for n in texts] == [True, True, True, False, False]
    for n, data in texts.items():
        lfs = infos[n].lfs
        assert lfs is None or (lfs.sha256 == hashlib.sha256(data).hexdigest()
                               and lfs.size == len(data)), n
        stored = hf_hub_download(repo_id, n, cache_dir=tmp_path, endpoint=srv.endpoint)
        assert Path(stored).read_bytes() == data, n
    assert not list((srv.data / "tmp").glob("upload-*"))


def test_abort_while_a_chunk_is_fed_leaves_no_staging_file(tmp_path: Path) -> None:
    """A cancelled request aborts the form while its worker thread is still feeding it."""
    staging = tmp_path / "staging"
    store = LocalBlobStore(tmp_path / "blobs", staging)
    in_feed, go_on = threading.Event(), threading.Event()

    def check_guard(token: str | None) -> None:
        in_feed.set()  # the guard field is read: the file part comes next in this chunk
        assert go_on.wait(10)

    form = FormUpload(store, b"b0undary", FormLimits(10, 10, 1000), "csrf", check_guard)
    body = (b"--b0undary\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\ntoken\r\n"
            b"--b0undary\r\nContent-Disposition: form-data; name=\"files\"; "
            b"filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
            b"--b0undary\r\nContent-Disposition: form-data; name=\"files\"; filename=\"b.t")
    feeder = threading.Thread(target=form.feed, args=(body,))
    feeder.start()
    assert in_feed.wait(10)
    form.abort()  # returns at once: the feeding thread is waiting in check_guard
    assert feeder.is_alive()
    go_on.set()
    feeder.join(10)
    assert not feeder.is_alive()
    assert form.files == [] and list(staging.iterdir()) == []
    form.feed(b'xt"\r\n\r\nmore')  # a chunk after the abort opens nothing
    assert form.files == [] and list(staging.iterdir()) == []


# --- editing ---------------------------------------------------------------------------


def test_edit_card_and_conflicts(server: Server, writer: Any, writer_api: HfApi,
                                 reader: Any, model: str) -> None:
    with _signed_in(server, writer) as b:
        repo_page = b.get(f"/{model}").text
        assert f'<a href="/{model}/edit/main/README.md">Edit model card</a>' in repo_page
        page = b.get(f"/{model}/edit/main/README.md")
        assert page.status_code == 200 and "Create model card" in page.text
        assert '<label for="edit-content">' in page.text
        parent = re.search(r'name="parent" value="([0-9a-f]{40})"', page.text)
        assert parent and parent.group(1) == _head(writer_api, model)
        csrf = _csrf(page.text)
        card = "---\nlicense: mit\n---\r\n# Hello card\r\n\r\nWritten in the browser.\r\n"
        r = b.post(f"/{model}/edit/main/README.md",
                   data={"csrf": csrf, "parent": parent.group(1), "content": card,
                         "summary": "", "description": ""})
        assert r.status_code == 303 and r.headers["location"] == f"/{model}"
        shown = b.get(f"/{model}").text
        assert "<h1>Hello card</h1>" in shown and "Written in the browser." in shown
        assert writer_api.model_info(model).card_data.get("license") == "mit"
        assert writer_api.list_repo_commits(model)[0].title == "Create README.md"
        stored = hf_hub_download(model, "README.md", cache_dir=str(server.data.parent / "c1"))
        assert Path(stored).read_bytes() == card.replace("\r\n", "\n").encode()

        # Opened again: the current text; a commit from a stale form is refused.
        again = b.get(f"/{model}/edit/main/README.md").text
        assert "Edit model card" in again and "# Hello card" in again
        head = _head(writer_api, model)
        r = b.post(f"/{model}/edit/main/README.md",
                   data={"csrf": csrf, "parent": parent.group(1), "content": "# Overwrite\n"})
        assert r.status_code == 409
        assert "changed since you opened it" in _alert(r.text)
        assert "# Overwrite" in r.text  # the text typed is kept
        assert _head(writer_api, model) == head

        # Another file goes back to its blob page; LFS files cannot be edited here.
        writer_api.upload_file(path_or_fileobj=b"a = 1\n", path_in_repo="conf/x.py",
                               repo_id=model)
        writer_api.upload_file(path_or_fileobj=b"\0\1\2", path_in_repo="w.bin", repo_id=model)
        page = b.get(f"/{model}/edit/main/conf/x.py").text
        r = b.post(f"/{model}/edit/main/conf/x.py",
                   data={"csrf": csrf, "parent": re.search(
                       r'name="parent" value="([0-9a-f]{40})"', page).group(1),  # type: ignore[union-attr]
                         "content": "a = 2\n", "summary": "Bump a"})
        assert r.status_code == 303 and r.headers["location"] == f"/{model}/blob/main/conf/x.py"
        assert writer_api.list_repo_commits(model)[0].title == "Bump a"
        assert b.get(f"/{model}/edit/main/w.bin").status_code == 400
        assert b.get(f"/{model}/edit/main/conf").status_code == 400
    with _signed_in(server, reader) as b:
        # A reader may only propose: the edit form opens a pull request, main stays.
        assert "Edit model card" in b.get(f"/{model}").text
        page = b.get(f"/{model}/edit/main/README.md")
        assert page.status_code == 200 and "opens a pull request" in page.text
        assert 'value="branch"' not in page.text
        csrf = _csrf(b.get("/").text)
        head = _head(writer_api, model)
        r = b.post(f"/{model}/edit/main/README.md",
                   data={"csrf": csrf, "parent": head, "content": "# Mine now\n",
                         "target": "branch"})
        assert r.status_code == 303 and r.headers["location"].startswith(f"/{model}/discussions/")
        assert _head(writer_api, model) == head
        num = int(r.headers["location"].rsplit("/", 1)[1])
        assert writer_api.get_discussion_details(model, num).is_pull_request


def test_a_pr_author_edits_their_pull_request(server: Server, writer: Any, writer_api: HfApi,
                                              reader: Any, web_user_factory: Any,
                                              model: str) -> None:
    """The edit form on `refs/pr/N` commits to the pull request, for its author; another
    user's edit there is refused and moves nothing."""
    writer_api.upload_file(path_or_fileobj=b"# Card\n", path_in_repo="README.md", repo_id=model)
    with _signed_in(server, reader) as b:
        csrf = _csrf(b.get("/").text)
        r = b.post(f"/{model}/edit/main/README.md",
                   data={"csrf": csrf, "parent": _head(writer_api, model),
                         "content": "# Card v2\n"})
        assert r.status_code == 303
        num = int(r.headers["location"].rsplit("/", 1)[1])
        page = b.get(f"/{model}/edit/refs%2Fpr%2F{num}/README.md")
        assert page.status_code == 200 and f"Commit changes to refs/pr/{num}" in page.text
        parent = writer_api.list_repo_commits(model, revision=f"refs/pr/{num}")[0].commit_id
        r = b.post(f"/{model}/edit/refs%2Fpr%2F{num}/README.md",
                   data={"csrf": csrf, "parent": parent, "content": "# Card v3\n"})
        assert r.status_code == 303 and r.headers["location"] == f"/{model}/discussions/{num}"
    commits = writer_api.list_repo_commits(model, revision=f"refs/pr/{num}")
    assert len(commits) == 4 and len(writer_api.list_repo_commits(model)) == 2
    with _signed_in(server, web_user_factory("stranger")) as b:
        csrf = _csrf(b.get("/").text)
        r = b.post(f"/{model}/edit/refs%2Fpr%2F{num}/README.md",
                   data={"csrf": csrf, "parent": commits[0].commit_id, "content": "# Mine\n"})
        assert r.status_code == 403
    assert writer_api.list_repo_commits(model, revision=f"refs/pr/{num}")[0].commit_id == \
        commits[0].commit_id


# --- branches and tags -----------------------------------------------------------------


def test_branches_and_tags(server: Server, writer: Any, writer_api: HfApi,
                           reader: Any, model: str) -> None:
    with _signed_in(server, writer) as b:
        page = b.get(f"/{model}/refs")
        assert page.status_code == 200 and "<h2>Branches and tags</h2>" in page.text
        assert "New branch" in page.text and "New tag" in page.text
        assert 'aria-label="Delete branch main"' not in page.text
        csrf = _csrf(page.text)
        r = b.post(f"/{model}/refs/branch", data={"csrf": csrf, "name": "dev",
                                                  "revision": "main"})
        assert r.status_code == 303 and r.headers["location"] == f"/{model}/refs"
        r = b.post(f"/{model}/refs/tag", data={"csrf": csrf, "name": "v1", "revision": "dev",
                                               "message": "First release"})
        assert r.status_code == 303
        refs = writer_api.list_repo_refs(model)
        head = _head(writer_api, model)
        assert {x.name: x.target_commit for x in refs.branches} == {"main": head, "dev": head}
        assert {x.name: x.target_commit for x in refs.tags} == {"v1": head}
        listing = b.get(f"/{model}/refs").text
        assert f'href="/{model}/tree/dev">dev</a>' in listing
        assert f'href="/{model}/tree/v1">v1</a>' in listing
        assert 'aria-label="Delete branch dev"' in listing

        r = b.post(f"/{model}/refs/branch", data={"csrf": csrf, "name": "dev"})
        assert r.status_code == 409 and "already exists" in _alert(r.text)
        r = b.post(f"/{model}/refs/tag", data={"csrf": csrf, "name": "bad name"})
        assert r.status_code == 400 and "Invalid reference name" in _alert(r.text)
        assert 'value="bad name"' in r.text
        r = b.post(f"/{model}/refs/branch", data={"csrf": csrf, "name": "x", "revision": "nope"})
        assert r.status_code == 404 and _alert(r.text)
        assert b.post(f"/{model}/refs/branch/delete",
                      data={"csrf": csrf, "name": "main"}).status_code == 403
    with _signed_in(server, reader) as b:
        page = b.get(f"/{model}/refs").text
        assert "dev" in page and "New branch" not in page and "Delete" not in page
        r = b.post(f"/{model}/refs/branch/delete", data={"csrf": _csrf(page), "name": "dev"})
        assert r.status_code == 403
    assert {x.name for x in writer_api.list_repo_refs(model).branches} == {"main", "dev"}
    with _signed_in(server, writer) as b:
        csrf = _csrf(b.get(f"/{model}/refs").text)
        assert b.post(f"/{model}/refs/branch/delete",
                      data={"csrf": csrf, "name": "dev"}).status_code == 303
        assert b.post(f"/{model}/refs/tag/delete",
                      data={"csrf": csrf, "name": "v1"}).status_code == 303
    refs = writer_api.list_repo_refs(model)
    assert [x.name for x in refs.branches] == ["main"] and refs.tags == []


def test_upload_script_is_served(server: Server) -> None:
    r = httpx.get(f"{server.endpoint}/static/upload.js")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/javascript")
    assert "max-age" in r.headers["cache-control"]
    assert "DataTransfer" in r.text and 'addEventListener("drop"' in r.text
    # Only the UI's own files: nothing else under /static/, nor any path out of it.
    for other in ("/static/nope.js", "/static/..%2Fpages.py", "/static/%2E%2E/__init__.py"):
        assert httpx.get(f"{server.endpoint}{other}").status_code == 404, other
