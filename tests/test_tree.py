"""Trees, paths-info, refs, commit history, branches and tags."""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete, constants
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.hf_api import RepoFile, RepoFolder


def _git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


LFS_DATA = b"\x00\x01binary" * 1000


@pytest.fixture
def tree_repo(api, repo_factory, lfs_client):
    """a.txt, w.bin (LFS), sub/b.txt, sub/deep/c.txt, other/d.txt, in two commits."""
    repo_id = repo_factory()
    first = api.create_commit(repo_id, operations=[
        CommitOperationAdd("a.txt", b"aaa"),
        CommitOperationAdd("sub/b.txt", b"bb"),
        CommitOperationAdd("w.bin", LFS_DATA),
    ], commit_message="first").oid
    second = api.create_commit(repo_id, operations=[
        CommitOperationAdd("sub/deep/c.txt", b"c"),
        CommitOperationAdd("other/d.txt", b"dddd"),
    ], commit_message="second", commit_description="more files").oid
    return repo_id, first, second


# --- list_repo_files / list_repo_tree -------------------------------------------------------


def test_list_repo_files(api, tree_repo):
    repo_id, first, _ = tree_repo
    assert sorted(api.list_repo_files(repo_id)) == [
        ".gitattributes", "a.txt", "other/d.txt", "sub/b.txt", "sub/deep/c.txt", "w.bin"]
    assert sorted(api.list_repo_files(repo_id, revision=first)) == [
        ".gitattributes", "a.txt", "sub/b.txt", "w.bin"]


def test_list_repo_tree_top_level(api, tree_repo):
    repo_id, _, _ = tree_repo
    entries = {e.path: e for e in api.list_repo_tree(repo_id)}
    assert set(entries) == {".gitattributes", "a.txt", "w.bin", "sub", "other"}
    assert isinstance(entries["sub"], RepoFolder)
    assert isinstance(entries["a.txt"], RepoFile)
    a = entries["a.txt"]
    assert a.size == 3
    assert a.blob_id == _git_blob_sha(b"aaa")
    assert a.lfs is None
    assert a.last_commit is None  # only with expand
    w = entries["w.bin"]
    assert w.size == len(LFS_DATA)  # the real size, not the pointer's
    assert w.lfs is not None
    assert w.lfs.sha256 == hashlib.sha256(LFS_DATA).hexdigest()
    assert w.lfs.size == len(LFS_DATA)
    assert w.lfs.pointer_size > 0
    assert w.xet_hash is None
    assert len(entries["sub"].tree_id) == 40


def test_list_repo_tree_subfolder(api, tree_repo):
    repo_id, _, _ = tree_repo
    entries = {e.path: type(e).__name__ for e in api.list_repo_tree(repo_id, "sub")}
    # Paths are full repo paths.
    assert entries == {"sub/b.txt": "RepoFile", "sub/deep": "RepoFolder"}
    assert [e.path for e in api.list_repo_tree(repo_id, "sub/deep")] == ["sub/deep/c.txt"]
    # A trailing slash is tolerated.
    assert [e.path for e in api.list_repo_tree(repo_id, "sub/deep/")] == ["sub/deep/c.txt"]


def test_list_repo_tree_recursive_includes_folders(api, tree_repo):
    repo_id, _, _ = tree_repo
    entries = {e.path: type(e).__name__ for e in api.list_repo_tree(repo_id, recursive=True)}
    assert entries == {
        ".gitattributes": "RepoFile", "a.txt": "RepoFile", "w.bin": "RepoFile",
        "sub": "RepoFolder", "sub/b.txt": "RepoFile", "sub/deep": "RepoFolder",
        "sub/deep/c.txt": "RepoFile", "other": "RepoFolder", "other/d.txt": "RepoFile",
    }
    sub = {e.path for e in api.list_repo_tree(repo_id, "sub", recursive=True)}
    assert sub == {"sub/b.txt", "sub/deep", "sub/deep/c.txt"}


def test_list_repo_tree_at_old_revision(api, tree_repo):
    repo_id, first, _ = tree_repo
    assert {e.path for e in api.list_repo_tree(repo_id, revision=first)} == {
        ".gitattributes", "a.txt", "w.bin", "sub"}
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree(repo_id, "other", revision=first))


