"""The first thing a new user does: log in, create a repo, upload, download."""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import hf_hub_download


def test_whoami(api, user):
    me = api.whoami()
    assert me["name"] == user.name
    assert me["auth"]["accessToken"]["role"] == "write"


def test_upload_then_download(api, repo_factory, cache_dir):
    repo_id = repo_factory()
    big = os.urandom(1024 * 1024)
    api.upload_file(path_or_fileobj=b"hello\n", path_in_repo="hello.txt", repo_id=repo_id)
    api.upload_file(path_or_fileobj=big, path_in_repo="weights.bin", repo_id=repo_id)
    path = hf_hub_download(repo_id, "hello.txt", cache_dir=cache_dir, token=api.token)
    assert Path(path).read_bytes() == b"hello\n"
    path = hf_hub_download(repo_id, "weights.bin", cache_dir=cache_dir, token=api.token)
    assert Path(path).read_bytes() == big
