"""Pull requests and discussions through the real clients: a reader proposes a change to
another user's public repo, its author pushes again, the owner merges; threads are read,
commented, renamed, closed and reopened; private repos' threads stay invisible."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, HfFileSystem, hf_hub_download
from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

pytestmark = pytest.mark.usefixtures("no_server_errors")


@pytest.fixture
def bob(server, other):  # type: ignore[no-untyped-def]
    return HfApi(endpoint=server.endpoint, token=other.token)


@pytest.fixture
def base_repo(api, repo_factory):  # type: ignore[no-untyped-def]
    repo = repo_factory()
    api.upload_file(path_or_fileobj=b"hello\n", path_in_repo="README.md", repo_id=repo)
    return repo


def test_a_reader_opens_a_pr_pushes_again_and_the_owner_merges(  # type: ignore[no-untyped-def]
        server, api, bob, other, base_repo, cache_dir):
    weights = os.urandom(300_000)
    info = bob.upload_file(path_or_fileobj=weights, path_in_repo="model.bin", repo_id=base_repo,
                           commit_message="Add weights", create_pr=True)
    assert info.pr_url is not None and info.pr_url.endswith("/discussions/1")
    assert info.pr_revision == "refs/pr/1" and info.pr_num == 1
    # main is untouched; the PR ref serves the file to every read route.
    assert api.list_repo_files(base_repo) == [".gitattributes", "README.md"]
    assert sorted(api.list_repo_files(base_repo, revision="refs/pr/1")) == [
        ".gitattributes", "README.md", "model.bin"]
    path = hf_hub_download(base_repo, "model.bin", revision="refs/pr/1", cache_dir=cache_dir)
    assert Path(path).read_bytes() == weights
    fs = HfFileSystem(endpoint=server.endpoint, token=other.token)
    assert fs.cat_file(f"{base_repo}@refs%2Fpr%2F1/model.bin") == weights

    bob.upload_file(path_or_fileobj=b"notes\n", path_in_repo="NOTES.md", repo_id=base_repo,
                    revision="refs/pr/1", commit_message="Add notes")
    commits = api.list_repo_commits(base_repo, revision="refs/pr/1")
    assert [c.title for c in commits[:2]] == ["Add notes", "Add weights"]

    details = api.get_discussion_details(base_repo, 1)
    assert details.is_pull_request and details.status == "open" and details.author == other.name
    assert details.target_branch == "refs/heads/main" and details.conflicting_files == []
    assert [e.summary for e in details.events if e.type == "commit"] == ["Add weights",
                                                                         "Add notes"]
    assert "+notes" in (details.diff or "") and "model.bin" in (details.diff or "")

    # bob may not merge; the owner may.
    with pytest.raises(HfHubHTTPError) as err:
        bob.merge_pull_request(base_repo, 1)
    assert err.value.response.status_code == 403
    api.merge_pull_request(base_repo, 1, comment="Thanks!")
    assert sorted(api.list_repo_files(base_repo)) == [".gitattributes", "NOTES.md", "README.md",
                                                      "model.bin"]
    merged = api.get_discussion_details(base_repo, 1)
    assert merged.status == "merged" and merged.merge_commit_oid is not None
    assert api.list_repo_commits(base_repo)[0].commit_id == merged.merge_commit_oid
    assert _git_commit(server, merged.merge_commit_oid).parents[1].decode() == \
        commits[0].commit_id
    path = hf_hub_download(base_repo, "model.bin", cache_dir=cache_dir)
    assert Path(path).read_bytes() == weights

    # A merged PR takes no more commits and cannot be reopened.
    with pytest.raises(HfHubHTTPError):
        bob.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=base_repo,
                        revision="refs/pr/1")
    with pytest.raises(HfHubHTTPError):
        api.change_discussion_status(base_repo, 1, "open")


def _git_commit(server, sha: str):  # type: ignore[no-untyped-def]
    """The commit object `sha` as stored in the hub's git repositories."""
    from dulwich.repo import Repo as Git

    for path in server.data.glob("**/*.git"):
        repo = Git(str(path))
        if sha.encode() in repo.object_store:
            return repo[sha.encode()]
    raise AssertionError(f"{sha} is in no repository")


