"""Knowing a hash gives no bytes: attacks on the read paths of large files (issue 11).

A victim keeps secret files in a private and in a gated dataset repo, some stored as
LFS blobs, some as Xet chunks. An attacker who may read only their own repo, and knows
every hash of the victim's files (sha256, Xet file hash, chunk and xorb hashes), tries
each route that returns file bytes or Xet data. Each attack here worked before the
possession rule (`hver.core.objects`) and the range checks of `hver.core.xet`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, constants
from huggingface_hub.errors import HfHubHTTPError
from webforms import csrf, signed_in
from xetkit import Cas

from hver.storage.git import FILE_MODE, GitStore
from hver.xet.hashing import (
    chunk_boundaries,
    chunk_hash,
    file_hash,
    hex_hash,
    keyed_chunk_hash,
    raw_hash,
    verification_hash,
)
from hver.xet.shard import FileRecipe, Shard, Term, parse_shard, serialize_shard
from hver.xet.xorb import SCHEME_NONE, build_xorb

MARKER = b"SECRET-7f3a"
pytestmark = pytest.mark.usefixtures("no_server_errors")


def _secret(n: int, seed: int) -> bytes:
    rng = random.Random(seed)
    rows = [f"{i},{rng.getrandbits(64):x}" for i in range(n)]
    return ("id,value\n" + "\n".join(rows) + "\n").encode() + MARKER + b",0\n"


def pointer(oid: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n".encode()


def ndjson_commit(server: Any, repo: str, token: str, ops: list[dict[str, Any]],
                  repo_type: str = "datasets") -> httpx.Response:
    body = "\n".join(json.dumps(x) for x in [
        {"key": "header", "value": {"summary": "attack", "description": ""}}, *ops])
    return httpx.post(f"{server.endpoint}/api/{repo_type}/{repo}/commit/main", content=body,
                      headers={"Authorization": f"Bearer {token}",
                               "Content-Type": "application/x-ndjson"})


def storage_key(server: Any, repo: str, repo_type: str = "dataset") -> str:
    ns, name = repo.split("/")
    with sqlite3.connect(server.data / "hver.db") as db:
        (key,) = db.execute("SELECT storage_key FROM repos WHERE type=? AND namespace=? "
                            "AND name=?", (repo_type, ns, name)).fetchone()
    return str(key)


def plant(server: Any, repo: str, files: dict[str, bytes]) -> str:
    """Commit `files` straight into a repo's git, past every check of the hub: what a
    pointer written before these checks existed (or by any future path in) looks like."""
    git = GitStore(server.data / "repos").open(storage_key(server, repo))
    ref = "refs/heads/main"
    head = git.ref(ref)
    assert head is not None
    tree = git.flatten(git.commit(head).tree)
    for path, data in files.items():
        tree[path] = (FILE_MODE, git.add_blob(data))
    sha = git.write_commit(git.write_tree(tree), [head], "planted", "x <x@example.org>")
    assert git.cas_ref(ref, head, sha)
    return sha


@dataclass
class Victim:
    name: str
    token: str
    private: str
    gated: str
    lfs: bytes  # an LFS blob in both repos
    xet: bytes  # Xet chunks in the private repo

    @property
    def lfs_oid(self) -> str:
        return hashlib.sha256(self.lfs).hexdigest()

    @property
    def xet_oid(self) -> str:
        return hashlib.sha256(self.xet).hexdigest()


@pytest.fixture(scope="module")
def victim(server: Any, user_factory: Callable[..., Any]) -> Iterator[Victim]:
    who = user_factory("victim")
    api = HfApi(endpoint=server.endpoint, token=who.token)
    lfs, xet = _secret(6000, 1), _secret(9000, 2)
    repos = []
    for private in (True, False):
        repo = f"{who.name}/data-{uuid.uuid4().hex[:6]}"
        api.create_repo(repo, repo_type="dataset", private=private)
        api.upload_file(path_or_fileobj=b"*.csv filter=lfs diff=lfs merge=lfs -text\n",
                        path_in_repo=".gitattributes", repo_id=repo, repo_type="dataset")
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
            api.upload_file(path_or_fileobj=lfs, path_in_repo="secret.csv", repo_id=repo,
                            repo_type="dataset")
        repos.append(repo)
    api.upload_file(path_or_fileobj=xet, path_in_repo="xsecret.csv", repo_id=repos[0],
                    repo_type="dataset")
    api.update_repo_settings(repos[1], repo_type="dataset", gated="manual")
    (info,) = api.get_paths_info(repos[0], ["xsecret.csv"], repo_type="dataset")
    assert info.xet_hash is not None and info.lfs.sha256 == hashlib.sha256(xet).hexdigest()
    yield Victim(who.name, who.token, repos[0], repos[1], lfs, xet)


@pytest.fixture
def attacker(server: Any, web_user_factory: Callable[..., Any]) -> Any:
    return web_user_factory("mallory")


def own_repo(server: Any, who: Any, repo_type: str = "dataset") -> str:
    repo = f"{who.name}/mine-{uuid.uuid4().hex[:6]}"
    HfApi(endpoint=server.endpoint, token=who.token).create_repo(repo, repo_type=repo_type)
    return repo


# -- 1. forged LFS pointers --------------------------------------------------------------------


def test_a_pointer_as_file_content_is_refused(server: Any, victim: Victim, attacker: Any) -> None:
    """Attack 1: commit the text of an LFS pointer to the victim's object as a regular
    file of one's own repo, then download it through that repo."""
    mine = own_repo(server, attacker)
    api = HfApi(endpoint=server.endpoint, token=attacker.token)
    for oid, size in ((victim.lfs_oid, len(victim.lfs)), (victim.xet_oid, len(victim.xet))):
        forged = pointer(oid, size)
        with pytest.raises(HfHubHTTPError) as err:
            api.upload_file(path_or_fileobj=forged, path_in_repo="steal.csv", repo_id=mine,
                            repo_type="dataset")
        assert err.value.response.status_code == 422
        r = ndjson_commit(server, mine, attacker.token, [{"key": "file", "value": {
            "path": "steal.csv", "encoding": "base64",
            "content": base64.b64encode(forged).decode()}}])
        assert r.status_code == 422 and r.headers["X-Error-Code"] == "LfsObjectMissing"
        r = ndjson_commit(server, mine, attacker.token, [{"key": "lfsFile", "value": {
            "path": "steal.csv", "algo": "sha256", "oid": oid, "size": size}}])
        assert r.status_code == 422 and r.headers["X-Error-Code"] == "LfsObjectMissing"
    assert api.list_repo_files(mine, repo_type="dataset") == [".gitattributes"]

    # The same through the web upload form.
    with signed_in(server, attacker) as b:
        page = b.get(f"/datasets/{mine}/upload/main")
        r = b.post(f"/datasets/{mine}/upload/main", data={"csrf": csrf(page.text)},
                   files=[("files", ("steal.csv", pointer(victim.lfs_oid, len(victim.lfs)),
                                     "text/csv"))])
        assert r.status_code == 422, r.status_code
        assert MARKER not in r.content
    assert api.list_repo_files(mine, repo_type="dataset") == [".gitattributes"]


