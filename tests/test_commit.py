"""The write side through the real client: upload_file, upload_folder, create_commit."""

from __future__ import annotations

import hashlib
import io
import os
import re

import pytest
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationCopy,
    CommitOperationDelete,
    hf_hub_download,
)
from huggingface_hub.utils import EntryNotFoundError, HfHubHTTPError

SHA1 = re.compile(r"^[0-9a-f]{40}$")
MiB = 1024 * 1024
pytestmark = pytest.mark.usefixtures("no_server_errors")


def files(api, repo_id, **kw) -> set[str]:
    return set(api.list_repo_files(repo_id, **kw))


def read(api, repo_id, path, cache_dir, **kw) -> bytes:
    p = hf_hub_download(repo_id, path, cache_dir=cache_dir, token=api.token, **kw)
    with open(p, "rb") as fh:
        return fh.read()


def tree_entry(api, repo_id, path, **kw):
    (entry,) = api.get_paths_info(repo_id, [path], **kw)
    return entry


# -- upload_file ------------------------------------------------------------------


def test_upload_file_bytes_path_and_fileobj(api, repo_factory, cache_dir, tmp_path):
    repo_id = repo_factory()
    local = tmp_path / "from-path.txt"
    local.write_bytes(b"from a path\n")

    c1 = api.upload_file(path_or_fileobj=b"from bytes\n", path_in_repo="a.txt", repo_id=repo_id)
    c2 = api.upload_file(path_or_fileobj=str(local), path_in_repo="dir/b.txt", repo_id=repo_id)
    c3 = api.upload_file(path_or_fileobj=io.BytesIO(b"from a file object\n"),
                         path_in_repo="dir/sub/c.txt", repo_id=repo_id,
                         commit_message="third", commit_description="the long story")

    for c in (c1, c2, c3):
        assert SHA1.match(c.oid)
        assert c.commit_url == f"{api.endpoint}/{repo_id}/commit/{c.oid}"
    assert len({c1.oid, c2.oid, c3.oid}) == 3
    assert files(api, repo_id) >= {"a.txt", "dir/b.txt", "dir/sub/c.txt"}
    assert read(api, repo_id, "a.txt", cache_dir) == b"from bytes\n"
    assert read(api, repo_id, "dir/b.txt", cache_dir) == b"from a path\n"
    assert read(api, repo_id, "dir/sub/c.txt", cache_dir) == b"from a file object\n"

    commits = api.list_repo_commits(repo_id)
    assert [c.commit_id for c in commits[:3]] == [c3.oid, c2.oid, c1.oid]
    assert commits[0].title == "third"
    assert "the long story" in commits[0].message
    # Regular files are stored inline: no lfs metadata, oid is the git blob sha1.
    entry = tree_entry(api, repo_id, "a.txt")
    assert entry.lfs is None
    assert entry.blob_id == hashlib.sha1(b"blob 11\x00from bytes\n").hexdigest()


def test_commit_oid_is_head_and_real_sha1(api, repo_factory):
    repo_id = repo_factory()
    before = api.list_repo_commits(repo_id)
    info = api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id=repo_id)
    after = api.list_repo_commits(repo_id)
    assert SHA1.match(info.oid)
    assert after[0].commit_id == info.oid
    assert len(after) == len(before) + 1
    assert after[1].commit_id == before[0].commit_id
    assert api.model_info(repo_id).sha == info.oid
    assert api.repo_info(repo_id, revision=info.oid).sha == info.oid


