"""The `datasets` library against hver, through its public API with default settings.

push_to_hub / load_dataset round trips, plain files uploaded with HfApi (csv, jsonl, parquet,
txt, folders per split), `data_files=` patterns, README `configs:`, `revision=`, streaming and
private repos. Every load uses a fresh `cache_dir`, so nothing comes from an earlier cache.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import (
    Dataset,
    DatasetDict,
    IterableDataset,
    get_dataset_config_names,
    get_dataset_split_names,
    load_dataset,
)
from datasets.exceptions import DatasetNotFoundError
from huggingface_hub import CommitOperationAdd, HfFileSystem, constants

Rows = list[dict[str, Any]]

TRAIN: Rows = [{"id": i, "text": f"train row {i}"} for i in range(5)]
TEST: Rows = [{"id": 100 + i, "text": f"test row {i}"} for i in range(3)]
VALID: Rows = [{"id": 200 + i, "text": f"validation row {i}"} for i in range(2)]


def _columns(rows: Rows) -> dict[str, list[Any]]:
    return {k: [r[k] for r in rows] for k in rows[0]}


def _csv(rows: Rows) -> bytes:
    lines = [",".join(rows[0])] + [",".join(str(v) for v in r.values()) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def _jsonl(rows: Rows) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def _parquet(rows: Rows) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows), buf)
    return buf.getvalue()


def _splits(dd: DatasetDict) -> dict[str, Rows]:
    return {name: split.to_list() for name, split in dd.items()}


@pytest.fixture
def load(tmp_path: Path, user, monkeypatch) -> Callable[..., Any]:  # type: ignore[no-untyped-def]
    """`load_dataset` with the owner's token and fresh caches on every call.

    datasets fetches the README and the data files with hf_hub_download into the
    huggingface_hub cache (not `cache_dir`), and a cached file is used even when the HEAD
    fails; so that cache is fresh per load too, as are HfFileSystem instances and listings."""

    def call(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("token", user.token)
        fresh = tmp_path / f"caches-{uuid.uuid4().hex[:8]}"
        monkeypatch.setattr(constants, "HF_HUB_CACHE", str(fresh / "hub"))
        HfFileSystem.clear_instance_cache()
        return load_dataset(*args, cache_dir=str(fresh / "datasets"), **kwargs)

    return call


@pytest.fixture
def dataset_repo(repo_factory) -> Callable[..., str]:  # type: ignore[no-untyped-def]
    """An empty dataset repo of the session user."""

    def make(private: bool = False) -> str:
        return str(repo_factory(repo_type="dataset", private=private))

    return make


def _new_repo_id(user) -> str:  # type: ignore[no-untyped-def]
    return f"{user.name}/ds-{uuid.uuid4().hex[:8]}"


def _add(api, repo_id: str, files: dict[str, bytes], **kwargs: Any) -> str:  # type: ignore[no-untyped-def]
    ops = [CommitOperationAdd(path, data) for path, data in files.items()]
    return str(api.create_commit(repo_id, repo_type="dataset", operations=ops,
                                 commit_message="add files", **kwargs).oid)


# --- push_to_hub round trips -----------------------------------------------------------------


def test_dataset_push_to_hub_private_roundtrip(api, user, load, no_server_errors) -> None:
    repo_id = _new_repo_id(user)
    Dataset.from_dict(_columns(TRAIN)).push_to_hub(repo_id, private=True, token=user.token)

    info = api.dataset_info(repo_id)
    assert info.private is True
    files = set(api.list_repo_files(repo_id, repo_type="dataset"))
    assert "data/train-00000-of-00001.parquet" in files
    assert "README.md" in files

    dd = load(repo_id)
    assert isinstance(dd, DatasetDict)
    assert _splits(dd) == {"train": TRAIN}
    ds = load(repo_id, split="train")
    assert isinstance(ds, Dataset)
    assert ds.to_list() == TRAIN
    assert ds.features["id"].dtype == "int64"
    assert ds.features["text"].dtype == "string"


def test_datasetdict_push_to_hub_splits_and_configs(api, user, load, no_server_errors) -> None:
    repo_id = _new_repo_id(user)
    first = DatasetDict({
        "train": Dataset.from_list(TRAIN),
        "test": Dataset.from_list(TEST),
        "validation": Dataset.from_list(VALID),
    })
    first.push_to_hub(repo_id, private=True, token=user.token)
    other_rows = [{"id": 7, "text": "other config"}, {"id": 8, "text": "second row"}]
    second = DatasetDict({"train": Dataset.from_list(other_rows), "test": Dataset.from_list(TEST)})
    second.push_to_hub(repo_id, config_name="other", private=True, token=user.token)

    assert api.dataset_info(repo_id).private is True
    files = set(api.list_repo_files(repo_id, repo_type="dataset"))
    assert {
        "data/train-00000-of-00001.parquet",
        "data/test-00000-of-00001.parquet",
        "data/validation-00000-of-00001.parquet",
        "other/train-00000-of-00001.parquet",
        "other/test-00000-of-00001.parquet",
    } <= files

    assert sorted(get_dataset_config_names(repo_id, token=user.token)) == ["default", "other"]
    assert sorted(get_dataset_split_names(repo_id, "default", token=user.token)) == [
        "test", "train", "validation"]

    assert _splits(load(repo_id)) == {"train": TRAIN, "test": TEST, "validation": VALID}
    assert _splits(load(repo_id, "default")) == {
        "train": TRAIN, "test": TEST, "validation": VALID}
    assert _splits(load(repo_id, "other")) == {"train": other_rows, "test": TEST}
    assert load(repo_id, "other", split="train").to_list() == other_rows
    assert load(repo_id, split="validation").to_list() == VALID


def test_push_to_hub_shards_and_overwrite(api, user, load, no_server_errors) -> None:
    """Two shards, then a second push of the split replaces them (deletedFile in the commit)."""
    repo_id = _new_repo_id(user)
    Dataset.from_list(TRAIN).push_to_hub(repo_id, private=True, num_shards=2, token=user.token)
    shards = {"data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet"}
    assert shards <= set(api.list_repo_files(repo_id, repo_type="dataset"))
    assert load(repo_id, split="train").to_list() == TRAIN

    Dataset.from_list(TEST).push_to_hub(repo_id, private=True, token=user.token)
    files = set(api.list_repo_files(repo_id, repo_type="dataset"))
    assert "data/train-00000-of-00001.parquet" in files
    assert not shards & files
    assert load(repo_id, split="train").to_list() == TEST


def test_push_to_hub_to_branch(api, user, load, no_server_errors) -> None:
    repo_id = _new_repo_id(user)
    Dataset.from_list(TRAIN).push_to_hub(repo_id, private=True, token=user.token)
    Dataset.from_list(TEST).push_to_hub(repo_id, private=True, revision="staging",
                                        token=user.token)
    branches = {b.name for b in api.list_repo_refs(repo_id, repo_type="dataset").branches}
    assert branches == {"main", "staging"}
    assert load(repo_id, split="train").to_list() == TRAIN
    assert load(repo_id, split="train", revision="staging").to_list() == TEST


# --- plain files uploaded with HfApi ---------------------------------------------------------


def test_load_csv_train_and_test(api, dataset_repo, load, no_server_errors) -> None:
    repo_id = dataset_repo()
    api.upload_file(path_or_fileobj=_csv(TRAIN), path_in_repo="train.csv",
                    repo_id=repo_id, repo_type="dataset")
    api.upload_file(path_or_fileobj=_csv(TEST), path_in_repo="test.csv",
                    repo_id=repo_id, repo_type="dataset")
    assert _splits(load(repo_id)) == {"train": TRAIN, "test": TEST}
    assert load(repo_id, split="test").to_list() == TEST


def test_load_jsonl(api, dataset_repo, load, no_server_errors) -> None:
    repo_id = dataset_repo()
    api.upload_file(path_or_fileobj=_jsonl(TRAIN), path_in_repo="records.jsonl",
                    repo_id=repo_id, repo_type="dataset")
    assert _splits(load(repo_id)) == {"train": TRAIN}


def test_load_parquet_data_dir_layout(api, dataset_repo, load, tmp_path, no_server_errors) -> None:
    repo_id = dataset_repo()
    folder = tmp_path / "upload"
    (folder / "data").mkdir(parents=True)
    for name, rows in (("train", TRAIN), ("test", TEST), ("validation", VALID)):
        (folder / "data" / f"{name}-00000-of-00001.parquet").write_bytes(_parquet(rows))
    api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="dataset")
    assert _splits(load(repo_id)) == {"train": TRAIN, "test": TEST, "validation": VALID}
    assert load(repo_id, split="validation").to_list() == VALID


def test_load_txt(api, dataset_repo, load, no_server_errors) -> None:
    repo_id = dataset_repo()
    lines = ["first line", "second line", "third line"]
    api.upload_file(path_or_fileobj=("\n".join(lines) + "\n").encode(), path_in_repo="train.txt",
                    repo_id=repo_id, repo_type="dataset")
    ds = load(repo_id, split="train")
    assert ds.column_names == ["text"]
    assert ds["text"] == lines


def test_load_folders_per_split(api, dataset_repo, load, tmp_path, no_server_errors) -> None:
    repo_id = dataset_repo()
    folder = tmp_path / "upload"
    (folder / "train").mkdir(parents=True)
    (folder / "test").mkdir()
    (folder / "train" / "part-a.csv").write_bytes(_csv(TRAIN[:3]))
    (folder / "train" / "part-b.csv").write_bytes(_csv(TRAIN[3:]))
    (folder / "test" / "only.csv").write_bytes(_csv(TEST))
    api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="dataset")
    assert _splits(load(repo_id)) == {"train": TRAIN, "test": TEST}


def test_load_data_files_patterns(api, dataset_repo, load, no_server_errors) -> None:
    repo_id = dataset_repo()
    _add(api, repo_id, {
        "raw/a/part1.jsonl": _jsonl(TRAIN[:2]),
        "raw/a/part2.jsonl": _jsonl(TRAIN[2:]),
        "raw/b/held-out.jsonl": _jsonl(TEST),
    })
    # a str pattern
    assert _splits(load(repo_id, data_files="raw/a/*.jsonl")) == {"train": TRAIN}
    # a list of files
    assert load(repo_id, data_files=["raw/a/part1.jsonl", "raw/b/held-out.jsonl"],
                split="train").to_list() == TRAIN[:2] + TEST
    # a dict by split, with a recursive pattern
    dd = load(repo_id, data_files={"train": "raw/a/*.jsonl", "test": "raw/**/held-out.jsonl"})
    assert _splits(dd) == {"train": TRAIN, "test": TEST}
    # data_dir
    assert load(repo_id, data_dir="raw/b", split="train").to_list() == TEST


def test_load_readme_yaml_configs(api, dataset_repo, load, no_server_errors) -> None:
    repo_id = dataset_repo()
    readme = (
        "---\n"
        "configs:\n"
        "- config_name: numbers\n"
        "  data_files:\n"
        "  - split: train\n"
        "    path: numbers/train-*.csv\n"
        "  - split: test\n"
        "    path: numbers/test.csv\n"
        "  default: true\n"
        "- config_name: words\n"
        "  data_files: words/*.csv\n"
        "---\n"
        "# A dataset with two configs\n"
    )
    words = [{"id": 1, "text": "alpha"}, {"id": 2, "text": "beta"}]
    _add(api, repo_id, {
        "README.md": readme.encode(),
        "numbers/train-0.csv": _csv(TRAIN[:2]),
        "numbers/train-1.csv": _csv(TRAIN[2:]),
        "numbers/test.csv": _csv(TEST),
        "words/all.csv": _csv(words),  # a repo's configs share one builder (csv here)
    })
    assert sorted(get_dataset_config_names(repo_id, token=api.token)) == ["numbers", "words"]
    assert _splits(load(repo_id)) == {"train": TRAIN, "test": TEST}
    assert _splits(load(repo_id, "numbers")) == {"train": TRAIN, "test": TEST}
    assert load(repo_id, "numbers", split="test").to_list() == TEST
    assert _splits(load(repo_id, "words")) == {"train": words}


def test_load_revision_branch_and_sha(api, dataset_repo, load, no_server_errors) -> None:
    repo_id = dataset_repo()
    v1 = _add(api, repo_id, {"train.csv": _csv(TRAIN)})
    api.create_branch(repo_id, repo_type="dataset", branch="v1-branch")
    v2_rows = [{"id": 9, "text": "rewritten"}]
    v2 = _add(api, repo_id, {"train.csv": _csv(v2_rows)})
    dev_rows = [{"id": 42, "text": "only on dev"}]
    api.create_branch(repo_id, repo_type="dataset", branch="dev", revision=v1)
    _add(api, repo_id, {"train.csv": _csv(dev_rows)}, revision="dev")
    api.create_tag(repo_id, repo_type="dataset", tag="v1.0", revision=v1)
    api.create_branch(repo_id, repo_type="dataset", branch="feature/x", revision="dev")

    assert load(repo_id, split="train").to_list() == v2_rows
    assert load(repo_id, split="train", revision="main").to_list() == v2_rows
    assert load(repo_id, split="train", revision=v1).to_list() == TRAIN
    assert load(repo_id, split="train", revision=v2).to_list() == v2_rows
    assert load(repo_id, split="train", revision="v1-branch").to_list() == TRAIN
    assert load(repo_id, split="train", revision="dev").to_list() == dev_rows
    assert load(repo_id, split="train", revision="v1.0").to_list() == TRAIN
    assert load(repo_id, split="train", revision="feature/x").to_list() == dev_rows
    assert list(load(repo_id, split="train", revision=v1, streaming=True)) == TRAIN
    assert list(load(repo_id, split="train", revision="dev", streaming=True)) == dev_rows


def test_load_missing_revision(dataset_repo, api, load, no_server_errors) -> None:
    repo_id = dataset_repo()
    _add(api, repo_id, {"train.csv": _csv(TRAIN)})
    with pytest.raises(DatasetNotFoundError, match="Revision 'no-such-branch' doesn't exist"):
        load(repo_id, revision="no-such-branch")


# --- streaming -------------------------------------------------------------------------------


def test_streaming_plain_files(api, dataset_repo, load, tmp_path, no_server_errors) -> None:
    repo_id = dataset_repo()
    _add(api, repo_id, {
        "data/train-00000-of-00001.parquet": _parquet(TRAIN),
        "data/test-00000-of-00001.parquet": _parquet(TEST),
    })
    ids = load(repo_id, streaming=True)
    assert sorted(ids) == ["test", "train"]
    assert isinstance(ids["train"], IterableDataset)
    assert list(ids["train"]) == TRAIN
    assert list(ids["test"]) == TEST

    csv_repo = dataset_repo()
    _add(api, csv_repo, {"train.csv": _csv(TRAIN), "test.csv": _csv(TEST),
                         "notes/extra.jsonl": _jsonl(VALID)})
    assert list(load(csv_repo, split="train", streaming=True)) == TRAIN
    assert list(load(csv_repo, split="test", streaming=True)) == TEST
    assert list(load(csv_repo, data_files={"validation": "notes/*.jsonl"}, split="validation",
                     streaming=True)) == VALID


def test_streaming_pushed_private_dataset(user, load, no_server_errors) -> None:
    repo_id = _new_repo_id(user)
    DatasetDict({"train": Dataset.from_list(TRAIN), "test": Dataset.from_list(TEST)}).push_to_hub(
        repo_id, private=True, token=user.token)
    stream = load(repo_id, split="test", streaming=True)
    assert list(stream) == TEST
    assert list(load(repo_id, split="train", streaming=True).take(2)) == TRAIN[:2]


# --- access control --------------------------------------------------------------------------


def test_private_dataset_hidden_from_other_user(api, user, other, load, no_server_errors) -> None:
    repo_id = _new_repo_id(user)
    Dataset.from_list(TRAIN).push_to_hub(repo_id, private=True, token=user.token)
    assert load(repo_id, split="train").to_list() == TRAIN  # the owner can read it

    for token in (other.token, other.read_token, False):  # False: anonymous
        with pytest.raises(DatasetNotFoundError, match="doesn't exist on the Hub or cannot be"):
            load(repo_id, token=token)
        with pytest.raises(DatasetNotFoundError):
            load(repo_id, split="train", streaming=True, token=token)

    missing = f"{user.name}/no-such-dataset-{uuid.uuid4().hex[:6]}"
    with pytest.raises(DatasetNotFoundError, match="doesn't exist on the Hub or cannot be"):
        load(missing, token=other.token)


def test_push_to_hub_create_pr(server, api, user, other, load, no_server_errors) -> None:
    """A reader proposes rows to another user's public dataset; the owner merges them."""
    repo_id = _new_repo_id(user)
    Dataset.from_list(TRAIN).push_to_hub(repo_id, token=user.token)
    info = Dataset.from_list(TEST).push_to_hub(repo_id, token=other.token, create_pr=True)
    assert info.pr_revision == "refs/pr/1"
    assert load(repo_id, split="train").to_list() == TRAIN
    assert load(repo_id, split="train", revision="refs/pr/1").to_list() == TEST
    api.merge_pull_request(repo_id, 1, repo_type="dataset")
    assert load(repo_id, split="train").to_list() == TEST
