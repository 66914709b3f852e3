"""The files pages: commit diffs, per-file history, highlighted source, the revision
selector, and what a repo page says about its files (size, parameters, card results)."""

from __future__ import annotations

import html
import io
import json
import re
import struct
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, CommitOperationDelete

Server = Any
User = Any

HTML = {"Accept": "text/html"}


@pytest.fixture(autouse=True)
def _clean(no_server_errors: None) -> None:
    pass


def _get(server: Server, path: str, token: str | None = None) -> httpx.Response:
    headers = dict(HTML)
    if token:
        headers["Authorization"] = f"Bearer {token}"
    url = path if path.startswith("http") else f"{server.endpoint}{path}"
    return httpx.get(url, headers=headers, timeout=30)


def _commit(api, repo_id: str, files: dict[str, bytes], delete: tuple[str, ...] = (),  # type: ignore[no-untyped-def]
            message: str = "update", repo_type: str = "model", revision: str | None = None):
    ops: list[Any] = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=io.BytesIO(d))
                      for p, d in files.items()]
    ops += [CommitOperationDelete(path_in_repo=p) for p in delete]
    return api.create_commit(repo_id, ops, commit_message=message, repo_type=repo_type,
                             revision=revision)


def _without_url(r: httpx.Response, path: str) -> str:
    return r.text.replace(quote(path, safe=""), "URL").replace(html.escape(path), "URL")


def _text(fragment: str) -> str:
    """What a reader sees of an HTML fragment: tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", "", fragment))


def _statuses(page: str) -> dict[str, str]:
    """path -> status, from the commit page's list of changed files."""
    pairs = re.findall(r'<a href="#file-\d+">([^<]+)</a> <span class="status status-(\w+)">',
                       page)
    return {html.unescape(p): s for p, s in pairs}


def _diff_rows(page: str) -> list[tuple[str, str, str, str]]:
    """(kind, old line, new line, shown text) of every diff line on a commit page."""
    rows = re.findall(r'<tr class="(add|del|context)"><td class="ln">(\d*)</td>'
                      r'<td class="ln">(\d*)</td><td class="code">(.*?)</td></tr>', page)
    return [(k, o, n, _text(code)) for k, o, n, code in rows]


def _commit_ids(page: str, repo_path: str) -> list[str]:
    link = rf'<a class="commit-title" href="{re.escape(repo_path)}/commit/([0-9a-f]{{40}})"'
    return re.findall(link, page)


# -- commit pages ---------------------------------------------------------------------------


def test_commit_page_shows_the_diff(server: Server, api, repo_factory: Callable[..., str]) -> None:  # type: ignore[no-untyped-def]
    repo_id = repo_factory()
    first = _commit(api, repo_id, {
        "notes.txt": b"alpha\nbeta\ngamma\n",
        "old.txt": b"to be removed\n",
        "weights.bin": b"\0\1" * 500,
        "latin.txt": b"caf\xe9\n",  # not UTF-8: binary, but stored in git
    }, message="first")
    second = _commit(api, repo_id, {
        "notes.txt": b"alpha\nBETA\ngamma\ndelta\n",
        "new.txt": b"fresh <script>alert(1)</script>\n",
        "weights.bin": b"\0\2" * 1500,
        "latin.txt": b"caf\xe9s\n",
    }, delete=("old.txt",), message="Second <commit>\n\nA longer body.")
    # The URL the client prints opens the page.
    assert second.commit_url == f"{server.endpoint}/{repo_id}/commit/{second.oid}"
    r = _get(server, second.commit_url)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    assert '<h2 id="commit-title">Second &lt;commit&gt;</h2>' in page
    assert "A longer body." in page and "<commit>" not in page
    assert f'href="/{repo_id}/commit/{first.oid}"><code>{first.oid[:7]}</code>' in page
    assert f'href="/{repo_id}/tree/{second.oid}">Browse files' in page
    assert _statuses(page) == {"notes.txt": "modified", "new.txt": "added",
                               "old.txt": "deleted", "weights.bin": "modified",
                               "latin.txt": "modified"}
    rows = _diff_rows(page)
    assert ("del", "2", "", "Removed: -beta") in rows
    assert ("add", "", "2", "Added: +BETA") in rows
    assert ("add", "", "4", "Added: +delta") in rows
    assert ("context", "1", "1", " alpha") in rows
    assert ("del", "1", "", "Removed: -to be removed") in rows
    assert ("add", "", "1", "Added: +fresh <script>alert(1)</script>") in rows
    assert "<script>" not in page
    assert "@@ -1,3 +1,4 @@" in page
    # LFS: the sizes and the new sha256, never the pointer text.
    sha = api.get_paths_info(repo_id, ["weights.bin"])[0].lfs.sha256
    assert "LFS file: 1.0 kB → 3.0 kB" in page and sha in page
    assert "git-lfs.github.com" not in page and "oid sha256:" not in page
    assert "Binary file: 5 B → 6 B" in page
    assert "5 files changed, 3 lines added, 2 lines removed." in " ".join(_text(page).split())