def test_list_repo_tree_expand_last_commit(api, tree_repo):
    repo_id, first, second = tree_repo
    entries = {e.path: e for e in api.list_repo_tree(repo_id, expand=True, recursive=True)}
    assert entries["a.txt"].last_commit.oid == first
    assert entries["a.txt"].last_commit.title == "first"
    assert entries["w.bin"].last_commit.oid == first
    assert entries["sub/deep/c.txt"].last_commit.oid == second
    assert entries["sub/deep/c.txt"].last_commit.title == "second"
    # A folder's last commit is the newest commit touching anything below it.
    assert entries["sub"].last_commit.oid == second
    assert entries["other"].last_commit.oid == second
    date = entries["a.txt"].last_commit.date
    assert date.tzinfo is not None
    assert abs(datetime.now(UTC) - date) < timedelta(minutes=5)
    # Files carry a security status with the keys the client reads.
    assert entries["a.txt"].security is not None
    assert entries["a.txt"].security.safe in (True, False)


def test_tree_on_file_path_returns_that_file(api, tree_repo):
    repo_id, _, _ = tree_repo
    entries = list(api.list_repo_tree(repo_id, "sub/b.txt"))
    assert len(entries) == 1
    assert isinstance(entries[0], RepoFile)
    assert entries[0].path == "sub/b.txt"
    assert entries[0].size == 2


def test_tree_on_missing_path(api, tree_repo, server):
    repo_id, _, _ = tree_repo
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree(repo_id, "nope"))
    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree(repo_id, "sub/nope/deeper"))
    r = httpx.get(f"{server.endpoint}/api/models/{repo_id}/tree/main/{quote('sub/nope', safe='')}")
    assert r.status_code == 404
    assert r.headers["X-Error-Code"] == "EntryNotFound"


def test_tree_errors(api, tree_repo, user):
    repo_id, _, _ = tree_repo
    with pytest.raises(RevisionNotFoundError):
        list(api.list_repo_tree(repo_id, revision="no-such-branch"))
    with pytest.raises(RepositoryNotFoundError):
        list(api.list_repo_tree(f"{user.name}/no-such-repo-xyz"))
    with pytest.raises(RepositoryNotFoundError):
        list(api.list_repo_tree(repo_id, repo_type="dataset"))


def test_tree_path_encoded_as_one_segment(api, tree_repo, server):
    repo_id, _, _ = tree_repo
    base = f"{server.endpoint}/api/models/{repo_id}/tree/main"
    one = httpx.get(f"{base}/sub%2Fdeep").json()
    two = httpx.get(f"{base}/sub/deep").json()
    assert [e["path"] for e in one] == [e["path"] for e in two] == ["sub/deep/c.txt"]


def test_tree_lists_xet_hash_of_xet_files_only(api, tree_repo, server, monkeypatch):
    repo_id, _, _ = tree_repo
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    api.upload_file(path_or_fileobj=LFS_DATA + b"via xet", path_in_repo="x.bin",
                    repo_id=repo_id)
    body = httpx.get(f"{server.endpoint}/api/models/{repo_id}/tree/main",
                     params={"recursive": "true", "expand": "true"}).json()
    assert body
    for e in body:
        assert ("xetHash" in e) == (e["path"] == "x.bin"), e
        assert len(e["oid"]) == 40
    (info,) = api.get_paths_info(repo_id, ["x.bin"])
    assert info.xet_hash is not None and len(info.xet_hash) == 64


