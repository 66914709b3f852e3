"""`HfFileSystem` (fsspec, `hf://`) against hver, and the libraries that read through it.

pandas resolves `hf://` through fsspec, so it talks to HF_ENDPOINT like HfFileSystem does.

DuckDB's own `hf://` support lives in its `httpfs` extension, which hard-codes the endpoint
(`ParsedHFUrl.endpoint = "https://huggingface.co"`, no setting overrides it) and is downloaded from
extensions.duckdb.org on first use. It therefore cannot reach a self-hosted hub; the supported route
is `con.register_filesystem(HfFileSystem(...))`, which these tests use.
"""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from dataclasses import dataclass

import pytest
from huggingface_hub import CommitOperationAdd, HfApi, HfFileSystem

SMALL = b"hello world\n"
B_TXT = b"0123456789abcdefghij"
C_JSON = b'{"c": 1}\n'
ODD = b"odd name\n"
BRANCH_ONLY = b"only on the branch\n"
A_ON_BRANCH = b"a, changed on feature/x\n"
BIG = os.urandom(300_000)  # goes through Xet (marked "lfs" by preupload)

pytestmark = pytest.mark.usefixtures("no_server_errors")


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    id: str
    first: str  # sha of the commit that added the files (tagged v1)
    branch_head: str  # head of feature/x


@pytest.fixture(scope="module")
def owner_api(server, user) -> HfApi:
    return HfApi(endpoint=server.endpoint, token=user.token)


@pytest.fixture(scope="module")
def repo(owner_api: HfApi, user) -> Repo:
    """A model repo: small files, a nested folder, an odd name, an LFS/Xet file, a branch, a tag."""
    rid = f"{user.name}/hffs-{uuid.uuid4().hex[:8]}"
    owner_api.create_repo(rid)
    first = owner_api.create_commit(rid, [
        CommitOperationAdd("a.txt", SMALL),
        CommitOperationAdd("sub/b.txt", B_TXT),
        CommitOperationAdd("sub/deep/c.json", C_JSON),
        CommitOperationAdd("sp ace/f#1.txt", ODD),
        CommitOperationAdd("w.bin", BIG),
    ], commit_message="files").oid
    owner_api.create_tag(rid, tag="v1", revision=first)
    owner_api.create_branch(rid, branch="feature/x", revision=first)
    head = owner_api.create_commit(rid, [
        CommitOperationAdd("a.txt", A_ON_BRANCH),
        CommitOperationAdd("sub/only-branch.txt", BRANCH_ONLY),
    ], commit_message="branch work", revision="feature/x").oid
    return Repo(id=rid, first=first, branch_head=head)


@pytest.fixture
def fs(server, user) -> HfFileSystem:
    """A fresh instance each test (fsspec caches instances and their directory listings)."""
    return HfFileSystem(endpoint=server.endpoint, token=user.token, skip_instance_cache=True)


def test_ls(fs, repo):
    r = repo.id
    assert sorted(fs.ls(r, detail=False)) == sorted(
        [f"{r}/.gitattributes", f"{r}/a.txt", f"{r}/sp ace", f"{r}/sub", f"{r}/w.bin"])
    by_name = {e["name"]: e for e in fs.ls(r, detail=True)}
    a = by_name[f"{r}/a.txt"]
    assert a["type"] == "file" and a["size"] == len(SMALL)
    assert a["blob_id"] == git_blob_sha1(SMALL) and a["lfs"] is None
    w = by_name[f"{r}/w.bin"]
    assert w["type"] == "file" and w["size"] == len(BIG)
    assert w["lfs"].sha256 == hashlib.sha256(BIG).hexdigest() and w["lfs"].size == len(BIG)
    assert by_name[f"{r}/sub"]["type"] == "directory"
    assert by_name[f"{r}/sp ace"]["type"] == "directory"

    assert sorted(fs.ls(f"{r}/sub", detail=False)) == [f"{r}/sub/b.txt", f"{r}/sub/deep"]
    assert fs.ls(f"{r}/sub/deep", detail=False) == [f"{r}/sub/deep/c.json"]
    assert fs.ls(f"{r}/sp ace", detail=False) == [f"{r}/sp ace/f#1.txt"]
    # ls on a file gives that file.
    (entry,) = fs.ls(f"{r}/sub/b.txt", detail=True)
    assert entry["name"] == f"{r}/sub/b.txt" and entry["size"] == len(B_TXT)
    with pytest.raises(FileNotFoundError):
        fs.ls(f"{r}/nope")
    with pytest.raises(FileNotFoundError):
        fs.ls(f"{r}/nope/deeper")