def test_initial_and_first_commits(server: Server, api, repo_factory: Callable[..., str]) -> None:  # type: ignore[no-untyped-def]
    repo_id = repo_factory("dataset")
    info = api.upload_file(path_or_fileobj=b"a,b\n1,2\n", path_in_repo="data/train.csv",
                           repo_id=repo_id, repo_type="dataset")
    assert info.commit_url == f"{server.endpoint}/datasets/{repo_id}/commit/{info.oid}"
    page = _get(server, info.commit_url).text
    assert _statuses(page) == {"data/train.csv": "added"}
    assert ("add", "", "2", "Added: +1,2") in _diff_rows(page)
    initial = api.list_repo_commits(repo_id, repo_type="dataset")[-1].commit_id
    r = _get(server, f"/datasets/{repo_id}/commit/{initial}")
    assert r.status_code == 200
    assert "None: this is the initial commit." in r.text
    assert _statuses(r.text) == {".gitattributes": "added"}
    assert all(kind == "add" for kind, *_ in _diff_rows(r.text))
    assert len(_diff_rows(r.text)) == len(
        httpx.get(f"{server.endpoint}/datasets/{repo_id}/resolve/{initial}/.gitattributes")
        .text.splitlines())
    # The dataset's commit is not a model's.
    assert _get(server, f"/{repo_id}/commit/{info.oid}").status_code == 404


def test_bad_oids_are_404(server: Server, api, repo_factory: Callable[..., str]) -> None:  # type: ignore[no-untyped-def]
    repo_id = repo_factory()
    other_repo = repo_factory()
    here = _commit(api, repo_id, {"a.txt": b"a\n"})
    elsewhere = _commit(api, other_repo, {"b.txt": b"b\n"})
    blob = next(e for e in api.list_repo_tree(repo_id) if e.path == "a.txt").blob_id
    bad = [here.oid[:7], "z" * 40, "0" * 40, here.oid.upper(), blob, elsewhere.oid,
           f"{here.oid}0", "main"]
    for oid in bad:
        r = _get(server, f"/{repo_id}/commit/{oid}")
        assert r.status_code == 404, oid
        assert r.headers["content-type"].startswith("text/html")
        assert "Page not found" in r.text
    assert _get(server, f"/{repo_id}/commit/{here.oid}").status_code == 200