def test_commits_are_real_git_objects(api, repo_factory, server):
    """The bare repository on disk passes `git fsck`, and its main is the returned oid."""
    import shutil
    import subprocess

    git = shutil.which("git")
    if git is None:
        pytest.skip("git is not installed")
    repo_id = repo_factory()
    api.upload_file(path_or_fileobj=b"x\n", path_in_repo="x.txt", repo_id=repo_id)
    info = api.upload_file(path_or_fileobj=os.urandom(2000) + b"\x00", path_in_repo="w.bin",
                           repo_id=repo_id)
    found = [p for p in (server.data / "repos").glob("*/*.git")
             if subprocess.run([git, "--git-dir", str(p), "cat-file", "-e", info.oid],
                               capture_output=True).returncode == 0]
    assert len(found) == 1
    gd = ["--git-dir", str(found[0])]
    head = subprocess.run([git, *gd, "rev-parse", "refs/heads/main"], capture_output=True,
                          text=True, check=True).stdout.strip()
    assert head == info.oid
    subprocess.run([git, *gd, "fsck", "--strict", "--no-dangling"], check=True,
                   capture_output=True)
    files = subprocess.run([git, *gd, "ls-tree", "-r", "--name-only", info.oid],
                           capture_output=True, text=True, check=True).stdout.split()
    assert {"x.txt", "w.bin", ".gitattributes"} <= set(files)
    pointer = subprocess.run([git, *gd, "show", f"{info.oid}:w.bin"], capture_output=True,
                             check=True).stdout
    assert pointer.startswith(b"version https://git-lfs.github.com/spec/v1\noid sha256:")


def test_upload_overwrites_file(api, repo_factory, cache_dir):
    repo_id = repo_factory()
    api.upload_file(path_or_fileobj=b"v1", path_in_repo="f.txt", repo_id=repo_id)
    c1 = api.list_repo_commits(repo_id)[0].commit_id
    api.upload_file(path_or_fileobj=b"v2", path_in_repo="f.txt", repo_id=repo_id)
    assert read(api, repo_id, "f.txt", cache_dir) == b"v2"
    assert read(api, repo_id, "f.txt", cache_dir, revision=c1) == b"v1"


def test_noop_upload_is_skipped(api, repo_factory):
    repo_id = repo_factory()
    first = api.upload_file(path_or_fileobj=b"same\n", path_in_repo="same.txt", repo_id=repo_id)
    lfs = os.urandom(2048) + b"\x00"
    api.upload_file(path_or_fileobj=lfs, path_in_repo="w.bin", repo_id=repo_id)
    n = len(api.list_repo_commits(repo_id))
    head = api.list_repo_commits(repo_id)[0].commit_id
    again = api.upload_file(path_or_fileobj=b"same\n", path_in_repo="same.txt", repo_id=repo_id)
    again_lfs = api.upload_file(path_or_fileobj=lfs, path_in_repo="w.bin", repo_id=repo_id)
    assert again.oid == head and again_lfs.oid == head
    assert len(api.list_repo_commits(repo_id)) == n
    assert first.oid != head


# -- LFS ----------------------------------------------------------------------------


def test_lfs_by_size_binary_and_gitattributes(api, repo_factory, cache_dir):
    repo_id = repo_factory()
    big = os.urandom(10 * MiB)  # >= max_inline_file_size (10 MiB)
    binary = b"\x00\x01\x02 small but binary"
    text_bin = b"text content in a *.bin file\n"
    api.upload_file(path_or_fileobj=b"*.bin filter=lfs diff=lfs merge=lfs -text\n",
                    path_in_repo=".gitattributes", repo_id=repo_id)
    api.create_commit(repo_id, operations=[
        CommitOperationAdd("big.dat", big),
        CommitOperationAdd("small.dat", binary),
        CommitOperationAdd("model.bin", text_bin),
        CommitOperationAdd("notes.txt", b"plain text\n"),
    ], commit_message="mixed")

    for path, data in (("big.dat", big), ("small.dat", binary), ("model.bin", text_bin)):
        e = tree_entry(api, repo_id, path)
        assert e.lfs is not None, path
        assert e.lfs.sha256 == hashlib.sha256(data).hexdigest()
        assert e.size == len(data) == e.lfs.size
        assert read(api, repo_id, path, cache_dir) == data
    assert tree_entry(api, repo_id, "notes.txt").lfs is None
    assert read(api, repo_id, "notes.txt", cache_dir) == b"plain text\n"