def test_glob(fs, repo):
    r = repo.id
    assert sorted(fs.glob(f"{r}/*.txt")) == [f"{r}/a.txt"]
    assert sorted(fs.glob(f"{r}/**/*.txt")) == sorted(
        [f"{r}/a.txt", f"{r}/sub/b.txt", f"{r}/sp ace/f#1.txt"])
    assert sorted(fs.glob(f"{r}/**")) == sorted([
        r, f"{r}/.gitattributes", f"{r}/a.txt", f"{r}/sp ace", f"{r}/sp ace/f#1.txt", f"{r}/sub",
        f"{r}/sub/b.txt", f"{r}/sub/deep", f"{r}/sub/deep/c.json", f"{r}/w.bin"])
    assert fs.glob(f"{r}/sub/**/*.json") == [f"{r}/sub/deep/c.json"]
    assert fs.glob(f"{r}/*/*/c.*") == [f"{r}/sub/deep/c.json"]
    assert fs.glob(f"{r}/*.bin") == [f"{r}/w.bin"]
    assert fs.glob(f"{r}/*.parquet") == []
    detail = fs.glob(f"{r}/**/*.json", detail=True)
    assert list(detail) == [f"{r}/sub/deep/c.json"]
    assert detail[f"{r}/sub/deep/c.json"]["size"] == len(C_JSON)


def test_info(fs, repo):
    r = repo.id
    a = fs.info(f"{r}/a.txt")
    assert (a["name"], a["type"], a["size"]) == (f"{r}/a.txt", "file", len(SMALL))
    assert a["blob_id"] == git_blob_sha1(SMALL) and a["lfs"] is None

    w = fs.info(f"{r}/w.bin")
    assert w["type"] == "file" and w["size"] == len(BIG)
    assert w["lfs"].sha256 == hashlib.sha256(BIG).hexdigest()
    assert w["lfs"].size == len(BIG) and w["lfs"].pointer_size > 0
    assert w["xet_hash"] and len(w["xet_hash"]) == 64  # a Xet hub reports the file's Xet hash

    d = fs.info(f"{r}/sub/deep")
    assert (d["name"], d["type"], d["size"]) == (f"{r}/sub/deep", "directory", 0)
    root = fs.info(r)
    assert (root["name"], root["type"]) == (r, "directory")

    # refresh=True goes through paths-info.
    fresh = fs.info(f"{r}/w.bin", refresh=True)
    assert (fresh["type"], fresh["size"]) == ("file", len(BIG))
    # expand_info adds the last commit that touched the path.
    expanded = fs.info(f"{r}/sub/b.txt", refresh=True, expand_info=True)
    assert expanded["last_commit"].oid == repo.first
    assert expanded["last_commit"].title == "files"
    assert fs.modified(f"{r}/a.txt").tzinfo is not None
    assert fs.isfile(f"{r}/w.bin") and not fs.isdir(f"{r}/w.bin")
    assert fs.isdir(f"{r}/sp ace") and not fs.isfile(f"{r}/sp ace")
    assert fs.size(f"{r}/sub/b.txt") == len(B_TXT)
    assert fs.du(f"{r}/sub") == len(B_TXT) + len(C_JSON)
    with pytest.raises(FileNotFoundError):
        fs.info(f"{r}/sub/missing.txt")


