"""The dataset viewer: configs and splits of a dataset repo, and the first rows of each,
read from the data files on the real server over HTTP."""

from __future__ import annotations

import html
import io
import json
import re
import time
import tracemalloc
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq
import pytest
from huggingface_hub import CommitOperationAdd

from hver.core.preview import (
    LAYOUT_CACHE_ENTRIES,
    MAX_FILES,
    PreviewError,
    compile_glob,
    configs_from_files,
    dataset_layout,
    read_parquet,
    read_rows,
)
from hver.storage.git import FILE_MODE, GitRepo, GitStore

Server = Any
User = Any

HTML = {"Accept": "text/html"}
SCRIPT = "<script>alert('pwned')</script>"


def _get(server: Server, path: str, token: str | None = None) -> httpx.Response:
    headers = dict(HTML)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.get(f"{server.endpoint}{path}", headers=headers, timeout=30)


def _upload(api, repo_id: str, files: dict[str, bytes],  # type: ignore[no-untyped-def]
            tmp: Path | None = None) -> None:
    """One commit of `files`; given a folder `tmp`, they are uploaded from files there, the
    way the client sends large files as Xet chunks (a buffer goes by plain LFS)."""
    ops = []
    for p, d in files.items():
        source: Path | io.BytesIO = io.BytesIO(d)
        if tmp is not None:
            source = tmp / uuid.uuid4().hex
            source.write_bytes(d)
        ops.append(CommitOperationAdd(path_in_repo=p, path_or_fileobj=source))
    api.create_commit(repo_id, ops, commit_message="add data", repo_type="dataset")


def _dataset(repo_factory: Callable[..., str], api,  # type: ignore[no-untyped-def]
             files: dict[str, bytes], private: bool = False, tmp: Path | None = None) -> str:
    repo_id = repo_factory("dataset", private=private)
    _upload(api, repo_id, files, tmp)
    return repo_id


def _table(page: str, caption_id: str = "viewer-caption") -> tuple[list[str], list[list[str]]]:
    """The header cells and body rows of the table captioned `caption_id`, unescaped."""
    m = re.search(rf'<caption id="{caption_id}">.*?</table>', page, re.S)
    assert m, page
    block = m.group(0)
    heads = [html.unescape(re.sub(r"<[^>]+>", "", h)).strip()
             for h in re.findall(r'<th scope="col">(.*?)</th>', block, re.S)]
    body = block.split("<tbody>", 1)[1]
    rows = [[html.unescape(c) for c in re.findall(r"<td>(.*?)</td>", tr, re.S)]
            for tr in re.findall(r"<tr>(.*?)</tr>", body, re.S)]
    return heads, rows