def test_lfs_multipart_round_trip(api, repo_factory, cache_dir, server):
    """10 MiB >= the 8 MiB multipart threshold: 4 parts of 3 MiB."""
    import httpx

    repo_id = repo_factory()
    data = os.urandom(10 * MiB)
    oid = hashlib.sha256(data).hexdigest()
    # The batch API announces 4 part URLs for it.
    r = httpx.post(f"{server.endpoint}/{repo_id}.git/info/lfs/objects/batch",
                   headers={"authorization": f"Bearer {api.token}"},
                   json={"operation": "upload", "transfers": ["basic", "multipart"],
                         "objects": [{"oid": oid, "size": len(data)}], "hash_algo": "sha256"})
    assert r.status_code == 200
    header = r.json()["objects"][0]["actions"]["upload"]["header"]
    assert int(header["chunk_size"]) == 3 * MiB
    assert len([k for k in header if k.isdigit()]) == 4

    info = api.upload_file(path_or_fileobj=data, path_in_repo="weights/model.safetensors",
                           repo_id=repo_id)
    assert api.list_repo_commits(repo_id)[0].commit_id == info.oid
    assert read(api, repo_id, "weights/model.safetensors", cache_dir) == data
    e = tree_entry(api, repo_id, "weights/model.safetensors")
    assert e.lfs.sha256 == oid and e.size == len(data)


# -- create_commit: every operation ---------------------------------------------------


def test_create_commit_all_operation_kinds(api, repo_factory, cache_dir):
    repo_id = repo_factory()
    lfs_data = os.urandom(4096) + b"\x00"
    api.create_commit(repo_id, operations=[
        CommitOperationAdd("keep.txt", b"keep\n"),
        CommitOperationAdd("gone.txt", b"gone\n"),
        CommitOperationAdd("folder/a.txt", b"a\n"),
        CommitOperationAdd("folder/sub/b.txt", b"b\n"),
        CommitOperationAdd("other/c.txt", b"c\n"),
        CommitOperationAdd("src.txt", b"regular source\n"),
        CommitOperationAdd("weights.bin", lfs_data),
    ], commit_message="setup")
    base = files(api, repo_id)
    assert {"keep.txt", "gone.txt", "folder/a.txt", "folder/sub/b.txt", "other/c.txt",
            "src.txt", "weights.bin"} <= base

    info = api.create_commit(repo_id, operations=[
        CommitOperationDelete("gone.txt"),
        CommitOperationDelete("folder/"),
        CommitOperationCopy("src.txt", "copies/src-copy.txt"),
        CommitOperationCopy("weights.bin", "copies/weights-copy.bin"),
        CommitOperationAdd("new.txt", b"new\n"),
    ], commit_message="all kinds")
    after = files(api, repo_id)
    assert "gone.txt" not in after
    assert not any(p.startswith("folder/") for p in after)
    assert {"keep.txt", "other/c.txt", "src.txt", "weights.bin", "new.txt",
            "copies/src-copy.txt", "copies/weights-copy.bin"} <= after
    assert read(api, repo_id, "copies/src-copy.txt", cache_dir) == b"regular source\n"
    assert read(api, repo_id, "copies/weights-copy.bin", cache_dir) == lfs_data
    copy = tree_entry(api, repo_id, "copies/weights-copy.bin")
    assert copy.lfs is not None and copy.lfs.sha256 == hashlib.sha256(lfs_data).hexdigest()
    assert copy.size == len(lfs_data)
    assert api.list_repo_commits(repo_id)[0].commit_id == info.oid


def test_copy_from_older_revision(api, repo_factory, cache_dir):
    repo_id = repo_factory()
    old = api.upload_file(path_or_fileobj=b"old\n", path_in_repo="f.txt", repo_id=repo_id)
    api.upload_file(path_or_fileobj=b"new\n", path_in_repo="f.txt", repo_id=repo_id)
    api.create_commit(repo_id, operations=[
        CommitOperationCopy("f.txt", "restored.txt", src_revision=old.oid)], commit_message="cp")
    assert read(api, repo_id, "restored.txt", cache_dir) == b"old\n"
    assert read(api, repo_id, "f.txt", cache_dir) == b"new\n"