def test_open_and_read_ranges(fs, repo, tmp_path):
    r = repo.id
    with fs.open(f"{r}/w.bin", "rb", block_size=4096) as f:
        assert f.size == len(BIG)
        f.seek(100_000)
        assert f.read(50) == BIG[100_000:100_050]
        assert f.tell() == 100_050
        f.seek(10, 1)
        assert f.read(5) == BIG[100_060:100_065]
        f.seek(-100, 2)
        assert f.read() == BIG[-100:]
        assert f.read(10) == b""
        f.seek(0)
        assert f.read(4096 * 3 + 7) == BIG[:4096 * 3 + 7]
    with fs.open(f"{r}/sub/b.txt", "rb", block_size=4) as f:
        f.seek(5)
        assert f.read(6) == B_TXT[5:11]
        f.seek(-3, 2)
        assert f.read() == B_TXT[-3:]
    with fs.open(f"{r}/sp ace/f#1.txt", "r") as f:
        assert f.read() == ODD.decode()
    # block_size=0 streams the whole file.
    with fs.open(f"{r}/w.bin", "rb", block_size=0) as f:
        assert f.read(10) == BIG[:10]
        assert f.read() == BIG[10:]
    assert fs.read_bytes(f"{r}/w.bin") == BIG
    assert fs.read_text(f"{r}/a.txt") == SMALL.decode()
    # get_file: the LFS file comes through the Xet download path.
    out = tmp_path / "w.bin"
    fs.get_file(f"{r}/w.bin", str(out))
    assert out.read_bytes() == BIG
    fs.get(f"{r}/sub/", str(tmp_path / "subdir"), recursive=True)
    assert (tmp_path / "subdir" / "b.txt").read_bytes() == B_TXT
    assert (tmp_path / "subdir" / "deep" / "c.json").read_bytes() == C_JSON
    with pytest.raises(FileNotFoundError):
        fs.open(f"{r}/missing.bin", "rb")


def test_cat_file_ranges(fs, repo):
    r = repo.id
    assert fs.cat_file(f"{r}/sub/b.txt") == B_TXT
    assert fs.cat_file(f"{r}/sub/b.txt", start=2, end=5) == B_TXT[2:5]
    assert fs.cat_file(f"{r}/sub/b.txt", start=15) == B_TXT[15:]
    assert fs.cat_file(f"{r}/sub/b.txt", start=-4) == B_TXT[-4:]
    assert fs.cat_file(f"{r}/w.bin", start=123_456, end=123_556) == BIG[123_456:123_556]
    assert fs.cat_file(f"{r}/w.bin", start=-10) == BIG[-10:]
    assert fs.cat_file(f"{r}/w.bin", start=len(BIG) - 10, end=len(BIG) + 1000) == BIG[-10:]
    assert fs.cat_file(f"{r}/w.bin", start=0, end=1) == BIG[:1]
    assert fs.cat([f"{r}/a.txt", f"{r}/sub/deep/c.json"]) == {
        f"{r}/a.txt": SMALL, f"{r}/sub/deep/c.json": C_JSON}
    assert fs.cat_ranges([f"{r}/w.bin", f"{r}/a.txt"], [10, 0], [20, 5]) == [BIG[10:20], SMALL[:5]]
    assert fs.read_block(f"{r}/w.bin", 1000, 24) == BIG[1000:1024]


def test_find(fs, repo):
    r = repo.id
    files = [f"{r}/.gitattributes", f"{r}/a.txt", f"{r}/sp ace/f#1.txt", f"{r}/sub/b.txt",
             f"{r}/sub/deep/c.json", f"{r}/w.bin"]
    assert fs.find(r) == files
    assert fs.find(r, withdirs=True) == sorted(
        [r, *files, f"{r}/sp ace", f"{r}/sub", f"{r}/sub/deep"])
    assert fs.find(r, maxdepth=1) == [f"{r}/.gitattributes", f"{r}/a.txt", f"{r}/w.bin"]
    assert fs.find(f"{r}/sub") == [f"{r}/sub/b.txt", f"{r}/sub/deep/c.json"]
    sizes = {k: v["size"] for k, v in fs.find(f"{r}/sub", detail=True).items()}
    assert sizes == {f"{r}/sub/b.txt": len(B_TXT), f"{r}/sub/deep/c.json": len(C_JSON)}
    # find on a file gives the file.
    assert fs.find(f"{r}/w.bin") == [f"{r}/w.bin"]
    walked = {root: (sorted(dirs), sorted(fl)) for root, dirs, fl in fs.walk(f"{r}/sub")}
    assert walked == {f"{r}/sub": (["deep"], ["b.txt"]), f"{r}/sub/deep": ([], ["c.json"])}