def test_private_commit_page_is_the_missing_page(server: Server, api, user: User, other: User,  # type: ignore[no-untyped-def]
                                                 repo_factory: Callable[..., str]) -> None:
    private = repo_factory(private=True)
    oid = _commit(api, private, {"secret.txt": b"secret words\n"}).oid
    missing = f"{user.name}/does-not-exist-{uuid.uuid4().hex[:6]}"
    for token in (other.token, None):  # the page header differs with who is signed in
        hidden = _get(server, f"/{private}/commit/{oid}", token=token)
        absent = _get(server, f"/{missing}/commit/{oid}", token=token)
        assert hidden.status_code == absent.status_code == 404
        # The layout may echo the requested URL (a sign-in link back to it); nothing else
        # may differ.
        body = _without_url(hidden, f"/{private}/commit/{oid}")
        assert body == _without_url(absent, f"/{missing}/commit/{oid}")
        assert "secret words" not in body and private.split("/")[1] not in body
    for suffix in (f"/commit/{oid}", "/commits/main/secret.txt"):
        assert _get(server, f"/{private}{suffix}", token=other.token).status_code == 404
    owner = _get(server, f"/{private}/commit/{oid}", token=user.token)
    assert owner.status_code == 200 and "secret words" in owner.text


def test_large_text_files_are_listed_not_diffed(server: Server, api,  # type: ignore[no-untyped-def]
                                                repo_factory: Callable[..., str]) -> None:
    repo_id = repo_factory()
    big = b"".join(b"line %d\n" % i for i in range(80_000))  # ~600 kB of text, in git
    assert len(big) > 512 * 1024
    info = _commit(api, repo_id, {"big.txt": big, "small.txt": b"x\n"})
    page = _get(server, info.commit_url).text
    assert _statuses(page)["big.txt"] == "added"
    assert "Diff not shown: the file is over 524.3 kB." in page
    assert "line 79999" not in page
    assert ("add", "", "1", "Added: +x") in _diff_rows(page)



def _note(page: str, path: str) -> str:
    """The note shown in place of `path`'s diff on a commit page ("" when there is none)."""
    number = next(i for i, (p, _) in enumerate(_statuses(page).items(), 1) if p == path)
    section = page.split(f'id="file-{number}"', 1)[1].split("</section>", 1)[0]
    notes = re.findall(r'<p class="diff-note">(.*?)</p>', section, re.S)
    return " ".join(_text(notes[0]).split()) if notes else ""


def test_costly_diffs_are_not_rendered(server: Server, api,  # type: ignore[no-untyped-def]
                                       repo_factory: Callable[..., str]) -> None:
    repo_id = repo_factory()

    def text(lines: list[str]) -> bytes:
        return "".join(f"{ln}\n" for ln in lines).encode()

    # Over the line limit: 10,500 lines a side, every other one changed (~100 kB).
    long_old = [f"row {i}" for i in range(10_500)]
    long_new = [ln if i % 2 else f"new {i}" for i, ln in enumerate(long_old)]
    # Under every size limit, yet quadratic for difflib: repeated lines, half replaced.
    costly_old = [str(i % 100) for i in range(4000)]
    costly_new = [ln if i % 2 else "z" for i, ln in enumerate(costly_old)]
    # Far over the pair limit unless the unchanged start and end are left out.
    edited_old = [f"entry {i}" for i in range(9000)]
    edited_new = [*edited_old[:4500], "entry edited", *edited_old[4501:]]
    _commit(api, repo_id, {"long.txt": text(long_old), "costly.txt": text(costly_old),
                           "edited.txt": text(edited_old), "small.txt": b"one\n"})
    info = _commit(api, repo_id, {"long.txt": text(long_new), "costly.txt": text(costly_new),
                                  "edited.txt": text(edited_new), "small.txt": b"two\n"})
    started = time.monotonic()
    r = _get(server, info.commit_url)
    elapsed = time.monotonic() - started
    assert r.status_code == 200
    page = r.text
    large = "Large diff not rendered: these versions are too costly to compare."
    assert _note(page, "long.txt") == _note(page, "costly.txt") == large
    assert _note(page, "edited.txt") == "" and _note(page, "small.txt") == ""
    rows = _diff_rows(page)
    assert ("del", "4501", "", "Removed: -entry 4500") in rows
    assert ("add", "", "4501", "Added: +entry edited") in rows
    assert ("add", "", "1", "Added: +two") in rows
    assert not any(text.endswith(("new 0", "z")) for *_, text in rows)
    assert elapsed < 10, elapsed  # unbounded, difflib takes about 30 s over these files


