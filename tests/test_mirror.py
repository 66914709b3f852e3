"""A hub that mirrors another: repos it does not hold are brought in from the upstream
on first use, with their commits, refs, card and gate, and are then served by the
mirror alone; caught up once per TTL; served stale when the upstream is down; never
written to. Two real servers, a counting proxy between them, the real clients."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

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
    GatedRepoError,
    HfHubHTTPError,
    RepositoryNotFoundError,
)
from mirrorkit import CountingProxy

TTL = 3.0
README = (b"---\nlicense: apache-2.0\ntags: [tiny, mirror-test]\npipeline_tag: fill-mask\n"
          b"---\n# Tiny\n")
CONFIG = b'{"model_type": "bert", "hidden_size": 8}\n'
TOKENIZER = json.dumps({"version": "1.0", "model": {"type": "WordLevel", "vocab": {"a": 0}}}
                       ).encode()
CSV = b"id,text\n1,one\n2,two\n3,three\n"


@dataclass
class Hubs:
    up: object  # tests.conftest.Server
    proxy: CountingProxy
    mirror: object
    up_api: HfApi
    up_user: str
    mirror_token: str  # a local user of the mirror
    mirror_user: str


def _user(srv) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    name = f"u-{uuid.uuid4().hex[:8]}"
    _, token = srv.hver("user", "create", name, "--token", "write").splitlines()
    return name, token


@pytest.fixture(scope="module")
def hubs(tmp_path_factory: pytest.TempPathFactory, unstarted_server) -> Iterator[Hubs]:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("mirror")
    (root / "up").mkdir()
    up = unstarted_server(root / "up", rate_limit_anonymous="0")
    proxy = CountingProxy(up.port)
    # The URLs the upstream hands out (LFS hrefs) lead through the proxy too.
    up.env["HVER_PUBLIC_URL"] = proxy.endpoint
    up.start()
    up_user, up_token = _user(up)
    (root / "mirror").mkdir()
    mirror = unstarted_server(root / "mirror", upstream_url=proxy.endpoint,
                              upstream_token=up_token, mirror_ttl=str(TTL),
                              mirror_deny="*/denied-*", rate_limit_anonymous="0")
    mirror.start()
    mirror_user, mirror_token = _user(mirror)
    yield Hubs(up, proxy, mirror, HfApi(endpoint=up.endpoint, token=up_token), up_user,
               mirror_token, mirror_user)
    mirror.stop()
    proxy.close()
    up.stop()


def _model(hubs: Hubs, name: str | None = None, **kwargs: object) -> str:
    repo_id = f"{hubs.up_user}/{name or 'tiny-' + uuid.uuid4().hex[:8]}"
    hubs.up_api.create_repo(repo_id, **kwargs)  # type: ignore[arg-type]
    hubs.up_api.create_commit(repo_id, commit_message="tiny model", operations=[
        CommitOperationAdd("README.md", README), CommitOperationAdd("config.json", CONFIG),
        CommitOperationAdd("tokenizer.json", TOKENIZER)])
    return repo_id


def _model_as(hubs: Hubs, token: str, repo_id: str) -> str:
    api = HfApi(endpoint=hubs.up.endpoint, token=token)  # type: ignore[attr-defined]
    api.create_repo(repo_id)
    api.create_commit(repo_id, commit_message="tiny", operations=[
        CommitOperationAdd("config.json", CONFIG)])
    return repo_id


def _mirror_api(hubs: Hubs, token: str | None = None) -> HfApi:
    return HfApi(endpoint=hubs.mirror.endpoint, token=token)  # type: ignore[attr-defined]


def test_a_repo_is_brought_in_with_its_commits_refs_and_card(hubs: Hubs, tmp_path: Path
                                                             ) -> None:
    repo_id = _model(hubs)
    up = hubs.up_api
    up.create_branch(repo_id, branch="dev")
    up.create_tag(repo_id, tag="v1", tag_message="first")
    up.create_commit(repo_id, commit_message="dev only", revision="dev",
                     operations=[CommitOperationAdd("dev.txt", b"on dev\n")])
    api = _mirror_api(hubs)

    info, theirs = api.model_info(repo_id), up.model_info(repo_id)
    assert info.sha == theirs.sha
    assert info.tags == theirs.tags and "mirror-test" in info.tags
    assert info.pipeline_tag == "fill-mask" and info.card_data["license"] == "apache-2.0"
    assert sorted(s.rfilename for s in info.siblings) == sorted(
        s.rfilename for s in theirs.siblings)
    raw = httpx.get(f"{hubs.mirror.endpoint}/api/models/{repo_id}").json()  # type: ignore[attr-defined]
    assert raw["mirror"]["upstream"] == hubs.proxy.endpoint
    assert raw["mirror"]["id"] == repo_id and raw["mirror"]["lastSync"]
    page = httpx.get(f"{hubs.mirror.endpoint}/{repo_id}").text  # type: ignore[attr-defined]
    assert ">mirror</span>" in page
    assert f"Mirrored from <a href=\"{hubs.proxy.endpoint}/{repo_id}\"" in page
    assert "last sync 20" in page

    mine, upstream = api.list_repo_refs(repo_id), up.list_repo_refs(repo_id)
    assert {(b.name, b.target_commit) for b in mine.branches} == {
        (b.name, b.target_commit) for b in upstream.branches}
    assert {(t.name, t.target_commit) for t in mine.tags} == {
        (t.name, t.target_commit) for t in upstream.tags}
    assert [c.commit_id for c in api.list_repo_commits(repo_id, revision="dev")] == [
        c.commit_id for c in up.list_repo_commits(repo_id, revision="dev")]

    snap = snapshot_download(repo_id, cache_dir=tmp_path / "snap",
                             endpoint=hubs.mirror.endpoint)  # type: ignore[attr-defined]
    assert (Path(snap) / "config.json").read_bytes() == CONFIG
    assert (Path(snap) / "tokenizer.json").read_bytes() == TOKENIZER
    dev = hf_hub_download(repo_id, "dev.txt", revision="dev", cache_dir=tmp_path / "dev",
                          endpoint=hubs.mirror.endpoint)  # type: ignore[attr-defined]
    assert Path(dev).read_bytes() == b"on dev\n"

    # git clones the mirror's copy: the upstream's commit ids, history and files.
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", f"{hubs.mirror.endpoint}/{repo_id}", str(clone)],  # type: ignore[attr-defined]
                   check=True, env={**os.environ, "GIT_LFS_SKIP_SMUDGE": "1"})
    head = subprocess.run(["git", "-C", str(clone), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    assert head == theirs.sha
    assert (clone / "config.json").read_bytes() == CONFIG


def test_metadata_is_served_by_the_mirror_within_the_ttl(hubs: Hubs, tmp_path: Path) -> None:
    repo_id = _model(hubs)
    api = _mirror_api(hubs)
    first = api.model_info(repo_id).sha
    hubs.proxy.reset()
    hubs.up_api.create_commit(repo_id, commit_message="second", operations=[
        CommitOperationAdd("config.json", CONFIG + b"\n")])
    new = hubs.up_api.model_info(repo_id).sha
    assert new != first
    hubs.proxy.reset()
    for _ in range(3):  # within the TTL: the mirror's own answer, the upstream not asked
        assert api.model_info(repo_id).sha == first
        api.list_repo_files(repo_id)
        hf_hub_download(repo_id, "config.json", cache_dir=tmp_path / uuid.uuid4().hex,
                        endpoint=hubs.mirror.endpoint)  # type: ignore[attr-defined]
    assert hubs.proxy.count() == 0, hubs.proxy.paths()
    time.sleep(TTL + 0.5)
    assert api.model_info(repo_id).sha == new  # after it: caught up at once
    got = hf_hub_download(repo_id, "config.json", cache_dir=tmp_path / "new",
                          endpoint=hubs.mirror.endpoint)  # type: ignore[attr-defined]
    assert Path(got).read_bytes() == CONFIG + b"\n"
    # One check: the repo's info and its refs, and the new objects.
    assert hubs.proxy.count(f"/api/models/{repo_id}") == 1, hubs.proxy.paths()
    assert hubs.proxy.count(".git/info/refs") == 1, hubs.proxy.paths()
    # The first commit is still there, pinned by its id.
    old = hf_hub_download(repo_id, "config.json", revision=first,
                          cache_dir=tmp_path / "old", endpoint=hubs.mirror.endpoint)  # type: ignore[attr-defined]
    assert Path(old).read_bytes() == CONFIG


def test_the_mirror_serves_what_it_holds_while_the_upstream_is_down(hubs: Hubs,
                                                                   tmp_path: Path) -> None:
    repo_id = _model(hubs)
    api = _mirror_api(hubs)
    sha = api.model_info(repo_id).sha
    never = f"{hubs.up_user}/never-{uuid.uuid4().hex[:6]}"
    hubs.up_api.create_repo(never)
    hubs.proxy.down = True
    try:
        time.sleep(TTL + 0.5)  # due: the check fails, the repo is served as it was
        for _ in range(2):
            assert api.model_info(repo_id).sha == sha
            got = hf_hub_download(repo_id, "config.json", cache_dir=tmp_path / uuid.uuid4().hex,
                                  endpoint=hubs.mirror.endpoint)  # type: ignore[attr-defined]
            assert Path(got).read_bytes() == CONFIG
            assert Path(hf_hub_download(repo_id, "config.json", revision=sha,
                                        cache_dir=tmp_path / uuid.uuid4().hex,
                                        endpoint=hubs.mirror.endpoint)).exists()  # type: ignore[attr-defined]
        # A repo never brought in cannot be: a clear 503, not a missing repo.
        r = httpx.get(f"{hubs.mirror.endpoint}/api/models/{never}")  # type: ignore[attr-defined]
        assert r.status_code == 503 and r.headers["X-Error-Code"] == "MirrorUnavailable"
        # Remembered for a while: asked again at once, the mirror does not wait on the
        # upstream a second time.
        hubs.proxy.reset()
        r = httpx.get(f"{hubs.mirror.endpoint}/api/models/{never}")  # type: ignore[attr-defined]
        assert r.status_code == 503
    finally:
        hubs.proxy.down = False
    time.sleep(TTL)  # the back-off (at most the TTL, else 30 s)
    assert api.model_info(never).id == never  # and brought in once the upstream is back


def test_a_dataset_loads_through_the_mirror(hubs: Hubs, tmp_path: Path) -> None:
    repo_id = f"{hubs.up_user}/ds-{uuid.uuid4().hex[:8]}"
    hubs.up_api.create_repo(repo_id, repo_type="dataset")
    hubs.up_api.create_commit(repo_id, repo_type="dataset", commit_message="data",
                              operations=[CommitOperationAdd("data/train.csv", CSV)])
    script = ("import datasets, json, sys\n"
              f"ds = datasets.load_dataset({repo_id!r}, split='train')\n"
              "print(json.dumps(ds.to_list()))\n")
    env = {**os.environ, "HF_ENDPOINT": hubs.mirror.endpoint,  # type: ignore[attr-defined]
           "HF_HOME": str(tmp_path / "home"), "HF_DATASETS_CACHE": str(tmp_path / "ds"),
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_TOKEN", None)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    assert json.loads(out.stdout.splitlines()[-1]) == [
        {"id": 1, "text": "one"}, {"id": 2, "text": "two"}, {"id": 3, "text": "three"}]
    info = _mirror_api(hubs).dataset_info(repo_id)
    assert info.sha == hubs.up_api.dataset_info(repo_id).sha


def test_mirrored_repos_are_read_only(hubs: Hubs, tmp_path: Path) -> None:
    repo_id = _model(hubs)
    ns, name = repo_id.split("/")
    api = _mirror_api(hubs, hubs.mirror_token)
    api.model_info(repo_id)
    with pytest.raises(HfHubHTTPError) as e:
        api.create_commit(repo_id, commit_message="mine", operations=[
            CommitOperationAdd("x.txt", b"x")])
    assert e.value.response.status_code == 403
    assert "read-only" in e.value.response.headers["X-Error-Message"]
    for call in (lambda: api.create_branch(repo_id, branch="mine"),
                 lambda: api.delete_repo(repo_id),
                 lambda: api.update_repo_settings(repo_id, private=True),
                 lambda: api.create_repo(f"{ns}/new-{uuid.uuid4().hex[:6]}")):
        with pytest.raises(HfHubHTTPError) as e:
            call()
        assert e.value.response.status_code == 403
    # git push is refused too, ref by ref, saying why.
    url = hubs.mirror.endpoint.replace("http://", f"http://x:{hubs.mirror_token}@")  # type: ignore[attr-defined]
    clone = tmp_path / "clone"
    git_env = {**os.environ, "GIT_LFS_SKIP_SMUDGE": "1", "GIT_AUTHOR_NAME": "a",
               "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a",
               "GIT_COMMITTER_EMAIL": "a@b"}
    subprocess.run(["git", "clone", "-q", f"{url}/{repo_id}", str(clone)], check=True,
                   env=git_env)
    (clone / "x.txt").write_text("x")
    subprocess.run(["git", "-C", str(clone), "add", "x.txt"], check=True, env=git_env)
    subprocess.run(["git", "-C", str(clone), "commit", "-qm", "x"], check=True, env=git_env)
    push = subprocess.run(["git", "-C", str(clone), "push", "origin", "main"],
                          capture_output=True, text=True, env=git_env)
    assert push.returncode != 0 and "read-only" in push.stderr, push.stderr
    assert _mirror_api(hubs).model_info(repo_id).sha == hubs.up_api.model_info(repo_id).sha


def test_what_the_mirror_never_brings_in(hubs: Hubs) -> None:
    api = _mirror_api(hubs, hubs.mirror_token)
    private = _model(hubs, private=True)
    denied = _model(hubs, name=f"denied-{uuid.uuid4().hex[:6]}")
    missing = f"{hubs.up_user}/missing-{uuid.uuid4().hex[:6]}"
    hubs.proxy.reset()
    for repo_id in (private, denied, missing):
        with pytest.raises(RepositoryNotFoundError):
            api.model_info(repo_id)
    # The denied id is refused before the upstream is asked; a missing one is asked once
    # per TTL however often it is asked for here.
    assert hubs.proxy.count("denied-") == 0
    for _ in range(3):
        with pytest.raises(RepositoryNotFoundError):
            api.model_info(missing)
    assert hubs.proxy.count(missing) == 1, hubs.proxy.paths()
    # A local user's namespace is never looked up upstream, even where the upstream has
    # a repo of that id: the upstream's user of the same name is someone else.
    _, twin_token = hubs.up.hver("user", "create", hubs.mirror_user,  # type: ignore[attr-defined]
                                 "--token", "write").splitlines()
    shadowed = _model_as(hubs, twin_token, f"{hubs.mirror_user}/tiny")
    hubs.proxy.reset()
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(shadowed)
    assert hubs.proxy.count() == 0


def test_a_gated_upstream_repo_is_gated_on_the_mirror(hubs: Hubs, tmp_path: Path) -> None:
    repo_id = _model(hubs)
    hubs.up_api.update_repo_settings(repo_id, gated="auto")
    api = _mirror_api(hubs, hubs.mirror_token)
    assert api.model_info(repo_id).gated == "auto"
    with pytest.raises(GatedRepoError):
        hf_hub_download(repo_id, "config.json", cache_dir=tmp_path / "before",
                        token=hubs.mirror_token, endpoint=hubs.mirror.endpoint)  # type: ignore[attr-defined]
    r = httpx.post(f"{hubs.mirror.endpoint}/api/models/{repo_id}/ask-access",  # type: ignore[attr-defined]
                   headers={"Authorization": f"Bearer {hubs.mirror_token}"})
    assert r.status_code == 200, r.text
    got = hf_hub_download(repo_id, "config.json", cache_dir=tmp_path / "after",
                          token=hubs.mirror_token, endpoint=hubs.mirror.endpoint)  # type: ignore[attr-defined]
    assert Path(got).read_bytes() == CONFIG
    # Ungated upstream: the mirror follows at its next check.
    hubs.up_api.update_repo_settings(repo_id, gated=False)
    time.sleep(TTL + 0.5)
    assert _mirror_api(hubs).model_info(repo_id).gated is False


def test_offline_serves_only_what_is_held(hubs: Hubs, server_factory: Callable[..., object],
                                          tmp_path: Path) -> None:
    held = _model(hubs)
    hubs.up_api.upload_file(repo_id=held, path_or_fileobj=os.urandom(4096),
                            path_in_repo="big.bin")
    later = _model(hubs)
    proxy = CountingProxy(hubs.up.port)  # type: ignore[attr-defined]
    try:
        first = server_factory(upstream_url=proxy.endpoint, mirror_ttl="0")
        sha = HfApi(endpoint=first.endpoint).model_info(held).sha  # type: ignore[attr-defined]
        first.stop()  # type: ignore[attr-defined]
        proxy.reset()
        first.env["HVER_OFFLINE"] = "1"  # type: ignore[attr-defined]
        first.start()  # type: ignore[attr-defined]
        api = HfApi(endpoint=first.endpoint)  # type: ignore[attr-defined]
        assert api.model_info(held).sha == sha
        got = hf_hub_download(held, "tokenizer.json", cache_dir=tmp_path / "c",
                              endpoint=first.endpoint)  # type: ignore[attr-defined]
        assert Path(got).read_bytes() == TOKENIZER
        with pytest.raises(RepositoryNotFoundError):
            api.model_info(later)
        # A large file never brought in: the Hub's error for "try again", not a missing
        # file (which clients remember as missing for that commit).
        r = httpx.head(f"{first.endpoint}/{held}/resolve/main/big.bin")  # type: ignore[attr-defined]
        assert r.status_code == 503 and r.headers["X-Error-Code"] == "MirrorOffline"
        assert proxy.count() == 0
    finally:
        proxy.close()


# --- large files ---------------------------------------------------------------------------


def _tiny_gpt2(path: Path) -> None:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.set_num_threads(1)
    torch.manual_seed(3)
    cfg = GPT2Config(vocab_size=64, n_positions=32, n_embd=16, n_layer=1, n_head=2)
    GPT2LMHeadModel(cfg).eval().save_pretrained(path)


LOAD = """
import hashlib, sys, torch
from transformers import AutoModelForCausalLM
torch.set_num_threads(1)
m = AutoModelForCausalLM.from_pretrained(sys.argv[1])
h = hashlib.sha256()
for k, v in sorted(m.state_dict().items()):
    h.update(k.encode()); h.update(v.numpy().tobytes())
