"""The `hf` CLI (huggingface_hub 2.4.0) as a subprocess, and repo cards with their metadata.

tests/test_cli.py already covers `auth whoami` with HF_TOKEN, `repos create`, a plain file and
folder `upload` (with --include) and `download --local-dir`; this module covers the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from huggingface_hub import (
    DatasetCard,
    DatasetCardData,
    EvalResult,
    HfApi,
    ModelCard,
    ModelCardData,
    hf_hub_download,
    metadata_update,
)
from huggingface_hub.errors import RepositoryNotFoundError

HF = str(Path(sys.executable).parent / "hf")

pytestmark = pytest.mark.usefixtures("no_server_errors")


@pytest.fixture
def hf(server, user, tmp_path):
    """Run `hf ...` in a fresh HF_HOME, logged in as `user` through HF_TOKEN."""
    home = tmp_path / "hf-home"
    env = dict(os.environ)
    env.update(HF_ENDPOINT=server.endpoint, HF_TOKEN=user.token, HF_HOME=str(home),
               NO_COLOR="1", HF_HUB_DISABLE_PROGRESS_BARS="1")

    def run(*args: str, check: bool = True, token: str | None = None, stdin: str | None = None,
            no_env_token: bool = False):
        e = dict(env)
        if token is not None:
            e["HF_TOKEN"] = token
        if no_env_token:
            e.pop("HF_TOKEN")
        out = subprocess.run([HF, *args], env=e, capture_output=True, text=True, timeout=120,
                             cwd=tmp_path, input=stdin)
        if check:
            assert out.returncode == 0, (args, out.stdout, out.stderr)
        return out

    run.home = home  # type: ignore[attr-defined]
    return run


def as_json(out):  # type: ignore[no-untyped-def]
    return json.loads(out.stdout)


def new_id(user, prefix: str = "cli") -> str:  # type: ignore[no-untyped-def]
    return f"{user.name}/{prefix}-{uuid.uuid4().hex[:8]}"


def make_folder(root: Path) -> dict[str, bytes]:
    files = {
        "a.txt": b"a\n",
        "notes.log": b"log line\n",
        "sub/b.json": b'{"b": 1}\n',
        "sub/w.bin": os.urandom(150_000),
        "sub/deep/c.txt": b"c\n",
    }
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return files


def test_auth_login_list_logout(hf, server, user):
    # No HF_TOKEN: the token given to `login` is stored in HF_HOME and used afterwards.
    hf("auth", "login", "--token", user.token, no_env_token=True)
    assert (hf.home / "token").read_text().strip() == user.token
    me = as_json(hf("auth", "whoami", "--format", "json", no_env_token=True))
    assert me["user"] == user.name and me["endpoint"] == server.endpoint
    listed = hf("auth", "list", no_env_token=True).stdout
    assert user.token[-4:] in listed
    hf("auth", "logout", no_env_token=True)
    assert not (hf.home / "token").exists()
    out = hf("auth", "whoami", check=False, no_env_token=True)
    assert out.returncode != 0
    # A bad token is refused by login.
    bad = hf("auth", "login", "--token", "hf_not_a_real_token_at_all", check=False,
             no_env_token=True)
    assert bad.returncode != 0 and not (hf.home / "token").exists()


def test_repo_create_and_delete(hf, server, user, other):
    api = HfApi(endpoint=server.endpoint, token=user.token)
    rid = new_id(user)
    hf("repos", "create", rid)
    assert api.repo_exists(rid)
    # Someone else cannot delete it.
    denied = hf("repos", "delete", rid, "--yes", check=False, token=other.token)
    assert denied.returncode != 0 and api.repo_exists(rid)
    out = as_json(hf("repos", "delete", rid, "--yes", "--format", "json"))
    assert out == {"repo_id": rid}
    assert not api.repo_exists(rid)
    # Deleting again: an error, unless --missing-ok.
    again = hf("repos", "delete", rid, "--yes", check=False)
    assert again.returncode != 0 and "not found" in again.stderr.lower()
    hf("repos", "delete", rid, "--yes", "--missing-ok")
    # Recreating the deleted name works and gives an empty repo.
    hf("repos", "create", rid)
    assert api.list_repo_files(rid) == [".gitattributes"]
    hf("repos", "delete", rid, "--yes")

    ds = new_id(user, "cli-ds")
    hf("repos", "create", ds, "--type", "dataset")
    assert api.repo_exists(ds, repo_type="dataset") and not api.repo_exists(ds)
    hf("repos", "delete", ds, "--type", "dataset", "--yes")
    assert not api.repo_exists(ds, repo_type="dataset")


def test_upload_private_creates_repo(hf, server, user, tmp_path):
    api = HfApi(endpoint=server.endpoint, token=user.token)
    anon = HfApi(endpoint=server.endpoint, token=False)
    rid = new_id(user)
    f = tmp_path / "weights.bin"
    data = os.urandom(120_000)
    f.write_bytes(data)
    url = as_json(hf("upload", rid, str(f), "--private", "--format", "json"))["url"]
    assert url.startswith(f"{server.endpoint}/{rid}/commit/")
    assert api.repo_info(rid).private is True
    with pytest.raises(RepositoryNotFoundError):
        anon.repo_info(rid)
    (entry,) = api.get_paths_info(rid, ["weights.bin"])
    assert entry.size == len(data) and entry.lfs.sha256 == hashlib.sha256(data).hexdigest()

    # A dataset created by upload, private.
    ds = new_id(user, "cli-ds")
    folder = tmp_path / "folder"
    files = make_folder(folder)
    hf("upload", ds, str(folder), "--type", "dataset", "--private")
    assert api.repo_info(ds, repo_type="dataset").private is True
    assert set(api.list_repo_files(ds, repo_type="dataset")) == {".gitattributes", *files}


def test_upload_revision_exclude_delete(hf, server, user, tmp_path):
    api = HfApi(endpoint=server.endpoint, token=user.token)
    rid = new_id(user)
    folder = tmp_path / "folder"
    files = make_folder(folder)
    hf("upload", rid, str(folder), "--exclude", "*.log", "--exclude", "sub/deep/*",
       "--commit-message", "first", "--commit-description", "the description")
    assert set(api.list_repo_files(rid)) == {".gitattributes", "a.txt", "sub/b.json",
                                             "sub/w.bin"}
    head = api.list_repo_commits(rid)[0]
    assert head.title == "first" and head.message == "the description"

    # --revision to a branch that does not exist yet: it is created from main.
    extra = tmp_path / "extra.txt"
    extra.write_bytes(b"only on dev\n")
    hf("upload", rid, str(extra), "docs/extra.txt", "--revision", "dev")
    assert "dev" in [b.name for b in api.list_repo_refs(rid).branches]
    assert "docs/extra.txt" in api.list_repo_files(rid, revision="dev")
    assert "docs/extra.txt" not in api.list_repo_files(rid)
    got = hf_hub_download(rid, "docs/extra.txt", revision="dev", token=user.token,
                          cache_dir=tmp_path / "c")
    assert Path(got).read_bytes() == b"only on dev\n"
    # A second upload to the existing branch.
    hf("upload", rid, str(folder / "sub" / "b.json"), "docs/b.json", "--revision", "dev")
    assert {"docs/extra.txt", "docs/b.json"} <= set(api.list_repo_files(rid, revision="dev"))

    # --delete removes remote files matching the pattern in the same commit.
    (folder / "a.txt").write_bytes(b"a, v2\n")
    hf("upload", rid, str(folder), "--include", "a.txt", "--delete", "sub/*.json")
    assert set(api.list_repo_files(rid)) == {".gitattributes", "a.txt", "sub/w.bin"}
    p = hf_hub_download(rid, "a.txt", token=user.token, cache_dir=tmp_path / "c")
    assert Path(p).read_bytes() == b"a, v2\n"
    assert files["sub/w.bin"] == Path(hf_hub_download(
        rid, "sub/w.bin", token=user.token, cache_dir=tmp_path / "c")).read_bytes()


@pytest.fixture
def filled(server, user, tmp_path):  # type: ignore[no-untyped-def]
    """A model repo with the folder on main and a `dev` branch with one more file."""
    api = HfApi(endpoint=server.endpoint, token=user.token)
    rid = new_id(user)
    api.create_repo(rid)
    folder = tmp_path / "src"
    files = make_folder(folder)
    api.upload_folder(repo_id=rid, folder_path=folder)
    api.create_branch(rid, branch="dev")
    api.upload_file(repo_id=rid, path_or_fileobj=b"dev file\n", path_in_repo="dev.txt",
                    revision="dev")
    main_sha = api.repo_info(rid).sha
    dev_sha = api.repo_info(rid, revision="dev").sha
    return rid, files, main_sha, dev_sha


def test_download_revision_include_exclude(hf, filled, tmp_path):
    rid, files, main_sha, dev_sha = filled
    cache = hf.home / "hub" / f"models--{rid.replace('/', '--')}"
    # Into the cache: the printed path is the snapshot of the resolved commit.
    out = as_json(hf("download", rid, "--revision", "dev", "--include", "*.txt", "--format",
                     "json"))
    snap = Path(out["path"])
    assert snap == cache / "snapshots" / dev_sha
    got = sorted(str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file())
    assert got == ["a.txt", "dev.txt", "sub/deep/c.txt"]
    assert (snap / "dev.txt").read_bytes() == b"dev file\n"
    assert (cache / "refs" / "dev").read_text() == dev_sha

    out = as_json(hf("download", rid, "--exclude", "*.bin", "--exclude", "*.log", "--format",
                     "json"))
    snap = Path(out["path"])
    assert snap == cache / "snapshots" / main_sha
    got = sorted(str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file())
    assert got == [".gitattributes", "a.txt", "sub/b.json", "sub/deep/c.txt"]
    assert (cache / "refs" / "main").read_text() == main_sha

    # One LFS/Xet file into the cache.
    out = as_json(hf("download", rid, "sub/w.bin", "--format", "json"))
    assert Path(out["path"]) == cache / "snapshots" / main_sha / "sub" / "w.bin"
    assert Path(out["path"]).read_bytes() == files["sub/w.bin"]
    blob = cache / "blobs" / hashlib.sha256(files["sub/w.bin"]).hexdigest()
    assert blob.read_bytes() == files["sub/w.bin"]

    # A folder, with --local-dir and an hf:// URI.
    local = tmp_path / "local"
    hf("download", rid, "sub/", "--local-dir", str(local))
    got = sorted(str(p.relative_to(local)) for p in local.rglob("*")
                 if p.is_file() and ".cache" not in p.parts)
    assert got == ["sub/b.json", "sub/deep/c.txt", "sub/w.bin"]
    assert (local / "sub" / "w.bin").read_bytes() == files["sub/w.bin"]
    out = as_json(hf("download", f"hf://{rid}/sub/deep/c.txt", "--local-dir", str(tmp_path / "u"),
                     "--format", "json"))
    assert Path(out["path"]).read_bytes() == b"c\n"
    # --dry-run lists what would be downloaded, with sizes.
    dry = as_json(hf("download", rid, "--include", "sub/*", "--dry-run", "--format", "json"))
    assert sorted(e["file"] for e in dry) == ["sub/b.json", "sub/deep/c.txt", "sub/w.bin"]

    bad_rev = hf("download", rid, "--revision", "nope", check=False)
    assert bad_rev.returncode != 0 and "revision not found" in bad_rev.stderr.lower()
    missing = hf("download", f"{rid}-missing", check=False)
    assert missing.returncode != 0 and "not found" in missing.stderr.lower()


def test_list_files(hf, filled):
    rid, files, main_sha, dev_sha = filled
    entries = as_json(hf("models", "ls", rid, "-R", "--format", "json"))
    by_path = {e["path"]: e for e in entries}
    assert set(by_path) == {".gitattributes", "a.txt", "notes.log", "sub", "sub/b.json",
                            "sub/w.bin", "sub/deep", "sub/deep/c.txt"}
    assert by_path["a.txt"]["size"] == 2
    assert by_path["sub/w.bin"]["size"] == len(files["sub/w.bin"])
    assert by_path["sub/w.bin"]["lfs"]["sha256"] == hashlib.sha256(files["sub/w.bin"]).hexdigest()
    assert by_path["sub"]["tree_id"]
    assert by_path["a.txt"]["last_commit"]["oid"] == main_sha
    top = as_json(hf("models", "ls", rid, "--format", "json"))
    assert {e["path"] for e in top} == {".gitattributes", "a.txt", "notes.log", "sub"}
    dev = hf("models", "ls", rid, "--revision", "dev", "-q").stdout.split()
    assert "dev.txt" in dev and "a.txt" in dev
    tree = hf("models", "ls", rid, "--tree", "-R").stdout
    assert "deep/" in tree and "c.txt" in tree and str(len(files["sub/w.bin"])) in tree


def test_dataset_ls_info_and_cp(hf, server, user, tmp_path):
    rid = new_id(user, "cli-ds")
    folder = tmp_path / "folder"
    make_folder(folder)
    hf("upload", rid, str(folder), "data", "--type", "dataset", "--include", "*.txt")
    paths = hf("datasets", "ls", rid, "-R", "-q").stdout.split()
    assert sorted(paths) == [".gitattributes", "data/", "data/a.txt", "data/sub/",
                             "data/sub/deep/", "data/sub/deep/c.txt"]
    info = as_json(hf("datasets", "info", rid, "--format", "json"))
    assert info["id"] == rid and info["private"] is False
    assert sorted(s["rfilename"] for s in info["siblings"]) == [
        ".gitattributes", "data/a.txt", "data/sub/deep/c.txt"]
    # cp: stdout and stdin.
    assert hf("cp", f"hf://datasets/{rid}/data/a.txt", "-").stdout == "a\n"
    hf("cp", "-", f"hf://datasets/{rid}/from-stdin.txt", stdin="piped\n")
    assert hf("cp", f"hf://datasets/{rid}/from-stdin.txt", "-").stdout == "piped\n"
    hf("cp", f"hf://datasets/{rid}/data/sub/deep/c.txt", str(tmp_path / "c.txt"))
    assert (tmp_path / "c.txt").read_bytes() == b"c\n"


def test_branch_tag_delete_files(hf, filled, api):
    rid, files, main_sha, dev_sha = filled
    hf("repos", "tag", "create", rid, "v1.0", "-m", "release")
    tags = as_json(hf("repos", "tag", "list", rid, "--format", "json"))
    assert [(t["name"], t["target_commit"]) for t in tags] == [("v1.0", main_sha)]
    hf("repos", "branch", "create", rid, "feature", "--revision", "dev")
    refs = {b.name: b.target_commit for b in api.list_repo_refs(rid).branches}
    assert refs["feature"] == dev_sha
    out = as_json(hf("repos", "delete-files", rid, "notes.log", "sub/deep/*", "--format", "json"))
    assert out["commit_url"].startswith(f"{api.endpoint}/{rid}/commit/")
    assert set(api.list_repo_files(rid)) == {".gitattributes", "a.txt", "sub/b.json", "sub/w.bin"}
    hf("repos", "tag", "delete", rid, "v1.0", "--yes")
    hf("repos", "branch", "delete", rid, "feature")
    refs = api.list_repo_refs(rid)
    assert refs.tags == [] and {b.name for b in refs.branches} == {"main", "dev"}


def test_cache_commands(hf, filled):
    rid, files, main_sha, dev_sha = filled
    hf("download", rid)
    hf("download", rid, "dev.txt", "--revision", "dev")
    repos = as_json(hf("cache", "ls", "--format", "json"))
    (entry,) = [r for r in repos if r["repo_id"] == rid]
    assert entry["repo_type"] == "model" and sorted(entry["refs"]) == ["dev", "main"]
    revs = as_json(hf("cache", "ls", "--revisions", "--format", "json"))
    by_sha = {r["revision"]: r for r in revs if r["repo_id"] == rid}
    assert set(by_sha) == {main_sha, dev_sha}
    assert by_sha[main_sha]["refs"] == ["main"] and by_sha[dev_sha]["refs"] == ["dev"]
    # verify: every cached file at main matches the remote checksums.
    ok = as_json(hf("cache", "verify", rid, "--fail-on-missing-files", "--format", "json"))
    assert ok["checked"] == len(files) + 1  # + .gitattributes
    # Corrupt the LFS blob: verify now fails.
    snap = Path(by_sha[main_sha]["snapshot_path"])
    blob = (snap / "sub" / "w.bin").resolve()
    blob.write_bytes(b"corrupted")
    bad = hf("cache", "verify", rid, check=False)
    assert bad.returncode != 0 and "sub/w.bin" in bad.stdout + bad.stderr
    # rm a revision, then the whole repo.
    hf("cache", "rm", dev_sha, "--yes")
    revs = as_json(hf("cache", "ls", "--revisions", "--format", "json"))
    assert [r["revision"] for r in revs if r["repo_id"] == rid] == [main_sha]
    hf("cache", "rm", f"model/{rid}", "--yes")
    assert [r for r in as_json(hf("cache", "ls", "--format", "json")) if r["repo_id"] == rid] == []


# -- Repo cards --------------------------------------------------------------------------


def model_card_data(tag: str, **over) -> ModelCardData:  # type: ignore[no-untyped-def]
    fields = dict(
        license="mit", language=["is", "en"], tags=[tag, "hver-card"], library_name="transformers",
        pipeline_tag="text-classification", base_model="hver-org/base-model",
        datasets=["hver-org/train-set"], metrics=["accuracy", "f1"], model_name="tiny-classifier",
        eval_results=[
            EvalResult(task_type="text-classification", dataset_type="hver-org/train-set",
                       dataset_name="Train set", dataset_split="test", metric_type="accuracy",
                       metric_value=0.91),
            EvalResult(task_type="text-classification", dataset_type="hver-org/train-set",
                       dataset_name="Train set", dataset_split="test", metric_type="f1",
                       metric_value=0.875),
        ],
        co2_eq_emissions={"emissions": 12.5, "source": "codecarbon",
                          "training_type": "fine-tuning"},
    )
    fields.update(over)
    return ModelCardData(**fields)


def test_model_card_roundtrip(api, repo_factory, hf):
    rid = repo_factory()
    tag = f"t-{uuid.uuid4().hex[:8]}"
    card = ModelCard.from_template(model_card_data(tag), model_id="tiny-classifier")
    card.text = card.text.rstrip() + "\n\nA tiny classifier, Ísland edition.\n"
    card.push_to_hub(rid, commit_message="Add card", token=api.token)
    assert api.list_repo_commits(rid)[0].title == "Add card"

    loaded = ModelCard.load(rid, token=api.token)
    d = loaded.data
    assert d.license == "mit" and d.language == ["is", "en"] and d.tags == [tag, "hver-card"]
    assert d.base_model == "hver-org/base-model" and d.datasets == ["hver-org/train-set"]
    assert d.metrics == ["accuracy", "f1"] and d.library_name == "transformers"
    assert d.co2_eq_emissions == {"emissions": 12.5, "source": "codecarbon",
                                  "training_type": "fine-tuning"}
    assert d.model_name == "tiny-classifier"
    assert [(e.metric_type, e.metric_value, e.dataset_split) for e in d.eval_results] == [
        ("accuracy", 0.91, "test"), ("f1", 0.875, "test")]
    assert "Ísland edition" in loaded.text
    assert loaded.content == card.content

    info = api.model_info(rid)
    cd = info.card_data
    assert isinstance(cd, ModelCardData)
    assert cd.license == "mit" and cd.language == ["is", "en"]
    assert cd.base_model == "hver-org/base-model" and cd.datasets == ["hver-org/train-set"]
    assert cd.co2_eq_emissions["emissions"] == 12.5
    assert [(e.metric_type, e.metric_value) for e in cd.eval_results] == [
        ("accuracy", 0.91), ("f1", 0.875)]
    assert info.pipeline_tag == "text-classification" and info.library_name == "transformers"
    assert {tag, "hver-card", "transformers", "text-classification", "is", "en", "license:mit",
            "dataset:hver-org/train-set", "base_model:hver-org/base-model"} <= set(info.tags)
    # On the wire, cardData keeps the YAML keys (`model-index`, not `eval_results`).
    raw = httpx.get(f"{api.endpoint}/api/models/{rid}",
                    headers={"authorization": f"Bearer {api.token}"}).json()["cardData"]
    assert raw["model-index"][0]["name"] == "tiny-classifier"
    result = raw["model-index"][0]["results"][0]
    assert result["task"] == {"type": "text-classification"}
    assert result["dataset"] == {"name": "Train set", "type": "hver-org/train-set", "split": "test"}
    assert result["metrics"] == [{"type": "accuracy", "value": 0.91},
                                 {"type": "f1", "value": 0.875}]
    assert raw["co2_eq_emissions"] == {"emissions": 12.5, "source": "codecarbon",
                                       "training_type": "fine-tuning"}
    # The CLI reads the same card.
    meta = as_json(hf("models", "card", rid, "--metadata", "--format", "json"))
    assert meta["license"] == "mit" and meta["base_model"] == "hver-org/base-model"
    assert hf("models", "card", rid, "--text").stdout.strip().endswith("Ísland edition.")


def test_model_card_update(api, repo_factory):
    rid = repo_factory()
    tag = f"t-{uuid.uuid4().hex[:8]}"
    ModelCard.from_template(model_card_data(tag)).push_to_hub(rid, token=api.token)
    card = ModelCard.load(rid, token=api.token)
    card.data.license = "apache-2.0"
    card.data.tags = [tag, "updated"]
    card.push_to_hub(rid, token=api.token)
    info = api.model_info(rid)
    assert info.card_data.license == "apache-2.0" and "license:apache-2.0" in info.tags
    assert "license:mit" not in info.tags and "updated" in info.tags
    metadata_update(rid, {"license": "cc-by-4.0", "new_field": "x"}, overwrite=True,
                    token=api.token)
    info = api.model_info(rid)
    assert info.card_data.license == "cc-by-4.0" and info.card_data["new_field"] == "x"
    assert "license:cc-by-4.0" in info.tags and "license:apache-2.0" not in info.tags
    # Without overwrite, changing an existing value is refused client-side; nothing is pushed.
    head = api.list_repo_commits(rid)[0].commit_id
    with pytest.raises(ValueError):
        metadata_update(rid, {"license": "mit"}, token=api.token)
    assert api.list_repo_commits(rid)[0].commit_id == head


def test_model_list_filters(api, repo_factory):
    tag = f"t-{uuid.uuid4().hex[:8]}"
    hit = repo_factory()
    miss = repo_factory()
    ModelCard.from_template(model_card_data(tag)).push_to_hub(hit, token=api.token)
    ModelCard.from_template(model_card_data(
        tag, license="apache-2.0", language=["de"], library_name="timm",
        pipeline_tag="image-classification", base_model="hver-org/other", datasets=["x/y"],
        co2_eq_emissions={"emissions": 99.0}, eval_results=None,
    )).push_to_hub(miss, token=api.token)

    def ids(**kw) -> set[str]:  # type: ignore[no-untyped-def]
        return {m.id for m in api.list_models(filter=[tag, *kw.pop("extra", [])], **kw)}

    assert ids() == {hit, miss}
    assert ids(extra=["language:is"]) == {hit}
    assert ids(extra=["is"]) == {hit}
    assert ids(extra=["language:de"]) == {miss}
    assert ids(extra=["license:mit"]) == {hit}
    assert ids(extra=["license:apache-2.0"]) == {miss}
    assert ids(extra=["transformers"]) == {hit}  # the library is a tag
    assert ids(extra=["timm"]) == {miss}
    assert ids(pipeline_tag="text-classification") == {hit}
    assert ids(pipeline_tag="image-classification") == {miss}
    assert ids(trained_dataset="hver-org/train-set") == {hit}
    assert ids(extra=["base_model:hver-org/base-model"]) == {hit}
    assert ids(extra=["license:mit", "language:de"]) == set()  # filters are ANDed
    assert ids(extra=["license:gpl-3.0"]) == set()
    # Card data in listings: cardData=true, and expand=["cardData"].
    (item,) = [m for m in api.list_models(filter=[tag, "license:mit"], cardData=True)]
    assert item.card_data.license == "mit" and item.card_data.co2_eq_emissions["emissions"] == 12.5
    # co2 thresholds are applied by the client on the listed card data.
    assert {m.id for m in api.list_models(filter=tag, cardData=True,
                                          emissions_thresholds=(10, 20))} == {hit}
    expanded = {m.id: m for m in api.list_models(filter=tag, expand=["cardData", "tags"])}
    assert set(expanded) == {hit, miss}
    assert expanded[hit].card_data is not None, "expand=cardData returned no cardData"
    assert expanded[hit].card_data.license == "mit"
    assert expanded[miss].card_data.language == ["de"]


def test_dataset_card_and_filters(api, repo_factory):
    tag = f"t-{uuid.uuid4().hex[:8]}"
    hit = repo_factory(repo_type="dataset")
    miss = repo_factory(repo_type="dataset")
    data = DatasetCardData(
        license="cc-by-4.0", language=["is"], tags=[tag], pretty_name="Icelandic reviews",
        task_categories=["text-classification"], task_ids=["sentiment-classification"],
        size_categories=["n<1K"], multilinguality="monolingual", language_creators=["found"],
        annotations_creators=["expert-generated"], source_datasets=["original"],
        configs=[{"config_name": "default", "data_files": [{"split": "train",
                                                            "path": "data/train-*"}]}],
    )
    card = DatasetCard.from_template(data, pretty_name="Icelandic reviews")
    card.push_to_hub(hit, token=api.token)
    DatasetCard.from_template(DatasetCardData(
        license="mit", language=["de"], tags=[tag], task_categories=["translation"],
        size_categories=["1K<n<10K"], multilinguality="multilingual",
    )).push_to_hub(miss, token=api.token)

    loaded = DatasetCard.load(hit, token=api.token).data
    assert loaded.license == "cc-by-4.0" and loaded.language == ["is"]
    assert loaded.pretty_name == "Icelandic reviews" and loaded.tags == [tag]
    assert loaded.task_categories == ["text-classification"]
    assert loaded.configs == [{"config_name": "default",
                               "data_files": [{"split": "train", "path": "data/train-*"}]}]

    info = api.dataset_info(hit)
    assert isinstance(info.card_data, DatasetCardData)
    assert info.card_data.license == "cc-by-4.0" and info.card_data.language == ["is"]
    assert info.card_data.pretty_name == "Icelandic reviews"
    assert {tag, "language:is", "license:cc-by-4.0", "task_categories:text-classification",
            "task_ids:sentiment-classification", "size_categories:n<1K"} <= set(info.tags)

    def ids(**kw) -> set[str]:  # type: ignore[no-untyped-def]
        return {d.id for d in api.list_datasets(filter=[tag, *kw.pop("extra", [])], **kw)}

    assert ids() == {hit, miss}
    assert ids(language="is") == {hit}
    assert ids(language="de") == {miss}
    assert ids(extra=["license:cc-by-4.0"]) == {hit}
    assert ids(extra=["license:mit"]) == {miss}
    assert ids(task_categories="text-classification") == {hit}
    assert ids(task_categories="translation") == {miss}
    assert ids(task_ids="sentiment-classification") == {hit}
    assert ids(size_categories="n<1K") == {hit}
    assert ids(multilinguality="monolingual") == {hit}
    assert ids(language_creators="found") == {hit}
    assert ids(language=["is", "de"]) == set()  # ANDed, like every filter
    assert ids(dataset_name=hit.split("/")[1]) == {hit}
    full = {d.id: d for d in api.list_datasets(filter=tag, expand=["cardData"])}
    assert full[hit].card_data is not None, "expand=cardData returned no cardData"
    assert full[hit].card_data.license == "cc-by-4.0"


def test_dataset_card_yaml_tags(api, repo_factory):
    """The Hub derives a `key:value` tag from each of these card fields, not only some."""
    rid = repo_factory(repo_type="dataset")
    DatasetCard.from_template(DatasetCardData(
        license="cc-by-4.0", language=["is"], multilinguality="monolingual",
        language_creators=["found"], annotations_creators=["expert-generated"],
        source_datasets=["original"], task_categories=["text-classification"],
    )).push_to_hub(rid, token=api.token)
    tags = set(api.dataset_info(rid).tags)
    assert {"multilinguality:monolingual", "language_creators:found",
            "annotations_creators:expert-generated", "source_datasets:original"} <= tags, tags


def test_upload_create_pr_and_discussions_commands(hf, server, user, other, tmp_path):
    """`hf upload --create-pr` by a reader, then `hf discussions` list, comment, diff and
    merge by the owner."""
    rid = f"{user.name}/cli-pr-{uuid.uuid4().hex[:6]}"
    hf("repos", "create", rid)
    f = tmp_path / "fix.txt"
    f.write_text("a fix\n")
    hf("upload", rid, str(f), "fix.txt", "--create-pr", token=other.token)
    listed = hf("discussions", "list", rid).stdout
    assert "#1" in listed or " 1 " in listed, listed
    hf("discussions", "comment", rid, "1", "--body", "Looks good")
    diff = hf("discussions", "diff", rid, "1").stdout
    assert "+a fix" in diff, diff
    hf("discussions", "merge", rid, "1", "--yes")
    api = HfApi(endpoint=server.endpoint, token=user.token)
    assert "fix.txt" in api.list_repo_files(rid)
    details = api.get_discussion_details(rid, 1)
    assert details.status == "merged"
    assert [e.content for e in details.events if e.type == "comment"] == ["Looks good"]