def test_a_shards_claim_to_a_sha256_serves_only_the_claimants_bytes(
        server: Any, victim: Victim, attacker: Any) -> None:
    """Attack 1, through Xet: bind the victim's sha256 to one's own bytes with a shard,
    commit an `lfsFile` naming it, and read the commit (which used to serve the stored
    LFS blob of that sha256, the victim's)."""
    mine = own_repo(server, attacker)
    cas = Cas(server.endpoint, mine, attacker.token, "write", repo_type="datasets")
    mine_bytes = os.urandom(50_000)
    body, index = build_xorb([mine_bytes])
    xorb = index.hash()
    assert cas.call("POST", f"/v1/xorbs/default/{hex_hash(xorb)}", body).status_code == 200
    pairs = list(zip(index.hashes, index.sizes, strict=True))
    shard = serialize_shard(Shard([FileRecipe(
        file_hash(pairs), [Term(xorb, 0, 1, len(mine_bytes))], [verification_hash(index.hashes)],
        bytes.fromhex(victim.lfs_oid))], []), with_footer=False)
    assert cas.call("POST", "/v1/shards", shard).status_code == 200
    r = ndjson_commit(server, mine, attacker.token, [{"key": "lfsFile", "value": {
        "path": "steal.csv", "algo": "sha256", "oid": victim.lfs_oid, "size": len(victim.lfs)}}])
    assert r.status_code == 400  # the claim is of another size
    r = ndjson_commit(server, mine, attacker.token, [{"key": "lfsFile", "value": {
        "path": "steal.csv", "algo": "sha256", "oid": victim.lfs_oid, "size": len(mine_bytes)}}])
    assert r.status_code == 200, r.text
    auth = {"Authorization": f"Bearer {attacker.token}"}
    got = httpx.get(f"{server.endpoint}/datasets/{mine}/resolve/main/steal.csv", headers=auth,
                    follow_redirects=True)
    assert got.status_code == 200 and got.content == mine_bytes
    r = httpx.post(f"{server.endpoint}/datasets/{mine}.git/info/lfs/objects/batch", headers=auth,
                   json={"operation": "download",
                         "objects": [{"oid": victim.lfs_oid, "size": len(victim.lfs)}]})
    (obj,) = r.json()["objects"]
    got = httpx.get(obj["actions"]["download"]["href"])
    assert got.content == mine_bytes and MARKER not in got.content