def _parquet(table: pa.Table, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    pq.write_table(table, buf, **kwargs)
    return buf.getvalue()


def _assert_xet(server: Server, user: User, repo_id: str, path: str) -> None:
    head = httpx.head(f"{server.endpoint}/datasets/{repo_id}/resolve/main/{path}",
                      headers={"Authorization": f"Bearer {user.token}"})
    assert head.status_code == 200 and head.headers.get("X-Xet-Hash"), head.headers


@pytest.fixture(autouse=True)
def _clean(no_server_errors: None) -> None:
    pass


def test_push_to_hub_dataset_shows_rows_columns_and_card_preview(  # type: ignore[no-untyped-def]
        server: Server, user: User) -> None:
    from datasets import Dataset

    repo_id = f"{user.name}/viewer-{uuid.uuid4().hex[:8]}"
    n = 150
    Dataset.from_dict({
        "id": list(range(n)),
        "text": [f"sentence number {i}" for i in range(n)],
        "score": [i / 4 for i in range(n)],
        "tags": [["a", str(i)] for i in range(n)],
    }).push_to_hub(repo_id, token=user.token)
    path = "data/train-00000-of-00001.parquet"
    # The client stored the parquet as Xet chunks: the rows below come through that path.
    _assert_xet(server, user, repo_id, path)

    r = _get(server, f"/datasets/{repo_id}/viewer")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    heads, rows = _table(page)
    assert heads == ["id int64", "text string", "score double",
                     "tags list<element: string>"]
    assert len(rows) == 100  # the first 100 rows, of 150
    assert rows[0] == ["0", "sentence number 0", "0.0", '["a","0"]']
    assert rows[99] == ["99", "sentence number 99", "24.75", '["a","99"]']
    assert "Split train of config default: the first 100 rows</caption>" in page
    assert "150 rows in this file" in page
    assert f'href="/datasets/{repo_id}/blob/main/{path}">{path}</a>' in page
    assert f'href="/datasets/{repo_id}/viewer/default/train" aria-current="page">train</a>' \
        in page
    assert f'<a href="/datasets/{repo_id}/viewer" aria-current="page">Dataset viewer</a>' in page
    # The Hub's URL for a config and split shows the same.
    same = _get(server, f"/datasets/{repo_id}/viewer/default/train")
    assert same.status_code == 200 and _table(same.text) == (heads, rows)

    card = _get(server, f"/datasets/{repo_id}").text
    card_heads, card_rows = _table(card, "preview-caption")
    assert card_heads == heads and card_rows == rows[:10]
    assert f'<a href="/datasets/{repo_id}/viewer/default/train">Open the dataset viewer</a>' \
        in card
    assert f'<a href="/datasets/{repo_id}/viewer">Dataset viewer</a>' in card


def test_model_pages_have_no_viewer(server: Server, repo_factory: Callable[..., str]) -> None:
    model = repo_factory()
    page = _get(server, f"/{model}").text
    assert "Dataset viewer" not in page and "Dataset preview" not in page
    assert _get(server, f"/{model}/viewer").status_code == 404


def test_csv_and_jsonl_splits(server: Server, api,  # type: ignore[no-untyped-def]
                              repo_factory: Callable[..., str]) -> None:
    repo_id = _dataset(repo_factory, api, {
        "train.csv": b"id,name,ok\n1,alpha,true\n2,beta,false\n3,gamma,true\n",
        "test.jsonl": b'{"id": 10, "meta": {"lang": "fr", "n": [1, 2]}}\n'
                      b'{"id": 11, "meta": null}\n',
    })
    page = _get(server, f"/datasets/{repo_id}/viewer").text
    assert _table(page) == (["id int64", "name string", "ok bool"],
                            [["1", "alpha", "true"], ["2", "beta", "false"],
                             ["3", "gamma", "true"]])
    assert "train.csv" in page
    test_url = f"/datasets/{repo_id}/viewer/default/test"
    assert f'<a href="{test_url}">test</a>' in page

    page = _get(server, test_url).text
    assert _table(page) == (["id int64", "meta struct<lang: string, n: list<item: int64>>"],
                            [["10", '{"lang":"fr","n":[1,2]}'], ["11", "null"]])
    assert f'href="{test_url}" aria-current="page">test</a>' in page
    assert "test.jsonl" in page


def test_readme_configs(server: Server, api,  # type: ignore[no-untyped-def]
                        repo_factory: Callable[..., str]) -> None:
    readme = b"""---
configs:
- config_name: english
  data_files: en/*.csv
- config_name: french
  default: true
  data_files:
  - split: train
    path: fr/train.jsonl
  - split: test
    path: [fr/test-*.jsonl]
---
# Two languages
"""
    repo_id = _dataset(repo_factory, api, {
        "README.md": readme,
        "en/part1.csv": b"word\nhello\n",
        "fr/train.jsonl": b'{"mot": "bonjour"}\n',
        "fr/test-0.jsonl": b'{"mot": "salut"}\n',
    })
    base = f"/datasets/{repo_id}/viewer"
    page = _get(server, base).text  # the default config first
    assert _table(page) == (["mot string"], [["bonjour"]])
    assert f'href="{base}/english/train">english</a>' in page
    assert f'href="{base}/french/train" aria-current="true">french</a>' in page
    assert f'href="{base}/french/test">test</a>' in page

    page = _get(server, f"{base}/english/train").text
    assert _table(page) == (["word string"], [["hello"]])
    assert "Split train of config english" in page and "en/part1.csv" in page
    assert f'href="{base}/english/train" aria-current="page">train</a>' in page
    assert _table(_get(server, f"{base}/french/test").text)[1] == [["salut"]]

    for missing in ("english/test", "german/train"):
        r = _get(server, f"{base}/{missing}")
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html")


def test_split_in_folder_names(server: Server, api,  # type: ignore[no-untyped-def]
                               repo_factory: Callable[..., str]) -> None:
    rows = pa.table({"x": [1, 2]})
    repo_id = _dataset(repo_factory, api, {
        "data/train/shard-a.parquet": _parquet(rows),
        "data/dev/shard-a.parquet": _parquet(pa.table({"x": [7]})),
        "LICENSE": b"not data",
    })
    page = _get(server, f"/datasets/{repo_id}/viewer").text
    assert _table(page)[1] == [["1"], ["2"]]
    assert f'href="/datasets/{repo_id}/viewer/default/validation">validation</a>' in page
    page = _get(server, f"/datasets/{repo_id}/viewer/default/validation").text
    assert _table(page)[1] == [["7"]] and "data/dev/shard-a.parquet" in page


@pytest.mark.parametrize(("paths", "card", "expected"), [
    (["README.md", "data/train-00000-of-00002.parquet", "data/train-00001-of-00002.parquet",
      "data/test-00000-of-00001.parquet"], {},
     {"default": {"train": ["data/train-00000-of-00002.parquet",
                            "data/train-00001-of-00002.parquet"],
                  "test": ["data/test-00000-of-00001.parquet"]}}),
    (["test.jsonl", "valid.jsonl", "train.jsonl", ".hidden/train.jsonl", "__x__/dev.jsonl"], {},
     {"default": {"train": ["train.jsonl"], "validation": ["valid.jsonl"],
                  "test": ["test.jsonl"]}}),
    (["data.csv", "more.csv", "notes.txt", "photo.png"], {},
     {"default": {"train": ["data.csv", "more.csv"]}}),
    (["a/train-00000-of-00001.parquet", "b/train-00000-of-00001.parquet",
      "b/validation-00000-of-00001.parquet"],
     {"configs": [{"config_name": "a", "data_files": [{"split": "train", "path": "a/train-*"}]},
                  {"config_name": "b", "data_files": [
                      {"split": "train", "path": "b/train-*"},
                      {"split": "validation", "path": "b/validation-*"}]}]},
     {"a": {"train": ["a/train-00000-of-00001.parquet"]},
      "b": {"train": ["b/train-00000-of-00001.parquet"],
            "validation": ["b/validation-00000-of-00001.parquet"]}}),
    (["sub/train.csv", "sub/test.csv", "top.csv"],
     {"configs": [{"config_name": "sub", "data_dir": "sub"}]},
     {"sub": {"train": ["sub/train.csv"], "test": ["sub/test.csv"]}}),
])
def test_layouts(paths: list[str], card: dict[str, Any],
                 expected: dict[str, dict[str, list[str]]]) -> None:
    configs = configs_from_files(paths, card)
    assert {c.name: {s.name: list(s.files) for s in c.splits} for c in configs} == expected


def test_private_viewer_is_the_missing_page(server: Server, api, user: User,  # type: ignore[no-untyped-def]
                                            other: User,
                                            repo_factory: Callable[..., str]) -> None:
    private = _dataset(repo_factory, api, {"train.csv": b"secret\nhidden-value\n"}, private=True)
    missing = f"{user.name}/does-not-exist-{uuid.uuid4().hex[:6]}"
    for suffix in ("/viewer", "/viewer/default/train"):
        hidden = _get(server, f"/datasets/{private}{suffix}", token=other.token)
        absent = _get(server, f"/datasets/{missing}{suffix}", token=other.token)
        anon = _get(server, f"/datasets/{private}{suffix}")
        anon_absent = _get(server, f"/datasets/{missing}{suffix}")
        assert {r.status_code for r in (hidden, absent, anon, anon_absent)} == {404}
        assert hidden.text == absent.text
        assert anon.text == anon_absent.text.replace(missing, private)
        assert "hidden-value" not in hidden.text + anon.text
    owner = _get(server, f"/datasets/{private}/viewer", token=user.token)
    assert owner.status_code == 200 and _table(owner.text)[1] == [["hidden-value"]]


def test_gated_viewer_needs_file_access(server: Server, api, user: User,  # type: ignore[no-untyped-def]
                                       other: User, repo_factory: Callable[..., str]) -> None:
    repo_id = _dataset(repo_factory, api, {"train.csv": b"v\ngated-value\n"})
    api.update_repo_settings(repo_id, repo_type="dataset", gated="manual")
    assert _get(server, f"/datasets/{repo_id}/viewer").status_code == 401
    denied = _get(server, f"/datasets/{repo_id}/viewer", token=other.token)
    assert denied.status_code == 403 and "gated-value" not in denied.text
    card = _get(server, f"/datasets/{repo_id}", token=other.token)
    assert card.status_code == 200 and "gated-value" not in card.text
    assert "Dataset preview" not in card.text
    owner = _get(server, f"/datasets/{repo_id}/viewer", token=user.token)
    assert _table(owner.text)[1] == [["gated-value"]]


def test_cells_are_escaped_and_truncated(server: Server, api,  # type: ignore[no-untyped-def]
                                         repo_factory: Callable[..., str]) -> None:
    long = "x" * 500
    table = pa.table({"<b>col</b>": [SCRIPT, long], "raw": [b"\x00" * 1234, None]})
    repo_id = _dataset(repo_factory, api, {"data/train-00000-of-00001.parquet": _parquet(table)})
    for path in ("/viewer", ""):
        page = _get(server, f"/datasets/{repo_id}{path}").text
        assert SCRIPT not in page and "<b>col</b>" not in page
        assert "&lt;script&gt;alert(&#39;pwned&#39;)&lt;/script&gt;" in page
        assert "&lt;b&gt;col&lt;/b&gt;" in page
    heads, rows = _table(_get(server, f"/datasets/{repo_id}/viewer").text)
    assert heads == ["<b>col</b> string", "raw binary"]
    assert rows[0] == [SCRIPT, "<binary 1.2 kB>"]
    assert rows[1] == ["x" * 199 + "…", "null"]


def test_bad_files_give_a_message(server: Server, api,  # type: ignore[no-untyped-def]
                                  repo_factory: Callable[..., str]) -> None:
    repo_id = _dataset(repo_factory, api, {
        "data/train-00000-of-00001.parquet": b"this is not a parquet file " * 100,
        "data/test-00000-of-00001.parquet": _parquet(pa.table({"ok": [1]})),
    })
    r = _get(server, f"/datasets/{repo_id}/viewer")
    assert r.status_code == 200
    assert '<p class="alert">data/train-00000-of-00001.parquet could not be read as .parquet' \
        in r.text
    assert "<table" not in r.text
    # The other split still previews, and the card page shows the same message.
    assert _table(_get(server, f"/datasets/{repo_id}/viewer/default/test").text)[1] == [["1"]]
    card = _get(server, f"/datasets/{repo_id}")
    assert card.status_code == 200 and "could not be read as .parquet" in card.text

    bad_configs = _dataset(repo_factory, api, {
        "README.md": b"---\nconfigs:\n- data_files: train.csv\n---\n", "train.csv": b"a\n1\n"})
    r = _get(server, f"/datasets/{bad_configs}/viewer")
    assert r.status_code == 200
    assert "README.md `configs`: each config needs a `config_name`." in r.text
    bad_glob = _dataset(repo_factory, api, {
        "README.md": b"---\nconfigs:\n- config_name: x\n  data_files: '[z-a].csv'\n---\n"})
    for path in (f"/datasets/{bad_glob}/viewer", f"/datasets/{bad_glob}"):
        r = _get(server, path)
        assert r.status_code == 200
    assert "The data_files pattern &#39;[z-a].csv&#39; is not a valid glob." in \
        _get(server, f"/datasets/{bad_glob}/viewer").text

    bad_jsonl = _dataset(repo_factory, api, {"train.jsonl": b'{"a": 1}\n{"a": oops}\n'})
    r = _get(server, f"/datasets/{bad_jsonl}/viewer")
    assert r.status_code == 200 and "train.jsonl: Line 2 is not valid JSON" in r.text

    empty = repo_factory("dataset")
    r = _get(server, f"/datasets/{empty}/viewer")
    assert r.status_code == 200 and "no data files to preview" in r.text
    assert "Dataset preview" not in _get(server, f"/datasets/{empty}").text


def test_jsonl_and_csv_with_a_garbage_tail_preview_their_head(  # type: ignore[no-untyped-def]
        server: Server, api, user: User, repo_factory: Callable[..., str],
        tmp_path: Path) -> None:
    garbage = (b"\xff\xfe{not json, \"at all\n" + bytes(range(256)) * 64) * 400  # ~6.5 MB
    jsonl = b"".join(json.dumps({"i": i, "s": f"line {i}"}).encode() + b"\n"
                     for i in range(120)) + garbage
    csv = b"i,s\n" + b"".join(b"%d,cell %d\n" % (i, i) for i in range(120)) + garbage
    # Readers of the whole file fail on them.
    with pytest.raises(pa.ArrowInvalid):
        pa_json.read_json(io.BytesIO(jsonl))
    with pytest.raises(pa.ArrowInvalid):
        pa_csv.read_csv(io.BytesIO(csv))
    repo_id = repo_factory("dataset")
    # Kept as Xet chunks, so the head is read by range from a large stored file.
    _upload(api, repo_id, {".gitattributes": b"*.jsonl filter=lfs diff=lfs merge=lfs -text\n"
                                             b"*.csv filter=lfs diff=lfs merge=lfs -text\n"})
    _upload(api, repo_id, {"train.jsonl": jsonl, "test.csv": csv}, tmp_path)
    _assert_xet(server, user, repo_id, "train.jsonl")
    _assert_xet(server, user, repo_id, "test.csv")

    page = _get(server, f"/datasets/{repo_id}/viewer").text
    assert 'class="alert"' not in page
    heads, rows = _table(page)
    assert heads == ["i int64", "s string"]
    assert len(rows) == 100 and rows[0] == ["0", "line 0"] and rows[99] == ["99", "line 99"]

    page = _get(server, f"/datasets/{repo_id}/viewer/default/test").text
    assert 'class="alert"' not in page
    heads, rows = _table(page)
    assert heads == ["i int64", "s string"]
    assert len(rows) == 100 and rows[0] == ["0", "cell 0"] and rows[99] == ["99", "cell 99"]


def test_parquet_with_a_corrupt_last_row_group_previews_its_head(  # type: ignore[no-untyped-def]
        server: Server, api, user: User, repo_factory: Callable[..., str],
        tmp_path: Path) -> None:
    n, group = 400, 20
    table = pa.table({"id": list(range(n)), "text": [f"row {i:04d}" for i in range(n)]})
    data = bytearray(_parquet(table, row_group_size=group, compression="snappy"))
    meta = pq.ParquetFile(io.BytesIO(bytes(data))).metadata
    assert meta.num_row_groups == n // group
    last = meta.row_group(meta.num_row_groups - 1)
    for c in range(last.num_columns):  # overwrite the page headers; the footer stays intact
        chunk = last.column(c)
        start = chunk.dictionary_page_offset or chunk.data_page_offset
        data[start:start + 24] = b"\xff" * 24
    data = bytes(data)
    assert pq.ParquetFile(io.BytesIO(data)).metadata.num_rows == n
    with pytest.raises((OSError, pa.ArrowException)):  # reading the whole file fails
        pq.read_table(io.BytesIO(data))
    path = "data/train-00000-of-00001.parquet"
    repo_id = _dataset(repo_factory, api, {path: data}, tmp=tmp_path)
    _assert_xet(server, user, repo_id, path)

    page = _get(server, f"/datasets/{repo_id}/viewer").text
    assert 'class="alert"' not in page
    heads, rows = _table(page)
    assert heads == ["id int64", "text string"]
    assert len(rows) == 100 and rows[0] == ["0", "row 0000"] and rows[99] == ["99", "row 0099"]
    assert f"{n} rows in this file" in page


def test_media_columns_show_a_placeholder() -> None:
    table = pa.table({"image": pa.array([{"bytes": b"0" * 2000, "path": "a.png"},
                                         {"bytes": None, "path": "b.png"}]),
                      "label": [1, 2]})
    features = {"image": {"_type": "Image"}, "label": {"dtype": "int64", "_type": "Value"}}
    table = table.replace_schema_metadata(
        {b"huggingface": json.dumps({"info": {"features": features}}).encode()})
    rows = read_rows(io.BytesIO(_parquet(table)), "data/train.parquet")
    assert rows.rows == [["<image 2.0 kB>", "1"], ["<image b.png>", "2"]]
    assert rows.num_rows == 2


# --- data_files globs: fsspec's reading, in time linear in the pattern and the path -------


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    ("data/*.csv", "data/a.csv", True),
    ("data/*.csv", "data/sub/a.csv", False),  # `*` stays within a folder
    ("data/**/*.csv", "data/a.csv", True),  # `**` spans no folder...
    ("data/**/*.csv", "data/x/y/a.csv", True),  # ...or several
    ("data/**", "data/x/y/a.csv", True),
    ("data/**", "data", False),
    ("**", "a/b.csv", True),
    ("**/train/**", "x/train/y/a.csv", True),
    ("**/train/**", "x/train", False),
    ("d?ta/a.csv", "data/a.csv", True),
    ("d?ta/a.csv", "dta/a.csv", False),
    ("a/?/b", "a///b", False),  # `?` is no `/`
    ("[0-9][!a-c]x.csv", "5dx.csv", True),
    ("[0-9][!a-c]x.csv", "5bx.csv", False),
    ("[0-9][!a-c]x.csv", "5/x.csv", False),  # a set has no `/`
    ("[]x].csv", "].csv", True),  # a `]` first is in the set
    ("[!]x].csv", "y.csv", True),
    ("[!]x].csv", "].csv", False),
    ("[^x].csv", "^.csv", True),  # `^` is itself
    ("[^x].csv", "y.csv", False),
    ("[abc", "[abc", True),  # an unclosed `[` is itself
    ("a**b.csv", "axyb.csv", True),  # `**` within a name is a `*`
    ("a**b.csv", "ax/yb.csv", False),
    ("*-[0-9][0-9]-of-*.parquet", "train-01-of-02.parquet", True),
    ("*a*a*a*b*", "aaa_aab_", True),
    ("*a*a*a*b*", "aabaa", False),
])
def test_glob_matches_as_fsspec_reads_it(pattern: str, path: str, matches: bool) -> None:
    assert compile_glob(pattern).match(path) is matches