def test_tree_pagination(api, repo_factory, server):
    """60 files in one commit: expanded pages are 50 entries, so the client follows Link."""
    repo_id = repo_factory()
    ops = [CommitOperationAdd(f"many/f{i:03d}.txt", f"file {i}".encode()) for i in range(60)]
    sha = api.create_commit(repo_id, operations=ops, commit_message="many").oid
    expanded = list(api.list_repo_tree(repo_id, "many", expand=True))
    assert sorted(e.path for e in expanded) == [f"many/f{i:03d}.txt" for i in range(60)]
    assert all(e.last_commit.oid == sha for e in expanded)
    assert all(e.size == len(f"file {int(e.path[6:9])}".encode()) for e in expanded)
    plain = list(api.list_repo_tree(repo_id, recursive=True))
    assert len(plain) == 60 + 2  # files, the folder, .gitattributes
    # The wire format: 50 entries, then an absolute Link keeping every parameter.
    url = f"{server.endpoint}/api/models/{repo_id}/tree/main/many"
    r = httpx.get(url, params={"expand": "true", "recursive": "true"})
    assert len(r.json()) == 50
    nxt = r.links["next"]["url"]
    assert nxt.startswith(f"{server.endpoint}/api/models/{repo_id}/tree/main/many?")
    q = parse_qs(urlsplit(nxt).query)
    assert q["expand"] == ["true"] and q["recursive"] == ["true"]
    r2 = httpx.get(nxt)
    assert len(r2.json()) == 10
    assert "Link" not in r2.headers
    assert {e["path"] for e in r.json()} | {e["path"] for e in r2.json()} == {
        e.path for e in expanded}


# --- paths-info ------------------------------------------------------------------------------


def test_get_paths_info(api, tree_repo):
    repo_id, first, _ = tree_repo
    infos = {e.path: e for e in api.get_paths_info(
        repo_id, ["a.txt", "w.bin", "sub", "missing.txt", "sub/missing", "other/d.txt"])}
    assert set(infos) == {"a.txt", "w.bin", "sub", "other/d.txt"}  # missing ones omitted
    assert isinstance(infos["sub"], RepoFolder)
    assert infos["a.txt"].size == 3
    assert infos["a.txt"].blob_id == _git_blob_sha(b"aaa")
    assert infos["w.bin"].lfs.sha256 == hashlib.sha256(LFS_DATA).hexdigest()
    assert infos["w.bin"].size == len(LFS_DATA)
    assert infos["a.txt"].last_commit is None
    old = {e.path for e in api.get_paths_info(repo_id, ["a.txt", "other/d.txt"], revision=first)}
    assert old == {"a.txt"}


def test_get_paths_info_expand(api, tree_repo):
    repo_id, first, second = tree_repo
    infos = {e.path: e for e in api.get_paths_info(repo_id, ["a.txt", "other"], expand=True)}
    assert infos["a.txt"].last_commit.oid == first
    assert infos["other"].last_commit.oid == second


def test_get_paths_info_errors(api, tree_repo, user):
    repo_id, _, _ = tree_repo
    assert api.get_paths_info(repo_id, ["nothing", "here"]) == []
    with pytest.raises(RevisionNotFoundError):
        api.get_paths_info(repo_id, ["a.txt"], revision="nope")
    with pytest.raises(RepositoryNotFoundError):
        api.get_paths_info(f"{user.name}/no-such-repo-xyz", ["a.txt"])


# --- refs ------------------------------------------------------------------------------------


def test_list_repo_refs(api, tree_repo):
    repo_id, first, second = tree_repo
    refs = api.list_repo_refs(repo_id)
    assert [(b.name, b.ref, b.target_commit) for b in refs.branches] == [
        ("main", "refs/heads/main", second)]
    assert refs.tags == []
    assert refs.converts == []
    assert refs.pull_requests is None
    api.create_branch(repo_id, branch="dev", revision=first)
    api.create_tag(repo_id, tag="v1.0", revision=first)
    api.create_tag(repo_id, tag="v2.0", tag_message="annotated")
    refs = api.list_repo_refs(repo_id, include_pull_requests=True)
    assert {(b.name, b.ref, b.target_commit) for b in refs.branches} == {
        ("main", "refs/heads/main", second), ("dev", "refs/heads/dev", first)}
    # Annotated tags are peeled to the commit.
    assert {(t.name, t.ref, t.target_commit) for t in refs.tags} == {
        ("v1.0", "refs/tags/v1.0", first), ("v2.0", "refs/tags/v2.0", second)}
    assert refs.pull_requests == []


# --- commits ---------------------------------------------------------------------------------


def test_list_repo_commits_newest_first(api, tree_repo, user):
    repo_id, first, second = tree_repo
    commits = api.list_repo_commits(repo_id)
    assert [c.commit_id for c in commits][:2] == [second, first]
    assert len(commits) == 3  # plus the initial commit
    assert commits[0].title == "second"
    assert commits[0].message == "more files"
    assert commits[1].title == "first"
    assert commits[0].authors == [user.name]
    assert commits[0].created_at >= commits[1].created_at >= commits[2].created_at
    assert commits[0].created_at.tzinfo is not None
    assert [c.commit_id for c in api.list_repo_commits(repo_id, revision=first)] == [
        first, commits[2].commit_id]


