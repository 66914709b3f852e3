"""Cross-repo copies (`lfs-files/duplicate`, behind `copy_files`) give a repo an object
without its bytes: attacks on that shortcut.

The rule (`hver.core.objects.copy_held`): the copier may read the source repo's files
(private: missing; gated: access needed), the source holds the object, and the copier may
write the destination. An attacker who knows every hash of a victim's files (sha256 and
Xet file hash) tries to make a repo of theirs hold them.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, constants, hf_hub_download
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError

pytestmark = pytest.mark.usefixtures("no_server_errors")


@dataclass
class File:
    path: str
    data: bytes
    xet_hash: str | None

    @property
    def oid(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"sha256": self.oid, "filename": self.path}
        if self.xet_hash:
            out["xetHash"] = self.xet_hash
        return out


def _repo_with_files(server: Any, who: Any, private: bool = False,
                     gated: str | None = None) -> tuple[str, list[File]]:
    """A model repo of `who` with one file stored as Xet chunks and one as an LFS blob."""
    api = HfApi(endpoint=server.endpoint, token=who.token)
    repo_id = f"{who.name}/copy-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id, private=private)
    xet_data, lfs_data = os.urandom(90_000), os.urandom(50_000)
    api.upload_file(path_or_fileobj=xet_data, path_in_repo="xet.bin", repo_id=repo_id)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
        api.upload_file(path_or_fileobj=lfs_data, path_in_repo="lfs.bin", repo_id=repo_id)
    infos = {f.path: f for f in api.get_paths_info(repo_id, ["xet.bin", "lfs.bin"])}
    assert infos["xet.bin"].xet_hash and not infos["lfs.bin"].xet_hash
    if gated:
        api.update_repo_settings(repo_id, gated=gated)
    return repo_id, [File("xet.bin", xet_data, infos["xet.bin"].xet_hash),
                     File("lfs.bin", lfs_data, None)]


def _own_repo(server: Any, who: Any) -> str:
    repo_id = f"{who.name}/mine-{uuid.uuid4().hex[:8]}"
    HfApi(endpoint=server.endpoint, token=who.token).create_repo(repo_id)
    return repo_id


def duplicate(server: Any, token: str | None, source: str, target: str,
              files: list[dict[str, Any]], target_type: str = "model") -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.post(f"{server.endpoint}/api/models/{source}/lfs-files/duplicate",
                      headers=headers,
                      json={"target": {"type": target_type, "name": target}, "files": files})


def held(server: Any, who: Any, repo_id: str) -> set[str]:
    return {f.file_oid for f in HfApi(endpoint=server.endpoint, token=who.token)
            .list_lfs_files(repo_id)}


def commit_pointer(server: Any, who: Any, repo_id: str, f: File) -> httpx.Response:
    """What the client commits after a copy: an lfsFile line without a size."""
    body = "\n".join(json.dumps(x) for x in [
        {"key": "header", "value": {"summary": "copy", "description": ""}},
        {"key": "lfsFile", "value": {"path": f.path, "algo": "sha256", "oid": f.oid}}])
    return httpx.post(f"{server.endpoint}/api/models/{repo_id}/commit/main", content=body,
                      headers={"Authorization": f"Bearer {who.token}",
                               "Content-Type": "application/x-ndjson"})


def test_a_private_repo_is_missing_to_a_copier_who_cannot_read_it(
        server: Any, user: Any, other: Any) -> None:
    victim, files = _repo_with_files(server, user, private=True)
    mine = _own_repo(server, other)
    r = duplicate(server, other.token, victim, mine, [f.wire() for f in files])
    missing = duplicate(server, other.token, f"{user.name}/no-such-repo-{uuid.uuid4().hex[:6]}",
                        mine, [f.wire() for f in files])
    assert r.status_code == missing.status_code == 404
    assert r.headers["X-Error-Code"] == missing.headers["X-Error-Code"] == "RepoNotFound"
    assert r.json() == missing.json()
    # Through the client: the source looks missing too.
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=server.endpoint, token=other.token).copy_files(
            f"hf://{victim}/xet.bin", f"hf://{mine}/stolen.bin")
    assert held(server, other, mine) == set()
    for f in files:
        assert commit_pointer(server, other, mine, f).status_code == 422  # LfsObjectMissing


def test_a_gated_repo_needs_access_to_its_files(server: Any, user: Any, other: Any,
                                                cache_dir: Path) -> None:
    victim, files = _repo_with_files(server, user, gated="manual")
    mine = _own_repo(server, other)
    r = duplicate(server, other.token, victim, mine, [f.wire() for f in files])
    assert (r.status_code, r.headers["X-Error-Code"]) == (403, "GatedRepo")
    assert duplicate(server, None, victim, mine, [files[0].wire()]).status_code == 401
    with pytest.raises(GatedRepoError):
        HfApi(endpoint=server.endpoint, token=other.token).copy_files(
            f"hf://{victim}/xet.bin", f"hf://{mine}/stolen.bin")
    assert held(server, other, mine) == set()

    # Once the repo's admin accepts the request, the files are theirs to copy.
    asked = httpx.post(f"{server.endpoint}/api/models/{victim}/ask-access",
                       headers={"Authorization": f"Bearer {other.token}"})
    assert asked.status_code == 200
    HfApi(endpoint=server.endpoint, token=user.token).accept_access_request(victim, other.name)
    HfApi(endpoint=server.endpoint, token=other.token).copy_files(
        f"hf://{victim}/xet.bin", f"hf://{mine}/granted.bin")
    path = hf_hub_download(mine, "granted.bin", cache_dir=cache_dir, token=other.token)
    assert Path(path).read_bytes() == files[0].data


def test_an_object_the_source_does_not_hold_is_not_found(server: Any, user: Any,
                                                          other: Any) -> None:
    _, victim_files = _repo_with_files(server, user, private=True)
    source, own_files = _repo_with_files(server, other)  # public, the attacker's
    mine = _own_repo(server, other)
    stolen = victim_files[0]
    cases = [
        [stolen.wire()],  # the victim's sha256 and Xet hash
        [{**own_files[0].wire(), "xetHash": stolen.xet_hash}],  # own sha256, victim's file
        [{**stolen.wire(), "xetHash": own_files[0].xet_hash}],  # victim's sha256, own file
        [own_files[0].wire(), stolen.wire()],  # one held, one not: nothing is copied
        [{"sha256": victim_files[1].oid}],  # an LFS blob, named by sha256 alone
    ]
    for files in cases:
        r = duplicate(server, other.token, source, mine, files)
        assert (r.status_code, r.headers["X-Error-Code"]) == (404, "EntryNotFound"), files
    assert held(server, other, mine) == set()
    for f in victim_files:
        assert commit_pointer(server, other, mine, f).status_code == 422


def test_the_destination_must_be_writable(server: Any, user: Any, other: Any) -> None:
    source, files = _repo_with_files(server, other)
    victim_public = _own_repo(server, user)
    victim_private = f"{user.name}/private-{uuid.uuid4().hex[:8]}"
    HfApi(endpoint=server.endpoint, token=user.token).create_repo(victim_private, private=True)
    wire = [f.wire() for f in files]
    r = duplicate(server, other.token, source, victim_public, wire)
    assert r.status_code == 403
    r = duplicate(server, other.token, source, victim_private, wire)
    assert (r.status_code, r.headers["X-Error-Code"]) == (404, "RepoNotFound")
    mine = _own_repo(server, other)
    assert duplicate(server, other.read_token, source, mine, wire).status_code == 403
    assert duplicate(server, None, source, mine, wire).status_code == 401
    assert held(server, user, victim_public) == set() and held(server, other, mine) == set()


def test_a_copy_serves_in_the_destination_and_leaves_the_source_alone(
        server: Any, user: Any, other: Any, cache_dir: Path) -> None:
    source, files = _repo_with_files(server, user)  # public: anyone may copy its files
    mine = _own_repo(server, other)
    before = held(server, user, source)
    r = duplicate(server, other.token, source, mine, [f.wire() for f in files])
    assert r.status_code == 200 and r.json() == {"duplicated": 2, "failed": []}
    assert held(server, other, mine) == {f.oid for f in files}
    for f in files:
        assert commit_pointer(server, other, mine, f).status_code == 200
        path = hf_hub_download(mine, f.path, cache_dir=cache_dir, token=other.token)
        assert Path(path).read_bytes() == f.data
    assert held(server, user, source) == before  # the source is unchanged
    blob = Path(server.data) / "blobs" / "lfs" / files[1].oid[:2] / files[1].oid[2:4] / files[1].oid
    # Deleting at the source leaves the copy serving (its own holding), blob and all.
    owner = HfApi(endpoint=server.endpoint, token=user.token)
    owner.permanently_delete_lfs_files(source, list(owner.list_lfs_files(source)))
    assert blob.exists()
    path = hf_hub_download(mine, files[1].path, cache_dir=cache_dir, token=other.token,
                           force_download=True)
    assert Path(path).read_bytes() == files[1].data
    # The source now holds nothing to copy.
    r = duplicate(server, other.token, source, mine, [files[1].wire()])
    assert r.status_code == 404
    # The last holder's deletion removes the blob.
    attacker = HfApi(endpoint=server.endpoint, token=other.token)
    attacker.permanently_delete_lfs_files(mine, list(attacker.list_lfs_files(mine)))
    assert not blob.exists()


def test_copy_files_through_the_client(server: Any, other: Any,
                                       repo_factory: Callable[..., str],
                                       api: HfApi, cache_dir: Path) -> None:
    """The legitimate path end to end: `copy_files` from a public repo to one's own."""
    source = repo_factory()
    data = os.urandom(80_000)
    api.create_commit(source, commit_message="w", operations=[
        CommitOperationAdd("w.safetensors", data)])
    mine = _own_repo(server, other)
    HfApi(endpoint=server.endpoint, token=other.token).copy_files(
        f"hf://{source}/w.safetensors", f"hf://{mine}/w.safetensors")
    path = hf_hub_download(mine, "w.safetensors", cache_dir=cache_dir, token=other.token)
    assert Path(path).read_bytes() == data
    with pytest.raises(HfHubHTTPError):  # and not back into someone else's repo
        HfApi(endpoint=server.endpoint, token=other.token).copy_files(
            f"hf://{mine}/w.safetensors", f"hf://{source}/again.safetensors")