# -- the matrix: every route that returns bytes, for hashes of a repo the actor can't read ------


def _lfs_batch(server: Any, repo: str, token: str, oid: str, size: int) -> list[bytes]:
    r = httpx.post(f"{server.endpoint}/datasets/{repo}.git/info/lfs/objects/batch",
                   headers={"Authorization": f"Bearer {token}"},
                   json={"operation": "download", "objects": [{"oid": oid, "size": size}]})
    (obj,) = r.json()["objects"]
    if "actions" not in obj:
        assert obj["error"]["code"] == 404
        return []
    return [httpx.get(obj["actions"]["download"]["href"]).content]


def test_hashes_of_an_unreadable_repo_read_nothing(server: Any, victim: Victim,
                                                   attacker: Any) -> None:
    """For each route that returns file bytes or Xet data: the attacker reads their own
    repo A, in which pointers to the victim's objects were planted straight into git, and
    holds every hash of the victim's private and gated files. Counted cells: 2 targets
    (private, gated) x the routes below; each yields nothing of the victim's bytes."""
    mine = own_repo(server, attacker)
    targets = {"private": (victim.private, victim.lfs_oid, len(victim.lfs)),
               "gated": (victim.gated, victim.lfs_oid, len(victim.lfs)),
               "private-xet": (victim.private, victim.xet_oid, len(victim.xet))}
    plant(server, mine, {f"{t}.csv": pointer(oid, size)
                         for t, (_, oid, size) in targets.items()}
          | {"data/train.csv": pointer(victim.lfs_oid, len(victim.lfs))})
    auth = {"Authorization": f"Bearer {attacker.token}"}
    cells = 0

    def nothing(data: bytes) -> None:
        nonlocal cells
        cells += 1
        assert MARKER not in data and victim.lfs[:200] not in data

    for t, (_, oid, size) in targets.items():
        url = f"{server.endpoint}/datasets/{mine}/resolve/main/{t}.csv"
        for method in ("GET", "HEAD"):
            r = httpx.request(method, url, headers=auth, follow_redirects=True)
            assert r.status_code == 404 and r.headers["X-Error-Code"] == "EntryNotFound"
            nothing(r.content)
        for data in _lfs_batch(server, mine, attacker.token, oid, size) or [b""]:
            nothing(data)
        r = httpx.get(f"{server.endpoint}/_lfs/objects/{oid}?repo=1&exp=9999999999&sig=0")
        assert r.status_code == 403
        nothing(r.content)
        with signed_in(server, attacker) as b:
            for page in (f"/datasets/{mine}/blob/main/{t}.csv",
                         f"/datasets/{mine}/resolve/main/{t}.csv",
                         f"/datasets/{mine}/viewer", f"/datasets/{mine}",
                         f"/datasets/{mine}/commits/main"):
                r = b.get(page, follow_redirects=True)
                assert r.status_code < 500
                nothing(r.content)
            head = HfApi(endpoint=server.endpoint, token=attacker.token).list_repo_commits(
                mine, repo_type="dataset")[0].commit_id
            r = b.get(f"/datasets/{mine}/commit/{head}")
            assert r.status_code == 200
            nothing(r.content)

    # Xet: reconstructions by file hash, one by one and in a batch, v1 and v2.
    cas = Cas(server.endpoint, mine, attacker.token, "write", repo_type="datasets")
    file_id = _xet_file_hash(victim.xet)
    for path in (f"/v1/reconstructions/{file_id}", f"/v2/reconstructions/{file_id}",
                 f"/v1/reconstructions?file_id={file_id}"):
        r = cas.call("GET", path)
        assert r.status_code == 404, path
        nothing(r.content)
    # Global dedup: the victim's first chunk, and a shard naming the victim's chunks.
    first = victim.xet[:chunk_boundaries(victim.xet)[0]]
    r = cas.call("GET", f"/v1/chunks/default/{hex_hash(chunk_hash(first))}")
    assert r.status_code == 404
    nothing(r.content)
    owner = Cas(server.endpoint, victim.private, victim.token, "read", repo_type="datasets")
    plan = owner.call("GET", f"/v1/reconstructions/{file_id}").json()
    term = plan["terms"][0]
    recipe = FileRecipe(bytes(32), [Term(raw_hash(term["hash"]), term["range"]["start"],
                                         term["range"]["end"], term["unpacked_length"])],
                        None, hashlib.sha256(b"x").digest())
    r = cas.call("POST", "/v1/shards", serialize_shard(Shard([recipe], []), with_footer=False))
    assert r.status_code == 400 and r.headers["X-Error-Code"] == "XorbNotFound"
    cells += 1
    # A fetch URL for the victim's xorb, its signature guessed.
    r = httpx.get(f"{cas.url}/fetch/{term['hash']}?r=0-1000000&exp=9999999999&sig={'0' * 64}")
    assert r.status_code == 403
    nothing(r.content)
    # Read tokens for the victim's repos: the private one is missing, the gated one gated.
    for repo, status in ((victim.private, 404), (victim.gated, 403)):
        r = httpx.get(f"{server.endpoint}/api/datasets/{repo}/xet-read-token/main", headers=auth)
        assert r.status_code == status
        cells += 1
    print(f"content-access matrix: {cells} cells, none reached the victim's bytes")
    assert cells == 3 * 10 + 8


