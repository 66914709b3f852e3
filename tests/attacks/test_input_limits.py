"""Inputs shaped to break the parser, not the rules: attacks on the request readers
(issue 11).

Before the fix, a JSON body nested 10,000 deep made Python's json recurse until
RecursionError (a 500) on every route that read JSON itself; a commit path of 1,000
segments made dulwich's recursive tree building fail the same way; and `.GIT/config`
(or `a/.gIt/config`), which a case-insensitive checkout writes into `.git`, was
accepted where `.git/config` was refused.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError

Server = Any
User = Any
DEEP = b"[" * 10_000 + b"]" * 10_000
OPEN = b"[" * 10_000  # never closed: json recursed before it saw the syntax error
DEEP_PATH = "a/" * 999 + "x.txt"  # 1,000 segments
pytestmark = pytest.mark.usefixtures("no_server_errors")


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def assert_refused(r: httpx.Response, code: str = "BadRequest") -> None:
    status = 422 if code == "InvalidPath" else 400  # the Hub answers bad paths with 422
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["X-Error-Code"] == code, r.headers
    assert r.headers.get("X-Error-Message"), r.headers
    assert r.json()["error"] == r.headers["X-Error-Message"]


def line(key: str, **value: Any) -> bytes:
    return json.dumps({"key": key, "value": value}).encode()


def header(summary: str = "attack") -> bytes:
    return line("header", summary=summary, description="")


def file_line(path: str, content: bytes = b"x") -> bytes:
    return line("file", path=path, content=base64.b64encode(content).decode(),
                encoding="base64")


def commit(server: Server, token: str, repo_id: str, *lines: bytes) -> httpx.Response:
    return httpx.post(f"{server.endpoint}/api/models/{repo_id}/commit/main",
                      content=b"\n".join(lines) + b"\n", timeout=60,
                      headers={**auth(token), "content-type": "application/x-ndjson"})


def head(server: Server, token: str, repo_id: str) -> tuple[str, list[str]]:
    """The branch's commit and files: what an attack must leave as it was."""
    api = HfApi(endpoint=server.endpoint, token=token)
    return api.repo_info(repo_id).sha or "", sorted(api.list_repo_files(repo_id))


@pytest.fixture
def target(server: Server, user_factory: Callable[..., User]) -> tuple[User, str]:
    """A user and a repo of theirs with one commit on main."""
    owner = user_factory("attacker")
    repo_id = f"{owner.name}/target-{uuid.uuid4().hex[:6]}"
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"hello\n", path_in_repo="hello.txt", repo_id=repo_id)
    return owner, repo_id


# -- deeply nested JSON ------------------------------------------------------------------


@pytest.mark.parametrize("body", [DEEP, OPEN], ids=["nested", "unclosed"])
def test_deep_json_is_refused_on_every_route(server: Server, target: tuple[User, str],
                                             user_factory: Callable[..., User],
                                             body: bytes) -> None:
    owner, repo_id = target
    org = f"org-{uuid.uuid4().hex[:8]}"
    server.hver("org", "create", org, "--owner", owner.name)
    member = user_factory("member")
    before = head(server, owner.token, repo_id)
    json_type = {"content-type": "application/json"}
    lfs_type = {"content-type": "application/vnd.git-lfs+json"}
    base = f"{server.endpoint}/api/models/{repo_id}"
    lfs = f"{server.endpoint}/{repo_id}.git/info/lfs/objects"
    attacks: list[tuple[str, str, bytes, dict[str, str]]] = [
        ("POST", f"{base}/preupload/main", body, json_type),
        ("POST", f"{base}/commit/main", body, {}),                      # as the header
        ("POST", f"{base}/commit/main", header() + b"\n" + body, {}),   # as an operation
        ("POST", f"{base}/commit/main",
         header() + b"\n" + b'{"key": "file", "value": ' + body + b"}", {}),
        ("POST", f"{base}/paths-info/main", body, json_type),
        ("POST", f"{lfs}/batch", body, lfs_type),
        ("POST", f"{lfs}/verify", body, lfs_type),
        ("POST", f"{server.endpoint}/api/validate-yaml", body, json_type),
        ("PUT", f"{server.endpoint}/api/organizations/{org}/members/{member.name}", body,
         json_type),
        ("POST", f"{base}/ask-access", body, json_type),
        ("POST", f"{base}/ask-access", b'{"fields": "' + body + b'"}', json_type),
    ]
    for method, url, content, headers in attacks:
        r = httpx.request(method, url, content=content, timeout=60,
                          headers={**auth(owner.token), **headers})
        assert_refused(r)
        assert "nested too deeply" in r.headers["X-Error-Message"], (url, r.text)
    assert head(server, owner.token, repo_id) == before
    members = httpx.get(f"{server.endpoint}/api/organizations/{org}/members").json()
    assert [m["user"] for m in members] == [owner.name]


def test_brackets_in_strings_are_not_nesting(server: Server, target: tuple[User, str]) -> None:
    owner, repo_id = target
    r = commit(server, owner.token, repo_id, header("[" * 500 + "{" * 500),
               file_line("brackets.txt", b"[[["))
    assert r.status_code == 200, r.text
    r = httpx.post(f"{server.endpoint}/api/validate-yaml", headers=auth(owner.token),
                   json={"content": "---\nlicense: mit\n---\n" + "[" * 1000, "repoType": "model"})
    assert r.status_code == 200, r.text
    # 64 levels are fine; the 65th is one too many.
    ok = b'{"files": ' + b"[" * 63 + b"]" * 63 + b"}"
    r = httpx.post(f"{server.endpoint}/api/models/{repo_id}/preupload/main", content=ok,
                   headers={**auth(owner.token), "content-type": "application/json"})
    assert r.status_code == 400 and "nested" not in r.text, r.text  # not a list of files
    too_deep = b'{"files": ' + b"[" * 64 + b"]" * 64 + b"}"
    r = httpx.post(f"{server.endpoint}/api/models/{repo_id}/preupload/main", content=too_deep,
                   headers={**auth(owner.token), "content-type": "application/json"})
    assert_refused(r)
    assert "nested too deeply" in r.text


