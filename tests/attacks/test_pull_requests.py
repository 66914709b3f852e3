"""Pull requests as an attacker would try them: move a branch or someone else's pull
request, reach a gated repo's files through a proposal, use a read or narrow token, push to
a discussion's number, race for thread numbers."""

from __future__ import annotations

import os
import uuid

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError
from threads import parallel

pytestmark = pytest.mark.usefixtures("no_server_errors")


def _status(call) -> int:  # type: ignore[no-untyped-def]
    with pytest.raises(HfHubHTTPError) as err:
        call()
    return err.value.response.status_code


@pytest.fixture
def owner_repo(api, repo_factory):  # type: ignore[no-untyped-def]
    repo = repo_factory()
    api.upload_file(path_or_fileobj=b"v1\n", path_in_repo="README.md", repo_id=repo)
    return repo


def test_gated_repo_proposals_need_access(server, api, user_factory, repo_factory):  # type: ignore[no-untyped-def]
    repo = repo_factory()
    api.upload_file(path_or_fileobj=b"secret\n", path_in_repo="data.txt", repo_id=repo)
    api.update_repo_settings(repo, gated="manual")
    mallory = HfApi(endpoint=server.endpoint, token=user_factory("mallory").token)
    # Without access, no pull request (it would start from the gated files) ...
    assert _status(lambda: mallory.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt",
                                               repo_id=repo, create_pr=True)) == 403
    assert _status(lambda: mallory.create_pull_request(repo, "empty PR")) == 403
    # ... but discussions are open to every reader, as on the Hub.
    assert mallory.create_discussion(repo, "May I have access?").num == 1
    assert api.get_discussion_details(repo, 1).title == "May I have access?"
    # The owner's own pull request: its diff shows gated content, so not to mallory.
    api.upload_file(path_or_fileobj=b"more secret\n", path_in_repo="data.txt", repo_id=repo,
                    create_pr=True)
    assert "more secret" in (api.get_discussion_details(repo, 2).diff or "")
    assert "secret" not in (mallory.get_discussion_details(repo, 2).diff or "")
    page = httpx.get(f"{server.endpoint}/{repo}/discussions/2").text
    assert "secret" not in page and "gated" in page


def test_tokens_that_may_not_write_discussions(server, api, user, user_factory, owner_repo):  # type: ignore[no-untyped-def]
    eve = user_factory("eve")
    reader = HfApi(endpoint=server.endpoint, token=eve.read_token)
    assert _status(lambda: reader.create_discussion(owner_repo, "hi")) == 403
    assert _status(lambda: reader.create_pull_request(owner_repo, "hi")) == 403
    narrow = server.hver("token", "create", eve.name, "--fine-grained", "--repo",
                         f"{owner_repo}:read")
    assert _status(lambda: HfApi(endpoint=server.endpoint, token=narrow).create_discussion(
        owner_repo, "hi")) == 403
    allowed = server.hver("token", "create", eve.name, "--fine-grained", "--repo",
                          f"{owner_repo}:read,discussion.write")
    scoped = HfApi(endpoint=server.endpoint, token=allowed)
    assert scoped.create_discussion(owner_repo, "hi").num == 1
    info = scoped.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=owner_repo,
                              create_pr=True)
    assert info.pr_num == 2
    # Still no branch for it.
    assert _status(lambda: scoped.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt",
                                              repo_id=owner_repo)) == 403
    assert api.list_repo_files(owner_repo) == [".gitattributes", "README.md"]


