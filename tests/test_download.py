"""Downloads: hf_hub_download, snapshot_download and the /resolve wire contract."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from huggingface_hub import (
    CommitOperationAdd,
    HfApi,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    snapshot_download,
)
from huggingface_hub.errors import (
    EntryNotFoundError,
    LocalEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

DEAD_ENDPOINT = "http://127.0.0.1:9"  # nothing listens there: any request would fail
WEIGHTS = os.urandom(1024 * 1024)  # *.bin -> LFS
TEXT = b"".join(b"line %04d of a regular text file\n" % i for i in range(200))


def _git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def _read(path: str | Path) -> bytes:
    return Path(path).read_bytes()


@pytest.fixture(params=["model", "dataset"])
def repo(request, api, repo_factory, lfs_client):
    """A repo with v1 (tagged) and v2 (main) contents; returns (repo_id, type, v1, v2).

    Uploaded as by a client without Xet: weights.bin is a plain LFS object (Xet-stored
    files are downloaded in test_xet)."""
    repo_type = request.param
    repo_id = repo_factory(repo_type=repo_type)
    v1 = api.create_commit(repo_id, repo_type=repo_type, operations=[
        CommitOperationAdd("config.json", b'{"v": 1}'),
        CommitOperationAdd("text.txt", TEXT),
        CommitOperationAdd("weights.bin", WEIGHTS),
        CommitOperationAdd("sub/dir/nested.txt", b"nested v1"),
    ], commit_message="v1").oid
    api.create_tag(repo_id, tag="v1.0", repo_type=repo_type)
    v2 = api.create_commit(repo_id, repo_type=repo_type, operations=[
        CommitOperationAdd("config.json", b'{"v": 2}'),
        CommitOperationAdd("sub/dir/nested.txt", b"nested v2"),
    ], commit_message="v2").oid
    return repo_id, repo_type, v1, v2


def _resolve_url(server, repo_id: str, repo_type: str, rev: str, path: str) -> str:
    prefix = "" if repo_type == "model" else f"{repo_type}s/"
    return (f"{server.endpoint}/{prefix}{repo_id}/resolve/{quote(rev, safe='')}/"
            f"{quote(path)}")


# --- hf_hub_download -------------------------------------------------------------------------


def test_hf_hub_download_by_branch_tag_and_sha(api, repo, cache_dir):
    repo_id, repo_type, v1, v2 = repo
    kw = {"repo_type": repo_type, "cache_dir": cache_dir, "token": api.token}
    assert _read(hf_hub_download(repo_id, "config.json", **kw)) == b'{"v": 2}'
    assert _read(hf_hub_download(repo_id, "config.json", revision="main", **kw)) == b'{"v": 2}'
    assert _read(hf_hub_download(repo_id, "config.json", revision="v1.0", **kw)) == b'{"v": 1}'
    assert _read(hf_hub_download(repo_id, "config.json", revision=v1, **kw)) == b'{"v": 1}'
    assert _read(hf_hub_download(repo_id, "config.json", revision=v2, **kw)) == b'{"v": 2}'
    assert _read(hf_hub_download(repo_id, "sub/dir/nested.txt", revision="v1.0", **kw)) == (
        b"nested v1")
    assert _read(hf_hub_download(repo_id, "text.txt", **kw)) == TEXT
    # The snapshot folders are keyed by the commit the server reported.
    p = Path(hf_hub_download(repo_id, "config.json", revision="v1.0", **kw))
    assert p.parent.name == v1
    assert Path(hf_hub_download(repo_id, "config.json", **kw)).parent.name == v2


def test_hf_hub_download_lfs(api, repo, cache_dir):
    repo_id, repo_type, v1, _ = repo
    kw = {"repo_type": repo_type, "cache_dir": cache_dir, "token": api.token}
    path = Path(hf_hub_download(repo_id, "weights.bin", **kw))
    assert path.read_bytes() == WEIGHTS
    # The blob is named by the ETag: the sha256 for LFS files.
    assert path.resolve().name == hashlib.sha256(WEIGHTS).hexdigest()
    # Unchanged between v1 and v2: the same blob is reused.
    old = Path(hf_hub_download(repo_id, "weights.bin", revision=v1, **kw))
    assert old.resolve() == path.resolve()


def test_regular_blob_named_by_git_sha(api, repo, cache_dir):
    repo_id, repo_type, _, _ = repo
    path = Path(hf_hub_download(repo_id, "text.txt", repo_type=repo_type, cache_dir=cache_dir,
                                token=api.token))
    assert path.resolve().name == _git_blob_sha(TEXT)


def test_hf_hub_download_errors(api, repo, cache_dir, user):
    repo_id, repo_type, v1, _ = repo
    kw = {"repo_type": repo_type, "cache_dir": cache_dir, "token": api.token}
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "missing.txt", **kw)
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "sub/dir", **kw)  # a folder is not a file
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo_id, "config.json", revision="no-such-rev", **kw)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo_id, "config.json", revision="0" * 40, **kw)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(f"{user.name}/no-such-repo-dl", "config.json", **kw)


def test_missing_file_is_remembered_at_the_commit(api, repo, cache_dir):
    """A 404 + EntryNotFound + X-Repo-Commit lets the client cache the miss."""
    repo_id, repo_type, _, v2 = repo
    kw = {"repo_type": repo_type, "cache_dir": cache_dir, "token": api.token}
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "tokenizer.model", **kw)
    folder = f"{repo_type}s--{repo_id.replace('/', '--')}"
    assert (cache_dir / folder / ".no_exist" / v2 / "tokenizer.model").exists()


def test_cached_sha_needs_no_network(api, repo, cache_dir):
    repo_id, repo_type, v1, _ = repo
    kw = {"repo_type": repo_type, "cache_dir": cache_dir}
    first = hf_hub_download(repo_id, "weights.bin", revision=v1, token=api.token, **kw)
    # At a commit sha with the file cached, no request is made at all: a dead endpoint works.
    again = hf_hub_download(repo_id, "weights.bin", revision=v1, endpoint=DEAD_ENDPOINT, **kw)
    assert again == first
    assert _read(again) == WEIGHTS
    assert hf_hub_download(repo_id, "weights.bin", revision=v1, local_files_only=True,
                           **kw) == first


def test_local_files_only_without_cache(api, repo, cache_dir):
    repo_id, repo_type, _, _ = repo
    with pytest.raises(LocalEntryNotFoundError):
        hf_hub_download(repo_id, "config.json", repo_type=repo_type, cache_dir=cache_dir,
                        local_files_only=True)


def test_hf_hub_download_local_dir(api, repo, tmp_path):
    repo_id, repo_type, _, _ = repo
    out = tmp_path / "local"
    p = hf_hub_download(repo_id, "weights.bin", repo_type=repo_type, local_dir=out,
                        token=api.token)
    assert Path(p) == out / "weights.bin"
    assert _read(p) == WEIGHTS
    p = hf_hub_download(repo_id, "sub/dir/nested.txt", repo_type=repo_type, local_dir=out,
                        token=api.token)
    assert _read(p) == b"nested v2"


# --- snapshot_download -----------------------------------------------------------------------


def test_snapshot_download_by_branch_tag_and_sha(api, repo, cache_dir):
    repo_id, repo_type, v1, v2 = repo
    kw = {"repo_type": repo_type, "cache_dir": cache_dir, "token": api.token}
    main = Path(snapshot_download(repo_id, **kw))
    assert main.name == v2
    assert (main / "config.json").read_bytes() == b'{"v": 2}'
    assert (main / "weights.bin").read_bytes() == WEIGHTS
    assert (main / "text.txt").read_bytes() == TEXT
    assert (main / "sub/dir/nested.txt").read_bytes() == b"nested v2"
    files = sorted(str(p.relative_to(main)) for p in main.rglob("*") if p.is_file())
    assert files == [".gitattributes", "config.json", "sub/dir/nested.txt", "text.txt",
                     "weights.bin"]
    tag = Path(snapshot_download(repo_id, revision="v1.0", **kw))
    assert tag.name == v1
    assert (tag / "config.json").read_bytes() == b'{"v": 1}'
    assert (tag / "sub/dir/nested.txt").read_bytes() == b"nested v1"
    sha = Path(snapshot_download(repo_id, revision=v1, **kw))
    assert sha == tag
    # The refs file records the branch and tag heads.
    root = main.parent.parent
    assert (root / "refs" / "main").read_text() == v2
    assert (root / "refs" / "v1.0").read_text() == v1


def test_snapshot_download_cache_reuse(api, repo, cache_dir):
    repo_id, repo_type, v1, v2 = repo
    kw = {"repo_type": repo_type, "cache_dir": cache_dir}
    first = snapshot_download(repo_id, token=api.token, **kw)
    # Offline for this call: answered from the cache, branch resolved through refs/.
    assert snapshot_download(repo_id, local_files_only=True, **kw) == first
    assert snapshot_download(repo_id, revision=v2, local_files_only=True, **kw) == first
    # Not yet downloaded: v1 is not available offline.
    with pytest.raises(LocalEntryNotFoundError):
        snapshot_download(repo_id, revision=v1, local_files_only=True, **kw)
    # Blobs shared between commits are stored once.
    snapshot_download(repo_id, revision=v1, token=api.token, **kw)
    blobs = list((Path(first).parent.parent / "blobs").iterdir())
    # .gitattributes, text.txt, weights.bin, 2x config.json, 2x nested.txt
    assert len(blobs) == 7


def test_snapshot_download_patterns(api, repo, cache_dir):
    repo_id, repo_type, _, _ = repo
    snap = Path(snapshot_download(repo_id, repo_type=repo_type, cache_dir=cache_dir,
                                  token=api.token, allow_patterns=["*.json", "sub/*"]))
    files = sorted(str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file())
    assert files == ["config.json", "sub/dir/nested.txt"]


def test_snapshot_download_errors(api, repo, cache_dir, user):
    repo_id, repo_type, _, _ = repo
    kw = {"repo_type": repo_type, "cache_dir": cache_dir, "token": api.token}
    with pytest.raises(RevisionNotFoundError):
        snapshot_download(repo_id, revision="no-such-rev", **kw)
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download(f"{user.name}/no-such-snapshot-repo", **kw)


def test_snapshot_download_local_dir(api, repo, tmp_path):
    repo_id, repo_type, _, _ = repo
    out = Path(snapshot_download(repo_id, repo_type=repo_type, local_dir=tmp_path / "snap",
                                 token=api.token))
    assert (out / "weights.bin").read_bytes() == WEIGHTS
    assert (out / "sub/dir/nested.txt").read_bytes() == b"nested v2"


# --- HEAD / GET /resolve: headers ------------------------------------------------------------


def test_head_regular_file(api, repo, server):
    repo_id, repo_type, _, v2 = repo
    r = httpx.head(_resolve_url(server, repo_id, repo_type, "main", "text.txt"),
                   headers={"Accept-Encoding": "identity"})
    assert r.status_code == 200
    assert int(r.headers["Content-Length"]) == len(TEXT)
    assert r.headers["X-Repo-Commit"] == v2
    assert r.headers["ETag"] == f'"{_git_blob_sha(TEXT)}"'
    assert r.content == b""
    assert r.headers.get("Accept-Ranges") == "bytes"


def test_get_regular_file(api, repo, server):
    repo_id, repo_type, v1, _ = repo
    r = httpx.get(_resolve_url(server, repo_id, repo_type, "v1.0", "config.json"))
    assert r.status_code == 200
    assert r.content == b'{"v": 1}'
    assert r.headers["X-Repo-Commit"] == v1
    blob = _git_blob_sha(b'{"v": 1}')
    assert r.headers["ETag"] == f'"{blob}"'


def test_head_lfs_file_is_a_redirect(api, repo, server):
    repo_id, repo_type, _, v2 = repo
    sha256 = hashlib.sha256(WEIGHTS).hexdigest()
    r = httpx.head(_resolve_url(server, repo_id, repo_type, "main", "weights.bin"))
    assert r.status_code == 302
    assert r.headers["X-Repo-Commit"] == v2
    assert r.headers["X-Linked-Size"] == str(len(WEIGHTS))
    assert r.headers["X-Linked-Etag"] == f'"{sha256}"'
    assert r.headers["ETag"] == f'"{sha256}"'
    location = r.headers["Location"]
    assert location.startswith(server.endpoint + "/")  # same origin: the client follows it
    # The final hop carries the metadata too, and is signed (no auth needed).
    final = httpx.head(location)
    assert final.status_code == 200
    assert final.headers["X-Repo-Commit"] == v2
    assert final.headers["X-Linked-Size"] == str(len(WEIGHTS))
    assert int(final.headers["Content-Length"]) == len(WEIGHTS)
    assert final.headers["ETag"].strip('"') == sha256
    body = httpx.get(location)
    assert body.status_code == 200
    assert body.content == WEIGHTS


def test_lfs_signed_url_is_checked(api, repo, server):
    repo_id, repo_type, _, _ = repo
    location = httpx.head(_resolve_url(server, repo_id, repo_type, "main",
                                       "weights.bin")).headers["Location"]
    tampered = location.replace("sig=", "sig=00")
    assert httpx.get(tampered).status_code == 403
    unsigned = location.split("?", 1)[0]
    assert httpx.get(unsigned).status_code == 403


def test_get_hf_file_metadata(api, repo):
    repo_id, repo_type, _, v2 = repo
    url = hf_hub_url(repo_id, "weights.bin", repo_type=repo_type)
    meta = get_hf_file_metadata(url, token=api.token)
    assert meta.commit_hash == v2
    assert meta.etag == hashlib.sha256(WEIGHTS).hexdigest()
    assert meta.size == len(WEIGHTS)
    url = hf_hub_url(repo_id, "text.txt", repo_type=repo_type, revision="v1.0")
    meta = get_hf_file_metadata(url, token=api.token)
    assert meta.etag == _git_blob_sha(TEXT)
    assert meta.size == len(TEXT)


def test_missing_file_headers(api, repo, server):
    repo_id, repo_type, _, v2 = repo
    for method in ("HEAD", "GET"):
        r = httpx.request(method, _resolve_url(server, repo_id, repo_type, "main", "nope.txt"))
        assert r.status_code == 404
        assert r.headers["X-Error-Code"] == "EntryNotFound"
        assert r.headers["X-Repo-Commit"] == v2
    r = httpx.head(_resolve_url(server, repo_id, repo_type, "nope", "config.json"))
    assert r.status_code == 404
    assert r.headers["X-Error-Code"] == "RevisionNotFound"


def test_resolve_wrong_type_prefix_is_repo_not_found(api, repo, server):
    repo_id, repo_type, _, _ = repo
    other = "dataset" if repo_type == "model" else "model"
    r = httpx.head(_resolve_url(server, repo_id, other, "main", "config.json"))
    assert r.status_code in (401, 404)
    assert r.headers["X-Error-Code"] == "RepoNotFound"


# --- Range requests --------------------------------------------------------------------------


RANGES = [
    ("bytes=0-9", lambda d: (0, 10)),
    ("bytes=100-199", lambda d: (100, 200)),
    ("bytes=5-", lambda d: (5, len(d))),
    ("bytes=-7", lambda d: (len(d) - 7, len(d))),
    ("bytes=10-10000000", lambda d: (10, len(d))),  # end past EOF is clamped
    ("bytes=0-0", lambda d: (0, 1)),
]


@pytest.mark.parametrize("path,data", [("text.txt", TEXT), ("weights.bin", WEIGHTS)],
                         ids=["regular", "lfs"])
def test_range_requests(api, repo_factory, server, path, data):
    repo_id = repo_factory()
    api.upload_file(path_or_fileobj=data, path_in_repo=path, repo_id=repo_id)
    url = _resolve_url(server, repo_id, "model", "main", path)
    with httpx.Client(follow_redirects=True) as client:
        for header, expect in RANGES:
            start, end = expect(data)
            r = client.get(url, headers={"Range": header})
            assert r.status_code == 206, header
            assert r.content == data[start:end], header
            assert r.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(data)}", header
            assert int(r.headers["Content-Length"]) == end - start, header
            assert "Content-Encoding" not in r.headers
        for header in (f"bytes={len(data)}-", f"bytes={len(data) + 10}-{len(data) + 20}"):
            r = client.get(url, headers={"Range": header})
            assert r.status_code == 416, header
            assert r.headers["Content-Range"] == f"bytes */{len(data)}"
        # No Range: the whole file, 200.
        r = client.get(url)
        assert r.status_code == 200
        assert r.content == data


def test_range_on_regular_file_head(api, repo_factory, server):
    repo_id = repo_factory()
    api.upload_file(path_or_fileobj=TEXT, path_in_repo="t.txt", repo_id=repo_id)
    r = httpx.head(_resolve_url(server, repo_id, "model", "main", "t.txt"),
                   headers={"Range": "bytes=0-99"})
    assert r.status_code == 206
    assert r.headers["Content-Range"] == f"bytes 0-99/{len(TEXT)}"
    assert r.headers["Content-Length"] == "100"


def test_hf_file_system_ranged_read(api, repo_factory):
    from huggingface_hub import HfFileSystem

    repo_id = repo_factory()
    api.upload_file(path_or_fileobj=WEIGHTS, path_in_repo="w.bin", repo_id=repo_id)
    fs = HfFileSystem(endpoint=api.endpoint, token=api.token, skip_instance_cache=True)
    with fs.open(f"{repo_id}/w.bin", "rb", block_size=4096) as f:
        f.seek(1000)
        assert f.read(100) == WEIGHTS[1000:1100]
        f.seek(len(WEIGHTS) - 50)
        assert f.read() == WEIGHTS[-50:]
    assert fs.info(f"{repo_id}/w.bin")["size"] == len(WEIGHTS)


# --- revisions and file names ----------------------------------------------------------------


def test_branch_with_slash(api, repo_factory, cache_dir, server):
    repo_id = repo_factory()
    api.create_branch(repo_id, branch="feature/x")
    sha = api.upload_file(path_or_fileobj=b"on the branch", path_in_repo="f.txt",
                          repo_id=repo_id, revision="feature/x").oid
    p = hf_hub_download(repo_id, "f.txt", revision="feature/x", cache_dir=cache_dir,
                        token=api.token)
    assert _read(p) == b"on the branch"
    assert Path(p).parent.name == sha
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(repo_id, "f.txt", cache_dir=cache_dir, token=api.token)
    snap = Path(snapshot_download(repo_id, revision="feature/x", cache_dir=cache_dir,
                                  token=api.token))
    assert (snap / "f.txt").read_bytes() == b"on the branch"
    # On the wire the revision is one segment: feature%2Fx and refs%2Fheads%2Ffeature%2Fx.
    for rev in ("feature%2Fx", "refs%2Fheads%2Ffeature%2Fx"):
        r = httpx.get(f"{server.endpoint}/{repo_id}/resolve/{rev}/f.txt")
        assert r.status_code == 200, rev
        assert r.content == b"on the branch"
        assert r.headers["X-Repo-Commit"] == sha
    assert httpx.get(f"{server.endpoint}/{repo_id}/resolve/refs%2Fheads%2Fmain/f.txt"
                     ).headers["X-Error-Code"] == "EntryNotFound"


NAMES = [
    "with space.txt",
    "hash#sign.txt",
    "question?mark.txt",
    "percent%20literal.txt",
    "ünïcödé/日本語.txt",
    "plus+and&amp=.txt",
]


def test_odd_file_names(api, repo_factory, cache_dir, server):
    repo_id = repo_factory()
    api.create_commit(repo_id, operations=[
        CommitOperationAdd(n, f"content of {n}".encode()) for n in NAMES
    ] + [CommitOperationAdd("odd dir/x y.bin", WEIGHTS)], commit_message="odd names")
    assert sorted(api.list_repo_files(repo_id)) == sorted(
        [".gitattributes", "odd dir/x y.bin", *NAMES])
    for n in NAMES:
        p = hf_hub_download(repo_id, n, cache_dir=cache_dir, token=api.token)
        assert _read(p) == f"content of {n}".encode(), n
        assert api.file_exists(repo_id, n), n
        r = httpx.get(f"{server.endpoint}/{repo_id}/resolve/main/{quote(n)}")
        assert r.content == f"content of {n}".encode(), n
    p = hf_hub_download(repo_id, "odd dir/x y.bin", cache_dir=cache_dir, token=api.token)
    assert _read(p) == WEIGHTS
    snap = Path(snapshot_download(repo_id, cache_dir=cache_dir, token=api.token))
    for n in NAMES:
        assert (snap / n).read_bytes() == f"content of {n}".encode()
    infos = {e.path for e in api.get_paths_info(repo_id, NAMES)}
    assert infos == set(NAMES)
    assert {e.path for e in api.list_repo_tree(repo_id, "ünïcödé")} == {"ünïcödé/日本語.txt"}


def test_resolve_rejects_traversal(api, repo_factory, server):
    repo_id = repo_factory()
    r = httpx.get(f"{server.endpoint}/{repo_id}/resolve/main/..%2F..%2Fsecret.key")
    assert r.status_code == 422
    assert r.headers["X-Error-Code"] == "InvalidPath"


def test_download_with_anonymous_client(api, repo, cache_dir):
    repo_id, repo_type, _, _ = repo
    p = hf_hub_download(repo_id, "weights.bin", repo_type=repo_type, cache_dir=cache_dir,
                        token=False)
    assert _read(p) == WEIGHTS
    assert HfApi(endpoint=api.endpoint, token=False).file_exists(
        repo_id, "config.json", repo_type=repo_type)