def _xet_file_hash(data: bytes) -> str:
    bounds = [0, *chunk_boundaries(data)]
    pairs = [(chunk_hash(data[a:b]), b - a) for a, b in zip(bounds, bounds[1:], strict=False)]
    return hex_hash(file_hash(pairs))


# -- 2. a shared xorb -------------------------------------------------------------------------


def test_a_public_file_does_not_open_its_xorb_to_the_private_file_beside_it(
        server: Any, user_factory: Callable[..., Any], attacker: Any) -> None:
    """Attack 2: a private file and a public one share a xorb. An outsider who has the
    public file asks the global-dedup route about its first chunk: the answer must not
    list the other chunks' hashes, and a shard naming them must be refused."""
    owner = user_factory("owner")
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    private, public = (f"{owner.name}/{n}-{uuid.uuid4().hex[:6]}" for n in ("p", "q"))
    api.create_repo(private, private=True)
    api.create_repo(public)
    rng = random.Random(7)
    chunks = [rng.randbytes(20_000) for _ in range(4)]
    body, index = build_xorb(chunks)
    xorb = index.hash()
    pairs = list(zip(index.hashes, index.sizes, strict=True))

    def recipe(a: int, b: int) -> FileRecipe:
        return FileRecipe(file_hash(pairs[a:b]), [Term(xorb, a, b, sum(index.sizes[a:b]))],
                          [verification_hash(index.hashes[a:b])],
                          hashlib.sha256(b"".join(chunks[a:b])).digest())

    cas_p = Cas(server.endpoint, private, owner.token, "write")
    assert cas_p.call("POST", f"/v1/xorbs/default/{hex_hash(xorb)}", body).status_code == 200
    shard = serialize_shard(Shard([recipe(0, 2), recipe(2, 4)], []), with_footer=False)
    assert cas_p.call("POST", "/v1/shards", shard).status_code == 200
    cas_q = Cas(server.endpoint, public, owner.token, "write")
    shard = serialize_shard(Shard([recipe(0, 2)], []), with_footer=False)
    assert cas_q.call("POST", "/v1/shards", shard).status_code == 200

    mine = own_repo(server, attacker, repo_type="model")
    cas = Cas(server.endpoint, mine, attacker.token, "write")
    r = cas.call("GET", f"/v1/chunks/default/{hex_hash(index.hashes[0])}")
    assert r.status_code == 200
    footer = len(r.content) - 200
    key = r.content[footer + 72:footer + 104]  # the footer's HMAC key
    assert key != bytes(32)
    answer = parse_shard(r.content[:footer + 72] + bytes(32) + r.content[footer + 104:])
    (info,) = answer.xorbs
    listed = info.chunk_hashes
    for h in index.hashes:
        assert h not in listed  # no raw chunk hash is ever sent
    assert listed[:2] == [keyed_chunk_hash(h, key) for h in index.hashes[:2]]
    assert all(keyed_chunk_hash(h, key) not in listed for h in index.hashes[2:])
    assert info.chunk_sizes[:2] == index.sizes[:2]
    assert info.chunk_sizes[2:] == [64 * 1024] * 2  # their real sizes are not shown either
    # Asking about a chunk of the private file alone gets nothing at all.
    assert cas.call("GET", f"/v1/chunks/default/{hex_hash(index.hashes[2])}").status_code == 404

    # Knowing the private chunks' hashes anyway (an ex-member, say), the outsider names
    # them in a shard: refused, as is a term spanning the boundary; the public range is fine.
    for a, b in ((2, 4), (1, 3), (0, 4)):
        r = cas.call("POST", "/v1/shards",
                     serialize_shard(Shard([recipe(a, b)], []), with_footer=False))
        assert r.status_code == 400 and r.headers["X-Error-Code"] == "XorbNotFound", (a, b)
    r = cas.call("POST", "/v1/shards", serialize_shard(Shard([recipe(0, 2)], []),
                                                       with_footer=False))
    assert r.status_code == 200, r.text