def test_no_commit_reaches_a_discussion_or_a_missing_pr(server, api, other, owner_repo):  # type: ignore[no-untyped-def]
    bob = HfApi(endpoint=server.endpoint, token=other.token)
    bob.create_discussion(owner_repo, "just talk")
    for revision in ("refs/pr/1", "refs/pr/2", "refs/pr/0", "refs/pr/01"):
        with pytest.raises(HfHubHTTPError) as err:
            api.create_commit(owner_repo, [CommitOperationAdd("x.txt", b"x")],
                              commit_message="x", revision=revision)
        assert err.value.response.status_code in (400, 404), revision
    # Nor does create_pr off a pull request.
    bob.create_pull_request(owner_repo, "draft")
    assert _status(lambda: bob.create_commit(owner_repo, [CommitOperationAdd("x", b"x")],
                                             commit_message="x", revision="refs/pr/2",
                                             create_pr=True)) == 400
    refs = api.list_repo_refs(owner_repo, include_pull_requests=True)
    assert [r.ref for r in refs.pull_requests] == ["refs/pr/2"]


def test_a_pr_author_who_lost_read_access_cannot_push(server, api, other, owner_repo):  # type: ignore[no-untyped-def]
    bob = HfApi(endpoint=server.endpoint, token=other.token)
    bob.upload_file(path_or_fileobj=b"a", path_in_repo="a.txt", repo_id=owner_repo,
                    create_pr=True)
    api.update_repo_settings(owner_repo, private=True)
    with pytest.raises(RepositoryNotFoundError):
        bob.upload_file(path_or_fileobj=b"b", path_in_repo="b.txt", repo_id=owner_repo,
                        revision="refs/pr/1")
    with pytest.raises(RepositoryNotFoundError):
        bob.comment_discussion(owner_repo, 1, "hello?")
    with pytest.raises(RepositoryNotFoundError):
        bob.hf_hub_download(owner_repo, "a.txt", revision="refs/pr/1")


def test_closed_prs_take_no_commits_and_strangers_cannot_close(  # type: ignore[no-untyped-def]
        server, api, other, user_factory, owner_repo):
    bob = HfApi(endpoint=server.endpoint, token=other.token)
    bob.upload_file(path_or_fileobj=b"a", path_in_repo="a.txt", repo_id=owner_repo,
                    create_pr=True)
    carol = HfApi(endpoint=server.endpoint, token=user_factory("carol").token)
    assert _status(lambda: carol.change_discussion_status(owner_repo, 1, "closed")) == 403
    assert _status(lambda: carol.rename_discussion(owner_repo, 1, "mine now")) == 403
    assert _status(lambda: carol.merge_pull_request(owner_repo, 1)) == 403
    api.change_discussion_status(owner_repo, 1, "closed")
    assert _status(lambda: bob.upload_file(path_or_fileobj=b"b", path_in_repo="b.txt",
                                           repo_id=owner_repo, revision="refs/pr/1")) == 400
    assert _status(lambda: api.merge_pull_request(owner_repo, 1)) == 400


def test_thread_numbers_are_unique_under_a_race(server, api, other, owner_repo):  # type: ignore[no-untyped-def]
    def open_one(i: int) -> int:
        r = httpx.post(f"{server.endpoint}/api/models/{owner_repo}/discussions",
                       json={"title": f"t{i}", "pullRequest": i % 2 == 0},
                       headers={"Authorization": f"Bearer {other.token}"}, timeout=60)
        r.raise_for_status()
        return int(r.json()["num"])

    nums = parallel(8, open_one)
    assert sorted(nums) == list(range(1, 9))
    refs = api.list_repo_refs(owner_repo, include_pull_requests=True)
    assert sorted(r.ref for r in refs.pull_requests) == sorted(
        f"refs/pr/{n}" for n in range(1, 9) if n in {nums[i] for i in range(0, 8, 2)})


