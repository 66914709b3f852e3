"""Bad input on the write side: every refusal is a 4xx with X-Error-Code, never a 500,
and a refused commit leaves the branch exactly where it was."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.utils import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

pytestmark = pytest.mark.usefixtures("no_server_errors")


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def assert_error(r: httpx.Response, status: int, code: str | None = None) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers.get("X-Error-Code"), r.headers
    assert r.headers.get("X-Error-Message"), r.headers
    if code is not None:
        assert r.headers["X-Error-Code"] == code, r.headers
    assert "error" in r.json()


def ndjson(*lines: dict) -> bytes:
    return b"\n".join(json.dumps(line).encode() for line in lines) + b"\n"


def header(summary: str = "test", **extra) -> dict:
    return {"key": "header", "value": {"summary": summary, "description": "", **extra}}


def file_line(path: str, content: bytes = b"x") -> dict:
    return {"key": "file", "value": {"path": path, "content": base64.b64encode(content).decode(),
                                      "encoding": "base64"}}


def post_commit(server, token: str, repo_id: str, body: bytes, revision: str = "main",
                repo_type: str = "model") -> httpx.Response:
    return httpx.post(
        f"{server.endpoint}/api/{repo_type}s/{repo_id}/commit/{revision}", content=body,
        headers={**auth(token), "content-type": "application/x-ndjson"}, timeout=60,
    )


def head_state(api, repo_id: str, revision: str = "main") -> tuple[str, int]:
    commits = api.list_repo_commits(repo_id, revision=revision)
    return commits[0].commit_id, len(commits)


# -- repo names -------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a--b", "..", "x.git", "n" * 97, "bad name", "bad$chars",
                                  "-leading", "a..b", "tr\u00e8s", ".hidden", "", "nl\n",
                                  "dot."])
def test_invalid_repo_names(server, user, name):
    r = httpx.post(f"{server.endpoint}/api/repos/create", headers=auth(user.token),
                   json={"name": name, "organization": None})
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.headers.get("X-Error-Code"), r.headers
    # Nothing was created under that name (a '..' segment would be normalised away).
    if name.strip(".") and "\n" not in name:
        info = httpx.get(f"{server.endpoint}/api/models/{user.name}/{name}",
                         headers=auth(user.token))
        assert info.status_code in (400, 404)


@pytest.mark.parametrize("repo_id", ["a--b/x", "ns/x/y", "api/x"])
def test_invalid_repo_ids_full_form(server, user, repo_id):
    r = httpx.post(f"{server.endpoint}/api/repos/create", headers=auth(user.token),
                   json={"name": repo_id})
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert r.headers.get("X-Error-Code")


def test_longest_valid_name_is_accepted(api, user):
    name = "n" * 96
    url = api.create_repo(f"{user.name}/{name}")
    assert url.repo_id == f"{user.name}/{name}"


# -- paths inside a commit --------------------------------------------------------------


# A backslash is part of a file name (as on the Hub), but never a way out or into .git.
@pytest.mark.parametrize("path", ["../x", "/abs", "a/../b", ".git/config", "a/.git/x", "..\\x",
                                  "a\\..\\..\\b", "a\\.git\\x", "\\abs", "nul\x00byte", "",
                                  ".", "a//b", "a/./b", "trailing/", "ctl\x01char"])
def test_commit_path_traversal_rejected(server, api, user, repo_factory, path):
    repo_id = repo_factory()
    before = head_state(api, repo_id)
    for line in (file_line(path), {"key": "deletedFile", "value": {"path": path}}):
        r = post_commit(server, user.token, repo_id, ndjson(header(), line))
        assert_error(r, 422, "InvalidPath")
    assert head_state(api, repo_id) == before


def test_lfs_line_with_bad_path_rejected(server, api, user, repo_factory):
    repo_id = repo_factory()
    before = head_state(api, repo_id)
    oid = hashlib.sha256(b"x").hexdigest()
    r = post_commit(server, user.token, repo_id, ndjson(
        header(), {"key": "lfsFile", "value": {"path": "../evil", "algo": "sha256", "oid": oid,
                                               "size": 1}}))
    assert_error(r, 422, "InvalidPath")
    assert head_state(api, repo_id) == before


def test_one_bad_path_rejects_whole_commit(server, api, user, repo_factory):
    repo_id = repo_factory()
    before = head_state(api, repo_id)
    r = post_commit(server, user.token, repo_id,
                    ndjson(header(), file_line("good.txt"), file_line("../bad.txt")))
    assert_error(r, 422, "InvalidPath")
    assert head_state(api, repo_id) == before
    assert "good.txt" not in api.list_repo_files(repo_id)


def test_preupload_bad_path_rejected(server, user, repo_factory):
    repo_id = repo_factory()
    r = httpx.post(f"{server.endpoint}/api/models/{repo_id}/preupload/main",
                   headers=auth(user.token),
                   json={"files": [{"path": "../x", "size": 1, "sample": "eA=="}]})
    assert_error(r, 422, "InvalidPath")


# -- revisions --------------------------------------------------------------------------


def test_unknown_revision(server, api, user, repo_factory):
    repo_id = repo_factory()
    r = post_commit(server, user.token, repo_id, ndjson(header(), file_line("a.txt")),
                    revision="no-such-branch")
    assert_error(r, 404, "RevisionNotFound")
    with pytest.raises(RevisionNotFoundError):
        api.upload_file(path_or_fileobj=b"x", path_in_repo="a.txt", repo_id=repo_id,
                        revision="no-such-branch")
    with pytest.raises(RevisionNotFoundError):
        api.list_repo_commits(repo_id, revision="no-such-branch")
    assert "a.txt" not in api.list_repo_files(repo_id)


def test_commit_to_a_sha_or_tag_is_refused(server, api, user, repo_factory):
    repo_id = repo_factory()
    head, n = head_state(api, repo_id)
    api.create_tag(repo_id, tag="v1")
    for rev in (head, "v1"):
        r = post_commit(server, user.token, repo_id, ndjson(header(), file_line("a.txt")),
                        revision=rev)
        assert 400 <= r.status_code < 500, (rev, r.status_code, r.text)
        assert r.headers.get("X-Error-Code")
    assert head_state(api, repo_id) == (head, n)


def test_missing_repo(server, user):
    r = post_commit(server, user.token, f"{user.name}/does-not-exist-{uuid.uuid4().hex[:6]}",
                    ndjson(header(), file_line("a.txt")))
    assert_error(r, 404, "RepoNotFound")


# -- malformed NDJSON --------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    b"this is not json\n",
    ndjson(header()) + b"{not json either\n",
    ndjson(file_line("a.txt")),                                   # no header
    ndjson(header(), header()),                                    # two headers
    ndjson(header(), {"key": "renameFile", "value": {"path": "a"}}),  # unknown key
    ndjson(header(), {"key": "file", "value": {"path": "a.txt", "content": "!!not base64!!",
                                               "encoding": "base64"}}),
    ndjson(header(), {"key": "file", "value": {"path": "a.txt", "content": "eA==",
                                               "encoding": "utf-8"}}),
    ndjson(header(), {"key": "file", "value": {"path": "a.txt"}}),  # no content
    ndjson(header(), {"key": "file", "value": {"path": 7, "content": "eA=="}}),
    ndjson(header(), {"key": "file", "value": "a string"}),
    ndjson(header(), ["a", "list"]),
    ndjson(header(), {"key": "lfsFile", "value": {"path": "a.bin", "algo": "sha256",
                                                  "oid": "nothex", "size": 1}}),
    ndjson(header(), {"key": "lfsFile", "value": {"path": "a.bin", "algo": "md5",
                                                  "oid": "0" * 64, "size": 1}}),
    ndjson(header(), {"key": "lfsFile", "value": {"path": "a.bin", "algo": "sha256",
                                                  "oid": "0" * 64, "size": "12"}}),
    ndjson(header(), {"key": "lfsFile", "value": {"path": "a.bin", "algo": "sha256",
                                                  "oid": "0" * 64, "size": -1}}),
    ndjson({"key": "header", "value": {"summary": 5}}),
    ndjson(header(parentCommit=12)),
    b"",
    b"\xff\xfe\x00garbage",
])
def test_malformed_ndjson(server, api, user, repo_factory, body):
    repo_id = repo_factory()
    before = head_state(api, repo_id)
    r = post_commit(server, user.token, repo_id, body)
    assert_error(r, 400)
    assert head_state(api, repo_id) == before


def test_parent_commit_not_a_commit(server, api, user, repo_factory):
    repo_id = repo_factory()
    before = head_state(api, repo_id)
    for parent in ("0" * 40, "not-a-sha"):
        r = post_commit(server, user.token, repo_id,
                        ndjson(header(parentCommit=parent), file_line("a.txt")))
        assert 400 <= r.status_code < 500, r.text
        assert r.headers.get("X-Error-Code")
    assert head_state(api, repo_id) == before


def test_malformed_preupload_and_batch(server, user, repo_factory):
    repo_id = repo_factory()
    pre = f"{server.endpoint}/api/models/{repo_id}/preupload/main"
    batch = f"{server.endpoint}/{repo_id}.git/info/lfs/objects/batch"
    for url, body in (
        (pre, b"not json"),
        (pre, b'{"files": "nope"}'),
        (pre, b'{"files": [{"path": "a", "size": -3}]}'),
        (pre, b'{"files": [{"path": "a", "size": 1, "sample": "%%%"}]}'),
        (batch, b"not json"),
        (batch, b'{"operation": "steal", "objects": []}'),
        (batch, b'{"operation": "upload", "objects": [{"oid": "xyz", "size": 1}]}'),
        (batch, b'{"operation": "upload", "objects": [{"oid": "' + b"a" * 64 + b'", "size": -1}]}'),
        (batch, b'{"operation": "upload", "objects": {}}'),
    ):
        r = httpx.post(url, content=body, headers={**auth(user.token),
                                                   "content-type": "application/json"})
        assert_error(r, 400)


# -- LFS uploads that lie ----------------------------------------------------------------


def batch_upload(server, token, repo_id, oid, size) -> dict:
    r = httpx.post(f"{server.endpoint}/{repo_id}.git/info/lfs/objects/batch",
                   headers={**auth(token), "content-type": "application/vnd.git-lfs+json"},
                   json={"operation": "upload", "transfers": ["basic"], "hash_algo": "sha256",
                         "objects": [{"oid": oid, "size": size}]})
    assert r.status_code == 200, r.text
    (obj,) = r.json()["objects"]
    return obj


def lfs_line(path, oid, size=None) -> dict:
    value = {"path": path, "algo": "sha256", "oid": oid}
    if size is not None:
        value["size"] = size
    return {"key": "lfsFile", "value": value}


@pytest.mark.parametrize("lie", ["hash", "short", "long"])
def test_lfs_put_with_wrong_bytes(server, api, user, repo_factory, lie):
    repo_id = repo_factory()
    before = head_state(api, repo_id)
    data = os.urandom(4096)
    oid = hashlib.sha256(data).hexdigest()
    obj = batch_upload(server, user.token, repo_id, oid, len(data))
    href = obj["actions"]["upload"]["href"]
    sent = {"hash": os.urandom(4096), "short": data[:-1], "long": data + b"!"}[lie]
    r = httpx.put(href, content=sent)
    assert_error(r, 400)
    # Still missing: the batch asks for it again, verify fails, a commit referencing it fails.
    again = batch_upload(server, user.token, repo_id, oid, len(data))
    assert "upload" in again.get("actions", {})
    v = httpx.post(obj["actions"]["verify"]["href"], headers=auth(user.token),
                   json={"oid": oid, "size": len(data)})
    assert 400 <= v.status_code < 500
    r = post_commit(server, user.token, repo_id, ndjson(header(), lfs_line("w.bin", oid,
                                                                           len(data))))
    assert_error(r, 422, "LfsObjectMissing")
    assert head_state(api, repo_id) == before
    assert "w.bin" not in api.list_repo_files(repo_id)
    # The honest upload then works.
    assert httpx.put(again["actions"]["upload"]["href"], content=data).status_code == 200
    r = post_commit(server, user.token, repo_id, ndjson(header(), lfs_line("w.bin", oid,
                                                                           len(data))))
    assert r.status_code == 200, r.text
    assert api.list_repo_commits(repo_id)[0].commit_id == r.json()["commitOid"]


def test_commit_referencing_unknown_lfs_oid(server, api, user, repo_factory):
    repo_id = repo_factory()
    before = head_state(api, repo_id)
    oid = hashlib.sha256(uuid.uuid4().bytes).hexdigest()
    for line in (lfs_line("w.bin", oid, 16), lfs_line("w.bin", oid)):
        r = post_commit(server, user.token, repo_id, ndjson(header(), line))
        assert_error(r, 422, "LfsObjectMissing")
    assert head_state(api, repo_id) == before


def test_lfs_object_of_another_repo_is_not_reusable(server, api, user, other, repo_factory):
    """An oid uploaded to one repo cannot be referenced from another without uploading."""
    mine = repo_factory()
    data = os.urandom(2048) + b"\x00"
    api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=mine)
    oid = hashlib.sha256(data).hexdigest()
    theirs = f"{other.name}/r-{uuid.uuid4().hex[:8]}"
    HfApi(endpoint=server.endpoint, token=other.token).create_repo(theirs)
    r = post_commit(server, other.token, theirs, ndjson(header(), lfs_line("w.bin", oid,
                                                                           len(data))))
    assert_error(r, 422, "LfsObjectMissing")


def test_lfs_wrong_size_in_commit(server, api, user, repo_factory):
    repo_id = repo_factory()
    data = os.urandom(1024) + b"\x00"
    api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=repo_id)
    before = head_state(api, repo_id)
    oid = hashlib.sha256(data).hexdigest()
    r = post_commit(server, user.token, repo_id,
                    ndjson(header(), lfs_line("w2.bin", oid, len(data) + 1)))
    assert_error(r, 400)
    assert head_state(api, repo_id) == before


def test_lfs_upload_url_tampering(server, user, repo_factory):
    repo_id = repo_factory()
    data = os.urandom(1000)
    oid = hashlib.sha256(data).hexdigest()
    href = batch_upload(server, user.token, repo_id, oid, len(data))["actions"]["upload"]["href"]
    bad_sig = href.replace("sig=", "sig=0")
    r = httpx.put(bad_sig, content=data)
    assert 400 <= r.status_code < 500 and r.headers.get("X-Error-Code")
    bad_size = href.replace(f"size={len(data)}", f"size={len(data) + 1}")
    r = httpx.put(bad_size, content=data + b"!")
    assert 400 <= r.status_code < 500 and r.headers.get("X-Error-Code")
    no_sig = href.split("?")[0] + f"?size={len(data)}"
    r = httpx.put(no_sig, content=data)
    assert 400 <= r.status_code < 500 and r.headers.get("X-Error-Code")


# -- size limits -------------------------------------------------------------------------


def test_oversized_inline_file_is_413(server_factory):
    srv = server_factory(max_inline_file_size="1000")
    name, token, api = srv.new_user_api("big")
    repo_id = f"{name}/limits"
    api.create_repo(repo_id)
    before = head_state(api, repo_id)
    r = post_commit(srv, token, repo_id, ndjson(header(), file_line("big.txt", b"a" * 2000)))
    assert_error(r, 413)
    assert head_state(api, repo_id) == before
    # Just under the limit is fine; preupload sends anything at the limit through LFS.
    r = post_commit(srv, token, repo_id, ndjson(header(), file_line("ok.txt", b"a" * 999)))
    assert r.status_code == 200, r.text
    pre = httpx.post(f"{srv.endpoint}/api/models/{repo_id}/preupload/main", headers=auth(token),
                     json={"files": [{"path": "t.txt", "size": 2000, "sample": "YQ=="}]})
    assert pre.json()["files"][0]["uploadMode"] == "lfs"
    # And the client, told so, uploads it over LFS.
    api.upload_file(path_or_fileobj=b"a" * 2000, path_in_repo="big.txt", repo_id=repo_id)
    (entry,) = api.get_paths_info(repo_id, ["big.txt"])
    assert entry.lfs is not None and entry.size == 2000


# -- auth -----------------------------------------------------------------------------------


def test_write_without_token_is_401(server, api, user, repo_factory):
    repo_id = repo_factory()
    before = head_state(api, repo_id)
    body = ndjson(header(), file_line("a.txt"))
    r = httpx.post(f"{server.endpoint}/api/models/{repo_id}/commit/main", content=body,
                   headers={"content-type": "application/x-ndjson"})
    assert_error(r, 401)
    r = httpx.post(f"{server.endpoint}/api/models/{repo_id}/preupload/main",
                   json={"files": [{"path": "a.txt", "size": 1, "sample": "eA=="}]})
    assert_error(r, 401)
    r = httpx.post(f"{server.endpoint}/{repo_id}.git/info/lfs/objects/batch",
                   json={"operation": "upload", "objects": [{"oid": "a" * 64, "size": 1}]})
    assert_error(r, 401)
    r = httpx.post(f"{server.endpoint}/api/repos/create", json={"name": "anon-repo"})
    assert_error(r, 401)
    assert head_state(api, repo_id) == before


def test_write_with_invalid_token_is_401(server, api, user, repo_factory):
    repo_id = repo_factory()
    before = head_state(api, repo_id)
    r = post_commit(server, "hf_not_a_real_token", repo_id, ndjson(header(), file_line("a.txt")))
    assert_error(r, 401)
    bad = HfApi(endpoint=server.endpoint, token="hf_not_a_real_token")
    with pytest.raises(HfHubHTTPError) as exc:
        bad.upload_file(path_or_fileobj=b"x", path_in_repo="a.txt", repo_id=repo_id)
    assert exc.value.response.status_code == 401
    r = httpx.post(f"{server.endpoint}/api/models/{repo_id}/commit/main",
                   content=ndjson(header(), file_line("a.txt")),
                   headers={"authorization": "Weird scheme"})
    assert_error(r, 401)
    assert head_state(api, repo_id) == before


def test_write_with_read_token_is_403(server, api, user, repo_factory):
    repo_id = repo_factory()
    before = head_state(api, repo_id)
    r = post_commit(server, user.read_token, repo_id, ndjson(header(), file_line("a.txt")))
    assert_error(r, 403)
    reader = HfApi(endpoint=server.endpoint, token=user.read_token)
    with pytest.raises(HfHubHTTPError) as exc:
        reader.upload_file(path_or_fileobj=b"x", path_in_repo="a.txt", repo_id=repo_id)
    assert exc.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as exc:
        reader.create_repo(f"{user.name}/from-read-token-{uuid.uuid4().hex[:6]}")
    assert exc.value.response.status_code == 403
    assert head_state(api, repo_id) == before


def test_write_to_someone_elses_repo(server, api, user, other, repo_factory):
    public = repo_factory()
    private = repo_factory(private=True)
    before = head_state(api, public)
    r = post_commit(server, other.token, public, ndjson(header(), file_line("a.txt")))
    assert_error(r, 403)
    r = post_commit(server, other.token, private, ndjson(header(), file_line("a.txt")))
    assert_error(r, 404, "RepoNotFound")
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=server.endpoint, token=other.token).upload_file(
            path_or_fileobj=b"x", path_in_repo="a.txt", repo_id=private)
    assert head_state(api, public) == before


# -- deletes ------------------------------------------------------------------------------


def test_delete_missing(server, api, user, repo_factory):
    repo_id = repo_factory()
    before = head_state(api, repo_id)
    r = post_commit(server, user.token, repo_id,
                    ndjson(header(), {"key": "deletedFile", "value": {"path": "missing.txt"}}))
    assert_error(r, 404, "EntryNotFound")
    r = post_commit(server, user.token, repo_id,
                    ndjson(header(), {"key": "deletedFolder", "value": {"path": "missing/"}}))
    assert_error(r, 404, "EntryNotFound")
    with pytest.raises(EntryNotFoundError):
        api.delete_file("missing.txt", repo_id)
    assert head_state(api, repo_id) == before


def test_commit_with_too_large_body_declared(server, user, repo_factory):
    """A declared Content-Length over max_commit_body is refused before the body is read."""
    import socket

    repo_id = repo_factory()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(
            f"POST /api/models/{repo_id}/commit/main HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {user.token}\r\nContent-Type: application/x-ndjson\r\n"
            f"Content-Length: {10**12}\r\n\r\n".encode() + ndjson(header())
        )
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 413"), status_line


def test_client_upload_with_add_operation_of_bad_path(api, repo_factory):
    """The client refuses these before sending: make sure nothing reaches the branch."""
    repo_id = repo_factory()
    before = head_state(api, repo_id)
    for path in ("../x", ".git/config"):
        with pytest.raises(ValueError):
            api.create_commit(repo_id, operations=[CommitOperationAdd(path, b"x")],
                              commit_message="bad")
    assert head_state(api, repo_id) == before