def test_exists(fs, repo, user):
    r = repo.id
    assert fs.exists(f"{r}/a.txt") and fs.exists(f"{r}/sub") and fs.exists(r)
    assert fs.exists(f"{r}/w.bin") and fs.exists(f"{r}/sp ace/f#1.txt")
    assert not fs.exists(f"{r}/nope.txt")
    assert not fs.exists(f"{r}/sub/nope/deeper.txt")
    assert not fs.exists(f"{r}@no-such-branch/a.txt")
    assert not fs.exists(f"{user.name}/no-such-repo-{uuid.uuid4().hex[:6]}/a.txt")
    assert not fs.exists(f"datasets/{r}/a.txt")  # the model repo is not a dataset
    # A public repo reads without a token too (the LFS redirect carries its own signature).
    anon = HfFileSystem(endpoint=fs.endpoint, token=False, skip_instance_cache=True)
    assert anon.cat_file(f"{r}/w.bin", start=0, end=8) == BIG[:8]
    assert anon.ls(f"{r}/sub/deep", detail=False) == [f"{r}/sub/deep/c.json"]
    with pytest.raises(FileNotFoundError, match="revision not found"):
        fs.info(f"{r}@no-such-branch/a.txt")
    with pytest.raises(FileNotFoundError, match="repository not found"):
        fs.ls(f"{user.name}/no-such-repo-{uuid.uuid4().hex[:6]}")


def test_revision_in_path(fs, repo):
    r = repo.id
    # A branch with a slash is percent-encoded in the path.
    br = f"{r}@feature%2Fx"
    assert fs.cat_file(f"{br}/a.txt") == A_ON_BRANCH
    assert fs.cat_file(f"{r}/a.txt") == SMALL
    assert sorted(fs.ls(f"{br}/sub", detail=False)) == [
        f"{br}/sub/b.txt", f"{br}/sub/deep", f"{br}/sub/only-branch.txt"]
    assert fs.info(f"{br}/sub/only-branch.txt")["size"] == len(BRANCH_ONLY)
    assert not fs.exists(f"{r}/sub/only-branch.txt")
    assert fs.glob(f"{br}/**/only-*.txt") == [f"{br}/sub/only-branch.txt"]
    assert fs.find(f"{br}/sub") == [
        f"{br}/sub/b.txt", f"{br}/sub/deep/c.json", f"{br}/sub/only-branch.txt"]
    with fs.open(f"{br}/sub/only-branch.txt", "rb", block_size=4) as f:
        f.seek(5)
        assert f.read(2) == BRANCH_ONLY[5:7]
    # The revision as an argument instead of in the path.
    assert fs.cat_file(f"{r}/a.txt", revision="feature/x") == A_ON_BRANCH
    # A tag and a commit sha.
    assert fs.cat_file(f"{r}@v1/a.txt") == SMALL
    assert not fs.exists(f"{r}@v1/sub/only-branch.txt")
    assert fs.cat_file(f"{r}@{repo.branch_head}/sub/only-branch.txt") == BRANCH_ONLY
    assert fs.cat_file(f"{r}@{repo.first}/a.txt") == SMALL
    assert fs.cat_file(f"{r}@{repo.first}/w.bin", start=5, end=9) == BIG[5:9]
    assert fs.ls(f"{r}@{repo.first}/sub/deep", detail=False) == [
        f"{r}@{repo.first}/sub/deep/c.json"]