# -- 3. a deleted repo's credentials ---------------------------------------------------------


def test_credentials_of_a_deleted_repo_reach_nothing(server: Any, attacker: Any) -> None:
    """Attack 3: keep a CAS token and signed URLs of a repo, delete it, and wait for a
    repo to be created in its place: the old credentials must reach nothing of it."""
    api = HfApi(endpoint=server.endpoint, token=attacker.token)
    repo = own_repo(server, attacker, repo_type="model")
    cas = Cas(server.endpoint, repo, attacker.token, "write")
    data = os.urandom(30_000)
    oid = hashlib.sha256(data).hexdigest()
    r = httpx.post(f"{server.endpoint}/{repo}.git/info/lfs/objects/batch",
                   headers={"Authorization": f"Bearer {attacker.token}"},
                   json={"operation": "upload", "objects": [{"oid": oid, "size": len(data)}]})
    upload_href = r.json()["objects"][0]["actions"]["upload"]["href"]
    api.delete_repo(repo)
    api.create_repo(repo)
    body, index = build_xorb([data])
    r = cas.call("POST", f"/v1/xorbs/default/{hex_hash(index.hash())}", body)
    assert r.status_code == 401 and r.headers["X-Error-Code"] == "InvalidToken"
    assert cas.call("GET", f"/v1/reconstructions/{'ab' * 32}").status_code == 401
    assert httpx.put(upload_href, content=data).status_code == 403
    assert api.list_repo_files(repo) == [".gitattributes"]


