"""What a server caches never outlives the change that ends it.

Each test first makes the server cache what it is about (the same request twice: the
second is answered from memory), then changes it (through the API, in the server's own
process, or with the `hver` command line, another process on the same data directory)
and checks the very next request. Download counts are gathered in memory and written in
one transaction later: counted exactly once per counted request, shown at once by the
counting process, and in the database after a flush (every few seconds, and at shutdown).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
from huggingface_hub import HfApi

CONFIG = b'{"model_type": "bert"}'


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def resolve(server: Any, repo_id: str, path: str = "config.json", *, token: str | None = None,
            revision: str = "main", method: str = "GET",
            headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.request(method, f"{server.endpoint}/{repo_id}/resolve/{revision}/{path}",
                         headers=(bearer(token) if token else {}) | (headers or {}))


def twice(call: Callable[[], httpx.Response], status: int = 200) -> httpx.Response:
    """Call twice (the second answered from what the first cached); both must be `status`."""
    for _ in range(2):
        r = call()
        assert r.status_code == status, (r.status_code, r.text)
    return r


def model_with_config(api: HfApi, owner: str, private: bool = False) -> str:
    repo_id = f"{owner}/cached-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id, private=private)
    api.upload_file(path_or_fileobj=CONFIG, path_in_repo="config.json", repo_id=repo_id)
    return repo_id


def whoami(server: Any, token: str) -> httpx.Response:
    return httpx.get(f"{server.endpoint}/api/whoami-v2", headers=bearer(token))


# -- token -> actor ---------------------------------------------------------------------------


def test_token_revoked_through_the_api_is_refused_on_the_next_request(server, user_factory):
    u = user_factory("revoke")
    api = HfApi(endpoint=server.endpoint, token=u.token)
    repo_id = model_with_config(api, u.name, private=True)
    made = httpx.post(f"{server.endpoint}/api/settings/tokens", headers=bearer(u.token),
                      json={"name": "doomed", "role": "read"})
    assert made.status_code == 200, made.text
    doomed = made.json()["token"]
    twice(lambda: whoami(server, doomed))
    twice(lambda: resolve(server, repo_id, token=doomed))
    r = httpx.delete(f"{server.endpoint}/api/settings/tokens/doomed", headers=bearer(u.token))
    assert r.status_code == 200, r.text
    assert whoami(server, doomed).status_code == 401
    assert resolve(server, repo_id, token=doomed).status_code == 401
    assert resolve(server, repo_id, token=u.token).status_code == 200  # the other token


def test_token_revoked_from_the_command_line_is_refused_on_the_next_request(server,
                                                                             user_factory):
    u = user_factory("revoke-cli")
    doomed = server.hver("token", "create", u.name, "--role", "read", "--name", "doomed")
    twice(lambda: whoami(server, doomed))
    server.hver("token", "revoke", u.name, "doomed")  # another process
    assert whoami(server, doomed).status_code == 401


def test_disabled_user_is_refused_on_the_next_request(server, user_factory):
    u = user_factory("disabled")
    api = HfApi(endpoint=server.endpoint, token=u.token)
    repo_id = model_with_config(api, u.name)
    twice(lambda: whoami(server, u.token))
    twice(lambda: resolve(server, repo_id, token=u.token))
    server.hver("user", "disable", u.name)
    assert whoami(server, u.token).status_code == 401
    assert resolve(server, repo_id, token=u.token).status_code == 401
    server.hver("user", "enable", u.name)
    assert whoami(server, u.token).status_code == 200


def test_org_role_removed_ends_access_on_the_next_request(server, user_factory):
    owner, member = user_factory("org-owner"), user_factory("org-member")
    org = f"org-{uuid.uuid4().hex[:8]}"
    server.hver("org", "create", org, "--owner", owner.name)
    server.hver("org", "add-member", org, member.name, "--role", "read")
    repo_id = model_with_config(HfApi(endpoint=server.endpoint, token=owner.token), org,
                                private=True)
    info = f"{server.endpoint}/api/models/{repo_id}"
    twice(lambda: resolve(server, repo_id, token=member.token))
    twice(lambda: httpx.get(info, headers=bearer(member.token)))
    # Through the API (this server's process) ...
    r = httpx.delete(f"{server.endpoint}/api/organizations/{org}/members/{member.name}",
                     headers=bearer(owner.token))
    assert r.status_code == 200, r.text
    assert resolve(server, repo_id, token=member.token).status_code == 404
    assert httpx.get(info, headers=bearer(member.token)).status_code == 404
    # ... and from the command line (another process).
    server.hver("org", "add-member", org, member.name, "--role", "read")
    twice(lambda: resolve(server, repo_id, token=member.token))
    server.hver("org", "remove-member", org, member.name)
    assert resolve(server, repo_id, token=member.token).status_code == 404


# -- repos and refs ---------------------------------------------------------------------------


def test_moved_branch_is_seen_by_the_next_resolve(server, user_factory):
    u = user_factory("branch")
    api = HfApi(endpoint=server.endpoint, token=u.token)
    repo_id = model_with_config(api, u.name)
    first = twice(lambda: resolve(server, repo_id, token=u.token))
    assert first.content == CONFIG
    api.upload_file(path_or_fileobj=b'{"v": 2}', path_in_repo="config.json", repo_id=repo_id)
    second = resolve(server, repo_id, token=u.token)
    assert second.content == b'{"v": 2}'
    assert second.headers["X-Repo-Commit"] != first.headers["X-Repo-Commit"]
    # Another branch, and a tag: created, read (cached), moved or deleted, read again.
    api.create_branch(repo_id, branch="dev", revision=first.headers["X-Repo-Commit"])
    twice(lambda: resolve(server, repo_id, token=u.token, revision="dev"))
    assert resolve(server, repo_id, token=u.token, revision="dev").content == CONFIG
    api.upload_file(path_or_fileobj=b'{"v": 3}', path_in_repo="config.json", repo_id=repo_id,
                    revision="dev")
    assert resolve(server, repo_id, token=u.token, revision="dev").content == b'{"v": 3}'
    api.delete_branch(repo_id, branch="dev")
    assert resolve(server, repo_id, token=u.token, revision="dev").status_code == 404
    api.create_tag(repo_id, tag="v1", revision=first.headers["X-Repo-Commit"])
    twice(lambda: resolve(server, repo_id, token=u.token, revision="v1"))
    api.delete_tag(repo_id, tag="v1")
    assert resolve(server, repo_id, token=u.token, revision="v1").status_code == 404
    # A file deleted from the branch is gone from the next resolve.
    api.delete_file("config.json", repo_id=repo_id)
    assert resolve(server, repo_id, token=u.token).status_code == 404


def test_replaced_large_file_is_seen_by_the_next_head(server, user_factory):
    u = user_factory("lfs-head")
    api = HfApi(endpoint=server.endpoint, token=u.token)
    repo_id = model_with_config(api, u.name)
    api.upload_file(path_or_fileobj=os.urandom(50_000), path_in_repo="w.bin", repo_id=repo_id)
    head = lambda: resolve(server, repo_id, "w.bin", token=u.token, method="HEAD")  # noqa: E731
    first = head()
    status = first.status_code  # 200 stored as Xet, a redirect through LFS
    assert status in (200, 302)
    twice(head, status)
    api.upload_file(path_or_fileobj=os.urandom(50_000), path_in_repo="w.bin", repo_id=repo_id)
    second = head()
    assert second.status_code == status
    assert second.headers["X-Linked-Etag"] != first.headers["X-Linked-Etag"]


def test_repo_made_private_is_missing_to_the_next_anonymous_request(server, user_factory):
    u = user_factory("visibility")
    api = HfApi(endpoint=server.endpoint, token=u.token)
    repo_id = model_with_config(api, u.name)
    info = f"{server.endpoint}/api/models/{repo_id}"
    twice(lambda: resolve(server, repo_id))
    twice(lambda: httpx.get(info))
    api.update_repo_settings(repo_id, private=True)
    assert resolve(server, repo_id).status_code == 404
    assert httpx.get(info).status_code == 404
    assert resolve(server, repo_id, token=u.token).status_code == 200  # the owner still reads
    api.update_repo_settings(repo_id, private=False)
    assert resolve(server, repo_id).status_code == 200
    # Gated: file content needs an accepted request from the next request on.
    api.update_repo_settings(repo_id, gated="manual")
    assert resolve(server, repo_id).status_code == 401
    api.update_repo_settings(repo_id, gated=False)
    twice(lambda: resolve(server, repo_id))
    # Moved: the old id redirects at once, deleted: missing at once.
    moved = f"{u.name}/moved-{uuid.uuid4().hex[:6]}"
    api.move_repo(repo_id, moved)
    assert resolve(server, repo_id).status_code == 307
    twice(lambda: resolve(server, moved))
    api.delete_repo(moved)
    assert resolve(server, moved).status_code == 404


# -- download counts --------------------------------------------------------------------------


def listed_downloads(server: Any, author: str) -> int:
    r = httpx.get(f"{server.endpoint}/api/models", params={"author": author})
    assert r.status_code == 200, r.text
    (item,) = r.json()
    return int(item["downloads"])


def shown_downloads(server: Any, repo_id: str, token: str) -> int:
    r = httpx.get(f"{server.endpoint}/api/models/{repo_id}", headers=bearer(token))
    assert r.status_code == 200, r.text
    return int(r.json()["downloads"])


def test_the_cached_path_answers_odd_names_as_the_uncached_one(server, user_factory):
    """A repo served from memory answers what the database path would: a folder of refs
    named as a revision, a sha followed by a newline and a Unicode look-alike of its id
    (the Kelvin sign lowercases to "k") are refused, never a 500, cold and warm."""
    u = user_factory("oddnames")
    api = HfApi(endpoint=server.endpoint, token=u.token)
    repo_id = f"{u.name}/key-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id, private=True)
    api.upload_file(path_or_fileobj=CONFIG, path_in_repo="config.json", repo_id=repo_id)
    api.create_branch(repo_id, branch="feat/x")
    sha = api.list_repo_commits(repo_id)[0].commit_id
    look_alike = repo_id.replace("/key-", "/\u212aey-")
    for _ in range(2):  # cold, then warm: the first successful request caches the repo
        assert resolve(server, repo_id, token=u.token).status_code == 200
        for revision in ("refs%2Fheads", "refs%2Fpr", "feat", f"{sha}%0A"):
            r = resolve(server, repo_id, token=u.token, revision=revision)
            assert r.status_code in (400, 404), (revision, r.status_code, r.text)
        assert resolve(server, look_alike, token=u.token).status_code in (400, 404)
        r = httpx.get(f"{server.endpoint}/api/models/{look_alike}", headers=bearer(u.token))
        assert r.status_code in (400, 404), r.text


def test_downloads_counted_once_each_and_written_by_a_flush(server_factory):
    # No periodic flush in this test's time: the counts reach the database at shutdown.
    srv = server_factory(download_flush_interval="3600")
    name, token, api = srv.new_user_api("counts")
    repo_id = model_with_config(api, name)
    api.upload_file(path_or_fileobj=os.urandom(20_000), path_in_repo="w.bin", repo_id=repo_id)
    counter = {"X-HF-Download-Counter": "1"}
    for _ in range(2):  # a Hub client's download: HEAD (counted), then GET (not counted)
        assert resolve(srv, repo_id, token=token, method="HEAD").status_code == 200
        assert resolve(srv, repo_id, token=token, headers=counter).status_code == 200
    assert resolve(srv, repo_id, token=token).status_code == 200  # no HEAD first: counted
    assert resolve(srv, repo_id, "w.bin", token=token, method="HEAD").status_code in (200, 302)
    assert resolve(srv, repo_id, ".gitattributes", token=token).status_code == 200
    assert resolve(srv, repo_id, "missing.json", token=token).status_code == 404
    assert shown_downloads(srv, repo_id, token) == 3  # this process's counts, not written yet
    assert listed_downloads(srv, name) == 0  # the database: no write on the read path
    srv.stop()  # a clean shutdown writes what was counted
    srv.start()
    assert listed_downloads(srv, name) == 3
    assert shown_downloads(srv, repo_id, token) == 3
    assert resolve(srv, repo_id, token=token, method="HEAD").status_code == 200
    assert shown_downloads(srv, repo_id, token) == 4


def test_download_counts_are_written_every_interval(server_factory):
    srv = server_factory(download_flush_interval="0.2")
    name, token, api = srv.new_user_api("flushed")
    repo_id = model_with_config(api, name)
    for _ in range(3):
        assert resolve(srv, repo_id, token=token, method="HEAD").status_code == 200
    deadline = time.monotonic() + 10
    while listed_downloads(srv, name) != 3:
        assert time.monotonic() < deadline, "the counts were not written"
        time.sleep(0.1)
    assert shown_downloads(srv, repo_id, token) == 3


def test_caches_off(server_factory):
    """`HVER_CACHE_TTL=0`: nothing cached, every answer as fresh."""
    srv = server_factory(cache_ttl="0")
    name, token, api = srv.new_user_api("nocache")
    repo_id = model_with_config(api, name)
    assert twice(lambda: resolve(srv, repo_id, token=token)).content == CONFIG
    doomed = srv.hver("token", "create", name, "--role", "read", "--name", "doomed")
    twice(lambda: whoami(srv, doomed))
    srv.hver("token", "revoke", name, "doomed")
    assert whoami(srv, doomed).status_code == 401