def test_the_merge_commit_has_both_parents(server, api, bob, base_repo):  # type: ignore[no-untyped-def]
    bob.upload_file(path_or_fileobj=b"a\n", path_in_repo="a.txt", repo_id=base_repo,
                    create_pr=True)
    api.upload_file(path_or_fileobj=b"b\n", path_in_repo="b.txt", repo_id=base_repo)
    main_head = api.list_repo_commits(base_repo)[0].commit_id
    pr_head = api.list_repo_commits(base_repo, revision="refs/pr/1")[0].commit_id
    api.merge_pull_request(base_repo, 1)
    merge = api.get_discussion_details(base_repo, 1).merge_commit_oid
    assert merge is not None and api.list_repo_commits(base_repo)[0].commit_id == merge
    assert [p.decode() for p in _git_commit(server, merge).parents] == [main_head, pr_head]
    assert sorted(api.list_repo_files(base_repo)) == [".gitattributes", "README.md", "a.txt",
                                                      "b.txt"]


def test_a_conflicting_merge_is_refused(api, bob, base_repo):  # type: ignore[no-untyped-def]
    bob.upload_file(path_or_fileobj=b"theirs\n", path_in_repo="README.md", repo_id=base_repo,
                    create_pr=True)
    api.upload_file(path_or_fileobj=b"ours\n", path_in_repo="README.md", repo_id=base_repo)
    details = api.get_discussion_details(base_repo, 1)
    assert details.conflicting_files == ["README.md"]
    with pytest.raises(HfHubHTTPError) as err:
        api.merge_pull_request(base_repo, 1)
    assert err.value.response.status_code == 409
    assert "README.md" in str(err.value)
    assert api.get_discussion_details(base_repo, 1).status == "open"
    with open(api.hf_hub_download(base_repo, "README.md"), "rb") as fh:
        assert fh.read() == b"ours\n"


def test_pushing_to_a_pr_is_for_its_author_and_writers(  # type: ignore[no-untyped-def]
        server, api, bob, user_factory, base_repo):
    bob.create_commit(base_repo, [CommitOperationAdd("p.txt", b"1")], commit_message="p",
                      create_pr=True)
    carol = HfApi(endpoint=server.endpoint, token=user_factory("carol").token)
    with pytest.raises(HfHubHTTPError) as err:
        carol.upload_file(path_or_fileobj=b"2", path_in_repo="p.txt", repo_id=base_repo,
                          revision="refs/pr/1")
    assert err.value.response.status_code == 403
    # Nobody but writers moves a branch.
    with pytest.raises(HfHubHTTPError) as err:
        bob.upload_file(path_or_fileobj=b"2", path_in_repo="p.txt", repo_id=base_repo)
    assert err.value.response.status_code == 403
    api.upload_file(path_or_fileobj=b"owner", path_in_repo="p.txt", repo_id=base_repo,
                    revision="refs/pr/1")
    # Read tokens and visitors cannot open pull requests.
    read_only = HfApi(endpoint=server.endpoint, token=user_factory("reader").read_token)
    with pytest.raises(HfHubHTTPError) as err:
        read_only.upload_file(path_or_fileobj=b"3", path_in_repo="q.txt", repo_id=base_repo,
                              create_pr=True)
    assert err.value.response.status_code == 403
    anonymous = HfApi(endpoint=server.endpoint, token=False)
    with pytest.raises(HfHubHTTPError) as err:
        anonymous.create_discussion(base_repo, "hi")
    assert err.value.response.status_code == 401
    assert [d.num for d in api.get_repo_discussions(base_repo)] == [1]