def test_bad_thread_input(server, other, owner_repo):  # type: ignore[no-untyped-def]
    h = {"Authorization": f"Bearer {other.token}"}
    base = f"{server.endpoint}/api/models/{owner_repo}/discussions"
    cases = [
        ("post", base, {"title": ""}),
        ("post", base, {"title": "x" * 201}),
        ("post", base, {"title": ["x"]}),
        ("post", base, {"title": "ok", "description": 5}),
        ("get", f"{base}/abc", None),
        ("get", f"{base}/-1", None),
        ("get", f"{base}/99999999999999999999", None),
        ("get", f"{base}?p=x", None),
        ("get", f"{base}?type=bogus", None),
        ("post", f"{base}/1/comment", {"comment": ""}),
        ("post", f"{base}/1/status", {"status": "merged"}),
        ("get", f"{base}/%C2%B2", None),  # a digit to str.isdigit, not to int()
        ("get", f"{base}/%D9%A1", None),
        ("get", f"{base}?p=%C2%B2", None),
        ("post", f"{base}/%C2%B2/comment", {"comment": "x"}),
        ("post", base, {"title": "a\x00b"}),
        ("post", base, {"title": "two\nlines"}),
        ("post", f"{base}/1/comment", {"comment": "nul \x00 byte"}),
        ("post", f"{base}/1/title", {"title": "\x00"}),
    ]
    httpx.post(base, json={"title": "first"}, headers=h).raise_for_status()
    for method, url, body in cases:
        r = httpx.request(method, url, json=body, headers=h)
        assert 400 <= r.status_code < 500 and r.headers.get("x-error-code"), (url, body, r.text)
    web = httpx.get(f"{server.endpoint}/{owner_repo}/discussions/%C2%B2")
    assert web.status_code == 400
    missing = f"{owner_repo.split('/')[0]}/none-{uuid.uuid4().hex[:6]}"
    r = httpx.get(f"{server.endpoint}/api/models/{missing}/discussions", headers=h)
    assert r.status_code == 404 and r.headers["x-error-code"] == "RepoNotFound"


