"""huggingface_hub 2.x calls past commits and downloads, each through the real client:
`super_squash_history`, `list_lfs_files` / `permanently_delete_lfs_files`, `copy_files`
between repos (`lfs-files/duplicate`), `get_safetensors_metadata` and
`get_sharded_safetensors_metadata` on a sharded checkpoint, and `treesize`.

The attacks on cross-repo copies are in tests/attacks/test_copy_files.py.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import (
    BadRequestError,
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import build_hf_headers, get_session, hf_raise_for_status, paginate
from safetensors.numpy import save
from threads import parallel

pytestmark = pytest.mark.usefixtures("no_server_errors")


def blob_path(server: Any, oid: str) -> Path:
    return Path(server.data) / "blobs" / "lfs" / oid[:2] / oid[2:4] / oid


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _tree(api: HfApi, repo_id: str, revision: str = "main",
          repo_type: str = "model") -> dict[str, Any]:
    return {f.path: (f.blob_id, f.lfs.sha256 if f.lfs else None)
            for f in api.list_repo_tree(repo_id, revision=revision, recursive=True,
                                        repo_type=repo_type)
            if hasattr(f, "blob_id")}


# -- super_squash_history ------------------------------------------------------------------------


def test_super_squash_keeps_the_tree_in_one_commit(api: HfApi, repo_factory: Callable[..., str],
                                                   cache_dir: Path) -> None:
    repo_id = repo_factory()
    weights = os.urandom(50_000)
    api.upload_file(path_or_fileobj=b"one", path_in_repo="file.txt", repo_id=repo_id)
    api.upload_file(path_or_fileobj=weights, path_in_repo="lfs.bin", repo_id=repo_id)
    api.upload_file(path_or_fileobj=b"two", path_in_repo="file.txt", repo_id=repo_id)
    before = _tree(api, repo_id)
    assert len(api.list_repo_commits(repo_id)) == 4

    api.super_squash_history(repo_id, commit_message="All in one")

    commits = api.list_repo_commits(repo_id)
    assert [c.title for c in commits] == ["All in one"]
    assert _tree(api, repo_id) == before
    assert api.model_info(repo_id).sha == commits[0].commit_id  # the listing index follows
    path = hf_hub_download(repo_id, "lfs.bin", cache_dir=cache_dir)
    assert Path(path).read_bytes() == weights  # the large file is still held
    # The default message, and a commit after the squash builds on it.
    api.super_squash_history(repo_id)
    (squashed,) = api.list_repo_commits(repo_id)
    assert squashed.title == "Super-squash branch 'main' using huggingface_hub"
    api.upload_file(path_or_fileobj=b"three", path_in_repo="file.txt", repo_id=repo_id)
    assert len(api.list_repo_commits(repo_id)) == 2


def test_super_squash_other_branches_tags_and_errors(api: HfApi, server: Any, other: Any,
                                                     user: Any,
                                                     repo_factory: Callable[..., str]) -> None:
    repo_id = repo_factory("dataset")
    api.upload_file(path_or_fileobj=b"a", path_in_repo="a.txt", repo_id=repo_id,
                    repo_type="dataset")
    api.create_branch(repo_id, branch="dev/x", repo_type="dataset")
    api.upload_file(path_or_fileobj=b"b", path_in_repo="b.txt", repo_id=repo_id,
                    repo_type="dataset", revision="dev/x")
    api.create_tag(repo_id, tag="v1", repo_type="dataset")
    main_before = api.list_repo_commits(repo_id, repo_type="dataset")

    api.super_squash_history(repo_id, branch="dev/x", repo_type="dataset")
    assert len(api.list_repo_commits(repo_id, repo_type="dataset", revision="dev/x")) == 1
    assert api.list_repo_commits(repo_id, repo_type="dataset") == main_before  # main untouched
    assert set(_tree(api, repo_id, "dev/x", "dataset")) == {".gitattributes", "a.txt", "b.txt"}

    with pytest.raises(BadRequestError):
        api.super_squash_history(repo_id, branch="v1", repo_type="dataset")
    with pytest.raises(RevisionNotFoundError):
        api.super_squash_history(repo_id, branch="nope", repo_type="dataset")
    reader = HfApi(endpoint=server.endpoint, token=user.read_token)
    with pytest.raises(HfHubHTTPError) as e:
        reader.super_squash_history(repo_id, repo_type="dataset")
    assert e.value.response.status_code == 403
    outsider = HfApi(endpoint=server.endpoint, token=other.token)
    with pytest.raises(HfHubHTTPError) as e:
        outsider.super_squash_history(repo_id, repo_type="dataset")
    assert e.value.response.status_code == 403
    private = repo_factory(private=True)
    with pytest.raises(RepositoryNotFoundError):
        outsider.super_squash_history(private)
    assert api.list_repo_commits(repo_id, repo_type="dataset") == main_before


def test_super_squash_loses_no_concurrent_commit(api: HfApi,
                                                repo_factory: Callable[..., str]) -> None:
    """Squashes and commits side by side: every commit's file is in the final tree."""
    repo_id = repo_factory()

    def work(i: int) -> Any:
        if i % 2:
            return api.super_squash_history(repo_id, commit_message=f"squash {i}")
        return api.upload_file(path_or_fileobj=f"{i}".encode(), path_in_repo=f"f{i}.txt",
                               repo_id=repo_id)

    results = parallel(8, work)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert {f"f{i}.txt" for i in range(0, 8, 2)} <= set(_tree(api, repo_id))