def test_a_cut_diff_spends_the_page_budget(server: Server, api,  # type: ignore[no-untyped-def]
                                           repo_factory: Callable[..., str]) -> None:
    repo_id = repo_factory()
    # Changed files are listed in path order: the first one alone is over 5,000 diff lines.
    info = _commit(api, repo_id, {"a-big.txt": b"".join(b"%d\n" % i for i in range(6000)),
                                  "b-small.txt": b"after\n"})
    page = _get(server, info.commit_url).text
    assert _statuses(page) == {"a-big.txt": "added", "b-small.txt": "added"}
    limit = "Diff not shown: this page has reached its limit on diffs."
    assert _note(page, "a-big.txt") == _note(page, "b-small.txt") == limit
    assert _diff_rows(page) == []
    assert "Some diffs are not shown: this page shows at most 5000 diff lines" in page


# -- per-file history -----------------------------------------------------------------------


def test_file_history_lists_the_commits_that_touched_it(server: Server, api,  # type: ignore[no-untyped-def]
                                                        repo_factory: Callable[..., str]) -> None:
    repo_id = repo_factory()
    c1 = _commit(api, repo_id, {"a.txt": b"1\n", "dir/b.txt": b"1\n"}, message="c1").oid
    c2 = _commit(api, repo_id, {"dir/b.txt": b"2\n"}, message="c2").oid
    c3 = _commit(api, repo_id, {"a.txt": b"3\n"}, message="c3").oid
    _commit(api, repo_id, {"c.txt": b"4\n"}, message="c4")
    c5 = _commit(api, repo_id, {"a.txt": b"5\n", "dir/b.txt": b"5\n"}, message="c5").oid
    base = f"/{repo_id}"
    r = _get(server, f"{base}/commits/main/a.txt")
    assert r.status_code == 200
    assert _commit_ids(r.text, base) == [c5, c3, c1]
    assert "History of" in r.text and "<code>a.txt</code>" in r.text
    assert _commit_ids(_get(server, f"{base}/commits/main/dir/b.txt").text, base) == [c5, c2, c1]
    assert _commit_ids(_get(server, f"{base}/commits/main/dir").text, base) == [c5, c2, c1]
    assert _commit_ids(_get(server, f"{base}/commits/{c3}/a.txt").text, base) == [c3, c1]
    assert _commit_ids(_get(server, f"{base}/commits/main/a.txt?p=1").text, base) == []
    # The whole history still lists every commit, each linked to its commit page.
    everything = _commit_ids(_get(server, f"{base}/commits/main").text, base)
    assert len(everything) == 6 and everything[0] == c5 and everything[2:5] == [c3, c2, c1]
    blob = _get(server, f"{base}/blob/main/a.txt").text
    assert f'<a href="{base}/commits/main/a.txt">History</a>' in blob
    assert _get(server, f"{base}/commits/main/nope.txt").status_code == 404
    assert _get(server, f"{base}/commits/main/a.txt?p=x").status_code == 400


# -- highlighting and the revision selector -------------------------------------------------


def test_blob_page_is_highlighted_and_escaped(server: Server, api,  # type: ignore[no-untyped-def]
                                              repo_factory: Callable[..., str]) -> None:
    repo_id = repo_factory()
    code = b'def greet():\n    return "<script>alert(1)</script>"\n\n# done\n'
    _commit(api, repo_id, {"app.py": code, "README.md": b"# Title\n\n<script>x()</script>\n",
                           "plain.txt": b"it's <b>\n"})
    page = _get(server, f"/{repo_id}/blob/main/app.py").text
    assert '<span class="k">def</span><span class="w"> </span><span class="nf">greet</span>' in page
    assert '<span class="c1"># done</span>' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert '<pre class="line-numbers" aria-hidden="true">1\n2\n3\n4\n</pre>' in page
    md = _get(server, f"/{repo_id}/blob/main/README.md").text
    assert '<span class="gh"># Title</span>' in md  # source, not rendered markdown
    assert "&lt;script&gt;x()&lt;/script&gt;" in md and "<script>" not in md
    plain = _get(server, f"/{repo_id}/blob/main/plain.txt").text
    assert "it&#39;s &lt;b&gt;" in plain
    css = httpx.get(f"{server.endpoint}/static/hver.css").text
    assert ".highlight [class^=\"k\"]" in css