# -- 4. what a commit points at never changes ----------------------------------------------------


def test_a_shard_cannot_change_what_a_commit_serves(server: Any, attacker: Any,
                                                    tmp_path: Path) -> None:
    """Attack 4: after a file is committed, upload other bytes with a shard claiming the
    committed file's sha256; the old commit must keep serving the old bytes."""
    api = HfApi(endpoint=server.endpoint, token=attacker.token)
    repo = own_repo(server, attacker, repo_type="model")
    original = os.urandom(200_000)
    sha = hashlib.sha256(original).hexdigest()
    commit = api.upload_file(path_or_fileobj=original, path_in_repo="w.bin",
                             repo_id=repo).oid
    cas = Cas(server.endpoint, repo, attacker.token, "write")
    other = os.urandom(len(original))
    body, index = build_xorb([other[i:i + 50_000] for i in range(0, len(other), 50_000)])
    xorb = index.hash()
    assert cas.call("POST", f"/v1/xorbs/default/{hex_hash(xorb)}", body).status_code == 200
    pairs = list(zip(index.hashes, index.sizes, strict=True))
    shard = serialize_shard(Shard([FileRecipe(
        file_hash(pairs), [Term(xorb, 0, len(pairs), len(other))],
        [verification_hash(index.hashes)], bytes.fromhex(sha))], []), with_footer=False)
    r = cas.call("POST", "/v1/shards", shard)
    assert r.status_code == 400 and r.headers["X-Error-Code"] == "HashMismatch", r.text
    got = httpx.get(f"{server.endpoint}/{repo}/resolve/{commit}/w.bin", follow_redirects=True)
    assert got.content == original and got.headers["ETag"] == f'"{sha}"'


def test_a_held_sha256_is_never_rebound_even_by_true_bytes(server: Any, attacker: Any,
                                                           tmp_path: Path) -> None:
    """The other way round: a writer binds a sha256 to bytes that do not have it before the
    real file arrives. The binding stays (no shard makes the hub hash a file on request,
    which a shard of repeated terms would turn into hours of work); the real upload is
    refused out loud instead of silently serving the false bytes, and nothing changes."""
    api = HfApi(endpoint=server.endpoint, token=attacker.token)
    repo = own_repo(server, attacker, repo_type="model")
    real = os.urandom(120_000)
    sha = hashlib.sha256(real).hexdigest()
    cas = Cas(server.endpoint, repo, attacker.token, "write")
    junk = os.urandom(40_000)
    body, index = build_xorb([junk])
    assert cas.call("POST", f"/v1/xorbs/default/{hex_hash(index.hash())}", body
                    ).status_code == 200
    pairs = list(zip(index.hashes, index.sizes, strict=True))
    shard = serialize_shard(Shard([FileRecipe(
        file_hash(pairs), [Term(index.hash(), 0, 1, len(junk))],
        [verification_hash(index.hashes)], bytes.fromhex(sha))], []), with_footer=False)
    assert cas.call("POST", "/v1/shards", shard).status_code == 200
    with pytest.raises(Exception):  # noqa: B017 - hf_xet reports the refused shard its way
        api.create_commit(repo, [CommitOperationAdd("w.bin", real)], commit_message="real")
    assert api.list_repo_files(repo) == [".gitattributes"]


# -- 5. a xorb raced or cut short ---------------------------------------------------------------