# -- list_lfs_files / permanently_delete_lfs_files -----------------------------------------------


@pytest.fixture
def lfs_repo(api: HfApi, repo_factory: Callable[..., str],
             lfs_client: None) -> tuple[str, dict[str, bytes]]:
    """A repo with two LFS blobs (one renamed away from every branch) and one small file."""
    repo_id = repo_factory()
    files = {"weights/a.bin": os.urandom(30_000), "b.bin": os.urandom(40_000)}
    api.create_commit(repo_id, commit_message="add", operations=[
        CommitOperationAdd(path, data) for path, data in files.items()])
    api.create_commit(repo_id, commit_message="small", operations=[
        CommitOperationAdd("config.json", b"{}")])
    api.delete_file("b.bin", repo_id)  # only the history names it now
    return repo_id, files


def test_list_lfs_files(api: HfApi, server: Any, lfs_repo: tuple[str, dict[str, bytes]],
                        user: Any, other: Any) -> None:
    repo_id, files = lfs_repo
    listed = {f.file_oid: f for f in api.list_lfs_files(repo_id)}
    assert set(listed) == {sha256(d) for d in files.values()}
    a, b = listed[sha256(files["weights/a.bin"])], listed[sha256(files["b.bin"])]
    assert (a.filename, a.ref, a.size, a.oid) == ("weights/a.bin", "refs/heads/main", 30_000,
                                                  a.file_oid)
    assert (b.filename, b.ref, b.size) == ("b.bin", None, 40_000)  # found in history
    assert a.pushed_at.tzinfo is not None
    # Pages follow the Link header, every parameter kept.
    url = f"{server.endpoint}/api/models/{repo_id}/lfs-files"
    pages = list(paginate(url, params={"limit": 1}, headers=build_hf_headers(token=user.token)))
    assert sorted(p["fileOid"] for p in pages) == sorted(listed)
    # Writers only, as on the Hub; a private repo is missing.
    with pytest.raises(HfHubHTTPError) as e:
        list(HfApi(endpoint=server.endpoint, token=other.token).list_lfs_files(repo_id))
    assert e.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as e:
        list(HfApi(endpoint=server.endpoint, token=user.read_token).list_lfs_files(repo_id))
    assert e.value.response.status_code == 403
    api.update_repo_settings(repo_id, private=True)
    with pytest.raises(RepositoryNotFoundError):
        list(HfApi(endpoint=server.endpoint, token=other.token).list_lfs_files(repo_id))