def test_revision_selector(server: Server, api, repo_factory: Callable[..., str]) -> None:  # type: ignore[no-untyped-def]
    repo_id = repo_factory()
    _commit(api, repo_id, {"docs/a.md": b"# v1\n"})
    api.create_tag(repo_id, tag="v1.0")
    api.create_branch(repo_id, branch="feature/x")
    _commit(api, repo_id, {"docs/a.md": b"# v2\n"})
    base = f"/{repo_id}"
    branch = "feature%2Fx"
    for kind, path in (("tree", "/docs"), ("blob", "/docs/a.md"), ("commits", ""),
                       ("commits", "/docs/a.md")):
        page = _get(server, f"{base}/{kind}/main{path}").text
        menu = page.split('<details class="rev-select">', 1)[1].split("</details>", 1)[0]
        assert "<summary>Revision: <code>main</code></summary>" in menu
        assert f'<a href="{base}/{kind}/main{path}" aria-current="true">main</a>' in menu
        assert f'<a href="{base}/{kind}/{branch}{path}">feature/x</a>' in menu
        assert f'<a href="{base}/{kind}/v1.0{path}">v1.0</a>' in menu
        for rev in (branch, "v1.0"):
            r = _get(server, f"{base}/{kind}/{rev}{path}")
            assert r.status_code == 200, (kind, rev)
    at_tag = _get(server, f"{base}/blob/v1.0/docs/a.md").text
    assert "# v1" in at_tag and "# v2" not in at_tag
    assert f'<a href="{base}/blob/v1.0/docs/a.md" aria-current="true">v1.0</a>' in at_tag
    history = _get(server, f"{base}/commits/v1.0/docs/a.md").text
    assert f'<a href="{base}/commits/main/docs/a.md">main</a>' in history


# -- repo page: size, parameters, card results ----------------------------------------------


def _safetensors(tensors: dict[str, tuple[str, list[int]]]) -> bytes:
    """A safetensors file written by hand: 8-byte LE header length, JSON header, data."""
    sizes = {"F32": 4, "BF16": 2, "F16": 2, "I64": 8, "U8": 1}
    header: dict[str, Any] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = sizes[dtype]
        for d in shape:
            n *= d
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + bytes(offset)


def _raw_safetensors(header: bytes) -> bytes:
    return struct.pack("<Q", len(header)) + header + bytes(64)


