"""A mirror whose upstream sends what no hub should: git objects no commit here could
hold, info with fields missing, repos taken back. Each is refused or hidden with a clean
answer, never a 500, and a repo mirrored before keeps being served."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dulwich.objects import Blob, Commit, Tag
from mirrorkit import FakeUpstream

TTL = 2.0
README = b"---\nlicense: mit\n---\n# fine\n"


@pytest.fixture(scope="module")
def fake() -> Iterator[FakeUpstream]:
    up = FakeUpstream()
    yield up
    up.close()


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory, unstarted_server: Any,
           fake: FakeUpstream) -> Iterator[Any]:
    data = tmp_path_factory.mktemp("mirror-of-fake")
    srv = unstarted_server(data, upstream_url=fake.endpoint, mirror_ttl=str(TTL),
                           rate_limit_anonymous="0")
    srv.start()
    yield srv
    srv.stop()


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def _info(mirror: Any, name: str) -> httpx.Response:
    return httpx.get(f"{mirror.endpoint}/api/models/evil/{name}", timeout=60)


@pytest.mark.usefixtures("no_server_errors")
@pytest.mark.parametrize("kind", ["blob-main", "tag-main", "gitlink", "symlink",
                                  "non-utf8", "dot-dot", "no-git"])
def test_what_no_commit_here_could_hold_is_refused(fake: FakeUpstream, mirror: Any,
                                                   kind: str) -> None:
    name = _name(kind)
    if kind == "no-git":
        fake.info[name] = {"id": f"evil/{name}", "private": False, "gated": False}
    else:
        files: dict[bytes, Any] = {b"README.md": README}
        if kind == "gitlink":
            files[b"sub"] = (0o160000, b"1" * 40)
        elif kind == "symlink":
            files[b"link"] = (0o120000, Blob.from_string(b"/etc/passwd").id)
        elif kind == "non-utf8":
            files[b"\xff\xfe.txt"] = b"x"
        elif kind == "dot-dot":
            files[b".."] = b"x"
        repo = fake.repo(name, files)
        if kind == "symlink":
            repo.object_store.add_object(Blob.from_string(b"/etc/passwd"))
        if kind == "blob-main":
            blob = Blob.from_string(b"not a commit")
            repo.object_store.add_object(blob)
            repo.refs[b"refs/heads/main"] = blob.id
        if kind == "tag-main":
            tag = Tag()
            tag.object = (Commit, repo.refs[b"refs/heads/main"])
            tag.name, tag.tagger, tag.message = b"v1", b"x <x@example.org>", b"v1"
            tag.tag_time, tag.tag_timezone = 1, 0
            repo.object_store.add_object(tag)
            repo.refs[b"refs/heads/main"] = tag.id
    r = _info(mirror, name)
    assert r.status_code == 503, r.text
    assert r.headers["X-Error-Code"] == "MirrorUnavailable"


@pytest.mark.usefixtures("no_server_errors")
def test_a_branch_naming_no_commit_is_left_out(fake: FakeUpstream, mirror: Any) -> None:
    name = _name("side")
    repo = fake.repo(name, {b"README.md": README})
    blob = Blob.from_string(b"zz")
    repo.object_store.add_object(blob)
    repo.refs[b"refs/heads/side"] = blob.id
    r = _info(mirror, name)
    assert r.status_code == 200
    refs = httpx.get(f"{mirror.endpoint}/api/models/evil/{name}/refs").json()
    assert [b["name"] for b in refs["branches"]] == ["main"]
    assert httpx.get(f"{mirror.endpoint}/api/models/evil/{name}/tree/side").status_code == 404


@pytest.mark.usefixtures("no_server_errors")
def test_a_mirrored_repo_survives_a_bad_update(fake: FakeUpstream, mirror: Any) -> None:
    name = _name("flip")
    repo = fake.repo(name, {b"README.md": README, b"config.json": b"{}"})
    sha = _info(mirror, name).json()["sha"]
    blob = Blob.from_string(b"y")
    repo.object_store.add_object(blob)
    repo.refs[b"refs/heads/main"] = FakeUpstream.commit(
        repo, {b"README.md": README, b"sub": (0o160000, b"2" * 40)},
        parents=(repo.refs[b"refs/heads/main"],))
    time.sleep(TTL + 0.5)
    for _ in range(2):  # the bad update is refused; the repo is served as it was
        r = _info(mirror, name)
        assert r.status_code == 200 and r.json()["sha"] == sha
        got = httpx.get(f"{mirror.endpoint}/evil/{name}/resolve/main/config.json")
        assert got.status_code == 200 and got.content == b"{}"
    [row] = [r for r in json.loads(mirror.hver("mirror", "status", "--json"))
             if r["id"] == f"evil/{name}"]
    assert "sub" in row["lastError"]


@pytest.mark.usefixtures("no_server_errors")
def test_info_with_fields_missing_is_read_strictly(fake: FakeUpstream, mirror: Any) -> None:
    unsaid, gate = _name("unsaid"), _name("gate")
    fake.repo(unsaid, {b"README.md": README})
    del fake.info[unsaid]["private"]  # type: ignore[index]
    fake.repo(gate, {b"README.md": README}, gated=True)
    assert _info(mirror, unsaid).status_code == 404  # not said public: not brought in
    assert _info(mirror, gate).json()["gated"] == "manual"  # an unknown gate: the strictest


@pytest.mark.usefixtures("no_server_errors")
def test_a_repo_taken_back_upstream_is_hidden_here(fake: FakeUpstream, mirror: Any) -> None:
    name = _name("taken")
    fake.repo(name, {b"README.md": README, b"config.json": b"{}"})
    assert _info(mirror, name).status_code == 200
    fake.info[name]["private"] = True  # type: ignore[index]
    time.sleep(TTL + 0.5)
    r = _info(mirror, name)
    assert r.status_code == 404 and r.headers["X-Error-Code"] == "RepoNotFound"
    assert httpx.get(f"{mirror.endpoint}/evil/{name}/resolve/main/config.json"
                     ).status_code == 404
    time.sleep(TTL + 0.5)
    fake.info[name]["private"] = False  # type: ignore[index]
    time.sleep(TTL + 0.5)
    assert _info(mirror, name).status_code == 200  # shown again once the upstream does
    fake.info[name] = None  # deleted upstream: hidden too
    time.sleep(TTL + 0.5)
    assert _info(mirror, name).status_code == 404


def test_a_mirror_namespace_takes_no_members(fake: FakeUpstream, mirror: Any) -> None:
    name = _name("ns")
    fake.repo(name, {b"README.md": README})
    assert _info(mirror, name).status_code == 200
    user = f"u-{uuid.uuid4().hex[:6]}"
    mirror.hver("user", "create", user)
    with pytest.raises(subprocess.CalledProcessError) as e:
        mirror.hver("org", "add-member", "evil", user, "--role", "admin")
    assert "no members" in e.value.stderr


def _pointer(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def test_an_upstream_naming_a_private_files_hashes_gets_nothing(
        fake: FakeUpstream, mirror: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import CommitOperationAdd, HfApi, constants

    user = f"u-{uuid.uuid4().hex[:6]}"
    _, token = mirror.hver("user", "create", user, "--token", "write").splitlines()
    api = HfApi(endpoint=mirror.endpoint, token=token)
    private = f"{user}/secrets"
    api.create_repo(private, private=True)
    xet_secret, lfs_secret = os.urandom(70_000), os.urandom(80_000)
    api.create_commit(private, commit_message="xet", operations=[
        CommitOperationAdd("secret.bin", xet_secret)])
    with monkeypatch.context() as mp:
        mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
        api.create_commit(private, commit_message="lfs", operations=[
            CommitOperationAdd("secret2.bin", lfs_secret)])
    files = {f.path: f for f in api.get_paths_info(private, ["secret.bin", "secret2.bin"])}
    xet, lfs = files["secret.bin"], files["secret2.bin"]
    assert xet.xet_hash and xet.lfs and lfs.lfs  # stored here as Xet and as an LFS blob

    name = _name("leak")
    fake.repo(name, {b"README.md": README, b"a.bin": _pointer(xet.lfs.sha256, xet.size),
                     b"b.bin": _pointer(lfs.lfs.sha256, lfs.size)})
    fake.xet_hashes["a.bin"] = xet.xet_hash
    for file, secret in (("a.bin", xet_secret), ("b.bin", lfs_secret)):
        r = httpx.get(f"{mirror.endpoint}/evil/{name}/resolve/main/{file}",
                      follow_redirects=True, timeout=60)
        assert r.status_code == 503, r.status_code  # fetched from the upstream, or nothing
        assert secret not in r.content