def test_list_lfs_files_of_xet_uploads(api: HfApi, repo_factory: Callable[..., str]) -> None:
    repo_id = repo_factory()
    data = os.urandom(100_000)
    api.upload_file(path_or_fileobj=data, path_in_repo="model.safetensors", repo_id=repo_id)
    (f,) = api.list_lfs_files(repo_id)
    (entry,) = api.get_paths_info(repo_id, ["model.safetensors"])
    assert (f.file_oid, f.filename, f.size) == (sha256(data), "model.safetensors", 100_000)
    assert f.xetHash == entry.xet_hash  # type: ignore[attr-defined]


def test_permanently_delete_lfs_files(api: HfApi, server: Any, user: Any,
                                      lfs_repo: tuple[str, dict[str, bytes]],
                                      repo_factory: Callable[..., str],
                                      cache_dir: Path) -> None:
    repo_id, files = lfs_repo
    a, b = sha256(files["weights/a.bin"]), sha256(files["b.bin"])
    # Another repo holds the same bytes as weights/a.bin.
    twin = repo_factory()
    api.upload_file(path_or_fileobj=files["weights/a.bin"], path_in_repo="a.bin", repo_id=twin)
    assert blob_path(server, a).exists() and blob_path(server, b).exists()

    # Writers who are not admins may not; admins may (the owner is).
    reader = HfApi(endpoint=server.endpoint, token=user.read_token)
    with pytest.raises(HfHubHTTPError) as e:
        reader.permanently_delete_lfs_files(repo_id, list(api.list_lfs_files(repo_id)))
    assert e.value.response.status_code == 403
    api.permanently_delete_lfs_files(repo_id, list(api.list_lfs_files(repo_id)))

    assert list(api.list_lfs_files(repo_id)) == []
    with pytest.raises(EntryNotFoundError):  # the pointer stays, and serves nothing
        hf_hub_download(repo_id, "weights/a.bin", cache_dir=cache_dir)
    assert "weights/a.bin" in _tree(api, repo_id)
    # A blob no repo holds is gone; one the twin holds stays, and the twin still serves it.
    assert not blob_path(server, b).exists()
    assert blob_path(server, a).exists()
    path = hf_hub_download(twin, "a.bin", cache_dir=cache_dir)
    assert Path(path).read_bytes() == files["weights/a.bin"]
    # Deleting again (or something never held) changes nothing; uploading again works.
    api.permanently_delete_lfs_files(repo_id, [])
    r = get_session().post(f"{server.endpoint}/api/models/{repo_id}/lfs-files/batch",
                           headers=build_hf_headers(token=user.token),
                           json={"deletions": {"sha": [a, "0" * 64], "rewriteHistory": True}})
    hf_raise_for_status(r)
    assert r.json() == {"deleted": []}
    assert "X-HF-Warning" in r.headers
    api.upload_file(path_or_fileobj=files["b.bin"], path_in_repo="b.bin", repo_id=repo_id)
    path = hf_hub_download(repo_id, "b.bin", cache_dir=cache_dir, force_download=True)
    assert Path(path).read_bytes() == files["b.bin"]
    r = get_session().post(f"{server.endpoint}/api/models/{repo_id}/lfs-files/batch",
                           headers=build_hf_headers(token=user.token),
                           json={"deletions": {"sha": ["not-a-sha"]}})
    assert r.status_code == 400


def test_an_upload_whose_blob_was_deleted_meanwhile_is_refused(tmp_path: Path) -> None:
    """An LFS upload of bytes already stored skips storing them; if the last holder
    deletes them for good before the upload is recorded, the upload must fail (and be
    sent again), never record a holding of a removed blob."""
    from hver.config import Settings
    from hver.core.hub import Hub
    from hver.core.lfs import register_object
    from hver.errors import Conflict

    hub = Hub.open(Settings.from_env(data=tmp_path / "data"))
    try:
        with pytest.raises(Conflict):
            register_object(hub, 1, "a" * 64, 5)
    finally:
        hub.close()


# -- copy_files ----------------------------------------------------------------------------------