def _meta(page: str) -> dict[str, str]:
    block = page.split('<section class="meta"', 1)[1].split("</section>", 1)[0]
    return {_text(k): _text(v).strip()
            for k, v in re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", block, re.S)}


def test_params_of_a_torch_safetensors_file_via_xet(server: Server, api, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                    repo_factory: Callable[..., str]) -> None:
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    torch.set_num_threads(1)
    repo_id = repo_factory()
    path = tmp_path / "model.safetensors"
    save_file({"w": torch.zeros(1000, 1000, dtype=torch.float32),
               "b": torch.ones(200, 1000, dtype=torch.bfloat16),
               "step": torch.tensor(3, dtype=torch.int64)}, str(path))
    api.upload_file(path_or_fileobj=str(path), path_in_repo="model.safetensors", repo_id=repo_id)
    entry = api.get_paths_info(repo_id, ["model.safetensors"])[0]
    assert entry.xet_hash, "the default client uploads through Xet"
    meta = _meta(_get(server, f"/{repo_id}").text)
    assert meta["Parameters"] == "1.2M params"  # 1_000_000 + 200_000 + 1
    assert meta["Tensor types"] == "F32, BF16, I64"
    total = sum(e.size for e in api.list_repo_tree(repo_id, recursive=True))
    assert total > path.stat().st_size > 4_400_000
    assert meta["Size"] == f"{total / 1e6:.1f} MB"


def test_params_of_sharded_files_and_broken_headers(server: Server, api,  # type: ignore[no-untyped-def]
                                                    repo_factory: Callable[..., str],
                                                    lfs_client: None) -> None:
    repo_id = repo_factory()
    shard1 = _safetensors({"a": ("F16", [300, 1000]), "b": ("F32", [1000])})
    shard2 = _safetensors({"c": ("F16", [700, 1000]), "d": ("U8", [4, 5])})
    index = json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors"}}).encode()
    huge = struct.pack("<Q", 200_000_000) + b"{}"  # a header over the format's limit
    _commit(api, repo_id, {
        "model-00001-of-00002.safetensors": shard1,
        "model-00002-of-00002.safetensors": shard2,
        "model.safetensors.index.json": index,
        "broken.safetensors": b"\x10\0\0\0\0\0\0\0not json at all!",
        "huge.safetensors": huge,
        "short.safetensors": b"\1\2",
        "bad-shape.safetensors": _raw_safetensors(b'{"x": {"dtype": "F32", "shape": ["2"]}}'),
        "not-a-dict.safetensors": _raw_safetensors(b"[1, 2, 3]"),
    })
    assert api.get_paths_info(repo_id, ["model-00001-of-00002.safetensors"])[0].xet_hash is None
    r = _get(server, f"/{repo_id}")
    assert r.status_code == 200
    meta = _meta(r.text)
    assert meta["Parameters"] == "1M params"  # 300_000 + 1_000 + 700_000 + 20 = 1_001_020
    assert meta["Tensor types"] == "F16, F32, U8"
    # Only the broken files in a repo: no parameters shown, and no error.
    lone = repo_factory()
    _commit(api, lone, {"broken.safetensors": b"\x10\0\0\0\0\0\0\0not json at all!"})
    meta = _meta(_get(server, f"/{lone}").text)
    assert "Parameters" not in meta and "Tensor types" not in meta


def _padded_safetensors(tensors: dict[str, tuple[str, list[int]]], header_size: int) -> bytes:
    """A safetensors file whose JSON header is padded with spaces to `header_size` bytes."""
    data = _safetensors(tensors)
    length = struct.unpack("<Q", data[:8])[0]
    header = data[8:8 + length].ljust(header_size)
    return struct.pack("<Q", len(header)) + header + data[8 + length:]


def test_params_skip_long_headers_and_out_of_range_numbers(  # type: ignore[no-untyped-def]
        server: Server, api, repo_factory: Callable[..., str]) -> None:
    repo_id = repo_factory()
    tensor = '{"x": {"dtype": "F32", "shape": %s, "data_offsets": [0, 0]}}'
    _commit(api, repo_id, {
        "model.safetensors": _safetensors({"w": ("F16", [3, 1000])}),
        # Valid, but with a 9 MiB header: real ones are well under 1 MiB.
        "long-header.safetensors": _padded_safetensors({"v": ("U8", [10])}, 9 << 20),
        "huge-dims.safetensors": _raw_safetensors((tensor % f"[{10**200}, {10**200}]").encode()),
        "dim-2-53.safetensors": _raw_safetensors((tensor % f"[{2**53}]").encode()),
        "count-2-63.safetensors": _raw_safetensors((tensor % f"[{2**40}, {2**23}]").encode()),
    })
    r = _get(server, f"/{repo_id}")
    assert r.status_code == 200
    meta = _meta(r.text)
    assert meta["Parameters"] == "3K params" and meta["Tensor types"] == "F16"
    # Each file under the limits, but not their sum: no total rather than an absurd one.
    over = repo_factory()
    half = tensor % f"[{2**31}, {2**31}]"  # 2**62 elements
    _commit(api, over, {"a.safetensors": _raw_safetensors(half.encode()),
                        "b.safetensors": _raw_safetensors(half.encode() + b" ")})
    meta = _meta(_get(server, f"/{over}").text)
    assert "Parameters" not in meta
    # Just under the limits: shown.
    edge = repo_factory()
    _commit(api, edge, {"a.safetensors": _raw_safetensors(half.encode())})
    assert _meta(_get(server, f"/{edge}").text)["Parameters"] == "4611686T params"


def test_params_read_a_bounded_amount_per_view(server: Server, api,  # type: ignore[no-untyped-def]
                                               repo_factory: Callable[..., str]) -> None:
    repo_id = repo_factory()
    # Nine files of 7.5 MiB headers: more than the 64 MiB a view reads.
    _commit(api, repo_id, {
        f"model-{i}.safetensors": _padded_safetensors({"w": ("U8", [i + 1, 1000])}, 15 << 19)
        for i in range(9)})
    first = _meta(_get(server, f"/{repo_id}").text)
    assert "Parameters" not in first  # not a partial total
    # What the first view read is cached: the next one reads the rest.
    assert _meta(_get(server, f"/{repo_id}").text)["Parameters"] == "45K params"


def test_total_size_counts_lfs_content(server: Server, api,  # type: ignore[no-untyped-def]
                                       repo_factory: Callable[..., str]) -> None:
    repo_id = repo_factory("dataset")
    _commit(api, repo_id, {"data.bin": b"\1" * 1_500_000, "README.md": b"# x\n"},
            repo_type="dataset")
    meta = _meta(_get(server, f"/datasets/{repo_id}").text)
    assert meta["Size"] == "1.5 MB"  # not the size of the LFS pointer
    assert "Parameters" not in meta


def test_card_co2_and_model_index(server: Server, api, repo_factory: Callable[..., str]) -> None:  # type: ignore[no-untyped-def]
    repo_id = repo_factory()
    card = """---
license: mit
co2_eq_emissions:
  emissions: 149.2
  source: codecarbon
model-index:
- name: tiny
  results:
  - task: {type: text-classification, name: Text Classification}
    dataset: {name: GLUE SST-2, type: glue}
    metrics:
    - {type: accuracy, value: 0.912, name: Accuracy}
    - {type: f1, value: 0.88}
  - task: {type: fill-mask}
    dataset: {name: "<b>Wiki</b>", type: wikitext}
    metrics:
    - {type: perplexity, value: 12.5}
---
# Tiny
"""
    _commit(api, repo_id, {"README.md": card.encode()})
    page = _get(server, f"/{repo_id}").text
    assert _meta(page)["CO2 emissions"] == "149.2 g CO2eq"
    table = page.split('<section class="evals"', 1)[1].split("</section>", 1)[0]
    assert "<h2" in table and "Evaluation results" in table
    rows = [[_text(c) for c in re.findall(r"<td>(.*?)</td>", row)]
            for row in re.findall(r"<tr>(.*?)</tr>", table, re.S)]
    assert [r for r in rows if r] == [
        ["Text Classification", "GLUE SST-2", "Accuracy", "0.912"],
        ["Text Classification", "GLUE SST-2", "f1", "0.88"],
        ["fill-mask", "<b>Wiki</b>", "perplexity", "12.5"],
    ]
    assert "<b>Wiki</b>" not in page
    plain = repo_factory()
    _commit(api, plain, {"README.md": b"---\nco2_eq_emissions: 12\n---\n# x\n"})
    page = _get(server, f"/{plain}").text
    assert _meta(page)["CO2 emissions"] == "12 g CO2eq"
    assert '<section class="evals"' not in page
    for value in ("1" + "0" * 400, ".inf", ".nan"):  # beyond a float, or not finite
        odd = repo_factory()
        _commit(api, odd, {"README.md": f"---\nco2_eq_emissions: {value}\n---\n# x\n".encode()})
        r = _get(server, f"/{odd}")
        assert r.status_code == 200, value
        assert "CO2 emissions" not in _meta(r.text)
