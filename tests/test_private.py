"""A private repo is indistinguishable from a missing one to anyone who may not read it.

Every endpoint is called twice per outsider (anonymous, another user): once on a
private repo and once on a repo that does not exist. Status, X-Error-Code and
X-Error-Message must be identical, and nothing about the repo may leak.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from huggingface_hub import (
    CommitOperationAdd,
    HfApi,
    constants,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

WEIGHTS = os.urandom(64 * 1024)
XET_WEIGHTS = os.urandom(200 * 1024)
SECRET = b"top secret contents\n"


@dataclass(frozen=True)
class Call:
    name: str
    method: str
    path: Callable[[str, str], str]  # (prefix, repo_id) -> path
    body: Callable[[str], dict] | None = None  # repo_id -> request kwargs


def _api(plural_of: str) -> str:
    return {"": "models", "datasets/": "datasets"}[plural_of]


def _commit_body(_: str) -> dict:
    lines = [
        {"key": "header", "value": {"summary": "sneaky", "description": ""}},
        {"key": "file", "value": {"path": "evil.txt", "encoding": "base64",
                                  "content": base64.b64encode(b"evil").decode()}},
    ]
    return {"content": "\n".join(json.dumps(x) for x in lines).encode(),
            "headers": {"content-type": "application/x-ndjson"}}


def _lfs_batch(operation: str) -> Callable[[str], dict]:
    def body(_: str) -> dict:
        return {"json": {"operation": operation, "transfers": ["basic"], "hash_algo": "sha256",
                         "objects": [{"oid": hashlib.sha256(WEIGHTS).hexdigest(),
                                      "size": len(WEIGHTS)}]},
                "headers": {"accept": "application/vnd.git-lfs+json",
                            "content-type": "application/vnd.git-lfs+json"}}
    return body


def _repo_body(type_key: str) -> Callable[[str], dict]:
    def body(repo_id: str) -> dict:
        ns, name = repo_id.split("/")
        return {"json": {"name": name, "organization": ns, "type": type_key}}
    return body


CALLS = [
    Call("info", "GET", lambda p, r: f"/api/{_api(p)}/{r}"),
    Call("info-blobs", "GET", lambda p, r: f"/api/{_api(p)}/{r}?blobs=true"),
    Call("revision-info", "GET", lambda p, r: f"/api/{_api(p)}/{r}/revision/main"),
    Call("revision-info-sha", "GET", lambda p, r: f"/api/{_api(p)}/{r}/revision/{'a' * 40}"),
    Call("tree", "GET", lambda p, r: f"/api/{_api(p)}/{r}/tree/main"),
    Call("tree-recursive", "GET",
         lambda p, r: f"/api/{_api(p)}/{r}/tree/main?recursive=true&expand=true"),
    Call("tree-path", "GET", lambda p, r: f"/api/{_api(p)}/{r}/tree/main/secret.txt"),
    Call("paths-info", "POST", lambda p, r: f"/api/{_api(p)}/{r}/paths-info/main",
         lambda _: {"data": {"paths": ["secret.txt"], "expand": "false"}}),
    Call("refs", "GET", lambda p, r: f"/api/{_api(p)}/{r}/refs?include_prs=1"),
    Call("commits", "GET", lambda p, r: f"/api/{_api(p)}/{r}/commits/main"),
    Call("auth-check", "GET", lambda p, r: f"/api/{_api(p)}/{r}/auth-check"),
    Call("auth-check-write", "GET", lambda p, r: f"/api/{_api(p)}/{r}/auth-check/write"),
    Call("resolve-head", "HEAD", lambda p, r: f"/{p}{r}/resolve/main/secret.txt"),
    Call("resolve-get", "GET", lambda p, r: f"/{p}{r}/resolve/main/secret.txt"),
    Call("resolve-lfs-get", "GET", lambda p, r: f"/{p}{r}/resolve/main/weights.bin"),
    Call("resolve-xet-head", "HEAD", lambda p, r: f"/{p}{r}/resolve/main/model.safetensors"),
    Call("resolve-xet-get", "GET", lambda p, r: f"/{p}{r}/resolve/main/model.safetensors"),
    Call("likers", "GET", lambda p, r: f"/api/{_api(p)}/{r}/likers"),
    Call("like", "POST", lambda p, r: f"/api/{_api(p)}/{r}/like"),
    Call("unlike", "DELETE", lambda p, r: f"/api/{_api(p)}/{r}/like"),
    Call("xet-read-token", "GET", lambda p, r: f"/api/{_api(p)}/{r}/xet-read-token/main"),
    Call("xet-write-token", "GET", lambda p, r: f"/api/{_api(p)}/{r}/xet-write-token/main"),
    Call("resolve-missing-file", "GET", lambda p, r: f"/{p}{r}/resolve/main/nope.txt"),
    Call("resolve-missing-rev", "HEAD", lambda p, r: f"/{p}{r}/resolve/nope/secret.txt"),
    Call("preupload", "POST", lambda p, r: f"/api/{_api(p)}/{r}/preupload/main",
         lambda _: {"json": {"files": [{"path": "a.txt", "size": 1, "sample": "YQ=="}]}}),
    Call("commit", "POST", lambda p, r: f"/api/{_api(p)}/{r}/commit/main", _commit_body),
    Call("lfs-batch-upload", "POST", lambda p, r: f"/{p}{r}.git/info/lfs/objects/batch",
         _lfs_batch("upload")),
    Call("lfs-batch-download", "POST", lambda p, r: f"/{p}{r}.git/info/lfs/objects/batch",
         _lfs_batch("download")),
    Call("lfs-verify", "POST", lambda p, r: f"/{p}{r}.git/info/lfs/objects/verify",
         lambda _: {"json": {"oid": hashlib.sha256(WEIGHTS).hexdigest(),
                             "size": len(WEIGHTS)}}),
    Call("settings", "PUT", lambda p, r: f"/api/{_api(p)}/{r}/settings",
         lambda _: {"json": {"visibility": "public"}}),
    Call("create-branch", "POST", lambda p, r: f"/api/{_api(p)}/{r}/branch/evil",
         lambda _: {"json": {}}),
    Call("delete-branch", "DELETE", lambda p, r: f"/api/{_api(p)}/{r}/branch/dev"),
    Call("create-tag", "POST", lambda p, r: f"/api/{_api(p)}/{r}/tag/main",
         lambda _: {"json": {"tag": "evil"}}),
    Call("delete-tag", "DELETE", lambda p, r: f"/api/{_api(p)}/{r}/tag/v1"),
]

# Repo-management calls name the repo in the body.
BODY_CALLS = [
    Call("delete", "DELETE", lambda p, r: "/api/repos/delete"),
    Call("move", "POST", lambda p, r: "/api/repos/move"),
]


@pytest.fixture(scope="module", params=["model", "dataset"])
def private_repo(request, user_factory, server):
    """A private repo with regular and LFS files, a branch and a tag; plus a missing twin."""
    repo_type = request.param
    owner = user_factory("owner")
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    repo_id = f"{owner.name}/private-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id, repo_type=repo_type, private=True)
    with pytest.MonkeyPatch.context() as mp:  # weights.bin as a plain LFS object
        mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
        api.create_commit(repo_id, repo_type=repo_type, operations=[
            CommitOperationAdd("secret.txt", SECRET),
            CommitOperationAdd("weights.bin", WEIGHTS),
            CommitOperationAdd("README.md", b"---\ntags: [very-secret-tag]\n---\n"),
        ], commit_message="secret stuff")
    api.upload_file(path_or_fileobj=XET_WEIGHTS, path_in_repo="model.safetensors",
                    repo_id=repo_id, repo_type=repo_type,
                    commit_message="secret weights")  # through Xet
    api.create_branch(repo_id, branch="dev", repo_type=repo_type)
    api.create_tag(repo_id, tag="v1", repo_type=repo_type)
    missing = f"{owner.name}/missing-{uuid.uuid4().hex[:8]}"
    return repo_type, owner, api, repo_id, missing


def _prefix(repo_type: str) -> str:
    return "" if repo_type == "model" else f"{repo_type}s/"


_client = httpx.Client()  # one connection pool for the hundreds of probes below


@pytest.fixture(scope="module", autouse=True)
def _close_client():
    yield
    _client.close()


def _send(server, call: Call, repo_type: str, repo_id: str, token: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    kwargs = call.body(repo_id) if call.body else {}
    headers |= kwargs.pop("headers", {})
    url = server.endpoint + call.path(_prefix(repo_type), repo_id)
    return _client.request(call.method, url, headers=headers, **kwargs)


def _send_body_call(server, call: Call, repo_type: str, repo_id: str,
                    token: str | None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    ns, name = repo_id.split("/")
    if call.name == "delete":
        payload = {"name": name, "organization": ns, "type": repo_type}
    else:
        payload = {"fromRepo": repo_id, "toRepo": f"{ns}/stolen-{uuid.uuid4().hex[:6]}",
                   "type": repo_type}
    return _client.request(call.method, server.endpoint + call.path("", repo_id),
                           headers=headers, json=payload)


def _fingerprint(r: httpx.Response) -> tuple:
    return (r.status_code, r.headers.get("X-Error-Code"), r.headers.get("X-Error-Message"),
            r.headers.get("X-Repo-Commit"))


def _outsiders(other) -> list[tuple[str, str | None]]:
    return [("anonymous", None), ("other-user", other.token), ("other-read", other.read_token)]


@pytest.mark.parametrize("call", CALLS, ids=[c.name for c in CALLS])
def test_private_repo_looks_missing(server, private_repo, other, call):
    repo_type, _, _, repo_id, missing = private_repo
    for who, token in _outsiders(other):
        priv = _send(server, call, repo_type, repo_id, token)
        miss = _send(server, call, repo_type, missing, token)
        assert _fingerprint(priv) == _fingerprint(miss), (who, priv.text, miss.text)
        assert priv.status_code in (401, 404), (who, priv.status_code)
        assert priv.headers.get("X-Error-Code") == "RepoNotFound", who
        assert "X-Repo-Commit" not in priv.headers
        assert "Location" not in priv.headers
        if call.method != "HEAD":
            assert priv.json().keys() == miss.json().keys()
            assert b"secret" not in priv.content.replace(b"private-", b"")


@pytest.mark.parametrize("call", BODY_CALLS, ids=[c.name for c in BODY_CALLS])
def test_private_repo_management_looks_missing(server, private_repo, other, call):
    repo_type, _, api, repo_id, missing = private_repo
    for who, token in _outsiders(other):
        priv = _send_body_call(server, call, repo_type, repo_id, token)
        miss = _send_body_call(server, call, repo_type, missing, token)
        assert _fingerprint(priv) == _fingerprint(miss), (who, priv.text, miss.text)
        assert priv.status_code in (401, 403, 404), who
    assert api.repo_exists(repo_id, repo_type=repo_type)  # still there, unmoved


def test_private_repo_untouched_by_outsiders(server, private_repo, other):
    """After every write attempt above (any order), the repo is exactly as the owner left it."""
    repo_type, owner, api, repo_id, _ = private_repo
    for call in CALLS:
        if call.method not in ("GET", "HEAD"):
            _send(server, call, repo_type, repo_id, other.token)
    info = api.repo_info(repo_id, repo_type=repo_type)
    assert info.private is True
    assert sorted(s.rfilename for s in info.siblings) == [
        ".gitattributes", "README.md", "model.safetensors", "secret.txt", "weights.bin"]
    refs = api.list_repo_refs(repo_id, repo_type=repo_type)
    assert {b.name for b in refs.branches} == {"main", "dev"}
    assert {t.name for t in refs.tags} == {"v1"}
    assert api.list_repo_commits(repo_id, repo_type=repo_type)[0].title == "secret weights"


def test_private_repo_not_listed(server, private_repo, other):
    repo_type, owner, api, repo_id, _ = private_repo
    list_fn = "list_models" if repo_type == "model" else "list_datasets"
    for _, token in _outsiders(other):
        outsider = HfApi(endpoint=server.endpoint, token=token or False)
        assert repo_id not in {r.id for r in getattr(outsider, list_fn)(author=owner.name)}
        assert repo_id not in {r.id for r in getattr(outsider, list_fn)(search=repo_id)}
        assert list(getattr(outsider, list_fn)(filter="very-secret-tag")) == []
    assert repo_id in {r.id for r in getattr(api, list_fn)(author=owner.name)}
    assert [r.id for r in getattr(api, list_fn)(filter="very-secret-tag")] == [repo_id]
    # The owner's read token sees it too.
    ro = HfApi(endpoint=server.endpoint, token=owner.read_token)
    assert repo_id in {r.id for r in getattr(ro, list_fn)(author=owner.name)}


def test_private_repo_client_errors(server, private_repo, other, tmp_path):
    repo_type, _, _, repo_id, _ = private_repo
    for i, (who, token) in enumerate(_outsiders(other)):
        outsider = HfApi(endpoint=server.endpoint, token=token or False)
        assert outsider.repo_exists(repo_id, repo_type=repo_type) is False, who
        assert outsider.file_exists(repo_id, "secret.txt", repo_type=repo_type) is False, who
        assert outsider.revision_exists(repo_id, "main", repo_type=repo_type) is False, who
        with pytest.raises(RepositoryNotFoundError):
            outsider.repo_info(repo_id, repo_type=repo_type)
        with pytest.raises(RepositoryNotFoundError):
            outsider.list_repo_files(repo_id, repo_type=repo_type)
        with pytest.raises(RepositoryNotFoundError):
            outsider.list_repo_refs(repo_id, repo_type=repo_type)
        with pytest.raises(RepositoryNotFoundError):
            outsider.list_repo_commits(repo_id, repo_type=repo_type)
        with pytest.raises(RepositoryNotFoundError):
            outsider.get_paths_info(repo_id, ["secret.txt"], repo_type=repo_type)
        with pytest.raises(RepositoryNotFoundError):
            hf_hub_download(repo_id, "secret.txt", repo_type=repo_type,
                            cache_dir=tmp_path / f"c{i}", token=token or False)
        with pytest.raises(RepositoryNotFoundError):
            snapshot_download(repo_id, repo_type=repo_type, cache_dir=tmp_path / f"s{i}",
                              token=token or False)
        if token is not None:
            with pytest.raises((RepositoryNotFoundError, HfHubHTTPError)) as exc:
                outsider.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt",
                                     repo_id=repo_id, repo_type=repo_type)
            assert exc.value.response.status_code == 404
            with pytest.raises(RepositoryNotFoundError):
                outsider.upload_file(path_or_fileobj=os.urandom(2048), path_in_repo="x.bin",
                                     repo_id=repo_id, repo_type=repo_type)
            with pytest.raises(RepositoryNotFoundError):
                outsider.update_repo_settings(repo_id, repo_type=repo_type, private=False)
            with pytest.raises(RepositoryNotFoundError):
                outsider.create_branch(repo_id, branch="x", repo_type=repo_type)


def test_owner_reads_everything(server, private_repo, tmp_path):
    repo_type, owner, api, repo_id, _ = private_repo
    for token in (owner.token, owner.read_token):
        for call in CALLS:
            if call.method not in ("GET", "HEAD") or call.name.startswith(
                    ("resolve-missing", "revision-info-sha", "auth-check-write",
                     "xet-write-token")):
                continue
            r = _send(server, call, repo_type, repo_id, token)
            assert r.status_code in (200, 302), (call.name, r.status_code, r.text)
    r = _send(server, CALLS[[c.name for c in CALLS].index("paths-info")], repo_type, repo_id,
              owner.read_token)
    assert [e["path"] for e in r.json()] == ["secret.txt"]
    r = _send(server, CALLS[[c.name for c in CALLS].index("auth-check-write")], repo_type,
              repo_id, owner.token)
    assert r.status_code == 200
    ro = HfApi(endpoint=server.endpoint, token=owner.read_token)
    assert ro.repo_info(repo_id, repo_type=repo_type).private is True
    p = hf_hub_download(repo_id, "secret.txt", repo_type=repo_type, cache_dir=tmp_path,
                        token=owner.read_token)
    assert Path(p).read_bytes() == SECRET
    p = hf_hub_download(repo_id, "weights.bin", repo_type=repo_type, cache_dir=tmp_path,
                        token=owner.read_token)
    assert Path(p).read_bytes() == WEIGHTS
    p = hf_hub_download(repo_id, "model.safetensors", repo_type=repo_type, cache_dir=tmp_path,
                        token=owner.read_token)
    assert Path(p).read_bytes() == XET_WEIGHTS
    snap = snapshot_download(repo_id, repo_type=repo_type, revision="dev",
                             cache_dir=tmp_path / "snap", token=owner.token)
    assert Path(os.path.join(snap, "secret.txt")).read_bytes() == SECRET


def test_owner_read_token_cannot_write(server, private_repo):
    """Visible to the owner's read token, so a write is refused with 403, not hidden."""
    repo_type, owner, _, repo_id, _ = private_repo
    ro = HfApi(endpoint=server.endpoint, token=owner.read_token)
    with pytest.raises(HfHubHTTPError) as exc:
        ro.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id,
                       repo_type=repo_type)
    assert exc.value.response.status_code == 403
    r = _send(server, CALLS[[c.name for c in CALLS].index("auth-check-write")], repo_type,
              repo_id, owner.read_token)
    assert r.status_code == 403