def test_delete_file_and_folder_helpers(api, repo_factory):
    repo_id = repo_factory()
    api.create_commit(repo_id, operations=[
        CommitOperationAdd("a.txt", b"a"), CommitOperationAdd("d/x.txt", b"x"),
        CommitOperationAdd("d/e/y.txt", b"y"), CommitOperationAdd("dd.txt", b"not in d/"),
    ], commit_message="setup")
    api.delete_file("a.txt", repo_id)
    api.delete_folder("d", repo_id)
    left = files(api, repo_id)
    assert "a.txt" not in left and not any(p.startswith("d/") for p in left)
    assert "dd.txt" in left


def test_delete_missing_file_is_entry_not_found(api, repo_factory):
    repo_id = repo_factory()
    head = api.list_repo_commits(repo_id)[0].commit_id
    with pytest.raises(EntryNotFoundError):
        api.delete_file("nope.txt", repo_id)
    with pytest.raises(EntryNotFoundError):
        api.delete_folder("nope-dir", repo_id)
    assert api.list_repo_commits(repo_id)[0].commit_id == head


def test_file_folder_clash_is_rejected(api, repo_factory):
    repo_id = repo_factory()
    api.upload_file(path_or_fileobj=b"f", path_in_repo="thing", repo_id=repo_id)
    head = api.list_repo_commits(repo_id)[0].commit_id
    with pytest.raises(HfHubHTTPError) as exc:
        api.upload_file(path_or_fileobj=b"g", path_in_repo="thing/inner.txt", repo_id=repo_id)
    assert exc.value.response.status_code == 400
    assert api.list_repo_commits(repo_id)[0].commit_id == head


# -- parent_commit ---------------------------------------------------------------------


def test_parent_commit_correct_succeeds(api, repo_factory):
    repo_id = repo_factory()
    head = api.list_repo_commits(repo_id)[0].commit_id
    info = api.create_commit(repo_id, operations=[CommitOperationAdd("p.txt", b"p")],
                             commit_message="with parent", parent_commit=head)
    commits = api.list_repo_commits(repo_id)
    assert commits[0].commit_id == info.oid and commits[1].commit_id == head


def test_stale_parent_commit_is_412_and_writes_nothing(api, repo_factory):
    repo_id = repo_factory()
    stale = api.list_repo_commits(repo_id)[0].commit_id
    moved = api.upload_file(path_or_fileobj=b"1", path_in_repo="one.txt", repo_id=repo_id)
    lfs = os.urandom(1000) + b"\x00"
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_commit(repo_id, operations=[CommitOperationAdd("two.txt", b"2"),
                                               CommitOperationAdd("two.bin", lfs)],
                          commit_message="stale", parent_commit=stale)
    assert exc.value.response.status_code == 412
    assert exc.value.response.headers.get("X-Error-Code")
    commits = api.list_repo_commits(repo_id)
    assert commits[0].commit_id == moved.oid
    assert "two.txt" not in files(api, repo_id) and "two.bin" not in files(api, repo_id)


# -- branches and repo types -----------------------------------------------------------


def test_commit_to_non_default_branch(api, repo_factory, cache_dir):
    repo_id = repo_factory()
    api.upload_file(path_or_fileobj=b"main\n", path_in_repo="f.txt", repo_id=repo_id)
    main_head = api.list_repo_commits(repo_id)[0].commit_id
    api.create_branch(repo_id, branch="dev")
    info = api.upload_file(path_or_fileobj=b"dev\n", path_in_repo="f.txt", repo_id=repo_id,
                           revision="dev")
    lfs = os.urandom(3000) + b"\x00"
    info2 = api.upload_file(path_or_fileobj=lfs, path_in_repo="w.bin", repo_id=repo_id,
                            revision="dev")
    assert api.list_repo_commits(repo_id, revision="dev")[0].commit_id == info2.oid
    assert api.list_repo_commits(repo_id, revision="dev")[1].commit_id == info.oid
    assert api.list_repo_commits(repo_id)[0].commit_id == main_head
    assert read(api, repo_id, "f.txt", cache_dir, revision="dev") == b"dev\n"
    assert read(api, repo_id, "w.bin", cache_dir, revision="dev") == lfs
    assert read(api, repo_id, "f.txt", cache_dir) == b"main\n"
    assert "w.bin" not in files(api, repo_id)