def test_a_wild_pattern_against_a_near_miss_is_quick() -> None:
    # As a regular expression, each `*` retries every split of the name before the last
    # `b` fails: 2**n tries, about 20 s for these 35 characters.
    near_miss = "a" * 35 + ".csv"
    started = time.perf_counter()
    assert not compile_glob("*a*a*a*a*a*a*a*a*a*a*a*b").match(near_miss)
    assert not compile_glob("**/" + "*a" * 40 + "*b/**").match(
        "/".join([near_miss] * 30) + "/x")
    configs = configs_from_files([near_miss], {"configs": [
        {"config_name": "wild", "data_files": "*a*a*a*a*a*a*a*a*a*a*a*b"}]})
    assert [(c.name, c.splits) for c in configs] == [("wild", ())]
    assert time.perf_counter() - started < 2


def test_a_wild_readme_pattern_does_not_hold_the_pages(  # type: ignore[no-untyped-def]
        server: Server, api, repo_factory: Callable[..., str]) -> None:
    name = "a" * 35 + ".csv"
    readme = b"""---
configs:
- config_name: wild
  default: true
  data_files: '*a*a*a*a*a*a*a*a*a*a*a*.csv'
- config_name: near-miss
  data_files: '*a*a*a*a*a*a*a*a*a*a*a*b'
---
"""
    repo_id = _dataset(repo_factory, api, {"README.md": readme, name: b"x\nmatched\n"})
    started = time.perf_counter()
    page = _get(server, f"/datasets/{repo_id}/viewer").text
    assert _table(page)[1] == [["matched"]]
    assert "<span>near-miss (no data files)</span>" in page
    card = _get(server, f"/datasets/{repo_id}").text
    assert _table(card, "preview-caption")[1] == [["matched"]]
    assert time.perf_counter() - started < 5