@pytest.fixture(scope="module")
def dataset(owner_api: HfApi, user):  # type: ignore[no-untyped-def]
    """A private dataset with a parquet and a csv shard, and a branch with an extra shard."""
    import pandas as pd

    rid = f"{user.name}/hffs-ds-{uuid.uuid4().hex[:8]}"
    owner_api.create_repo(rid, repo_type="dataset", private=True)
    train = pd.DataFrame({"x": [1, 2, 3], "s": ["a", "b", "c"]})
    test = pd.DataFrame({"x": [10, 20], "s": ["y", "z"]})
    extra = pd.DataFrame({"x": [100], "s": ["q"]})

    def parquet(df) -> bytes:  # type: ignore[no-untyped-def]
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return buf.getvalue()

    owner_api.create_commit(rid, repo_type="dataset", commit_message="data", operations=[
        CommitOperationAdd("data/train-00000-of-00001.parquet", parquet(train)),
        CommitOperationAdd("data/test-00000-of-00001.parquet", parquet(test)),
        CommitOperationAdd("csv/table.csv", train.to_csv(index=False).encode()),
        CommitOperationAdd("README.md", b"---\nlicense: mit\n---\n# ds\n"),
    ])
    owner_api.create_branch(rid, branch="more", repo_type="dataset")
    owner_api.create_commit(rid, repo_type="dataset", revision="more", commit_message="more",
                            operations=[CommitOperationAdd("data/extra.parquet", parquet(extra))])
    return rid, train, test, extra


def test_dataset_paths(fs, dataset, server):
    rid, train, test, _ = dataset
    d = f"datasets/{rid}"
    assert sorted(fs.ls(d, detail=False)) == sorted(
        [f"{d}/.gitattributes", f"{d}/README.md", f"{d}/csv", f"{d}/data"])
    assert fs.glob(f"{d}/data/*.parquet") == [
        f"{d}/data/test-00000-of-00001.parquet", f"{d}/data/train-00000-of-00001.parquet"]
    assert fs.glob(f"{d}/**/*.csv") == [f"{d}/csv/table.csv"]
    assert fs.cat_file(f"{d}/README.md") == b"---\nlicense: mit\n---\n# ds\n"
    assert fs.cat_file(f"{d}/csv/table.csv", start=0, end=4) == b"x,s\n"
    assert fs.read_bytes(f"{d}/data/train-00000-of-00001.parquet")[:4] == b"PAR1"
    assert fs.info(f"{d}/data")["type"] == "directory"
    assert fs.glob(f"{d}@more/data/*.parquet") == [
        f"{d}@more/data/extra.parquet", f"{d}@more/data/test-00000-of-00001.parquet",
        f"{d}@more/data/train-00000-of-00001.parquet"]
    # Private: invisible without a token, and the error is FileNotFoundError.
    anon = HfFileSystem(endpoint=server.endpoint, token=False, skip_instance_cache=True)
    assert not anon.exists(f"{d}/README.md")
    with pytest.raises(FileNotFoundError):
        anon.ls(d)


def test_write_through_fs(fs, repo_factory, owner_api):
    rid = repo_factory()
    fs.pipe_file(f"{rid}/new/file.txt", b"written by fsspec\n")
    with fs.open(f"{rid}/new/stream.bin", "wb") as f:
        f.write(BIG[:1000])
        f.write(BIG[1000:200_000])
    assert owner_api.list_repo_commits(rid)[0].title.startswith("Upload")
    assert {"new/file.txt", "new/stream.bin"} <= set(owner_api.list_repo_files(rid))
    assert fs.cat_file(f"{rid}/new/file.txt") == b"written by fsspec\n"
    assert fs.cat_file(f"{rid}/new/stream.bin", start=199_990) == BIG[199_990:200_000]
    fs.rm(f"{rid}/new/file.txt")
    assert not fs.exists(f"{rid}/new/file.txt")
    assert "new/file.txt" not in owner_api.list_repo_files(rid)


# -- pandas ------------------------------------------------------------------------------


def test_pandas_read_hf_urls(dataset, user):
    import pandas as pd
    from pandas.testing import assert_frame_equal

    rid, train, test, extra = dataset
    opts = {"token": user.token}
    got = pd.read_parquet(f"hf://datasets/{rid}/data/train-00000-of-00001.parquet",
                          storage_options=opts)
    assert_frame_equal(got, train)
    assert_frame_equal(pd.read_csv(f"hf://datasets/{rid}/csv/table.csv", storage_options=opts),
                       train)
    # A column subset reads parquet with ranged requests.
    assert pd.read_parquet(f"hf://datasets/{rid}/data/test-00000-of-00001.parquet",
                           columns=["s"], storage_options=opts)["s"].tolist() == ["y", "z"]
    # A revision in the URL.
    assert_frame_equal(pd.read_parquet(f"hf://datasets/{rid}@more/data/extra.parquet",
                                       storage_options=opts), extra)
    # Private repo without a token: not found.
    with pytest.raises(FileNotFoundError):
        pd.read_csv(f"hf://datasets/{rid}/csv/table.csv", storage_options={"token": False})