def test_any_commit_message_opens_a_pr(server, api, other, owner_repo):  # type: ignore[no-untyped-def]
    """What a branch commit accepts, a pull request accepts: its title is the summary's first
    line, cut to fit; a long description becomes its first comment, cut to fit."""
    bob = HfApi(endpoint=server.endpoint, token=other.token)
    info = bob.create_commit(owner_repo, [CommitOperationAdd("x.txt", b"x")],
                             commit_message="t" * 250, commit_description="d" * 70_000,
                             create_pr=True)
    details = api.get_discussion_details(owner_repo, info.pr_num)
    assert details.title == "t" * 200
    assert len(details.events[0].content) == 65_536
    # A body without Content-Length (chunked) is read all the same.
    r = httpx.post(f"{server.endpoint}/api/models/{owner_repo}/discussions/{info.pr_num}/comment",
                   content=iter([b'{"comment": "chunked"}']),
                   headers={"Authorization": f"Bearer {other.token}",
                            "content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["newMessage"]["data"]["latest"]["raw"] == "chunked"


# -- what contributors upload --------------------------------------------------------------


def test_a_contributor_cannot_bind_a_sha256_to_other_bytes(server, api, other, owner_repo):  # type: ignore[no-untyped-def]
    """Anyone may upload to a public repo for a pull request; a claim that a Xet file has a
    sha256 it does not have is refused, so the owner's later upload of the true bytes is
    neither refused nor answered 'present' and served as someone else's bytes."""
    import hashlib

    from xetkit import Cas, shard_for

    from hver.xet.hashing import hex_hash
    from hver.xet.xorb import build_xorb

    genuine = os.urandom(100_000)
    junk = os.urandom(len(genuine))
    cas = Cas(server.endpoint, owner_repo, other.token, "write")
    body, index = build_xorb([junk])
    r = cas.call("POST", f"/v1/xorbs/default/{hex_hash(index.hash())}", body)
    assert r.status_code == 200, r.text
    shard = shard_for(index.hash(), index, [junk], sha=hashlib.sha256(genuine).digest())
    r = cas.call("POST", "/v1/shards", shard)
    assert r.status_code == 400 and r.headers["x-error-code"] == "HashMismatch", r.text
    # The owner's upload, by LFS (whose batch would have said "present") and by Xet.
    api.upload_file(path_or_fileobj=genuine, path_in_repo="model.bin", repo_id=owner_repo)
    with open(api.hf_hub_download(owner_repo, "model.bin"), "rb") as fh:
        assert fh.read() == genuine
    # True claims are accepted: a contributor's genuine Xet upload opens a pull request.
    bob = HfApi(endpoint=server.endpoint, token=other.token)
    mine = os.urandom(150_000)
    info = bob.upload_file(path_or_fileobj=mine, path_in_repo="mine.bin", repo_id=owner_repo,
                           create_pr=True)
    with open(api.hf_hub_download(owner_repo, "mine.bin", revision=info.pr_revision),
              "rb") as fh:
        assert fh.read() == mine


def _batch(server, repo, token, operation, oid, size):  # type: ignore[no-untyped-def]
    headers = {"Accept": "application/vnd.git-lfs+json",
               "Content-Type": "application/vnd.git-lfs+json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    r = httpx.post(f"{server.endpoint}/{repo}.git/info/lfs/objects/batch", headers=headers,
                   json={"operation": operation, "transfers": ["basic"],
                         "objects": [{"oid": oid, "size": size}]})
    assert r.status_code == 200, r.text
    return r.json()["objects"][0]


def test_contributed_bytes_are_served_only_once_a_commit_names_them(  # type: ignore[no-untyped-def]
        server, api, other, user_factory, owner_repo):
    """A contributor's upload is held apart: nobody downloads it by its sha256 alone, no
    other account names it in a commit, and their own pull request commit makes it the
    repo's, readable at that pull request."""
    import hashlib

    data = os.urandom(120_000)
    oid = hashlib.sha256(data).hexdigest()
    up = _batch(server, owner_repo, other.token, "upload", oid, len(data))
    put = httpx.put(up["actions"]["upload"]["href"], content=data)
    assert put.status_code == 200, put.text
    assert _batch(server, owner_repo, other.token, "upload", oid, len(data)).get(
        "actions") is None  # present, for its uploader
    # Not hosted for anyone else: no download by hash, not even for the owner.
    for token in (None, api.token, user_factory("dave").token):
        assert _batch(server, owner_repo, token, "download", oid, len(data))["error"][
            "code"] == 404
    # Another contributor, or a writer, may not name it in a commit.
    dave = HfApi(endpoint=server.endpoint, token=user_factory("dave").token)
    pointer = (f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\n"
               f"size {len(data)}\n").encode()
    for who in (dave, api):
        with pytest.raises(HfHubHTTPError) as err:
            who.create_commit(owner_repo, [CommitOperationAdd("p.txt", pointer)],
                              commit_message="x", create_pr=True)
        assert err.value.response.status_code == 422
    # Its uploader's pull request names it: from then on the repo serves it there.
    bob = HfApi(endpoint=server.endpoint, token=other.token)
    info = bob.create_commit(owner_repo, [CommitOperationAdd("p.txt", pointer)],
                             commit_message="weights", create_pr=True)
    with open(api.hf_hub_download(owner_repo, "p.txt", revision=info.pr_revision), "rb") as fh:
        assert fh.read() == data
    assert _batch(server, owner_repo, None, "download", oid, len(data)).get("error") is None


def test_fine_grained_scopes_ignore_case_as_repo_ids_do(server, api, user, owner_repo):  # type: ignore[no-untyped-def]
    """A scope written `Alice/Repo` names the repo `alice/repo`, as every route does."""
    shouted = owner_repo.upper()
    token = server.hver("token", "create", user.name, "--fine-grained", "--repo",
                        f"{shouted}:read,write")
    scoped = HfApi(endpoint=server.endpoint, token=token)
    scoped.upload_file(path_or_fileobj=b"x", path_in_repo="scoped.txt", repo_id=owner_repo)
    assert "scoped.txt" in api.list_repo_files(owner_repo)