print(h.hexdigest())
"""


def _load_through(endpoint: str, repo_id: str, home: Path) -> str:
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HOME": str(home),
           "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_TOKEN", None)
    out = subprocess.run([sys.executable, "-c", LOAD, repo_id], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return out.stdout.split()[-1]


def test_large_files_are_brought_in_on_first_read(hubs: Hubs, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    repo_id = f"{hubs.up_user}/gpt2-{uuid.uuid4().hex[:8]}"
    _tiny_gpt2(tmp_path / "local")
    hubs.up_api.create_repo(repo_id)
    hubs.up_api.upload_folder(repo_id=repo_id, folder_path=tmp_path / "local")  # Xet
    weights = os.urandom(300_000)
    with monkeypatch.context() as mp:  # and a file the upstream stores through LFS
        mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
        hubs.up_api.upload_file(repo_id=repo_id, path_or_fileobj=weights,
                                path_in_repo="extra/weights.bin")
    expected = _load_through(hubs.up.endpoint, repo_id, tmp_path / "direct")  # type: ignore[attr-defined]

    hubs.proxy.reset()
    assert _load_through(hubs.mirror.endpoint, repo_id, tmp_path / "m1") == expected  # type: ignore[attr-defined]
    snap = snapshot_download(repo_id, cache_dir=tmp_path / "snap",
                             endpoint=hubs.mirror.endpoint)  # type: ignore[attr-defined]
    assert (Path(snap) / "extra/weights.bin").read_bytes() == weights
    assert (Path(snap) / "model.safetensors").read_bytes() == (
        tmp_path / "local/model.safetensors").read_bytes()
    # Each large file came from the upstream once: the LFS one whole, the Xet one
    # through the upstream's CAS into the mirror's, with the same Xet hash.
    assert hubs.proxy.count("/info/lfs/objects/batch") == 1, hubs.proxy.paths()
    assert hubs.proxy.count("/v2/reconstructions/") == 1, hubs.proxy.paths()
    stats = json.loads(hubs.mirror.hver("storage", "stats", repo_id, "--json"))  # type: ignore[attr-defined]
    assert (stats["files"], stats["xetFiles"]) == (2, 1), stats
    assert stats["xorbs"] >= 1 and stats["logicalBytes"] > 300_000
    theirs = get_hf_file_metadata(hf_hub_url(repo_id, "model.safetensors",
                                             endpoint=hubs.up.endpoint))  # type: ignore[attr-defined]
    mine = get_hf_file_metadata(hf_hub_url(repo_id, "model.safetensors",
                                           endpoint=hubs.mirror.endpoint))  # type: ignore[attr-defined]
    assert mine.xet_file_data is not None and theirs.xet_file_data is not None
    assert mine.xet_file_data.file_hash == theirs.xet_file_data.file_hash
    assert mine.commit_hash == theirs.commit_hash and mine.etag == theirs.etag

    hubs.proxy.down = True  # the mirror alone, new clients with empty caches
    try:
        assert _load_through(hubs.mirror.endpoint, repo_id, tmp_path / "m2") == expected  # type: ignore[attr-defined]
        got = hf_hub_download(repo_id, "extra/weights.bin", cache_dir=tmp_path / "again",
                              endpoint=hubs.mirror.endpoint)  # type: ignore[attr-defined]
        assert Path(got).read_bytes() == weights
    finally:
        hubs.proxy.down = False


def test_git_lfs_clones_a_mirrored_repo(hubs: Hubs, tmp_path: Path) -> None:
    repo_id = f"{hubs.up_user}/lfs-{uuid.uuid4().hex[:8]}"
    hubs.up_api.create_repo(repo_id)
    data = os.urandom(100_000)
    hubs.up_api.upload_file(repo_id=repo_id, path_or_fileobj=data, path_in_repo="w.bin")
    clone = tmp_path / "clone"
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    subprocess.run(["git", "lfs", "install", "--skip-repo"], check=True, env=env,
                   capture_output=True)
    subprocess.run(["git", "clone", "-q", f"{hubs.mirror.endpoint}/{repo_id}", str(clone)],  # type: ignore[attr-defined]
                   check=True, env=env)
    assert (clone / "w.bin").read_bytes() == data


def test_one_fetch_however_many_clients_ask(hubs: Hubs) -> None:
    import hashlib

    from threads import parallel

    size = 200 * 2**20
    repo_id = f"{hubs.up_user}/big-{uuid.uuid4().hex[:8]}"
    hubs.up_api.create_repo(repo_id)
    block = os.urandom(2**20)
    digest = hashlib.sha256()
    for i in range(size // len(block)):
        digest.update(block[:-1] + bytes([i % 256]))

    class Stream:  # the file, made on the fly: 200 MiB never held in memory at once
        def __init__(self) -> None:
            self.i, self.pos = 0, 0

        def read(self, n: int = -1) -> bytes:
            if self.i >= size // len(block):
                return b""
            out = block[:-1] + bytes([self.i % 256])
            self.i += 1
            return out

    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"big-{uuid.uuid4().hex}"
    try:
        with path.open("wb") as f:
            s = Stream()
            while chunk := s.read():
                f.write(chunk)
        from huggingface_hub import constants
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
            hubs.up_api.upload_file(repo_id=repo_id, path_or_fileobj=str(path),
                                    path_in_repo="big.bin")
    finally:
        path.unlink(missing_ok=True)
    _mirror_api(hubs).model_info(repo_id)  # the repo is here; its big file is not
    hubs.proxy.reset()
    url = f"{hubs.mirror.endpoint}/{repo_id}/resolve/main/big.bin"  # type: ignore[attr-defined]

    def fetch(_: int) -> str:
        h = hashlib.sha256()
        with httpx.stream("GET", url, follow_redirects=True, timeout=120) as r:
            assert r.status_code == 200, r.read()
            for chunk in r.iter_bytes(2**20):
                h.update(chunk)
        return h.hexdigest()

    results = parallel(16, fetch)
    assert results == [digest.hexdigest()] * 16, results
    assert hubs.proxy.count("/info/lfs/objects/batch") == 1, hubs.proxy.paths()
    assert hubs.proxy.count("/_lfs/objects/") == 1, hubs.proxy.paths()


def _hver(srv: object, *args: str) -> str:
    try:
        return srv.hver(*args)  # type: ignore[attr-defined,no-any-return]
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"hver {' '.join(args)} failed: {exc.stderr}")


def test_mirror_add_sync_and_status(hubs: Hubs, tmp_path: Path) -> None:
    repo_id = f"{hubs.up_user}/ahead-{uuid.uuid4().hex[:8]}"
    hubs.up_api.create_repo(repo_id)
    first, skipped = os.urandom(50_000), os.urandom(60_000)
    hubs.up_api.create_commit(repo_id, commit_message="files", operations=[
        CommitOperationAdd("model.safetensors", first), CommitOperationAdd("w.bin", skipped),
        CommitOperationAdd("config.json", CONFIG)])
    hubs.proxy.reset()
    out = _hver(hubs.mirror, "mirror", "add", f"models/{repo_id}@main",  # type: ignore[attr-defined]
                           "--include", "*.safetensors")
    sha = hubs.up_api.model_info(repo_id).sha
    assert out == f"models/{repo_id}@{sha}"
    fetches = hubs.proxy.count("/info/lfs/objects/batch") + hubs.proxy.count(
        "/v2/reconstructions/")
    assert fetches == 1, hubs.proxy.paths()  # only what the pin selects
    [row] = [r for r in json.loads(_hver(hubs.mirror, "mirror", "status", "--json"))  # type: ignore[attr-defined]
             if r["id"] == repo_id]
    assert (row["pinned"], row["include"], row["heldFiles"], row["heldBytes"]) == (
        "main", ["*.safetensors"], 1, 50_000)
    assert row["upstream"] == hubs.proxy.endpoint and row["lastSync"]

    second = os.urandom(40_000)
    hubs.up_api.upload_file(repo_id=repo_id, path_or_fileobj=second,
                            path_in_repo="model.safetensors")
    new_sha = hubs.up_api.model_info(repo_id).sha
    synced = _hver(hubs.mirror, "mirror", "sync", repo_id)  # type: ignore[attr-defined]
    assert synced == f"models/{repo_id}@{new_sha}"  # caught up at once, whatever the TTL
    [row] = [r for r in json.loads(_hver(hubs.mirror, "mirror", "status", "--json"))  # type: ignore[attr-defined]
             if r["id"] == repo_id]
    assert (row["sha"], row["heldFiles"], row["fetchedBytes"]) == (new_sha, 2, 90_000)
    text = _hver(hubs.mirror, "mirror", "status")  # type: ignore[attr-defined]
    assert f"models/{repo_id}" in text and "main +*.safetensors" in text

    hubs.proxy.down = True  # what was fetched ahead is served without the upstream
    try:
        for revision, data in ((sha, first), (new_sha, second)):
            got = hf_hub_download(repo_id, "model.safetensors", revision=revision,
                                  cache_dir=tmp_path / revision,
                                  endpoint=hubs.mirror.endpoint)  # type: ignore[attr-defined]
            assert Path(got).read_bytes() == data
    finally:
        hubs.proxy.down = False


def test_a_cut_fetch_resumes_where_it_stopped(hubs: Hubs, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    repo_id = f"{hubs.up_user}/cut-{uuid.uuid4().hex[:8]}"
    hubs.up_api.create_repo(repo_id)
    lfs_data, xet_data = os.urandom(12 * 2**20), os.urandom(6 * 2**20)
    with monkeypatch.context() as mp:
        mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
        hubs.up_api.upload_file(repo_id=repo_id, path_or_fileobj=lfs_data,
                                path_in_repo="lfs.bin")
    hubs.up_api.upload_file(repo_id=repo_id, path_or_fileobj=xet_data,
                            path_in_repo="xet.bin")
    _mirror_api(hubs).model_info(repo_id)
    hubs.proxy.reset()
    hubs.proxy.range_headers.clear()
    hubs.proxy.cut.update({"/_lfs/objects/": 5 * 2**20, "/fetch/": 2 * 2**20})
    for name, data in (("lfs.bin", lfs_data), ("xet.bin", xet_data)):
        got = hf_hub_download(repo_id, name, cache_dir=tmp_path / name,
                              endpoint=hubs.mirror.endpoint)  # type: ignore[attr-defined]
        assert Path(got).read_bytes() == data
    assert not hubs.proxy.cut  # both were cut once
    lfs = [r for p, r in hubs.proxy.range_headers if "/_lfs/objects/" in p]
    assert lfs == [None, f"bytes={5 * 2**20}-{12 * 2**20 - 1}"]  # resumed, not restarted
    fetches = [r for p, r in hubs.proxy.range_headers if "/fetch/" in p]
    assert len(fetches) >= 2 and fetches[1] is not None
    first_start = int(fetches[0].split("=")[1].split("-")[0]) if fetches[0] else 0
    assert fetches[1].startswith(f"bytes={first_start + 2 * 2**20}-")


def test_a_big_file_streams_while_it_arrives(hubs: Hubs, monkeypatch: pytest.MonkeyPatch
                                             ) -> None:
    import hashlib

    from huggingface_hub import constants

    repo_id = f"{hubs.up_user}/slow-{uuid.uuid4().hex[:8]}"
    hubs.up_api.create_repo(repo_id)
    data = os.urandom(24 * 2**20)
    with monkeypatch.context() as mp:
        mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
        hubs.up_api.upload_file(repo_id=repo_id, path_or_fileobj=data, path_in_repo="w.bin")
    _mirror_api(hubs).model_info(repo_id)
    hubs.proxy.reset()
    hubs.proxy.slow["/_lfs/objects/"] = 6 * 2**20  # about 4 s from the upstream
    url = f"{hubs.mirror.endpoint}/{repo_id}/resolve/main/w.bin"  # type: ignore[attr-defined]
    try:
        t0 = time.monotonic()
        head = httpx.head(url, timeout=30)
        assert head.status_code == 302 and time.monotonic() - t0 < 3.5  # not the whole wait
        assert head.headers["X-Linked-Size"] == str(len(data))
        assert "X-Xet-Hash" not in head.headers

        def read(_: int) -> tuple[float, str]:
            h = hashlib.sha256()
            first = None
            start = time.monotonic()
            with httpx.stream("GET", url, follow_redirects=True, timeout=30) as r:
                assert r.status_code == 200
                for chunk in r.iter_bytes():
                    first = first if first is not None else time.monotonic() - start
                    h.update(chunk)
            return first or 0.0, h.hexdigest()

        from threads import parallel

        results = parallel(3, read)
        elapsed = time.monotonic() - t0
    finally:
        hubs.proxy.slow.clear()
    digest = hashlib.sha256(data).hexdigest()
    assert [r[1] for r in results] == [digest] * 3, results
    # Bytes came while the file was on its way: the first well before all of it.
    assert all(first < elapsed - 1.0 for first, _ in results), (results, elapsed)
    assert hubs.proxy.count("/_lfs/objects/") == 1, hubs.proxy.paths()


def test_the_admin_api_adds_syncs_and_lists(hubs: Hubs) -> None:
    repo_id = f"{hubs.up_user}/api-{uuid.uuid4().hex[:8]}"
    hubs.up_api.create_repo(repo_id)
    hubs.up_api.create_commit(repo_id, commit_message="files", operations=[
        CommitOperationAdd("model.safetensors", os.urandom(30_000)),
        CommitOperationAdd("w.bin", os.urandom(20_000))])
    admin = f"admin-{uuid.uuid4().hex[:6]}"
    _, admin_token = hubs.mirror.hver("user", "create", admin, "--admin",  # type: ignore[attr-defined]
                                      "--token", "write").splitlines()
    base = f"{hubs.mirror.endpoint}/api/admin/mirror"  # type: ignore[attr-defined]
    as_admin = {"Authorization": f"Bearer {admin_token}"}
    as_user = {"Authorization": f"Bearer {hubs.mirror_token}"}
    assert httpx.get(base, headers=as_user).status_code == 403
    assert httpx.post(f"{base}/models/{repo_id}", headers=as_user).status_code == 403
    assert httpx.post(f"{base}/models/{repo_id}", headers=as_admin,
                      json={"include": "*.bin"}).status_code == 400
    r = httpx.post(f"{base}/models/{repo_id}", headers=as_admin,
                   json={"include": ["*.safetensors"]}, timeout=60)
    assert r.status_code == 202 and r.json()["id"] == repo_id, r.text
    deadline = time.monotonic() + 60
    while True:
        rows = {row["id"]: row for row in httpx.get(base, headers=as_admin).json()["repos"]}
        if rows[repo_id]["heldFiles"] == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert (rows[repo_id]["heldFiles"], rows[repo_id]["include"]) == (1, ["*.safetensors"])
    assert httpx.post(f"{base}/models/{repo_id}/sync", headers=as_admin).status_code == 202
    missing = httpx.post(f"{base}/models/{hubs.up_user}/nope-{uuid.uuid4().hex[:4]}",
                         headers=as_admin, timeout=60)
    assert missing.status_code == 404