# -- deep paths --------------------------------------------------------------------------


def test_deep_paths_are_refused(server: Server, target: tuple[User, str]) -> None:
    owner, repo_id = target
    before = head(server, owner.token, repo_id)
    oid = "a" * 64
    for op in (file_line(DEEP_PATH), line("lfsFile", path=DEEP_PATH, algo="sha256", oid=oid,
                                          size=1),
               line("deletedFile", path=DEEP_PATH), line("deletedFolder", path=DEEP_PATH)):
        assert_refused(commit(server, owner.token, repo_id, header(), op), "InvalidPath")
    assert head(server, owner.token, repo_id) == before

    base = f"{server.endpoint}/api/models/{repo_id}"
    r = httpx.post(f"{base}/preupload/main", headers=auth(owner.token),
                   json={"files": [{"path": DEEP_PATH, "size": 1, "sample": ""}]})
    assert_refused(r, "InvalidPath")
    for url in (f"{base}/tree/main/{DEEP_PATH}",
                f"{server.endpoint}/{repo_id}/resolve/main/{DEEP_PATH}",
                f"{server.endpoint}/{repo_id}/blob/main/{DEEP_PATH}",
                f"{server.endpoint}/{repo_id}/tree/main/{DEEP_PATH}"):
        r = httpx.get(url, headers=auth(owner.token))
        assert 400 <= r.status_code < 500, (url, r.status_code, r.text[:300])
    r = httpx.post(f"{base}/paths-info/main", headers=auth(owner.token),
                   json={"paths": [DEEP_PATH], "expand": True})
    assert r.status_code < 500, r.text[:300]
    assert r.status_code >= 400 or r.json() == []

    # As deep as allowed: 100 segments commit; 101 do not.
    deepest = "d/" * 99 + "x.txt"
    r = commit(server, owner.token, repo_id, header(), file_line(deepest))
    assert r.status_code == 200, r.text
    assert_refused(commit(server, owner.token, repo_id, header(), file_line("d/" + deepest)),
                   "InvalidPath")
    assert deepest in head(server, owner.token, repo_id)[1]


# -- .git in any case --------------------------------------------------------------------


@pytest.mark.parametrize("path", [".GIT/config", ".Git/hooks/post-checkout", "a/.gIt/config",
                                  ".git./config", ".git /config", "GIT~1/config",
                                  ".g\u200cit/config"])
def test_dot_git_in_any_spelling_is_refused(server: Server, target: tuple[User, str],
                                            path: str) -> None:
    owner, repo_id = target
    before = head(server, owner.token, repo_id)
    r = commit(server, owner.token, repo_id, header(), file_line(path, b"[core]\n"))
    assert_refused(r, "InvalidPath")
    assert "'.git' is reserved" in r.headers["X-Error-Message"]
    r = httpx.post(f"{server.endpoint}/api/models/{repo_id}/preupload/main",
                   headers=auth(owner.token), json={"files": [{"path": path, "size": 8}]})
    assert_refused(r, "InvalidPath")
    assert head(server, owner.token, repo_id) == before


def test_dot_git_through_the_real_client(server: Server, target: tuple[User, str]) -> None:
    owner, repo_id = target
    before = head(server, owner.token, repo_id)
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    for path in (".GIT/config", "sub/.Git/config"):
        with pytest.raises(HfHubHTTPError) as info:
            api.upload_file(path_or_fileobj=b"[core]\n\thooksPath = /tmp\n",
                            path_in_repo=path, repo_id=repo_id)
        assert info.value.response.status_code == 422  # InvalidPath, as the Hub answers
    assert head(server, owner.token, repo_id) == before
    # Names that only look alike are files like any other.
    api.upload_file(path_or_fileobj=b"x", path_in_repo=".github/x.yml", repo_id=repo_id)
    api.upload_file(path_or_fileobj=b"x", path_in_repo="a.git/b", repo_id=repo_id)


# -- deeply nested YAML in a card ---------------------------------------------------------


def test_deep_card_metadata_never_breaks_the_repo(server: Server,
                                                  target: tuple[User, str]) -> None:
    """A README whose front matter nests 10,000 levels deep: validate-yaml and the
    commit used to answer 500, and every later read of the repo too."""
    owner, repo_id = target
    card = b"---\nx: " + b"[" * 10_000 + b"]" * 10_000 + b"\n---\n# hi\n"
    r = httpx.post(f"{server.endpoint}/api/validate-yaml", headers=auth(owner.token),
                   json={"content": card.decode(), "repoType": "model"})
    assert r.status_code == 400, r.text[:300]
    r = commit(server, owner.token, repo_id, header(), file_line("README.md", card))
    assert r.status_code < 500, r.text[:300]
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    assert api.model_info(repo_id).id == repo_id
    assert httpx.get(f"{server.endpoint}/{repo_id}", headers=auth(owner.token)).status_code == 200
