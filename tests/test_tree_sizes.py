"""Tree records: every tree's entries with their sizes, kept on disk by tree id
(`hver.core.tree_sizes`), so that a fresh server lists a big repo without reading its blobs.
They must give exactly the listing computed from the blobs, outlive the server, be ignored
(and written again) when damaged, and never hide a commit's new sizes."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, constants

from hver.core import tree_sizes

LFS_DATA = b"\x00\x01large" * 2000
XET_DATA = b"\x00\x02xet" * 3000
FILES = {
    "notes.md": b"# sizes\n",
    "a.txt": b"aaa",
    "data/one.txt": b"1",
    "data/two.txt": b"twotwo",
    "data/sub/deep.txt": b"deep down\n",
    "data/sub/\u00e9t\u00e9 \"quoted\".txt": b"summer",
    "other/x.json": b'{"x": 1}\n',
}


@pytest.fixture
def sized(server_factory, lfs_client, monkeypatch):  # type: ignore[no-untyped-def]
    """A server of its own and a repo of git files in nested folders, an LFS file and a
    Xet file; returns (server, token, repo id)."""
    srv = server_factory()
    name, token, api = srv.new_user_api("sizes")
    repo_id = f"{name}/sizes"
    api.create_repo(repo_id)
    api.create_commit(repo_id, operations=[CommitOperationAdd(p, d) for p, d in FILES.items()]
                      + [CommitOperationAdd("weights/w.bin", LFS_DATA)],
                      commit_message="files")
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    api.upload_file(path_or_fileobj=XET_DATA, path_in_repo="weights/x.bin", repo_id=repo_id)
    return srv, token, repo_id


def listing(srv: Any, token: str, repo_id: str, path: str = "", revision: str = "main",
            recursive: bool = True) -> list[dict[str, Any]]:
    """Every entry, every page followed, as the server sent it."""
    url: str | None = f"{srv.endpoint}/api/models/{repo_id}/tree/{revision}"
    if path:
        url = f"{url}/{path}"
    out: list[dict[str, Any]] = []
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}) as http:
        params = {"recursive": "true"} if recursive else {}
        while url is not None:
            r = http.get(url, params=params)
            assert r.status_code == 200, r.text
            assert r.headers["content-type"] == "application/json"
            out += r.json()
            url, params = r.links.get("next", {}).get("url"), {}
    return out


def records(srv: Any) -> list[Path]:
    return sorted(p for p in srv.data.glob("repos/*/*.git/hver-cache/trees/*/*")
                  if not p.name.startswith(".tmp-"))


def record_of(srv: Any, tree_id: str) -> Path:
    (found,) = srv.data.glob(f"repos/*/*.git/hver-cache/trees/{tree_id[:2]}/{tree_id[2:]}")
    return Path(found)


def restart(srv: Any) -> None:
    srv.kill()
    srv.start()


def server_log(srv: Any) -> str:
    return str((srv.data.parent / f"server-{srv.port}.log").read_text("utf-8", "replace"))


def by_path(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["path"]: e for e in entries}


def git_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def test_records_give_the_listing_computed_from_the_blobs(sized) -> None:  # type: ignore[no-untyped-def]
    srv, token, repo_id = sized
    first = listing(srv, token, repo_id)
    assert records(srv)  # written by that listing

    # Sizes, LFS blocks and the Xet hash as the files are.
    entries = by_path(first)
    for path, data in FILES.items():
        assert entries[path]["size"] == len(data), path
        assert entries[path]["oid"] == git_sha(data)
        assert "lfs" not in entries[path]
    w, x = entries["weights/w.bin"], entries["weights/x.bin"]
    assert w["size"] == w["lfs"]["size"] == len(LFS_DATA)
    assert w["lfs"]["oid"] == hashlib.sha256(LFS_DATA).hexdigest()
    assert 120 < w["lfs"]["pointerSize"] < 200 and "xetHash" not in w
    assert x["size"] == x["lfs"]["size"] == len(XET_DATA)
    assert len(x["xetHash"]) == 64
    assert entries["data/sub"] == {"type": "directory", "oid": entries["data/sub"]["oid"],
                                   "size": 0, "path": "data/sub"}

    # The same, byte for byte, from a server that has no records and reads the blobs...
    srv.kill()
    for repo in srv.data.glob("repos/*/*.git"):
        shutil.rmtree(repo / "hver-cache", ignore_errors=True)
    assert not records(srv)
    srv.start()
    assert listing(srv, token, repo_id) == first
    # ... and from a fresh one that reads the records it wrote.
    assert records(srv)
    restart(srv)
    assert listing(srv, token, repo_id) == first

    # Without recursion, in a folder, and paths-info (which reads the blobs): the same entries.
    assert listing(srv, token, repo_id, recursive=False) == [
        e for e in first if "/" not in e["path"]]
    assert listing(srv, token, repo_id, "data", recursive=False) == [
        e for e in first if e["path"].count("/") == 1 and e["path"].startswith("data/")]
    assert listing(srv, token, repo_id, "data/sub") == [
        e for e in first if e["path"].startswith("data/sub/")]
    r = httpx.post(f"{srv.endpoint}/api/models/{repo_id}/paths-info/main",
                   json={"paths": [e["path"] for e in first]},
                   headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert by_path(r.json()) == entries


def test_a_fresh_server_lists_from_the_records(sized) -> None:  # type: ignore[no-untyped-def]
    """What makes a restart cheap: a fresh server takes the sizes from the records, not from
    the blobs. Shown with a record rewritten whole (checksum and all) with another size."""
    srv, token, repo_id = sized
    data_tree = by_path(listing(srv, token, repo_id))["data"]["oid"]
    path = record_of(srv, data_tree)
    found = tree_sizes.decode(path.read_bytes(), data_tree)
    assert found is not None
    srv.kill()
    found.sizes[found.names.index("two.txt")] = 12345
    path.write_bytes(tree_sizes.encode(data_tree, found))
    srv.start()
    assert by_path(listing(srv, token, repo_id))["data/two.txt"]["size"] == 12345


def test_damaged_records_are_ignored_and_written_again(sized) -> None:  # type: ignore[no-untyped-def]
    srv, token, repo_id = sized
    first = listing(srv, token, repo_id)
    trees = {e["path"]: e["oid"] for e in first if e["type"] == "directory"}
    listed = set(trees.values())  # and the root: the one record of a tree not listed
    (root_path,) = [p for p in records(srv) if p.parent.name + p.name not in listed]
    srv.kill()

    damaged: dict[Path, Callable[[bytes], bytes]] = {
        record_of(srv, trees["data"]): lambda raw: raw[: len(raw) // 2],  # torn write
        record_of(srv, trees["data/sub"]): lambda raw: b"",  # an empty file
        record_of(srv, trees["other"]): lambda raw: b"\x00\xff garbage \n[[[",
        # One size changed by a digit (the file as long as before): the checksum fails.
        # (The root's sizes: .gitattributes, a.txt 3, data, notes.md 8, other, weights.)
        root_path: lambda raw: raw.replace(b",3,0,8,0,0]", b",4,0,8,0,0]"),
        record_of(srv, trees["weights"]): lambda raw: raw.replace(
            tree_sizes.MAGIC, b"hver-tree-v0"),  # another version's record
    }
    for path, damage in damaged.items():
        before = path.read_bytes()
        path.write_bytes(damage(before))
        assert path.read_bytes() != before, path
    srv.start()
    assert listing(srv, token, repo_id) == first
    log = server_log(srv)
    assert "Traceback" not in log and "unexpected error" not in log
    assert "ignoring the damaged tree record" in log
    # Each was computed again and written whole.
    tree_of = {v: k for k, v in trees.items()}
    for path in damaged:
        tree_id = path.parent.name + path.name
        assert tree_sizes.decode(path.read_bytes(), tree_id) is not None, tree_of.get(tree_id)
    # The tree totals (`treesize`) read the same records: right after the damage too.
    r = httpx.get(f"{srv.endpoint}/api/models/{repo_id}/treesize/main",
                  headers={"Authorization": f"Bearer {token}"})
    assert r.json() == {"path": "", "size": sum(e["size"] for e in first)}


def test_a_commit_that_changes_sizes_shows_them_at_once(sized) -> None:  # type: ignore[no-untyped-def]
    srv, token, repo_id = sized
    from huggingface_hub import HfApi

    api = HfApi(endpoint=srv.endpoint, token=token)
    before = by_path(listing(srv, token, repo_id))
    old_commit = api.model_info(repo_id).sha
    assert old_commit is not None
    bigger_lfs = LFS_DATA * 3
    api.create_commit(repo_id, operations=[
        CommitOperationAdd("data/two.txt", b"now much longer than six bytes"),
        CommitOperationAdd("weights/w.bin", bigger_lfs),
    ], commit_message="resize")

    def check(entries: dict[str, dict[str, Any]]) -> None:
        assert entries["data/two.txt"]["size"] == 30
        assert entries["weights/w.bin"]["size"] == len(bigger_lfs)
        assert entries["weights/w.bin"]["lfs"]["oid"] == hashlib.sha256(bigger_lfs).hexdigest()
        assert entries["data/one.txt"] == before["data/one.txt"]
        assert entries["data/sub"] == before["data/sub"]  # an unchanged folder: same tree

    after = by_path(listing(srv, token, repo_id))
    check(after)
    assert by_path(listing(srv, token, repo_id, "data"))["data/two.txt"]["size"] == 30
    r = httpx.get(f"{srv.endpoint}/api/models/{repo_id}/treesize/main/data",
                  headers={"Authorization": f"Bearer {token}"})
    assert r.json()["size"] == sum(e["size"] for p, e in after.items()
                                   if p.startswith("data/") and e["type"] == "file")
    # The earlier commit keeps its own sizes; a fresh server agrees on both.
    assert by_path(listing(srv, token, repo_id, revision=old_commit)) == before
    restart(srv)
    check(by_path(listing(srv, token, repo_id)))
    assert by_path(listing(srv, token, repo_id, revision=old_commit)) == before


def test_a_cursor_of_another_repo_is_refused(sized) -> None:  # type: ignore[no-untyped-def]
    """The commit a cursor names must be one of this repo's, also once commits are cached."""
    srv, token, repo_id = sized
    from huggingface_hub import HfApi

    api = HfApi(endpoint=srv.endpoint, token=token)
    other = f"{repo_id}-other"
    api.create_repo(other)
    api.create_commit(other, operations=[CommitOperationAdd(f"f{i:04d}.txt", b"x")
                                         for i in range(1001)], commit_message="many")
    headers = {"Authorization": f"Bearer {token}"}
    r = httpx.get(f"{srv.endpoint}/api/models/{other}/tree/main", headers=headers)
    nxt = r.links["next"]["url"]
    assert httpx.get(nxt, headers=headers).status_code == 200
    elsewhere = nxt.replace(f"/{other}/", f"/{repo_id}/")
    r = httpx.get(elsewhere, headers=headers)
    assert r.status_code == 400, r.text