def test_copy_files_between_repos(api: HfApi, repo_factory: Callable[..., str],
                                  cache_dir: Path, server: Any) -> None:
    src = repo_factory()
    dst = repo_factory("dataset")
    weights, extra = os.urandom(120_000), os.urandom(60_000)
    api.create_commit(src, commit_message="files", operations=[
        CommitOperationAdd("model.safetensors", weights),
        CommitOperationAdd("sub/extra.bin", extra),
        CommitOperationAdd("sub/config.json", b'{"a": 1}'),
    ])
    src_lfs = sorted(f.file_oid for f in api.list_lfs_files(src))

    api.copy_files(f"hf://{src}/model.safetensors", f"hf://datasets/{dst}/copied.safetensors")
    api.copy_files(f"hf://{src}/sub/", f"hf://datasets/{dst}/folder/")

    got = {p: Path(hf_hub_download(dst, p, repo_type="dataset", cache_dir=cache_dir)).read_bytes()
           for p in ("copied.safetensors", "folder/extra.bin", "folder/config.json")}
    assert got == {"copied.safetensors": weights, "folder/extra.bin": extra,
                   "folder/config.json": b'{"a": 1}'}
    assert sorted(f.file_oid for f in api.list_lfs_files(dst, repo_type="dataset")) == src_lfs
    assert sorted(f.file_oid for f in api.list_lfs_files(src)) == src_lfs  # source unchanged
    assert set(_tree(api, src)) == {".gitattributes", "model.safetensors", "sub/extra.bin",
                                    "sub/config.json"}


# -- safetensors metadata of a sharded checkpoint ------------------------------------------------


def _shards() -> tuple[dict[str, bytes], dict[str, Any]]:
    rng = np.random.default_rng(0)
    tensors = [
        {"embed.weight": rng.standard_normal((16, 8)).astype(np.float32),
         "layer.0.bias": np.arange(8, dtype=np.int64)},
        {"layer.1.weight": rng.standard_normal((8, 8)).astype(np.float16),
         "head.weight": rng.standard_normal((4, 8, 2)).astype(np.float32)},
    ]
    shards, weight_map = {}, {}
    for i, group in enumerate(tensors, 1):
        name = f"model-{i:05d}-of-00002.safetensors"
        shards[name] = save(group, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(group, name))
    index = {"metadata": {"total_size": sum(len(s) for s in shards.values())},
             "weight_map": weight_map}
    return shards, index


@pytest.mark.parametrize("transfer", ["xet", "lfs"])
def test_safetensors_metadata_of_a_sharded_model(api: HfApi, repo_factory: Callable[..., str],
                                                 transfer: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", transfer == "lfs")
    repo_id = repo_factory()
    shards, index = _shards()
    api.create_commit(repo_id, commit_message="sharded", operations=[
        *(CommitOperationAdd(name, data) for name, data in shards.items()),
        CommitOperationAdd("model.safetensors.index.json", json.dumps(index).encode()),
    ])
    for meta in (api.get_safetensors_metadata(repo_id),
                 api.get_sharded_safetensors_metadata(repo_id)):
        assert meta.sharded
        assert meta.metadata == index["metadata"]
        assert meta.weight_map == index["weight_map"]
        assert set(meta.files_metadata) == set(shards)
        first = meta.files_metadata["model-00001-of-00002.safetensors"]
        assert first.metadata == {"format": "pt"}
        assert first.tensors["embed.weight"].dtype == "F32"
        assert first.tensors["embed.weight"].shape == [16, 8]
        assert meta.parameter_count == {"F32": 16 * 8 + 4 * 8 * 2, "I64": 8, "F16": 64}


def test_sharded_safetensors_metadata_errors(api: HfApi, server: Any, other: Any,
                                             repo_factory: Callable[..., str]) -> None:
    repo_id = repo_factory()
    shards, index = _shards()
    del shards["model-00002-of-00002.safetensors"]
    api.create_commit(repo_id, commit_message="one shard missing", operations=[
        *(CommitOperationAdd(name, data) for name, data in shards.items()),
        CommitOperationAdd("model.safetensors.index.json", json.dumps(index).encode()),
        CommitOperationAdd("bad.index.json", b'{"weight_map": {"x": "../../etc/passwd"}}'),
        CommitOperationAdd("notjson.index.json", b"{nope"),
    ])
    with pytest.raises(EntryNotFoundError):
        api.get_sharded_safetensors_metadata(repo_id)
    with pytest.raises(EntryNotFoundError):
        api.get_sharded_safetensors_metadata(repo_id, filename="missing.index.json")
    with pytest.raises(BadRequestError):
        api.get_sharded_safetensors_metadata(repo_id, filename="notjson.index.json")
    with pytest.raises(HfHubHTTPError) as e:  # a shard path may not leave the repo
        api.get_sharded_safetensors_metadata(repo_id, filename="bad.index.json")
    assert e.value.response.headers["X-Error-Code"] == "InvalidPath"
    private = repo_factory(private=True)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=server.endpoint, token=other.token).get_sharded_safetensors_metadata(
            private)