def test_list_repo_commits_formatted(api, tree_repo):
    repo_id, _, _ = tree_repo
    commits = api.list_repo_commits(repo_id, formatted=True)
    assert commits[0].formatted_title is not None
    assert "second" in commits[0].formatted_title


def test_list_repo_commits_paginates(api, repo_factory, server):
    repo_id = repo_factory()
    shas = [api.upload_file(path_or_fileobj=str(i).encode(), path_in_repo="n.txt",
                            repo_id=repo_id).oid for i in range(5)]
    r = httpx.get(f"{server.endpoint}/api/models/{repo_id}/commits/main", params={"limit": 2})
    assert [c["id"] for c in r.json()] == shas[::-1][:2]
    assert "rel=\"next\"" in r.headers["Link"]
    ids = []
    url: str | None = r.request.url.__str__()
    while url:
        page = httpx.get(url)
        ids += [c["id"] for c in page.json()]
        url = page.links.get("next", {}).get("url")
    assert ids[:5] == shas[::-1]
    assert len(ids) == 6
    assert [c.commit_id for c in api.list_repo_commits(repo_id)] == ids


def test_list_repo_commits_errors(api, tree_repo):
    repo_id, _, _ = tree_repo
    with pytest.raises(RevisionNotFoundError):
        api.list_repo_commits(repo_id, revision="nope")


# --- branches and tags -----------------------------------------------------------------------


def test_create_and_delete_branch(api, tree_repo):
    repo_id, first, second = tree_repo
    api.create_branch(repo_id, branch="dev")
    assert api.model_info(repo_id, revision="dev").sha == second
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_branch(repo_id, branch="dev")
    assert exc.value.response.status_code == 409
    api.create_branch(repo_id, branch="dev", exist_ok=True)
    # The branch moves on its own.
    sha = api.upload_file(path_or_fileobj=b"x", path_in_repo="dev.txt", repo_id=repo_id,
                          revision="dev").oid
    assert api.model_info(repo_id, revision="dev").sha == sha
    assert api.model_info(repo_id).sha == second
    api.delete_branch(repo_id, branch="dev")
    assert {b.name for b in api.list_repo_refs(repo_id).branches} == {"main"}
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo_id, revision="dev")
    with pytest.raises(HfHubHTTPError) as exc:
        api.delete_branch(repo_id, branch="dev")
    assert exc.value.response.status_code == 404


def test_create_branch_from_revision(api, tree_repo):
    repo_id, first, _ = tree_repo
    api.create_branch(repo_id, branch="old", revision=first)
    assert api.list_repo_refs(repo_id).branches
    assert {b.name: b.target_commit for b in api.list_repo_refs(repo_id).branches}["old"] == first
    with pytest.raises(RevisionNotFoundError):
        api.create_branch(repo_id, branch="bad", revision="nope")


def test_branch_with_slash(api, tree_repo, server):
    repo_id, first, _ = tree_repo
    api.create_branch(repo_id, branch="feature/x", revision=first)
    assert api.model_info(repo_id, revision="feature/x").sha == first
    assert {b.name for b in api.list_repo_refs(repo_id).branches} == {"main", "feature/x"}
    sha = api.upload_file(path_or_fileobj=b"f", path_in_repo="f.txt", repo_id=repo_id,
                          revision="feature/x").oid
    assert "f.txt" in api.list_repo_files(repo_id, revision="feature/x")
    assert "f.txt" not in api.list_repo_files(repo_id)
    r = httpx.get(f"{server.endpoint}/api/models/{repo_id}/revision/refs%2Fheads%2Ffeature%2Fx")
    assert r.json()["sha"] == sha
    api.delete_branch(repo_id, branch="feature/x")
    assert {b.name for b in api.list_repo_refs(repo_id).branches} == {"main"}


def test_cannot_delete_main(api, tree_repo):
    repo_id, _, _ = tree_repo
    with pytest.raises(HfHubHTTPError) as exc:
        api.delete_branch(repo_id, branch="main")
    assert exc.value.response.status_code == 403
    assert api.revision_exists(repo_id, "main")