@pytest.mark.parametrize("repo_type", ["dataset", "space"])
def test_commit_to_dataset_and_space(api, user, cache_dir, repo_type):
    repo_id = f"{user.name}/{repo_type}-{os.urandom(4).hex()}"
    api.create_repo(repo_id, repo_type=repo_type,
                    space_sdk="static" if repo_type == "space" else None)
    lfs = os.urandom(5000) + b"\x00"
    info = api.create_commit(repo_id, repo_type=repo_type, operations=[
        CommitOperationAdd("data/train.csv", b"a,b\n1,2\n"),
        CommitOperationAdd("assets/blob.dat", lfs),
    ], commit_message="data")
    assert info.commit_url == f"{api.endpoint}/{repo_type}s/{repo_id}/commit/{info.oid}"
    assert api.list_repo_commits(repo_id, repo_type=repo_type)[0].commit_id == info.oid
    assert read(api, repo_id, "data/train.csv", cache_dir, repo_type=repo_type) == b"a,b\n1,2\n"
    assert read(api, repo_id, "assets/blob.dat", cache_dir, repo_type=repo_type) == lfs
    api.delete_file("data/train.csv", repo_id, repo_type=repo_type)
    assert "data/train.csv" not in files(api, repo_id, repo_type=repo_type)


# -- upload_folder ---------------------------------------------------------------------


def _make_folder(root):
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"a\n")
    (root / "b.json").write_bytes(b"{}\n")
    (root / "sub" / "c.txt").write_bytes(b"c\n")
    (root / "sub" / "d.log").write_bytes(b"d\n")
    (root / "w.bin").write_bytes(os.urandom(1024) + b"\x00")
    return root


def test_upload_folder_whole_and_path_in_repo(api, repo_factory, tmp_path, cache_dir):
    repo_id = repo_factory()
    folder = _make_folder(tmp_path / "f")
    info = api.upload_folder(folder_path=folder, repo_id=repo_id)
    assert {"a.txt", "b.json", "sub/c.txt", "sub/d.log", "w.bin"} <= files(api, repo_id)
    assert api.list_repo_commits(repo_id)[0].commit_id == info.oid
    api.upload_folder(folder_path=folder / "sub", path_in_repo="nested/here", repo_id=repo_id)
    assert {"nested/here/c.txt", "nested/here/d.log"} <= files(api, repo_id)
    assert read(api, repo_id, "nested/here/c.txt", cache_dir) == b"c\n"
    assert read(api, repo_id, "w.bin", cache_dir) == (folder / "w.bin").read_bytes()


def test_upload_folder_allow_ignore_delete_patterns(api, repo_factory, tmp_path):
    repo_id = repo_factory()
    api.create_commit(repo_id, operations=[
        CommitOperationAdd("old/x.log", b"x"), CommitOperationAdd("old/y.txt", b"y"),
        CommitOperationAdd("top.log", b"t"),
    ], commit_message="setup")
    folder = _make_folder(tmp_path / "f")

    api.upload_folder(folder_path=folder, repo_id=repo_id, allow_patterns=["*.txt"])
    got = files(api, repo_id)
    assert {"a.txt", "sub/c.txt"} <= got
    assert not {"b.json", "sub/d.log", "w.bin"} & got

    api.upload_folder(folder_path=folder, repo_id=repo_id, ignore_patterns=["*.txt", "*.bin"])
    got = files(api, repo_id)
    assert {"b.json", "sub/d.log"} <= got and "w.bin" not in got

    # delete_patterns apply to remote files under path_in_repo only.
    api.upload_folder(folder_path=folder / "sub", path_in_repo="old", repo_id=repo_id,
                      delete_patterns=["*.log"], allow_patterns=["c.txt"])
    got = files(api, repo_id)
    assert "old/x.log" not in got
    assert {"old/y.txt", "old/c.txt", "top.log", "sub/d.log"} <= got