# -- treesize ------------------------------------------------------------------------------------


def _treesize(server: Any, token: str, repo_id: str, revision: str, path: str = "",
              repo_type: str = "model") -> Any:
    url = f"{server.endpoint}/api/{repo_type}s/{repo_id}/treesize/{revision}"
    if path:
        url += "/" + path.replace("/", "%2F")
    r = get_session().get(url, headers=build_hf_headers(token=token))
    hf_raise_for_status(r)
    return r.json()


def test_treesize(api: HfApi, server: Any, user: Any, other: Any,
                  repo_factory: Callable[..., str]) -> None:
    repo_id = repo_factory("dataset")
    big = os.urandom(70_000)
    api.create_commit(repo_id, repo_type="dataset", commit_message="files", operations=[
        CommitOperationAdd("data/train/a.bin", big),
        CommitOperationAdd("data/train/b.txt", b"x" * 10),
        CommitOperationAdd("data/test.txt", b"y" * 5),
        CommitOperationAdd("README.md", b"# hi\n"),
    ])
    api.create_branch(repo_id, branch="feature/x", repo_type="dataset")
    gitattributes = api.get_paths_info(repo_id, [".gitattributes"], repo_type="dataset")[0].size
    total = 70_000 + 10 + 5 + 5 + gitattributes
    t = user.token
    assert _treesize(server, t, repo_id, "main", repo_type="dataset") == {"path": "",
                                                                          "size": total}
    assert _treesize(server, t, repo_id, "main", "data", "dataset") == {
        "path": "data", "size": 70_015}
    assert _treesize(server, t, repo_id, "feature%2Fx", "data/train", "dataset") == {
        "path": "data/train", "size": 70_010}
    assert _treesize(server, t, repo_id, "main", "data/test.txt", "dataset")["size"] == 5
    with pytest.raises(EntryNotFoundError):
        _treesize(server, t, repo_id, "main", "nope", "dataset")
    with pytest.raises(RevisionNotFoundError):
        _treesize(server, t, repo_id, "nope", "", "dataset")
    private = repo_factory(private=True)
    with pytest.raises(RepositoryNotFoundError):
        _treesize(server, other.token, private, "main")
    assert _treesize(server, t, private, "main")["size"] == gitattributes


def test_new_routes_answer_missing_repos_alike(server: Any, user: Any) -> None:
    """Every new route answers RepoNotFound for a repo that does not exist."""
    missing = f"{user.name}/missing-{uuid.uuid4().hex[:6]}"
    api = HfApi(endpoint=server.endpoint, token=user.token)
    with pytest.raises(RepositoryNotFoundError):
        api.super_squash_history(missing)
    with pytest.raises(RepositoryNotFoundError):
        list(api.list_lfs_files(missing))
    with pytest.raises(RepositoryNotFoundError):
        api.permanently_delete_lfs_files(missing, [_Fake("0" * 64)])  # type: ignore[list-item]
    with pytest.raises(RepositoryNotFoundError):
        api.get_sharded_safetensors_metadata(missing)
    with pytest.raises(RepositoryNotFoundError):
        _treesize(server, user.token, missing, "main")


class _Fake:
    def __init__(self, oid: str) -> None:
        self.file_oid = oid
