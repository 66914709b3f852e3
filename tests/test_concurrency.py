"""Concurrent writers on one branch: no lost update, and parentCommit is a real lock."""

from __future__ import annotations

import os

import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.utils import HfHubHTTPError
from threads import parallel

N = 8
pytestmark = pytest.mark.usefixtures("no_server_errors")


def test_parallel_uploads_all_land(server, user, repo_factory, cache_dir):
    repo_id = repo_factory()
    before = HfApi(endpoint=server.endpoint, token=user.token).list_repo_commits(repo_id)

    def upload(i):
        api = HfApi(endpoint=server.endpoint, token=user.token)
        return api.upload_file(path_or_fileobj=f"file {i}\n".encode(),
                               path_in_repo=f"parallel/{i}.txt", repo_id=repo_id,
                               commit_message=f"writer {i}")

    results = parallel(N, upload)
    errors = [r for r in results if isinstance(r, Exception)]
    assert not errors, errors

    api = HfApi(endpoint=server.endpoint, token=user.token)
    assert {f"parallel/{i}.txt" for i in range(N)} <= set(api.list_repo_files(repo_id))
    commits = api.list_repo_commits(repo_id)
    assert len(commits) == len(before) + N
    new = commits[:N]
    assert {c.commit_id for c in new} == {r.oid for r in results}
    assert sorted(c.title for c in new) == sorted(f"writer {i}" for i in range(N))
    assert commits[N].commit_id == before[0].commit_id
    # History is linear: each new commit's tree contains everything before it.
    for i in range(N):
        p = hf_hub_download(repo_id, f"parallel/{i}.txt", cache_dir=cache_dir, token=user.token)
        with open(p, "rb") as fh:
            assert fh.read() == f"file {i}\n".encode()


def test_parallel_lfs_uploads_all_land(server, user, repo_factory):
    repo_id = repo_factory()
    blobs = [os.urandom(4096) + b"\x00" for _ in range(4)]

    def upload(i):
        api = HfApi(endpoint=server.endpoint, token=user.token)
        return api.upload_file(path_or_fileobj=blobs[i], path_in_repo=f"w{i}.bin",
                               repo_id=repo_id)

    results = parallel(4, upload)
    assert not [r for r in results if isinstance(r, Exception)], results
    api = HfApi(endpoint=server.endpoint, token=user.token)
    infos = {e.path: e for e in api.get_paths_info(repo_id, [f"w{i}.bin" for i in range(4)])}
    assert len(infos) == 4
    for i in range(4):
        assert infos[f"w{i}.bin"].size == len(blobs[i])


def test_same_parent_exactly_one_wins(server, user, repo_factory):
    repo_id = repo_factory()
    api = HfApi(endpoint=server.endpoint, token=user.token)
    parent = api.list_repo_commits(repo_id)[0].commit_id
    n = 4

    def commit(i):
        return HfApi(endpoint=server.endpoint, token=user.token).create_commit(
            repo_id, operations=[CommitOperationAdd("contended.txt", f"writer {i}".encode())],
            commit_message=f"writer {i}", parent_commit=parent)

    results = parallel(n, commit)
    wins = [r for r in results if not isinstance(r, Exception)]
    losses = [r for r in results if isinstance(r, Exception)]
    assert len(wins) == 1, results
    assert len(losses) == n - 1
    for e in losses:
        assert isinstance(e, HfHubHTTPError), e
        assert e.response.status_code == 412
    commits = api.list_repo_commits(repo_id)
    assert commits[0].commit_id == wins[0].oid
    assert commits[1].commit_id == parent
    winner = results.index(wins[0])
    (entry,) = api.get_paths_info(repo_id, ["contended.txt"])
    assert entry.size == len(f"writer {winner}")
