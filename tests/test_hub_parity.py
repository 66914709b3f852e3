"""Behaviours the Hub has and clients rely on, driven through the real clients: ids without
a namespace, request ids, the Hub's wording, file paths, short commit ids, ids in any case,
moved repos, folder deletes, gated `.gitattributes`, organization full names, card checks.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    RepoCard,
    hf_hub_download,
)
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from webforms import csrf, signed_in

pytestmark = pytest.mark.usefixtures("no_server_errors")


def _auth(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


def _get(server: Any, path: str, token: str | None = None, **headers: str) -> httpx.Response:
    return httpx.get(f"{server.endpoint}{path}", headers={**_auth(token), **headers},
                     timeout=60)


def _commit(server: Any, token: str, repo_id: str, *lines: dict[str, Any]) -> httpx.Response:
    head = {"key": "header", "value": {"summary": "raw", "description": ""}}
    body = b"\n".join(json.dumps(x).encode() for x in (head, *lines)) + b"\n"
    return httpx.post(f"{server.endpoint}/api/models/{repo_id}/commit/main", content=body,
                      headers={**_auth(token), "content-type": "application/x-ndjson"},
                      timeout=60)


def _file(path: str, content: bytes = b"x") -> dict[str, Any]:
    return {"key": "file", "value": {"path": path, "encoding": "base64",
                                      "content": base64.b64encode(content).decode()}}


def _name(prefix: str = "p") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# -- 1. ids without a namespace ---------------------------------------------------------------


def test_id_without_namespace_is_repo_not_found(server, api, cache_dir) -> None:
    bare = _name("no-namespace")
    for repo_type in ("model", "dataset", "space"):
        assert api.repo_exists(bare, repo_type=repo_type) is False
        with pytest.raises(RepositoryNotFoundError):
            api.repo_info(bare, repo_type=repo_type, revision="main")
        with pytest.raises(RepositoryNotFoundError):
            api.list_repo_files(bare, repo_type=repo_type)
        with pytest.raises(RepositoryNotFoundError):
            api.list_repo_commits(bare, repo_type=repo_type)
    assert api.file_exists(bare, "config.json") is False
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(bare, "config.json", cache_dir=cache_dir, token=api.token)
    r = httpx.put(f"{server.endpoint}/api/models/{bare}/settings", json={"private": True},
                  headers=_auth(api.token))
    assert (r.status_code, r.headers["X-Error-Code"]) == (404, "RepoNotFound")
    # Other routes keep their answers.
    assert httpx.delete(f"{server.endpoint}/api/whoami-v2").status_code == 405
    assert _get(server, "/api/not-a-type/x").headers["X-Error-Code"] == "NotFound"


def test_dataset_push_to_hub_without_namespace(api, user) -> None:
    from datasets import Dataset

    name = _name("pushed")
    Dataset.from_dict({"a": [1, 2, 3]}).push_to_hub(name, token=user.token, private=True)
    files = api.list_repo_files(f"{user.name}/{name}", repo_type="dataset")
    assert any(f.startswith("data/") and f.endswith(".parquet") for f in files), files


# -- 2. request ids ---------------------------------------------------------------------------


def test_every_response_has_a_request_id(server, api, repo_factory, cache_dir) -> None:
    missing = f"{api.whoami()['name']}/{_name('missing')}"
    with pytest.raises(RepositoryNotFoundError) as e:
        api.model_info(missing)
    response = e.value.response
    rid = response.headers["X-Request-Id"]
    # The client's own id (sent as X-Amzn-Trace-Id) is kept: both ends name it alike.
    assert rid == response.request.headers["X-Amzn-Trace-Id"]
    assert f"(Request ID: {rid})" in str(e.value)

    plain = [_get(server, "/api/health"), _get(server, f"/api/models/{missing}")]
    ids = {r.headers["X-Request-Id"] for r in plain}
    assert len(ids) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert _get(server, "/api/health", **{"X-Request-Id": "mine-123"}).headers[
        "X-Request-Id"] == "mine-123"
    assert re.fullmatch(r"[0-9a-f]{32}", _get(server, "/api/health", **{
        "X-Request-Id": "not ok <script>"}).headers["X-Request-Id"])

    # Streamed and redirected file content, HTML pages and 405s carry one too.
    repo_id = repo_factory()
    api.upload_file(path_or_fileobj=b"\0" * 300_000, path_in_repo="w.bin", repo_id=repo_id)
    with httpx.stream("GET", f"{server.endpoint}/{repo_id}/resolve/main/w.bin",
                      follow_redirects=True, timeout=60) as r:
        assert r.status_code == 200 and r.headers["X-Request-Id"]
        assert all(h.headers["X-Request-Id"] for h in r.history)
        assert sum(len(c) for c in r.iter_bytes()) == 300_000
    page = _get(server, f"/{repo_id}", Accept="text/html")
    assert page.status_code == 200 and page.headers["X-Request-Id"]
    assert httpx.delete(f"{server.endpoint}/api/whoami-v2").headers["X-Request-Id"]


# -- 3. the Hub's words -----------------------------------------------------------------------


def test_branch_tag_and_move_wording(api, repo_factory) -> None:
    repo_id = repo_factory()
    with pytest.raises(HfHubHTTPError, match="Cannot delete refs/heads/main") as e:
        api.delete_branch(repo_id, branch="main")
    assert e.value.response.status_code == 403
    with pytest.raises(RevisionNotFoundError, match="Invalid rev id: cool-branch"):
        api.delete_branch(repo_id, branch="cool-branch")
    api.create_tag(repo_id, tag="cool-tag")
    with pytest.raises(RevisionNotFoundError, match="Invalid rev id"):
        api.delete_branch(repo_id, branch="cool-tag")
    # A missing revision is found missing before the tag's name is looked at.
    with pytest.raises(RevisionNotFoundError):
        api.create_tag(repo_id, tag="invalid tag", revision="foobar")
    with pytest.raises(HfHubHTTPError) as e:
        api.create_tag(repo_id, tag="invalid tag")
    assert e.value.response.status_code == 400

    other = repo_factory()
    with pytest.raises(HfHubHTTPError, match=r"A model repository called .* already exists") as e:
        api.move_repo(repo_id, other)
    assert e.value.response.status_code == 409
    datasets = [repo_factory("dataset"), repo_factory("dataset")]
    with pytest.raises(HfHubHTTPError, match=r"A dataset repository called .* already exists"):
        api.move_repo(*datasets, repo_type="dataset")


def test_stale_parent_commit_wording(api, repo_factory) -> None:
    repo_id = repo_factory()
    first = api.model_info(repo_id).sha
    api.upload_file(path_or_fileobj=b"1", path_in_repo="a.txt", repo_id=repo_id)
    with pytest.raises(HfHubHTTPError) as e:
        api.create_commit(repo_id, [CommitOperationAdd("b.txt", b"2")], commit_message="late",
                          parent_commit=first)
    assert e.value.response.status_code == 412
    assert e.value.server_message == ("The branch was updated since you opened this page. "
                                      "Please refresh and try again.")


# -- 4. paths ---------------------------------------------------------------------------------


def test_backslash_is_part_of_a_file_name(server, api, repo_factory, cache_dir) -> None:
    repo_id = repo_factory()
    api.upload_file(path_or_fileobj=b"back", path_in_repo="folder/a\\b", repo_id=repo_id)
    assert "folder/a\\b" in api.list_repo_files(repo_id)
    assert Path(hf_hub_download(repo_id, "folder/a\\b", cache_dir=cache_dir,
                                token=api.token)).read_bytes() == b"back"
    assert [p.path for p in api.get_paths_info(repo_id, ["folder/a\\b"])] == ["folder/a\\b"]
    for path in ("..\\evil", "a/..\\..\\x", "a\\.git\\config", "\\abs", "x\\"):
        with pytest.raises(HfHubHTTPError) as e:
            api.upload_file(path_or_fileobj=b"no", path_in_repo=path, repo_id=repo_id)
        assert e.value.response.status_code == 422, path
        assert e.value.response.headers["X-Error-Code"] == "InvalidPath"


def test_invalid_paths_are_422(server, api, user, repo_factory) -> None:
    repo_id = repo_factory()
    for path in ("../x", "a/../b", ".git/config", "..\\x", "a//b", "nul\x00"):
        r = _commit(server, user.token, repo_id, _file(path))
        assert (r.status_code, r.headers["X-Error-Code"]) == (422, "InvalidPath"), path
    r = _get(server, f"/{repo_id}/resolve/main/..%5C..%5Csecret.key")
    assert (r.status_code, r.headers["X-Error-Code"]) == (422, "InvalidPath")
    assert api.list_repo_files(repo_id) == [".gitattributes"]


# -- 5. short commit ids ----------------------------------------------------------------------


def test_short_commit_ids_resolve(api, repo_factory, cache_dir) -> None:
    repo_id = repo_factory()
    one = api.upload_file(path_or_fileobj=b"one", path_in_repo="f.txt", repo_id=repo_id).oid
    two = api.upload_file(path_or_fileobj=b"two", path_in_repo="f.txt", repo_id=repo_id).oid
    assert api.model_info(repo_id, revision=one[:7]).sha == one
    assert api.model_info(repo_id, revision=one[:12].upper()).sha == one
    path = hf_hub_download(repo_id, "f.txt", revision=one[:10], cache_dir=cache_dir,
                           token=api.token)
    assert Path(path).read_bytes() == b"one"
    assert [e.path for e in api.list_repo_tree(repo_id, revision=one[:8])] == [
        ".gitattributes", "f.txt"]
    api.create_tag(repo_id, tag="first", revision=one[:7])
    assert api.model_info(repo_id, revision="first").sha == one
    api.create_branch(repo_id, branch="from-short", revision=one[:9])
    assert api.model_info(repo_id, revision="from-short").sha == one
    # A name wins over a commit prefix, as in git.
    api.create_branch(repo_id, branch=two[:7], revision=one)
    assert api.model_info(repo_id, revision=two[:7]).sha == one
    assert api.model_info(repo_id, revision=two[:8]).sha == two
    commits = [c.commit_id for c in api.list_repo_commits(repo_id)]
    unused = next(p for p in ("0000000", "fffffff") if not any(c.startswith(p) for c in commits))
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo_id, revision=unused)
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo_id, revision=one[:6])


# -- 6. ids in any case -----------------------------------------------------------------------


def test_repo_ids_in_any_case(server, api, user, cache_dir) -> None:
    name = _name("CaseModel")
    repo_id = api.create_repo(f"{user.name}/{name}").repo_id
    api.upload_file(path_or_fileobj=b"cased", path_in_repo="f.txt", repo_id=repo_id)
    shouted = f"{user.name.upper()}/{name.lower()}"
    assert api.model_info(shouted).id == repo_id
    assert "f.txt" in api.list_repo_files(shouted)
    assert Path(hf_hub_download(shouted, "f.txt", cache_dir=cache_dir,
                                token=api.token)).read_bytes() == b"cased"
    for suffix in ("", "/tree/main", "/blob/main/f.txt", "/commits/main"):
        assert _get(server, f"/{shouted}{suffix}", Accept="text/html").status_code == 200
    with pytest.raises(HfHubHTTPError) as e:
        api.create_repo(f"{user.name}/{name.upper()}")
    assert e.value.response.status_code == 409
    # Namespaces too: the repo is created under the account's own spelling.
    made = api.create_repo(f"{user.name.upper()}/{_name('other')}").repo_id
    assert made.split("/")[0] == user.name
    assert repo_id in {m.id for m in api.list_models(author=user.name.upper())}
    overview = _get(server, f"/api/users/{user.name.upper()}/overview")
    assert overview.status_code == 200 and overview.json()["user"] == user.name
    moved = _name("moved")
    api.move_repo(made, f"{user.name.upper()}/{moved}")
    assert api.model_info(f"{user.name}/{moved}").id == f"{user.name}/{moved}"


# -- 7. moved repos ---------------------------------------------------------------------------


def test_moved_repo_answers_at_its_old_id(server, api, user, repo_factory, cache_dir) -> None:
    old = repo_factory(name=_name("before"))
    api.upload_file(path_or_fileobj=b"kept", path_in_repo="f.txt", repo_id=old)
    new = f"{user.name}/{_name('after')}"
    api.move_repo(old, new)

    assert api.model_info(old).id == new
    assert api.repo_exists(old) is True
    assert Path(hf_hub_download(old, "f.txt", cache_dir=cache_dir,
                                token=api.token)).read_bytes() == b"kept"
    api.upload_file(path_or_fileobj=b"more", path_in_repo="g.txt", repo_id=old)  # POSTs too
    assert set(api.list_repo_files(new)) == {".gitattributes", "f.txt", "g.txt"}

    r = _get(server, f"/api/models/{old.upper()}/revision/main?expand=sha", token=api.token)
    assert r.status_code == 307
    assert r.headers["location"] == (f"{server.endpoint}/api/models/{new}/revision/main"
                                      "?expand=sha")
    page = _get(server, f"/{old}/tree/main", Accept="text/html")
    assert page.status_code == 301 and page.headers["location"].endswith(f"/{new}/tree/main")
    # A route with no repo id in its path does not follow: the old id names nothing there.
    with pytest.raises(RepositoryNotFoundError):
        api.delete_repo(old)
    assert api.repo_exists(new)


def test_moved_private_repo_is_missing_to_outsiders(server, api, user, other,
                                                    repo_factory) -> None:
    old = repo_factory(private=True, name=_name("secret"))
    new = f"{user.name}/{_name('secret-now')}"
    api.move_repo(old, new)
    assert api.model_info(old).id == new  # its owner follows the move
    missing = f"{user.name}/{_name('never')}"
    for token in (other.token, None):
        for suffix in ("", "/revision/main", "/tree/main"):
            moved = _get(server, f"/api/models/{old}{suffix}", token=token)
            absent = _get(server, f"/api/models/{missing}{suffix}", token=token)
            assert moved.status_code == absent.status_code == 404
            assert moved.json() == absent.json()
            assert moved.headers["X-Error-Code"] == absent.headers["X-Error-Code"]
            assert moved.headers["X-Error-Message"] == absent.headers["X-Error-Message"]
        hidden = _get(server, f"/{old}", token=token, Accept="text/html")
        nothing = _get(server, f"/{missing}", token=token, Accept="text/html")
        assert hidden.status_code == nothing.status_code == 404
        assert hidden.text == nothing.text.replace(missing, old)
        outsider = HfApi(endpoint=server.endpoint, token=token or False)
        assert outsider.repo_exists(old) is False


def test_new_repo_takes_the_old_id_and_delete_removes_redirects(api, user,
                                                                repo_factory) -> None:
    old = repo_factory(name=_name("first"))
    new = f"{user.name}/{_name('second')}"
    api.move_repo(old, new)
    api.create_repo(old)  # takes the id back from the redirect
    assert api.model_info(old).id == old
    api.delete_repo(old)
    assert api.repo_exists(old) is False  # the redirect went when the id was taken
    assert api.model_info(new).id == new

    third = f"{user.name}/{_name('third')}"
    api.move_repo(new, third)
    assert api.model_info(new).id == third and api.repo_exists(old) is False
    api.move_repo(third, new)  # back again: the id is the repo's own once more
    assert api.model_info(third).id == new
    api.delete_repo(new)
    assert api.repo_exists(third) is False and api.repo_exists(new) is False


# -- 8. deleting a folder by name -------------------------------------------------------------


def test_deleted_file_naming_a_folder_deletes_it(api, repo_factory) -> None:
    repo_id = repo_factory()
    api.create_commit(repo_id, [CommitOperationAdd("dir/a.txt", b"a"),
                                CommitOperationAdd("dir/sub/b.txt", b"b"),
                                CommitOperationAdd("dirty.txt", b"c")], commit_message="add")
    api.create_commit(repo_id, [CommitOperationDelete("dir")], commit_message="rm")
    assert api.list_repo_files(repo_id) == [".gitattributes", "dirty.txt"]
    with pytest.raises(HfHubHTTPError) as e:
        api.create_commit(repo_id, [CommitOperationDelete("nothing")], commit_message="rm")
    assert e.value.response.status_code == 404


# -- 9. gated .gitattributes ------------------------------------------------------------------


def test_gated_repo_gates_gitattributes(server, api, other, repo_factory, tmp_path) -> None:
    repo_id = repo_factory()
    api.upload_file(path_or_fileobj=b"---\nlicense: mit\n---\n# gated\n",
                    path_in_repo="README.md", repo_id=repo_id)
    api.update_repo_settings(repo_id, gated="manual")
    for i, token in enumerate((other.token, False)):
        with pytest.raises(GatedRepoError):
            hf_hub_download(repo_id, ".gitattributes", cache_dir=tmp_path / f"g{i}",
                            token=token, endpoint=server.endpoint)
        readme = hf_hub_download(repo_id, "README.md", cache_dir=tmp_path / f"r{i}",
                                 token=token, endpoint=server.endpoint)
        assert Path(readme).read_bytes().startswith(b"---")
    owner_copy = hf_hub_download(repo_id, ".gitattributes", cache_dir=tmp_path / "own",
                                 token=api.token, endpoint=server.endpoint)
    assert b"filter=lfs" in Path(owner_copy).read_bytes()


# -- 10. organization full names --------------------------------------------------------------


def test_org_full_name_in_whoami(server, web_user_factory: Callable[..., Any]) -> None:
    admin = web_user_factory("orgadmin")
    org, plain = _name("org"), _name("plainorg")
    server.hver("org", "create", org, "--owner", admin.name, "--fullname", "The Org Inc.")
    server.hver("org", "create", plain, "--owner", admin.name)

    def fullnames() -> dict[str, str]:
        me = HfApi(endpoint=server.endpoint, token=admin.token).whoami()
        return {o["name"]: o["fullname"] for o in me["orgs"]}

    assert fullnames() == {org: "The Org Inc.", plain: plain}
    server.hver("org", "set-fullname", org.upper(), "Renamed Org")
    assert fullnames()[org] == "Renamed Org"
    url = f"/organizations/{org}/settings/members"
    with signed_in(server, admin) as b:
        page = b.get(url)
        assert 'value="Renamed Org"' in page.text
        r = b.post(f"/organizations/{org}/settings/profile",
                   data={"csrf": csrf(page.text), "fullname": "Web Org"})
        assert r.status_code == 303 and r.headers["location"] == url
        assert b.post(f"/organizations/{org}/settings/profile",
                      data={"fullname": "No CSRF"}).status_code == 403
    assert fullnames()[org] == "Web Org"
    assert "Web Org" in _get(server, f"/{org}", Accept="text/html").text


# -- 11. card checks --------------------------------------------------------------------------


def test_validate_yaml_model_index_and_missing_metadata(server, api, repo_factory) -> None:
    repo_id = repo_factory()
    # What the client checks before a commit that holds a README.
    with pytest.raises(ValueError, match='Invalid metadata in README.md.\n- "model-index" must'):
        api.upload_file(path_or_fileobj=b"---\nmodel-index: 3\n---\n# x\n",
                        path_in_repo="README.md", repo_id=repo_id)
    with pytest.warns(UserWarning, match="Empty or missing yaml metadata in repo card"):
        api.upload_file(path_or_fileobj=b"# No metadata\n", path_in_repo="README.md",
                        repo_id=repo_id)
    # And `RepoCard.validate`, which asks for the error as text.
    bad = RepoCard("---\nlicense: mit\nmodel-index: not-a-list\n---\n# Card\n")
    with pytest.raises(ValueError, match='"model-index" must be an array'):
        bad.validate()
    RepoCard("---\nlicense: mit\nmodel-index:\n- name: m\n  results: []\n---\n# Card\n").validate()
    RepoCard("# No metadata at all\n").validate()  # a warning, not an error

    def check(content: str) -> httpx.Response:
        return httpx.post(f"{server.endpoint}/api/validate-yaml",
                          json={"content": content, "repoType": "model"})

    r = check("# No metadata at all\n")
    assert r.status_code == 200 and r.json()["errors"] == []
    assert "Empty or missing yaml metadata" in r.json()["warnings"][0]["message"]
    r = check("---\nlicense: mit\n---\n# Card\n")
    assert r.json() == {"errors": [], "warnings": []}
    r = check("---\nmodel-index: {a: 1}\n---\n")
    assert r.status_code == 400 and r.headers["X-Error-Code"] == "BadRequest"
    assert r.json()["errors"] == [{"message": '"model-index" must be an array'}]