def test_the_stored_copy_of_a_xorb_is_the_one_indexed(server: Any, attacker: Any) -> None:
    """Attack 5: the same chunks encoded two ways have one xorb hash. A copy left stored
    without its row (a crash between the two), then another encoding uploaded: the chunk
    index must describe the stored bytes, or every reader gets garbage."""
    repo = own_repo(server, attacker, repo_type="model")
    cas = Cas(server.endpoint, repo, attacker.token, "write")
    rng = random.Random(99)
    chunks = [bytes(rng.randrange(4)) * 30_000 + rng.randbytes(100) for _ in range(5)]
    lz4_body, index = build_xorb(chunks)
    raw_body, raw_index = build_xorb(chunks, SCHEME_NONE)
    assert index.hash() == raw_index.hash() and lz4_body != raw_body
    xorb = hex_hash(index.hash())
    stored = server.data / "blobs" / "xet" / "xorbs" / xorb[:2] / xorb
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_bytes(raw_body)  # as a killed upload of the raw encoding leaves it
    assert cas.call("POST", f"/v1/xorbs/default/{xorb}", lz4_body).status_code == 200
    assert stored.read_bytes() == raw_body
    pairs = list(zip(index.hashes, index.sizes, strict=True))
    data = b"".join(chunks)
    shard = serialize_shard(Shard([FileRecipe(
        file_hash(pairs), [Term(index.hash(), 0, len(chunks), len(data))],
        [verification_hash(index.hashes)], hashlib.sha256(data).digest())], []),
        with_footer=False)
    assert cas.call("POST", "/v1/shards", shard).status_code == 200
    r = ndjson_commit(server, repo, attacker.token, [{"key": "lfsFile", "value": {
        "path": "w.bin", "algo": "sha256", "oid": hashlib.sha256(data).hexdigest(),
        "size": len(data)}}], repo_type="models")
    assert r.status_code == 200, r.text
    got = httpx.get(f"{server.endpoint}/{repo}/resolve/main/w.bin", follow_redirects=True)
    assert got.content == data


# -- 10. a revoked token's CAS token ---------------------------------------------------------


def test_a_revoked_tokens_cas_token_uploads_nothing(server: Any, attacker: Any) -> None:
    repo = own_repo(server, attacker, repo_type="model")
    second = server.hver("token", "create", attacker.name, "--name", "doomed")
    cas = Cas(server.endpoint, repo, second, "write")
    server.hver("token", "revoke", attacker.name, "doomed")
    body, index = build_xorb([os.urandom(20_000)])
    xorb = hex_hash(index.hash())
    r = cas.call("POST", f"/v1/xorbs/default/{xorb}", body)
    assert r.status_code == 401
    assert not (server.data / "blobs" / "xet" / "xorbs" / xorb[:2] / xorb).exists()


# -- what the review of the fixes found ---------------------------------------------------------


