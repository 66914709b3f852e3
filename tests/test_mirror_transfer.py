"""The air gap: `hver mirror export` on a mirror that brought a model in, `hver mirror
import` into a third, fresh hub that never reaches the upstream (offline, the upstream
stopped), which then serves the model to the real clients with the upstream's commit
ids and Xet hashes. Every byte of an export is checked: one flipped anywhere, or an
edited manifest, fails the import, names the file, and leaves no repo behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from huggingface_hub import (
    HfApi,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    snapshot_download,
)
from huggingface_hub.errors import RepositoryNotFoundError
from test_mirror import _load_through, _tiny_gpt2

WEIGHTS = os.urandom(200_000)


@dataclass
class Export:
    dir: Path
    upstream: str  # the URL the mirror knew its upstream by (stopped now)
    repo_id: str
    sha: str
    xet_hash: str  # of model.safetensors, as the upstream and the mirror answer it
    model: bytes
    loaded: str  # the state-dict digest from_pretrained gave through the mirror
    manifest: dict  # type: ignore[type-arg]


def _hver(srv, *args: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run([sys.executable, "-m", "hver", *args, "--data", str(srv.data)],
                          env=srv.env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory, unstarted_server  # type: ignore[no-untyped-def]
           ) -> Iterator[Export]:
    from huggingface_hub import constants

    root = tmp_path_factory.mktemp("transfer")
    (root / "up").mkdir()
    up = unstarted_server(root / "up", rate_limit_anonymous="0")
    up.start()
    (root / "mirror").mkdir()
    try:
        name, token = up.hver("user", "create", f"u-{uuid.uuid4().hex[:8]}", "--token",
                              "write").splitlines()
        api = HfApi(endpoint=up.endpoint, token=token)
        repo_id = f"{name}/gpt2-{uuid.uuid4().hex[:6]}"
        _tiny_gpt2(root / "local")
        api.create_repo(repo_id)
        api.upload_folder(repo_id=repo_id, folder_path=root / "local")  # Xet
        saved, constants.HF_HUB_DISABLE_XET = constants.HF_HUB_DISABLE_XET, True
        try:  # and one file the upstream stores through LFS
            api.upload_file(repo_id=repo_id, path_or_fileobj=WEIGHTS,
                            path_in_repo="extra/weights.bin")
        finally:
            constants.HF_HUB_DISABLE_XET = saved
        sha = api.model_info(repo_id).sha
        assert sha is not None
        up_hash = get_hf_file_metadata(hf_hub_url(repo_id, "model.safetensors",
                                                  endpoint=up.endpoint)).xet_file_data
        assert up_hash is not None

        mirror = unstarted_server(root / "mirror", upstream_url=up.endpoint,
                                  upstream_token=token, rate_limit_anonymous="0")
        mirror.start()
        try:
            loaded = _load_through(mirror.endpoint, repo_id, root / "hf-m")
            snapshot_download(repo_id, cache_dir=root / "snap-m", endpoint=mirror.endpoint)
            stats = json.loads(mirror.hver("storage", "stats", repo_id, "--json"))
            assert (stats["files"], stats["xetFiles"]) == (2, 1), stats
            out = mirror.hver("mirror", "export", str(root / "export"))
        finally:
            mirror.stop()
        assert out == f"models/{repo_id}@{sha}"
    finally:
        up.stop()  # from here on, nothing can reach it
    yield Export(root / "export", up.endpoint, repo_id, sha, up_hash.file_hash,
                 (root / "local/model.safetensors").read_bytes(), loaded,
                 json.loads((root / "export/manifest.json").read_text()))


def _fresh(server_factory, export: Export):  # type: ignore[no-untyped-def]
    """A hub that never reaches the upstream: the same URL (its repos mirror that
    upstream, as the exporting hub's did), offline."""
    return server_factory(upstream_url=export.upstream, offline="1",
                          rate_limit_anonymous="0")


def test_the_manifest_lists_refs_and_each_held_file(export: Export) -> None:
    m = export.manifest
    assert (m["format"], m["version"], m["upstream"]) == ("hver-mirror-export", 1,
                                                          export.upstream)
    (repo,) = m["repos"]
    assert (repo["type"], repo["id"], repo["upstreamId"], repo["upstream"]) == (
        "model", export.repo_id, export.repo_id, export.upstream)
    assert repo["refs"] == {"refs/heads/main": export.sha} and repo["gated"] is None
    by_path = {o["path"]: o for o in repo["objects"]}
    assert set(by_path) == {"model.safetensors", "extra/weights.bin"}
    assert by_path["model.safetensors"]["xetHash"] == export.xet_hash
    assert by_path["extra/weights.bin"]["xetHash"] is None
    assert by_path["extra/weights.bin"]["size"] == len(WEIGHTS)
    assert (export.dir / "lfs" / by_path["extra/weights.bin"]["oid"]).read_bytes() == WEIGHTS
    recipe = json.loads((export.dir / f"xet/files/{export.xet_hash}.json").read_text())
    assert recipe["size"] == len(export.model)
    assert all((export.dir / "xet/xorbs" / x).stat().st_size == meta["size"]
               for x, meta in recipe["xorbs"].items())
    assert (export.dir / f"git/models/{export.repo_id}.bundle").read_bytes().startswith(
        b"# v2 git bundle\n")
    assert not list(export.dir.rglob("*.part"))


def test_an_import_is_served_offline_as_the_upstream_served_it(
        export: Export, server_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    third = _fresh(server_factory, export)
    out = third.hver("mirror", "import", str(export.dir))
    assert out == f"models/{export.repo_id}@{export.sha}"
    api = HfApi(endpoint=third.endpoint)

    info = api.model_info(export.repo_id)
    assert info.sha == export.sha
    raw = httpx.get(f"{third.endpoint}/api/models/{export.repo_id}").json()
    assert raw["mirror"]["upstream"] == export.upstream
    assert raw["mirror"]["id"] == export.repo_id and raw["mirror"]["lastSync"]
    weights = hf_hub_download(export.repo_id, "extra/weights.bin", cache_dir=tmp_path / "a",
                              endpoint=third.endpoint)
    assert Path(weights).read_bytes() == WEIGHTS
    meta = get_hf_file_metadata(hf_hub_url(export.repo_id, "model.safetensors",
                                           endpoint=third.endpoint))
    assert meta.commit_hash == export.sha
    assert meta.xet_file_data is not None and meta.xet_file_data.file_hash == export.xet_hash
    snap = Path(snapshot_download(export.repo_id, cache_dir=tmp_path / "s",
                                  endpoint=third.endpoint))
    assert (snap / "model.safetensors").read_bytes() == export.model  # through Xet
    assert (snap / "extra/weights.bin").read_bytes() == WEIGHTS
    assert _load_through(third.endpoint, export.repo_id, tmp_path / "hf") == export.loaded
    stats = json.loads(third.hver("storage", "stats", export.repo_id, "--json"))
    assert (stats["files"], stats["xetFiles"]) == (2, 1), stats
    # Still a mirror: read-only, in a namespace of its own.
    assert api.list_repo_refs(export.repo_id).branches[0].target_commit == export.sha
    status = json.loads(third.hver("mirror", "status", "--json"))
    assert [(s["id"], s["upstreamId"], s["heldFiles"]) for s in status] == [
        (export.repo_id, export.repo_id, 2)]

    # Importing again catches up (nothing new): no second repo, no second copy.
    assert third.hver("mirror", "import", str(export.dir)) == out
    assert json.loads(third.hver("storage", "stats", export.repo_id, "--json")) == stats
    assert len(json.loads(third.hver("mirror", "status", "--json"))) == 1


def _flip(path: Path, at: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if at is None else at
    data[i] ^= 0x01
    path.write_bytes(bytes(data))


def _objects(export: Export) -> dict[str, dict]:  # type: ignore[type-arg]
    return {o["path"]: o for o in export.manifest["repos"][0]["objects"]}


def _lfs_blob(d: Path, export: Export) -> str:
    name = f"lfs/{_objects(export)['extra/weights.bin']['oid']}"
    _flip(d / name)
    return name


def _xorb(d: Path, export: Export) -> str:
    recipe = json.loads((d / f"xet/files/{export.xet_hash}.json").read_text())
    name = f"xet/xorbs/{max(recipe['xorbs'], key=lambda x: recipe['xorbs'][x]['size'])}"
    _flip(d / name)
    return name


def _bundle(d: Path, export: Export) -> str:
    name = f"git/models/{export.repo_id}.bundle"
    _flip(d / name)
    return name


def _xet_oid(d: Path, export: Export) -> str:
    text = (d / "manifest.json").read_text()
    oid = _objects(export)["model.safetensors"]["oid"]
    (d / "manifest.json").write_text(text.replace(oid, "0" * 64))
    return f"xet/files/{export.xet_hash}.json"


def _lfs_oid(d: Path, export: Export) -> str:
    text = (d / "manifest.json").read_text()
    oid = _objects(export)["extra/weights.bin"]["oid"]
    (d / "manifest.json").write_text(text.replace(oid, "f" * 64))
    return f"lfs/{'f' * 64}"


def _cut(d: Path, export: Export) -> str:
    (d / "manifest.json").unlink()
    return "manifest.json"


@pytest.mark.parametrize("corrupt", [_lfs_blob, _xorb, _bundle, _xet_oid, _lfs_oid, _cut])
def test_one_wrong_byte_fails_the_import_and_shows_nothing(
        export: Export, server_factory, tmp_path: Path, corrupt) -> None:  # type: ignore[no-untyped-def]
    d = tmp_path / "export"
    shutil.copytree(export.dir, d)
    named = corrupt(d, export)
    third = _fresh(server_factory, export)
    done = _hver(third, "mirror", "import", str(d))
    assert done.returncode == 1, done
    assert named in done.stderr, done.stderr
    assert done.stdout == ""
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=third.endpoint).model_info(export.repo_id)
    assert json.loads(third.hver("mirror", "status", "--json")) == []