def test_lfs_download_url_of_private_repo_is_signed(server, private_repo):
    """The owner gets a signed redirect; the URL works without auth, but only as signed."""
    repo_type, owner, _, repo_id, _ = private_repo
    r = httpx.head(f"{server.endpoint}/{_prefix(repo_type)}{repo_id}/resolve/main/weights.bin",
                   headers={"authorization": f"Bearer {owner.token}"})
    assert r.status_code == 302
    assert httpx.get(r.headers["Location"]).content == WEIGHTS
    assert httpx.get(r.headers["Location"].split("?")[0]).status_code == 403


def test_making_public_reveals_and_private_again_hides(server, user, api, repo_factory, other):
    repo_id = repo_factory(private=True)
    api.upload_file(path_or_fileobj=b"hello", path_in_repo="h.txt", repo_id=repo_id)
    bob = HfApi(endpoint=server.endpoint, token=other.token)
    assert bob.repo_exists(repo_id) is False
    api.update_repo_settings(repo_id, private=False)
    assert bob.repo_exists(repo_id) is True
    assert bob.file_exists(repo_id, "h.txt") is True
    assert repo_id in {m.id for m in bob.list_models(author=user.name)}
    api.update_repo_settings(repo_id, private=True)
    assert bob.repo_exists(repo_id) is False
    assert repo_id not in {m.id for m in bob.list_models(author=user.name)}
    r = httpx.head(f"{server.endpoint}/{repo_id}/resolve/main/h.txt",
                   headers={"authorization": f"Bearer {other.token}"})
    assert r.headers["X-Error-Code"] == "RepoNotFound"


def test_private_repo_in_org_visible_to_members_only(server, api, user, other, user_factory):
    org = f"org-{uuid.uuid4().hex[:8]}"
    server.hver("org", "create", org, "--owner", user.name)
    repo_id = f"{org}/private-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id, private=True)
    api.upload_file(path_or_fileobj=SECRET, path_in_repo="secret.txt", repo_id=repo_id)
    bob = HfApi(endpoint=server.endpoint, token=other.token)
    assert bob.repo_exists(repo_id) is False
    assert repo_id not in {m.id for m in bob.list_models(author=org)}
    server.hver("org", "add-member", org, other.name, "--role", "read")
    assert bob.repo_exists(repo_id) is True
    assert repo_id in {m.id for m in bob.list_models(author=org)}
    assert bob.list_repo_files(repo_id) == [".gitattributes", "secret.txt"]