def test_bad_globs_are_refused() -> None:
    with pytest.raises(PreviewError, match="is not a valid glob"):
        compile_glob("data/[z-a].csv")
    with pytest.raises(PreviewError, match="is too long"):
        compile_glob("*" * 301)


# --- reading no more than the first rows need ----------------------------------------------


class _Counting(io.RawIOBase):
    """A file over `data` that counts the bytes read from it."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self._data, self.read_bytes = io.BytesIO(data), 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        return self._data.seek(offset, whence)

    def tell(self) -> int:
        return self._data.tell()

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(len(buffer))
        buffer[:len(chunk)] = chunk
        self.read_bytes += len(chunk)
        return len(chunk)


def test_parquet_reads_the_first_pages_of_a_large_row_group() -> None:
    n = 1000
    blobs = [bytes([i % 251]) * 20_000 for i in range(n)]  # 20 MB in one row group
    data = _parquet(pa.table({"id": list(range(n)), "blob": blobs}),
                    row_group_size=n, compression="none", use_dictionary=False,
                    write_batch_size=50)  # pages of about 1 MB
    assert pq.ParquetFile(io.BytesIO(data)).metadata.num_row_groups == 1
    assert len(data) > 20_000_000
    fh = _Counting(data)
    rows = read_rows(fh, "data/train.parquet")  # type: ignore[arg-type]
    assert len(rows.rows) == 100 and rows.rows[99][0] == "99" and rows.num_rows == n
    # A whole column chunk would be 20 MB; the pages of 100 rows are about 2 MB.
    assert fh.read_bytes < 5_000_000


def test_parquet_pages_too_large_to_read_give_a_message() -> None:
    data = _parquet(pa.table({"blob": [b"\x01" * 3_000_000]}), compression="none")
    fh = _Counting(data)
    with pytest.raises(PreviewError, match="too large to preview"):
        read_parquet(fh, 100, max_bytes=1_000_000)  # type: ignore[arg-type]
    assert fh.read_bytes <= 1_000_000  # refused before reading the page
    assert read_parquet(io.BytesIO(data), 100, max_bytes=4_000_000).num_rows == 1


def test_a_json_object_of_columns_makes_only_the_rows_shown() -> None:
    n = 500_000
    doc = b'{\n"a": [%s],\n"b": [%s]\n}\n' % (b",".join([b"0"] * n), b",".join([b"1"] * n))
    tracemalloc.start()
    try:
        rows = read_rows(io.BytesIO(doc), "train.json")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rows.num_rows == n and rows.rows == [["0", "1"]] * 100
    # The parsed lists hold 8 MB of references; n row dicts would take over 100 MB.
    assert peak < 40_000_000


def _wide(n: int) -> dict[str, list[int]]:
    return {f"c{i}": [i] for i in range(n)}


@pytest.mark.parametrize(("path", "data"), [
    ("train.parquet", _parquet(pa.table(_wide(150)))),
    ("train.csv", (",".join(_wide(150)) + "\n" + ",".join(map(str, range(150))) + "\n").encode()),
    ("train.jsonl", json.dumps({k: v[0] for k, v in _wide(150).items()}).encode() + b"\n"),
    ("train.json", json.dumps([{k: v[0] for k, v in _wide(150).items()}]).encode()),
    ("train.json", json.dumps(_wide(150), indent=1).encode()),  # an object of columns
])
def test_wide_files_show_the_first_columns(path: str, data: bytes) -> None:
    rows = read_rows(io.BytesIO(data), path)
    assert [c.name for c in rows.columns] == [f"c{i}" for i in range(100)]
    assert rows.rows == [[str(i) for i in range(100)]]
    assert rows.more_columns == 50


def test_wide_split_page_says_how_many_columns_are_not_shown(  # type: ignore[no-untyped-def]
        server: Server, api, repo_factory: Callable[..., str]) -> None:
    table = pa.table({f"col{i}": [i] for i in range(130)})
    repo_id = _dataset(repo_factory, api, {"data/train-00000-of-00001.parquet": _parquet(table)})
    for path, caption in (("/viewer", "viewer-caption"), ("", "preview-caption")):
        page = _get(server, f"/datasets/{repo_id}{path}").text
        heads, rows = _table(page, caption)
        assert heads == [f"col{i} int64" for i in range(100)]
        assert rows == [[str(i) for i in range(100)]]
        assert "30 more columns are not shown." in page


# --- configs and splits: kept per commit, from the first files ------------------------------


def _commit(tmp_path: Path, files: dict[str, bytes]) -> tuple[GitRepo, str]:
    git = GitStore(tmp_path).init(uuid.uuid4().hex)
    blobs = {p: (FILE_MODE, git.add_blob(d)) for p, d in files.items()}
    return git, git.write_commit(git.write_tree(blobs), [], "data", "A <a@example.org>")


def test_layouts_are_kept_per_commit_in_a_bounded_cache(tmp_path: Path) -> None:
    git, commit = _commit(tmp_path, {"train.csv": b"a\n1\n", "test.csv": b"a\n2\n"})
    pk = 1000
    layout = dataset_layout(git, pk, commit)
    assert [(s.name, s.files) for s in layout.configs[0].splits] == \
        [("train", ("train.csv",)), ("test", ("test.csv",))]
    # A later view of the commit walks no tree and matches no pattern: the same layout.
    assert dataset_layout(git, pk, commit) is layout
    other, second = _commit(tmp_path, {"valid.csv": b"a\n3\n"})
    assert dataset_layout(other, pk, second).configs[0].splits[0].name == "validation"
    assert dataset_layout(git, pk, commit) is layout
    # Bounded: a commit not viewed since as many others were is worked out again.
    for i in range(LAYOUT_CACHE_ENTRIES):
        dataset_layout(other, pk + 1 + i, second)
    again = dataset_layout(git, pk, commit)
    assert again is not layout and again == layout


def test_layouts_come_from_the_first_files(tmp_path: Path) -> None:
    files = {f"data/{i:05d}.csv": b"a\n1\n" for i in range(MAX_FILES + 1)}
    git, commit = _commit(tmp_path, files)
    layout = dataset_layout(git, 1, commit)
    assert layout.files_cut
    (split,) = layout.configs[0].splits
    assert len(split.files) == MAX_FILES and split.files[-1] == "data/09999.csv"
    assert layout.note == ("This dataset has more than 10,000 files: its configs and splits "
                           "are worked out from the first 10,000.")
    git, commit = _commit(tmp_path, dict(list(files.items())[:MAX_FILES]))
    layout = dataset_layout(git, 1, commit)
    assert not layout.files_cut and layout.note is None
    assert len(layout.configs[0].splits[0].files) == MAX_FILES