def test_pandas_write_hf_url(repo_factory, user, owner_api):
    import pandas as pd
    from pandas.testing import assert_frame_equal

    rid = repo_factory(repo_type="dataset")
    df = pd.DataFrame({"n": list(range(50)), "t": [f"row{i}" for i in range(50)]})
    opts = {"token": user.token}
    df.to_parquet(f"hf://datasets/{rid}/out/df.parquet", index=False, storage_options=opts)
    df.to_csv(f"hf://datasets/{rid}/out/df.csv", index=False, storage_options=opts)
    assert {"out/df.parquet", "out/df.csv"} <= set(
        owner_api.list_repo_files(rid, repo_type="dataset"))
    fresh = {"token": user.token, "skip_instance_cache": True}
    assert_frame_equal(pd.read_parquet(f"hf://datasets/{rid}/out/df.parquet",
                                       storage_options=fresh), df)
    assert_frame_equal(pd.read_csv(f"hf://datasets/{rid}/out/df.csv", storage_options=fresh), df)


# -- DuckDB (through fsspec) -------------------------------------------------------------


def test_duckdb_via_fsspec(dataset, server, user):
    import duckdb

    rid, train, test, extra = dataset
    con = duckdb.connect()
    con.register_filesystem(
        HfFileSystem(endpoint=server.endpoint, token=user.token, skip_instance_cache=True))
    base = f"hf://datasets/{rid}"
    q = f"select x, s from read_parquet('{base}/data/train-00000-of-00001.parquet') order by x"
    assert con.sql(q).fetchall() == [(1, "a"), (2, "b"), (3, "c")]
    assert con.sql(f"select sum(x) from '{base}/data/*.parquet'").fetchall() == [(36,)]
    assert con.sql(
        f"select count(*), max(x) from read_parquet('{base}@more/data/*.parquet')"
    ).fetchall() == [(6, 100)]
    assert con.sql(f"select s from read_csv('{base}/csv/table.csv') order by x").fetchall() == [
        ("a",), ("b",), ("c",)]
    files = con.sql(f"select file from glob('{base}/**/*.parquet') order by file").fetchall()
    assert [f for (f,) in files] == [f"{base}/data/test-00000-of-00001.parquet",
                                     f"{base}/data/train-00000-of-00001.parquet"]
    con.close()


def test_find_paginated_tree(fs, repo_factory, owner_api):
    """More than two pages of tree: HfFileSystem follows `Link` and then splits per directory."""
    rid = repo_factory()
    paths = [f"d{d}/f{i:04d}.txt" for d in range(2) for i in range(1100)]
    paths += [f"e/f{i:03d}.txt" for i in range(120)] + ["top.txt"]
    owner_api.create_commit(rid, [CommitOperationAdd(p, p.encode()) for p in paths],
                            commit_message="many")
    found = fs.find(rid)
    assert found == sorted(f"{rid}/{p}" for p in [*paths, ".gitattributes"])
    assert len(fs.ls(f"{rid}/d1", detail=False)) == 1100
    assert len(fs.glob(f"{rid}/d0/f1*.txt")) == 100
    assert fs.cat_file(f"{rid}/d1/f1099.txt") == b"d1/f1099.txt"
    # Expanded listings come in pages of 50 on the Hub; every entry carries its last commit.
    head = owner_api.list_repo_commits(rid)[0].commit_id
    expanded = fs.ls(f"{rid}/e", detail=True, refresh=True, expand_info=True)
    assert sorted(e["name"] for e in expanded) == [f"{rid}/e/f{i:03d}.txt" for i in range(120)]
    assert {e["last_commit"].oid for e in expanded} == {head}