def test_a_late_part_cannot_rewrite_a_stored_lfs_object(server: Any, attacker: Any) -> None:
    """A multipart LFS upload is hashed when completed. A part upload held open across the
    completion must not write into the stored blob afterwards (which would then serve other
    bytes under that sha256 to every repo that uploads it later)."""
    repo = own_repo(server, attacker, repo_type="model")
    data = os.urandom(9 * 1024 * 1024)  # over the test server's multipart threshold
    oid = hashlib.sha256(data).hexdigest()
    r = httpx.post(f"{server.endpoint}/{repo}.git/info/lfs/objects/batch",
                   headers={"Authorization": f"Bearer {attacker.token}"},
                   json={"operation": "upload", "objects": [{"oid": oid, "size": len(data)}]})
    upload = r.json()["objects"][0]["actions"]["upload"]
    part_size = int(upload["header"]["chunk_size"])
    parts = {int(k): v for k, v in upload["header"].items() if k.isdigit()}
    for n, url in parts.items():
        assert httpx.put(url, content=data[(n - 1) * part_size:n * part_size]).status_code == 200
    go = threading.Event()
    late: dict[str, int] = {}

    def body() -> Iterator[bytes]:
        yield b"EVIL" * 256
        go.wait(30)
        yield b"EVIL" * ((part_size - 1024) // 4)

    def send() -> None:
        late["status"] = httpx.put(parts[1], content=body(), timeout=60).status_code

    t = threading.Thread(target=send)
    t.start()
    time.sleep(1.0)  # the late part's headers are in: the server holds its part file open
    done = [{"partNumber": n, "etag": "x"} for n in parts]
    r = httpx.post(upload["href"], json={"oid": oid, "parts": done})
    assert r.status_code == 409, r.text
    go.set()
    t.join()
    assert late["status"] == 200
    r = httpx.post(upload["href"], json={"oid": oid, "parts": done})
    assert r.status_code == 400 and r.headers["X-Error-Code"] == "HashMismatch"
    assert not (server.data / "blobs" / "lfs" / oid[:2] / oid[2:4] / oid).exists()
    for n, url in parts.items():  # a failed completion drops the parts: send them again
        assert httpx.put(url, content=data[(n - 1) * part_size:n * part_size]).status_code == 200
    assert httpx.post(upload["href"], json={"oid": oid, "parts": done}).status_code == 200
    # Taken, the parts are gone: a part sent now starts a new upload and changes nothing.
    assert httpx.put(parts[1], content=b"EVIL" * (part_size // 4)).status_code == 200
    stored = server.data / "blobs" / "lfs" / oid[:2] / oid[2:4] / oid
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == oid


def test_uploads_do_not_tell_what_others_stored(server: Any, user_factory: Callable[..., Any],
                                                attacker: Any) -> None:
    """Uploading content someone else stored must answer as for new content: otherwise an
    upload confirms that a private repo somewhere holds a guessed file."""
    owner = user_factory("owner")
    private = f"{owner.name}/p-{uuid.uuid4().hex[:6]}"
    HfApi(endpoint=server.endpoint, token=owner.token).create_repo(private, private=True)
    chunks = [os.urandom(30_000) for _ in range(3)]
    body, index = build_xorb(chunks)
    xorb = hex_hash(index.hash())
    pairs = list(zip(index.hashes, index.sizes, strict=True))
    data = b"".join(chunks)
    shard = serialize_shard(Shard([FileRecipe(
        file_hash(pairs), [Term(index.hash(), 0, 3, len(data))],
        [verification_hash(index.hashes)], hashlib.sha256(data).digest())], []),
        with_footer=False)
    for who, repo in ((owner, private), (attacker, own_repo(server, attacker, "model"))):
        cas = Cas(server.endpoint, repo, who.token, "write")
        r = cas.call("POST", f"/v1/xorbs/default/{xorb}", body)
        assert r.json() == {"was_inserted": True}
        assert cas.call("POST", "/v1/shards", shard).json() == {"result": 1}
        assert cas.call("POST", f"/v1/xorbs/default/{xorb}", body).json() == {
            "was_inserted": False}
        assert cas.call("POST", "/v1/shards", shard).json() == {"result": 0}


def test_dedup_still_works_across_accounts(server: Any, user_factory: Callable[..., Any],
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    """No regression for honest users: a file that mostly repeats a public file of another
    account is uploaded, by the real client from an empty cache, as the changed part only."""
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    a, b = user_factory("first"), user_factory("second")
    base = os.urandom(16 * 1024 * 1024)
    changed = base[:15 * 1024 * 1024] + os.urandom(1024 * 1024)
    stats = lambda: json.loads(server.hver("storage", "stats", "--json"))  # noqa: E731
    for who, data, cache in ((a, base, "a"), (b, changed, "b")):
        monkeypatch.setenv("HF_XET_CACHE", str(tmp_path / cache))
        api = HfApi(endpoint=server.endpoint, token=who.token)
        repo = f"{who.name}/m"
        api.create_repo(repo)
        before = stats()["storedBytes"]
        api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=repo)
        grew = stats()["storedBytes"] - before
        got = httpx.get(f"{server.endpoint}/{repo}/resolve/main/w.bin", follow_redirects=True)
        assert got.content == data
    print(f"second account stored {grew} bytes for a 16 MiB file, 1 MiB of it new")
    assert grew < 3 * 1024 * 1024