def test_discussions_comment_rename_close_reopen(api, bob, other, base_repo):  # type: ignore[no-untyped-def]
    d = bob.create_discussion(base_repo, "Question about the data",
                              description="Where does it come from?")
    assert d.num == 1 and not d.is_pull_request and d.status == "open"
    c = api.comment_discussion(base_repo, 1, "From **Iceland**.")
    assert c.content == "From **Iceland**." and "<strong>Iceland</strong>" in c.rendered
    xss = bob.comment_discussion(base_repo, 1, "<script>alert(1)</script><img src=x onerror=y>")
    assert "<script" not in xss.rendered and "onerror" not in xss.rendered
    edited = bob.edit_discussion_comment(base_repo, 1, xss.id, "Never mind.")
    assert edited.content == "Never mind." and edited.edited
    with pytest.raises(HfHubHTTPError) as err:  # only its author edits a comment
        api.edit_discussion_comment(base_repo, 1, xss.id, "Hacked")
    assert err.value.response.status_code == 403
    hidden = api.hide_discussion_comment(base_repo, 1, xss.id)
    assert hidden.hidden and "Never mind" not in hidden.content

    renamed = bob.rename_discussion(base_repo, 1, "Where is the data from?")
    assert renamed.old_title == "Question about the data"
    assert bob.change_discussion_status(base_repo, 1, "closed").new_status == "closed"
    assert [d.num for d in api.get_repo_discussions(base_repo, discussion_status="open")] == []
    api.change_discussion_status(base_repo, 1, "open", comment="Reopening")
    pr = bob.create_pull_request(base_repo, "Draft change")
    assert pr.num == 2 and pr.status == "draft" and pr.git_reference == "refs/pr/2"
    listed = list(api.get_repo_discussions(base_repo))
    assert [(d.num, d.is_pull_request) for d in listed] == [(2, True), (1, False)]
    assert [d.num for d in api.get_repo_discussions(
        base_repo, discussion_type="pull_request")] == [2]
    assert [d.num for d in api.get_repo_discussions(base_repo, author=other.name)] == [2, 1]
    details = api.get_discussion_details(base_repo, 1)
    kinds = [e.type for e in details.events]
    assert kinds == ["comment", "comment", "comment", "title-change", "status-change",
                     "comment", "status-change"]
    assert details.title == "Where is the data from?" and details.status == "open"
    # A stranger may not close someone else's thread.
    with pytest.raises(HfHubHTTPError) as err:
        HfApi(endpoint=api.endpoint, token=api.token).get_discussion_details(base_repo, 99)
    assert err.value.response.status_code == 404


def test_many_threads_page(api, bob, base_repo):  # type: ignore[no-untyped-def]
    for i in range(55):
        httpx.post(f"{api.endpoint}/api/models/{base_repo}/discussions",
                   json={"title": f"t{i}", "description": ""},
                   headers={"Authorization": f"Bearer {bob.token}"}).raise_for_status()
    assert [d.num for d in api.get_repo_discussions(base_repo)] == list(range(55, 0, -1))


def test_private_repos_threads_are_invisible(server, api, bob, repo_factory):  # type: ignore[no-untyped-def]
    repo = repo_factory(private=True)
    api.create_discussion(repo, "Internal")
    missing = f"{api.whoami()['name']}/no-such-{uuid.uuid4().hex[:6]}"
    for target in (repo, missing):
        with pytest.raises(RepositoryNotFoundError):
            list(bob.get_repo_discussions(target))
        with pytest.raises(RepositoryNotFoundError):
            bob.get_discussion_details(target, 1)
        with pytest.raises(RepositoryNotFoundError):
            bob.comment_discussion(target, 1, "hi")
        with pytest.raises(RepositoryNotFoundError):
            bob.create_discussion(target, "hi")
        with pytest.raises(RepositoryNotFoundError):
            bob.upload_file(path_or_fileobj=b"x", path_in_repo="x", repo_id=target,
                            create_pr=True)
    answers = [httpx.get(f"{server.endpoint}/api/models/{r}/discussions/1",
                         headers={"Authorization": f"Bearer {bob.token}"}) for r in (repo, missing)]
    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].json() == answers[1].json()
    assert answers[0].headers["x-error-code"] == answers[1].headers["x-error-code"]