def test_invalid_branch_name(api, tree_repo):
    repo_id, _, _ = tree_repo
    for bad in ("a..b", "has space", "x.lock", "-dash"):
        with pytest.raises(HfHubHTTPError) as exc:
            api.create_branch(repo_id, branch=bad)
        assert exc.value.response.status_code == 400, bad


def test_create_and_delete_tag(api, tree_repo):
    repo_id, first, second = tree_repo
    api.create_tag(repo_id, tag="v1", revision=first)
    api.create_tag(repo_id, tag="latest")
    assert api.model_info(repo_id, revision="v1").sha == first
    assert api.model_info(repo_id, revision="latest").sha == second
    assert sorted(api.list_repo_files(repo_id, revision="v1")) == [
        ".gitattributes", "a.txt", "sub/b.txt", "w.bin"]
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_tag(repo_id, tag="v1")
    assert exc.value.response.status_code == 409
    api.create_tag(repo_id, tag="v1", exist_ok=True)
    # Still at the first commit.
    assert api.model_info(repo_id, revision="v1").sha == first
    api.delete_tag(repo_id, tag="v1")
    assert {t.name for t in api.list_repo_refs(repo_id).tags} == {"latest"}
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo_id, revision="v1")
    with pytest.raises(HfHubHTTPError) as exc:
        api.delete_tag(repo_id, tag="v1")
    assert exc.value.response.status_code == 404


def test_tag_does_not_move_with_branch(api, tree_repo):
    repo_id, _, second = tree_repo
    api.create_tag(repo_id, tag="pinned")
    api.create_commit(repo_id, operations=[CommitOperationDelete("a.txt")],
                      commit_message="drop a")
    assert api.model_info(repo_id, revision="pinned").sha == second
    assert "a.txt" in api.list_repo_files(repo_id, revision="pinned")
    assert "a.txt" not in api.list_repo_files(repo_id)


def test_annotated_tag_resolves_to_commit(api, tree_repo):
    repo_id, first, _ = tree_repo
    api.create_tag(repo_id, tag="release", revision=first, tag_message="Release 1")
    assert api.model_info(repo_id, revision="release").sha == first
    assert [c.commit_id for c in api.list_repo_commits(repo_id, revision="release")][0] == first


def test_branch_and_tag_on_dataset(api, repo_factory):
    repo_id = repo_factory(repo_type="dataset")
    api.upload_file(path_or_fileobj=b"d", path_in_repo="d.csv", repo_id=repo_id,
                    repo_type="dataset")
    api.create_branch(repo_id, branch="dev", repo_type="dataset")
    api.create_tag(repo_id, tag="v1", repo_type="dataset")
    refs = api.list_repo_refs(repo_id, repo_type="dataset")
    assert {b.name for b in refs.branches} == {"main", "dev"}
    assert [t.name for t in refs.tags] == ["v1"]
    api.delete_branch(repo_id, branch="dev", repo_type="dataset")
    api.delete_tag(repo_id, tag="v1", repo_type="dataset")
    refs = api.list_repo_refs(repo_id, repo_type="dataset")
    assert [b.name for b in refs.branches] == ["main"] and refs.tags == []


def test_branch_on_other_users_repo_is_refused(api, tree_repo, server, other):
    from huggingface_hub import HfApi

    repo_id, _, _ = tree_repo
    bob = HfApi(endpoint=server.endpoint, token=other.token)
    with pytest.raises(HfHubHTTPError) as exc:
        bob.create_branch(repo_id, branch="evil")
    assert exc.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as exc:
        bob.create_tag(repo_id, tag="evil")
    assert exc.value.response.status_code == 403
    # Reading is fine.
    assert [b.name for b in bob.list_repo_refs(repo_id).branches] == ["main"]


def test_history_timestamps_are_ordered(api, repo_factory):
    repo_id = repo_factory()
    api.upload_file(path_or_fileobj=b"1", path_in_repo="t.txt", repo_id=repo_id)
    time.sleep(1.1)
    api.upload_file(path_or_fileobj=b"2", path_in_repo="t.txt", repo_id=repo_id)
    commits = api.list_repo_commits(repo_id)
    assert commits[0].created_at > commits[1].created_at
