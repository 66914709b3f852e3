"""Repo info (model_info & co) and listings (list_models & co)."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

MODEL_CARD = """\
---
license: mit
language:
- en
- fr
tags:
- alpha-tag
- beta-tag
pipeline_tag: text-classification
library_name: transformers
datasets:
- someone/some-data
base_model: someone/base
---

# A model card

Body text.
"""

DATASET_CARD = """\
---
license: apache-2.0
language: en
task_categories:
- text-generation
size_categories:
- n<1K
pretty_name: Tiny
---
# Tiny dataset
"""


def _git_blob_sha(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


def _near_now(dt: datetime | None) -> None:
    assert dt is not None
    assert dt.tzinfo is not None
    now = datetime.now(UTC)
    assert now - timedelta(minutes=5) < dt < now + timedelta(minutes=1)


# --- model_info ------------------------------------------------------------------------------


@pytest.fixture
def model_repo(api, repo_factory):
    repo_id = repo_factory()
    weights = os.urandom(1024 * 1024)
    api.create_commit(repo_id, operations=[
        CommitOperationAdd("README.md", MODEL_CARD.encode()),
        CommitOperationAdd("config.json", b'{"model_type": "bert"}'),
        CommitOperationAdd("weights.bin", weights),
        CommitOperationAdd("model.safetensors", b"\x00" * 2048),
        CommitOperationAdd("sub/dir/notes.txt", b"notes\n"),
    ], commit_message="add files")
    return repo_id, weights


def test_model_info_basics(api, model_repo, user):
    repo_id, _ = model_repo
    info = api.model_info(repo_id)
    assert info.id == repo_id
    assert info.author == user.name
    assert info.private is False
    assert info.gated is False
    assert info.disabled is False
    assert info.sha == api.list_repo_commits(repo_id)[0].commit_id
    assert sorted(s.rfilename for s in info.siblings) == [
        ".gitattributes", "README.md", "config.json", "model.safetensors",
        "sub/dir/notes.txt", "weights.bin",
    ]
    # Without files_metadata, siblings carry no sizes.
    assert all(s.size is None and s.blob_id is None for s in info.siblings)
    assert info.downloads == 0
    assert info.likes == 0


def test_model_info_card_data_and_tags(api, model_repo):
    repo_id, _ = model_repo
    info = api.model_info(repo_id)
    assert info.pipeline_tag == "text-classification"
    assert info.library_name == "transformers"
    card = info.card_data
    assert card is not None
    assert card.license == "mit"
    assert card.language == ["en", "fr"]
    assert card.tags == ["alpha-tag", "beta-tag"]
    assert card.datasets == ["someone/some-data"]
    assert card.base_model == "someone/base"
    tags = set(info.tags)
    assert {"alpha-tag", "beta-tag", "transformers", "text-classification", "safetensors",
            "license:mit", "en", "fr", "dataset:someone/some-data",
            "base_model:someone/base"} <= tags


def test_model_info_files_metadata(api, model_repo):
    repo_id, weights = model_repo
    info = api.model_info(repo_id, files_metadata=True)
    by_name = {s.rfilename: s for s in info.siblings}
    cfg = by_name["config.json"]
    assert cfg.size == len(b'{"model_type": "bert"}')
    assert cfg.blob_id == _git_blob_sha(b'{"model_type": "bert"}')
    assert cfg.lfs is None
    w = by_name["weights.bin"]
    assert w.size == len(weights)
    assert w.lfs is not None
    assert w.lfs.size == len(weights)
    assert w.lfs.sha256 == hashlib.sha256(weights).hexdigest()
    assert 100 < w.lfs.pointer_size < 200
    assert len(w.blob_id) == 40  # the git blob of the pointer
    st = by_name["model.safetensors"]
    assert st.lfs is not None and st.lfs.size == 2048
    assert by_name["sub/dir/notes.txt"].size == 6
    assert info.used_storage == sum(s.size for s in info.siblings)


def test_model_info_dates(api, repo_factory):
    repo_id = repo_factory()
    first = api.model_info(repo_id)
    _near_now(first.created_at)
    _near_now(first.last_modified)
    assert first.created_at <= first.last_modified + timedelta(seconds=1)
    time.sleep(1.1)  # commit timestamps have one-second resolution
    api.upload_file(path_or_fileobj=b"later", path_in_repo="later.txt", repo_id=repo_id)
    second = api.model_info(repo_id)
    assert second.created_at == first.created_at
    assert second.last_modified > first.last_modified


def test_datetimes_end_in_z(api, repo_factory, server):
    repo_id = repo_factory()
    body = httpx.get(f"{server.endpoint}/api/models/{repo_id}").json()
    for key in ("createdAt", "lastModified"):
        assert body[key].endswith("Z"), body[key]
        datetime.strptime(body[key], "%Y-%m-%dT%H:%M:%S.%fZ")


def test_model_info_at_revision(api, repo_factory):
    repo_id = repo_factory()
    first = api.upload_file(path_or_fileobj=b"1", path_in_repo="one.txt",
                            repo_id=repo_id).oid
    api.create_tag(repo_id, tag="v1")
    api.create_branch(repo_id, branch="feature/x")
    api.upload_file(path_or_fileobj=b"2", path_in_repo="two.txt", repo_id=repo_id)
    head = api.model_info(repo_id)
    assert head.sha != first
    assert {s.rfilename for s in head.siblings} == {".gitattributes", "one.txt", "two.txt"}
    for rev in ("v1", first, "feature/x", "refs/heads/feature/x"):
        old = api.model_info(repo_id, revision=rev)
        assert old.sha == first, rev
        assert {s.rfilename for s in old.siblings} == {".gitattributes", "one.txt"}
    with pytest.raises(RevisionNotFoundError):
        api.model_info(repo_id, revision="does-not-exist")


def test_model_info_missing(api, user):
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(f"{user.name}/missing-{uuid.uuid4().hex[:6]}")


def test_downloads_count_config_json(api, model_repo, cache_dir):
    repo_id, _ = model_repo
    assert api.model_info(repo_id).downloads == 0
    hf_hub_download(repo_id, "sub/dir/notes.txt", cache_dir=cache_dir, token=api.token)
    assert api.model_info(repo_id).downloads == 0  # only config.json counts
    hf_hub_download(repo_id, "config.json", cache_dir=cache_dir, token=api.token)
    assert api.model_info(repo_id).downloads == 1  # HEAD + GET of one download: counted once
    hf_hub_download(repo_id, "config.json", cache_dir=cache_dir / "other", token=api.token)
    assert api.model_info(repo_id).downloads == 2
    # A plain HTTP client that sends no HEAD first counts on its GET.
    resp = httpx.get(f"{api.endpoint}/{repo_id}/resolve/main/config.json",
                     headers={"authorization": f"Bearer {api.token}"})
    assert resp.status_code == 200
    assert api.model_info(repo_id).downloads == 3


def test_expand_returns_only_requested_fields(api, model_repo):
    repo_id, _ = model_repo
    info = api.model_info(repo_id, expand=["downloads", "pipeline_tag"])
    assert info.id == repo_id
    assert info.downloads == 0
    assert info.pipeline_tag == "text-classification"
    assert info.siblings is None
    assert info.sha is None


def test_readme_without_front_matter(api, repo_factory):
    repo_id = repo_factory()
    api.upload_file(path_or_fileobj=b"# Just a title\n", path_in_repo="README.md",
                    repo_id=repo_id)
    info = api.model_info(repo_id)
    assert info.pipeline_tag is None
    assert info.library_name is None
    assert info.tags == []
    assert not info.card_data


def test_card_update_replaces_tags(api, repo_factory):
    repo_id = repo_factory()
    api.upload_file(path_or_fileobj=b"---\ntags: [one]\n---\n", path_in_repo="README.md",
                    repo_id=repo_id)
    assert "one" in api.model_info(repo_id).tags
    api.upload_file(path_or_fileobj=b"---\ntags: [two]\n---\n", path_in_repo="README.md",
                    repo_id=repo_id)
    tags = api.model_info(repo_id).tags
    assert "two" in tags and "one" not in tags


# --- dataset_info / space_info ---------------------------------------------------------------


def test_dataset_info(api, repo_factory, user):
    repo_id = repo_factory(repo_type="dataset")
    api.create_commit(repo_id, repo_type="dataset", operations=[
        CommitOperationAdd("README.md", DATASET_CARD.encode()),
        CommitOperationAdd("data/train.csv", b"a,b\n1,2\n"),
        CommitOperationAdd("data/train.parquet", b"PAR1" + b"\x00" * 100),
    ], commit_message="data")
    info = api.dataset_info(repo_id, files_metadata=True)
    assert info.id == repo_id
    assert info.author == user.name
    assert info.private is False
    assert len(info.sha) == 40
    by_name = {s.rfilename: s for s in info.siblings}
    assert set(by_name) == {".gitattributes", "README.md", "data/train.csv",
                            "data/train.parquet"}
    assert by_name["data/train.csv"].size == 8
    assert by_name["data/train.csv"].lfs is None
    assert by_name["data/train.parquet"].lfs.size == 104
    assert info.card_data.license == "apache-2.0"
    assert info.card_data.pretty_name == "Tiny"
    assert {"language:en", "task_categories:text-generation", "size_categories:n<1K",
            "license:apache-2.0"} <= set(info.tags)
    _near_now(info.created_at)
    _near_now(info.last_modified)
    assert info.downloads == 0


def test_dataset_info_is_not_model_info(api, repo_factory):
    repo_id = repo_factory(repo_type="dataset")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(repo_id)
    with pytest.raises(RepositoryNotFoundError):
        api.space_info(repo_id)


def test_space_info(api, user):
    repo_id = f"{user.name}/space-{uuid.uuid4().hex[:8]}"
    api.create_repo(repo_id, repo_type="space", space_sdk="gradio")
    # The SDK the client sent is in the new Space's card, from its one first commit.
    fresh = api.space_info(repo_id)
    assert fresh.sdk == "gradio" and fresh.card_data.sdk == "gradio"
    assert {s.rfilename for s in fresh.siblings} == {".gitattributes", "README.md"}
    assert len(api.list_repo_commits(repo_id, repo_type="space")) == 1
    assert [s.id for s in api.list_spaces(author=user.name, filter="gradio")
            if s.id == repo_id] == [repo_id]
    api.upload_file(path_or_fileobj=b"---\nsdk: gradio\ntitle: Demo\ntags: [demo]\n---\n",
                    path_in_repo="README.md", repo_id=repo_id, repo_type="space")
    api.upload_file(path_or_fileobj=b"print('hi')\n", path_in_repo="app.py", repo_id=repo_id,
                    repo_type="space")
    info = api.space_info(repo_id, files_metadata=True)
    assert info.id == repo_id
    assert info.author == user.name
    assert info.sdk == "gradio"
    assert info.private is False
    assert "demo" in info.tags
    assert info.card_data.title == "Demo"
    assert {s.rfilename: s.size for s in info.siblings}["app.py"] == 12
    assert len(info.sha) == 40
    _near_now(info.last_modified)


def test_repo_info_dispatches_on_type(api, repo_factory):
    repo_id = repo_factory(repo_type="dataset")
    info = api.repo_info(repo_id, repo_type="dataset")
    assert type(info).__name__ == "DatasetInfo"
    assert info.id == repo_id


# --- listings --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def author(user_factory, server):
    """A fresh user whose repos no other test touches, and three models of theirs."""
    u = user_factory("lister")
    a = HfApi(endpoint=server.endpoint, token=u.token)
    names = {}
    for key, card in (
        ("first", "---\ntags: [shared, only-first]\npipeline_tag: fill-mask\n---\n"),
        ("second", "---\ntags: [shared]\nlibrary_name: diffusers\nlicense: mit\n---\n"),
        ("third", None),
    ):
        repo_id = f"{u.name}/{key}-{uuid.uuid4().hex[:6]}"
        a.create_repo(repo_id)
        if card:
            a.upload_file(path_or_fileobj=card.encode(), path_in_repo="README.md",
                          repo_id=repo_id)
        names[key] = repo_id
        time.sleep(0.01)
    a.create_repo(f"{u.name}/secret-{uuid.uuid4().hex[:6]}", private=True)
    a.create_repo(f"{u.name}/data-{uuid.uuid4().hex[:6]}", repo_type="dataset")
    return u, a, names


def test_list_models_by_author(api, author):
    u, a, names = author
    listed = [m.id for m in api.list_models(author=u.name)]
    # Public models only (the private one is not alice's), newest first by default.
    assert sorted(listed) == sorted(names.values())
    # The owner also sees the private one.
    mine = [m.id for m in a.list_models(author=u.name)]
    assert len(mine) == 4
    assert any(r.split("/")[1].startswith("secret-") for r in mine)
    # Datasets are listed separately.
    datasets = [d.id for d in api.list_datasets(author=u.name)
                if not d.id.split("/")[1].startswith("ds-")]  # test_list_datasets adds those
    assert len(datasets) == 1 and datasets[0].split("/")[1].startswith("data-")


def test_list_models_search(api, author):
    u, _, names = author
    tail = names["second"].split("/")[1]
    assert [m.id for m in api.list_models(search=tail)] == [names["second"]]
    assert [m.id for m in api.list_models(search=tail.upper())] == [names["second"]]
    # Search matches the namespace too.
    assert len(list(api.list_models(search=u.name))) == 3
    assert list(api.list_models(search=f"zz-{uuid.uuid4().hex}")) == []


def test_list_models_filter_by_tag(api, author):
    u, _, names = author
    shared = sorted(m.id for m in api.list_models(author=u.name, filter="shared"))
    assert shared == sorted([names["first"], names["second"]])
    only = [m.id for m in api.list_models(author=u.name, filter=["shared", "only-first"])]
    assert only == [names["first"]]
    assert [m.id for m in api.list_models(author=u.name, filter="license:mit")] == [
        names["second"]]
    assert [m.id for m in api.list_models(author=u.name, pipeline_tag="fill-mask")] == [
        names["first"]]
    assert [m.id for m in api.list_models(author=u.name, filter="diffusers")] == [
        names["second"]]
    assert list(api.list_models(author=u.name, filter="no-such-tag")) == []


def test_list_models_items_carry_index_fields(api, author):
    u, _, names = author
    items = {m.id: m for m in api.list_models(author=u.name)}
    first = items[names["first"]]
    assert first.pipeline_tag == "fill-mask"
    assert "shared" in first.tags
    assert first.private is False
    _near_now(first.created_at)
    _near_now(first.last_modified)
    assert first.downloads == 0
    assert items[names["second"]].library_name == "diffusers"
    # Without full/cardData, no sha and no card.
    assert first.sha is None
    assert first.card_data is None


def test_list_models_full_and_card_data(api, author):
    u, _, names = author
    full = {m.id: m for m in api.list_models(author=u.name, full=True)}
    info = api.model_info(names["first"])
    assert full[names["first"]].sha == info.sha
    assert full[names["first"]].card_data.tags == ["shared", "only-first"]
    cards = {m.id: m for m in api.list_models(author=u.name, cardData=True)}
    assert cards[names["second"]].card_data.license == "mit"
    assert cards[names["second"]].card_data.library_name == "diffusers"


def test_list_models_sort_and_direction(api, author, server):
    u, _, names = author
    created = [m.id for m in api.list_models(author=u.name, sort="created_at")]
    assert created == [names["third"], names["second"], names["first"]]
    # lastModified: the first two got a README commit after creation; the third did not.
    modified = [m.id for m in api.list_models(author=u.name, sort="last_modified")]
    assert set(modified) == set(names.values())
    # direction=1 reverses (the client has no argument for it: plain HTTP).
    r = httpx.get(f"{server.endpoint}/api/models",
                  params={"author": u.name, "sort": "createdAt", "direction": "1"})
    assert [m["id"] for m in r.json()] == [names["first"], names["second"], names["third"]]
    r = httpx.get(f"{server.endpoint}/api/models",
                  params={"author": u.name, "sort": "createdAt", "direction": "-1"})
    assert [m["id"] for m in r.json()] == created


def test_list_models_sort_by_downloads(api, author, cache_dir):
    u, a, names = author
    a.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=names["second"])
    hf_hub_download(names["second"], "config.json", cache_dir=cache_dir, token=a.token)
    # Counts reach the database, which listings sort by, with the next flush (about every
    # second: HVER_DOWNLOAD_FLUSH_INTERVAL); tests/test_caches.py tests the counting.
    deadline = time.monotonic() + 10
    while not (ranked := list(api.list_models(author=u.name, sort="downloads")))[0].downloads:
        assert time.monotonic() < deadline, "the download count was not written"
        time.sleep(0.1)
    assert ranked[0].id == names["second"]
    assert ranked[0].downloads >= 1


def test_list_models_invalid_sort_is_400(server):
    r = httpx.get(f"{server.endpoint}/api/models", params={"sort": "bogus"})
    assert r.status_code == 400


def test_list_models_limit(api, author):
    u, _, names = author
    two = list(api.list_models(author=u.name, limit=2))
    assert len(two) == 2
    assert {m.id for m in two} <= set(names.values())


def test_list_datasets(api, author):
    u, a, _ = author
    d1 = f"{u.name}/ds-one"
    d2 = f"{u.name}/ds-two"
    a.create_repo(d1, repo_type="dataset")
    a.create_repo(d2, repo_type="dataset")
    a.upload_file(path_or_fileobj=DATASET_CARD.encode(), path_in_repo="README.md", repo_id=d1,
                  repo_type="dataset")
    assert sorted(d.id for d in api.list_datasets(author=u.name)
                  if d.id.split("/")[1].startswith("ds-")) == [d1, d2]
    assert [d.id for d in api.list_datasets(author=u.name, search="two")] == [d2]
    assert [d.id for d in api.list_datasets(author=u.name,
                                            filter="task_categories:text-generation")] == [d1]
    assert [d.id for d in api.list_datasets(author=u.name, language="en")] == [d1]
    assert [d.id for d in api.list_datasets(author=u.name, task_categories="text-generation")
            ] == [d1]
    full = {d.id: d for d in api.list_datasets(author=u.name, full=True)}
    assert full[d1].card_data.license == "apache-2.0"
    assert full[d1].sha == api.dataset_info(d1).sha
    assert len(list(api.list_datasets(author=u.name, limit=1))) == 1


def test_list_spaces(api, author):
    u, a, _ = author
    a.create_repo(f"{u.name}/demo", repo_type="space", space_sdk="static")
    assert [s.id for s in api.list_spaces(author=u.name)] == [f"{u.name}/demo"]


# --- pagination ------------------------------------------------------------------------------


def test_link_header_pagination(api, author, server):
    u, a, names = author
    params = {"author": u.name, "limit": "2", "sort": "createdAt", "full": "true"}
    r = httpx.get(f"{server.endpoint}/api/models", params=params)
    assert r.status_code == 200
    page1 = [m["id"] for m in r.json()]
    assert page1 == [names["third"], names["second"]]
    link = r.headers["Link"]
    assert link.endswith('>; rel="next"')
    url = r.links["next"]["url"]
    assert url.startswith(f"{server.endpoint}/api/models?")  # absolute
    q = parse_qs(urlsplit(url).query)
    for k, v in params.items():
        assert q[k] == [v], k  # every original parameter repeated
    # The next page is fetched verbatim, headers only.
    r2 = httpx.get(url)
    assert [m["id"] for m in r2.json()] == [names["first"]]
    assert all("sha" in m for m in r2.json())
    assert "Link" not in r2.headers


def test_link_header_repeats_list_params(api, author, server):
    u, _, names = author
    r = httpx.get(f"{server.endpoint}/api/models",
                  params=[("author", u.name), ("filter", "shared"), ("limit", "1"),
                          ("expand", "downloads"), ("expand", "tags")])
    assert len(r.json()) == 1
    assert set(r.json()[0]) == {"_id", "id", "downloads", "tags"}
    q = parse_qs(urlsplit(r.links["next"]["url"]).query)
    assert q["filter"] == ["shared"]
    assert q["expand"] == ["downloads", "tags"]
    r2 = httpx.get(r.links["next"]["url"])
    ids = [r.json()[0]["id"], r2.json()[0]["id"]]
    assert sorted(ids) == sorted([names["first"], names["second"]])
    assert "Link" not in r2.headers


def test_client_paginates_through_all_pages(api, author, server):
    """The client, with a small page size forced by the server's Link, sees every item once."""
    u, _, names = author
    seen = []
    url = f"{server.endpoint}/api/models?author={u.name}&limit=1"
    while url:
        r = httpx.get(url)
        seen += [m["id"] for m in r.json()]
        url = r.links.get("next", {}).get("url")
    assert sorted(seen) == sorted(names.values())


def test_model_info_at_revision_reads_that_revisions_card(api, repo_factory):
    repo_id = repo_factory()
    api.upload_file(path_or_fileobj=b"---\nlicense: mit\ntags: [on-main]\n---\n",
                    path_in_repo="README.md", repo_id=repo_id)
    api.create_branch(repo_id, branch="dev")
    api.upload_file(path_or_fileobj=b"---\nlicense: apache-2.0\ntags: [on-dev]\n---\n",
                    path_in_repo="README.md", repo_id=repo_id, revision="dev")
    main = api.model_info(repo_id)
    dev = api.model_info(repo_id, revision="dev")
    assert main.card_data.license == "mit"
    assert "on-main" in main.tags
    assert dev.card_data.license == "apache-2.0"
    assert "on-dev" in dev.tags and "on-main" not in dev.tags