def test_preupload_gitignore_should_ignore(api, repo_factory, server):
    import httpx

    repo_id = repo_factory()
    api.upload_file(path_or_fileobj=b"*.log\nsecret/\n", path_in_repo=".gitignore",
                    repo_id=repo_id)
    url = f"{server.endpoint}/api/models/{repo_id}/preupload/main"
    auth = {"authorization": f"Bearer {api.token}"}
    body = {"files": [{"path": p, "size": 1, "sample": "eA=="}
                      for p in ("a.log", "a.txt", "secret/k.txt", "sub/b.log")]}
    r = httpx.post(url, headers=auth, json=body)
    assert r.status_code == 200
    ignore = {f["path"]: f["shouldIgnore"] for f in r.json()["files"]}
    assert ignore == {"a.log": True, "a.txt": False, "secret/k.txt": True, "sub/b.log": True}
    # An explicit gitIgnore in the request wins over the repo's.
    r = httpx.post(url, headers=auth, json=body | {"gitIgnore": "*.txt\n"})
    ignore = {f["path"]: f["shouldIgnore"] for f in r.json()["files"]}
    assert ignore == {"a.log": False, "a.txt": True, "secret/k.txt": True, "sub/b.log": False}

    # Through the client: ignored files are dropped from the commit.
    api.create_commit(repo_id, operations=[CommitOperationAdd("debug.log", b"noise"),
                                           CommitOperationAdd("kept.txt", b"kept")],
                      commit_message="some ignored")
    got = files(api, repo_id)
    assert "kept.txt" in got and "debug.log" not in got


def test_upload_folder_with_gitignore_in_folder(api, repo_factory, tmp_path):
    repo_id = repo_factory()
    folder = tmp_path / "g"
    folder.mkdir()
    (folder / ".gitignore").write_text("*.tmp\n")
    (folder / "keep.txt").write_bytes(b"k")
    (folder / "junk.tmp").write_bytes(b"j")
    api.upload_folder(folder_path=folder, repo_id=repo_id)
    got = files(api, repo_id)
    assert {".gitignore", "keep.txt"} <= got and "junk.tmp" not in got


def test_preupload_reports_modes_and_oids(api, repo_factory, server):
    import base64

    import httpx

    def b64(b: bytes) -> str:
        return base64.b64encode(b).decode()

    repo_id = repo_factory()
    api.upload_file(path_or_fileobj=b"hello\n", path_in_repo="h.txt", repo_id=repo_id)
    r = httpx.post(f"{server.endpoint}/api/models/{repo_id}/preupload/main",
                   headers={"authorization": f"Bearer {api.token}"},
                   json={"files": [
                       {"path": "h.txt", "size": 6, "sample": b64(b"hello\n")},
                       {"path": "big.txt", "size": 10 * MiB, "sample": "eA=="},
                       {"path": "bin.dat", "size": 3, "sample": b64(b"\0\1\2")},
                       {"path": "empty.bin", "size": 0, "sample": ""},
                   ]})
    assert r.status_code == 200
    out = {f["path"]: f for f in r.json()["files"]}
    assert out["h.txt"]["uploadMode"] == "regular"
    assert out["h.txt"]["oid"] == hashlib.sha1(b"blob 6\x00hello\n").hexdigest()
    assert out["big.txt"]["uploadMode"] == "lfs" and out["big.txt"]["oid"] is None
    assert out["bin.dat"]["uploadMode"] == "lfs"
    assert out["empty.bin"]["uploadMode"] == "regular"
