"""Big repos: commits that rewrite only the folders they change, listings paginated by a
cursor that seeks, and repo info from a per-commit file list. Correctness only; the
timings are bench/repo_size.py's."""

from __future__ import annotations

import base64
import json
import random
import stat
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from dulwich.index import commit_tree
from dulwich.object_store import MemoryObjectStore
from dulwich.objects import Blob, ObjectID
from huggingface_hub import CommitOperationAdd, CommitOperationDelete
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError
from huggingface_hub.hf_api import RepoFolder


def expected_trees(files: dict[str, bytes]) -> dict[str, str]:
    """path -> object id of every file and folder of `files`, built by dulwich from the
    flat map (the whole-tree build), with "" for the root."""
    store = MemoryObjectStore()
    entries = []
    for path, data in files.items():
        blob = Blob.from_string(data)
        store.add_object(blob)
        entries.append((path.encode(), blob.id, 0o100644))
    root = commit_tree(store, entries)
    out = {"": root.decode()}

    def walk(tree_id: ObjectID, prefix: str) -> None:
        tree = store[tree_id]
        for name, mode, sha in tree.iteritems():  # type: ignore[attr-defined]
            path = f"{prefix}{name.decode()}"
            out[path] = sha.decode()
            if stat.S_ISDIR(mode):
                walk(sha, f"{path}/")

    walk(root, "")
    return out


def served_trees(api, repo_id: str, revision: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The same map, as the server lists it; the root's id from its listed entries."""
    out = {e.path: (e.tree_id if isinstance(e, RepoFolder) else e.blob_id)
           for e in api.list_repo_tree(repo_id, revision=revision, recursive=True)}
    store = MemoryObjectStore()
    from dulwich.objects import Tree

    root = Tree()
    for e in api.list_repo_tree(repo_id, revision=revision):
        if isinstance(e, RepoFolder):
            root.add(e.path.encode(), stat.S_IFDIR, e.tree_id.encode())
        else:
            root.add(e.path.encode(), 0o100644, e.blob_id.encode())
    store.add_object(root)
    out[""] = root.id.decode()
    return out


def walk_key(path: str, is_dir: bool) -> str:
    return f"{path}/" if is_dir else path


# --- incremental trees: the same ids as whole-tree builds ------------------------------------


def test_incremental_trees_equal_full_builds(api, repo_factory):
    """Random op sets (adds making nested folders, overwrites, deletes of files and of
    folders, a folder emptied file by file): after each commit every tree id the server
    lists, the root's included, is the one the whole-tree build gives."""
    repo_id = repo_factory()
    rng = random.Random(1313)
    model = {".gitattributes": _gitattributes(api, repo_id)}

    def new_path() -> str:
        depth = rng.randint(0, 4)
        folders = [f"d{rng.randint(0, 3)}" for _ in range(depth)]
        return "/".join([*folders, f"f{rng.randint(0, 40)}.txt"])

    def folders() -> list[str]:
        return sorted({p.rsplit("/", k)[0] for p in model for k in range(1, p.count("/") + 1)})

    for round_ in range(8):
        ops: list[CommitOperationAdd | CommitOperationDelete] = []
        for _ in range(rng.randint(1, 12)):
            kind = rng.random()
            if kind < 0.55 or not model:
                path = new_path()
                data = f"{round_} {rng.random()}".encode()
                ops.append(CommitOperationAdd(path, data))
                model[path] = data
            elif kind < 0.85:
                path = rng.choice(sorted(model))
                ops.append(CommitOperationDelete(path))
                del model[path]
            elif folders():
                folder = rng.choice(folders())
                ops.append(CommitOperationDelete(f"{folder}/"))
                for p in [p for p in model if p.startswith(f"{folder}/")]:
                    del model[p]
        if round_ == 5 and folders():  # a folder emptied file by file vanishes
            folder = folders()[0]
            for p in sorted(p for p in model if p.startswith(f"{folder}/")):
                ops.append(CommitOperationDelete(p))
                del model[p]
        sha = api.create_commit(repo_id, operations=ops, commit_message=f"round {round_}").oid
        assert served_trees(api, repo_id, sha) == expected_trees(model), f"round {round_}"


def _error(excinfo: pytest.ExceptionInfo[HfHubHTTPError]) -> tuple[int, str]:
    response = excinfo.value.response
    return response.status_code, response.json()["error"]


def test_file_folder_clashes_refused_as_before(api, repo_factory):
    repo_id = repo_factory()
    api.create_commit(repo_id, operations=[
        CommitOperationAdd("a", b"file a"),
        CommitOperationAdd("d/x.txt", b"x"),
        CommitOperationAdd("d/y/z.txt", b"z"),
    ], commit_message="base")
    head = api.model_info(repo_id).sha

    # A folder under a file.
    with pytest.raises(HfHubHTTPError) as excinfo:
        api.create_commit(repo_id, operations=[CommitOperationAdd("a/b.txt", b"b")],
                          commit_message="clash")
    assert _error(excinfo) == (400, "Cannot have both a file 'a' and a file 'a/b.txt' "
                                    "inside it.")
    # A file over a folder: the first file of the folder, in tree order, is named.
    with pytest.raises(HfHubHTTPError) as excinfo:
        api.create_commit(repo_id, operations=[CommitOperationAdd("d", b"d")],
                          commit_message="clash")
    assert _error(excinfo) == (400, "Cannot have both a file 'd' and a file 'd/x.txt' "
                                    "inside it.")
    # A file over a deeper folder, beside other edits.
    with pytest.raises(HfHubHTTPError) as excinfo:
        api.create_commit(repo_id, operations=[CommitOperationAdd("new.txt", b"n"),
                                               CommitOperationAdd("d/y", b"y")],
                          commit_message="clash")
    assert _error(excinfo) == (400, "Cannot have both a file 'd/y' and a file 'd/y/z.txt' "
                                    "inside it.")
    # A deletion of something missing is refused before any clash is looked at.
    with pytest.raises(EntryNotFoundError):
        api.create_commit(repo_id, operations=[CommitOperationAdd("a/b.txt", b"b"),
                                               CommitOperationDelete("nothing.txt")],
                          commit_message="missing")
    with pytest.raises(EntryNotFoundError):
        api.create_commit(repo_id, operations=[CommitOperationDelete("a/")],
                          commit_message="a file is no folder")
    assert api.model_info(repo_id).sha == head  # nothing landed

    # A clash the same commit resolves lands, as it always has: a file replaced by a folder
    # of the same name, and a folder by a file.
    sha = api.create_commit(repo_id, operations=[
        CommitOperationAdd("a/b.txt", b"b"), CommitOperationDelete("a"),
        CommitOperationDelete("d/"), CommitOperationAdd("d", b"now a file"),
    ], commit_message="swap").oid
    assert served_trees(api, repo_id, sha) == expected_trees({
        ".gitattributes": _gitattributes(api, repo_id), "a/b.txt": b"b", "d": b"now a file",
    })


def _gitattributes(api, repo_id: str) -> bytes:  # type: ignore[no-untyped-def]
    return httpx.get(f"{api.endpoint}/{repo_id}/resolve/main/.gitattributes",
                     headers={"Authorization": f"Bearer {api.token}"}).content


# --- listing: every entry once, in order, through the real client ----------------------------

TRICKY = ["a-b.txt", "a.txt", "a/x.txt", "a0.txt", "a/b-c/y.txt", "a/b/z.txt", "ab/q.txt"]


@pytest.fixture(scope="module")
def big_repo(server, user_factory):  # type: ignore[no-untyped-def]
    """2,500 files in nested folders (and names whose git order is not plain order)."""
    from huggingface_hub import HfApi

    owner = user_factory("big")
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    repo_id = f"{owner.name}/big"
    api.create_repo(repo_id)
    paths = [f"data/{i // 250:02d}/{i % 250 // 25:02d}/f{i:04d}.txt"
             for i in range(2500 - len(TRICKY))] + TRICKY
    for start in range(0, len(paths), 1250):
        api.create_commit(repo_id, operations=[
            CommitOperationAdd(p, f"content of {p}".encode()) for p in paths[start:start + 1250]
        ], commit_message=f"files from {start}")
    return api, repo_id, paths


def test_list_repo_files_pages_every_file_once_in_order(big_repo):
    api, repo_id, paths = big_repo
    listed = api.list_repo_files(repo_id)
    assert len(listed) == len(set(listed)) == len(paths) + 1  # and .gitattributes
    # Git's order: a folder sorts as its name with a "/" after it.
    assert listed == sorted([*paths, ".gitattributes"])
    entries = list(api.list_repo_tree(repo_id, recursive=True))
    keys = [walk_key(e.path, isinstance(e, RepoFolder)) for e in entries]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert [e.path for e in entries if not isinstance(e, RepoFolder)] == listed
    folders = {p.rsplit("/", k)[0] for p in paths for k in range(1, p.count("/") + 1)}
    assert {e.path for e in entries if isinstance(e, RepoFolder)} == folders


def test_listing_pages_of_a_folder_and_expanded(big_repo):
    api, repo_id, paths = big_repo
    under = sorted(p for p in paths if p.startswith("data/03/"))
    assert [e.path for e in api.list_repo_tree(repo_id, "data/03", recursive=True)
            if not isinstance(e, RepoFolder)] == under
    # Expanded entries come 50 to a page.
    folder = "data/07/04"
    expanded = list(api.list_repo_tree(repo_id, folder, expand=True))
    assert [e.path for e in expanded] == sorted(p for p in paths if p.startswith(f"{folder}/"))
    assert all(e.last_commit is not None for e in expanded)
    top = [e.path for e in api.list_repo_tree(repo_id)]
    assert top == [".gitattributes", "a-b.txt", "a.txt", "a", "a0.txt", "ab", "data"]


def _page(http: httpx.Client, url: str) -> tuple[list[dict[str, object]], str | None]:
    r = http.get(url)
    r.raise_for_status()
    return r.json(), r.links.get("next", {}).get("url")


def test_cursor_lists_the_commit_it_began_at(big_repo):
    """A branch that moves between pages changes nothing in a listing under way."""
    api, repo_id, paths = big_repo
    with httpx.Client(headers={"Authorization": f"Bearer {api.token}"}) as http:
        url = f"{api.endpoint}/api/models/{repo_id}/tree/main?recursive=true"
        before = []
        first, nxt = _page(http, url)
        assert nxt is not None and len(first) == 1000
        # Delete what the next pages would list, and add more.
        doomed = [p for p in paths if p.startswith("data/09/")]
        api.create_commit(repo_id, operations=[CommitOperationDelete("data/09/"),
                                               CommitOperationAdd("data/zz.txt", b"z")],
                          commit_message="move the branch")
        before = list(first)
        while nxt is not None:
            page, nxt = _page(http, nxt)
            before += page
        listed = [e["path"] for e in before if e["type"] == "file"]
        assert set(doomed) <= set(listed) and "data/zz.txt" not in listed
        assert listed == sorted([*paths, ".gitattributes"])
        # A new listing sees the new commit.
        now = api.list_repo_files(repo_id)
        assert "data/zz.txt" in now and not set(doomed) & set(now)
        # Put the repo back for the other tests.
        api.create_commit(repo_id, operations=[CommitOperationDelete("data/zz.txt")] + [
            CommitOperationAdd(p, f"content of {p}".encode()) for p in doomed
        ], commit_message="restore")


def test_forged_cursors_are_refused(big_repo):
    api, repo_id, _ = big_repo
    with httpx.Client(headers={"Authorization": f"Bearer {api.token}"}) as http:
        base = f"{api.endpoint}/api/models/{repo_id}/tree/main"
        _, nxt = _page(http, f"{base}?recursive=true")
        assert nxt is not None
        cursor = parse_qs(urlsplit(nxt).query)["cursor"][0]
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))

        def forge(value: object) -> str:
            text = json.dumps(value).encode()
            return base64.urlsafe_b64encode(text).decode().rstrip("=")

        bad = {
            "garbage": "not-a-cursor!",
            "a number": "1000",
            "not base64 of JSON": base64.urlsafe_b64encode(b"hello").decode(),
            "no such commit": forge([1, "0" * 40, *raw[2:]]),
            "another listing's": forge([*raw[:3], "data", *raw[4:]]),
            "not recursive": forge([*raw[:4], False, raw[5]]),
            "another revision": forge([raw[0], raw[1], "other", *raw[3:]]),
            "a number for a key": forge([*raw[:5], 7]),
        }
        for what, value in bad.items():
            r = http.get(base, params={"recursive": "true", "cursor": value})
            assert r.status_code == 400, what
            assert r.headers["X-Error-Code"] == "BadRequest", what
        # The real one still works, and lists from where the first page ended.
        r = http.get(base, params={"recursive": "true", "cursor": cursor})
        assert r.status_code == 200 and len(r.json()) == 1000


# --- model_info: siblings from a per-commit cache, never stale ------------------------------


def test_model_info_siblings_follow_commits(api, repo_factory):
    repo_id = repo_factory()
    api.create_commit(repo_id, operations=[
        CommitOperationAdd(f"w/{i:02d}/f.txt", b"x" * i) for i in range(30)
    ] + [CommitOperationAdd("README.md", b"---\nlicense: mit\n---\n# hi\n")],
        commit_message="start")
    shas = []
    for step, ops in enumerate([
        [CommitOperationAdd("deep/er/model.safetensors", b"not really"),
         CommitOperationAdd("w/05/f.txt", b"changed")],
        [CommitOperationDelete("w/12/")],
        [CommitOperationDelete("w/13/f.txt"), CommitOperationAdd("config.json", b"{}"),
         CommitOperationAdd("README.md", b"---\nlicense: apache-2.0\ntags: [x]\n---\n")],
        [CommitOperationDelete("deep/")],
    ]):
        api.model_info(repo_id, files_metadata=True)  # the parent's files are cached
        shas.append(api.create_commit(repo_id, operations=ops,
                                      commit_message=f"step {step}").oid)
        info = api.model_info(repo_id, files_metadata=True)
        assert info.sha == shas[-1]
        assert [s.rfilename for s in info.siblings] == api.list_repo_files(repo_id)
        tree = {e.path: e for e in api.list_repo_tree(repo_id, recursive=True)
                if not isinstance(e, RepoFolder)}
        assert {s.rfilename: (s.size, s.blob_id) for s in info.siblings} == {
            p: (e.size, e.blob_id) for p, e in tree.items()}
        assert info.used_storage == sum(e.size for e in tree.values())
        # The card index follows too: README, config.json, and a .safetensors file deep down.
        tags = set(info.tags)
        assert ("safetensors" in tags) == any(p.endswith(".safetensors") for p in tree)
        assert ("transformers" in tags) == ("config.json" in tree)
        assert (info.card_data or {}).get("license") == (
            "apache-2.0" if step >= 2 else "mit")
    # Older commits keep their own files, and another branch its own.
    for sha in shas:
        assert [s.rfilename for s in api.model_info(repo_id, revision=sha).siblings] == \
            api.list_repo_files(repo_id, revision=sha)
    api.create_branch(repo_id, branch="dev", revision=shas[0])
    api.create_commit(repo_id, operations=[CommitOperationAdd("dev.txt", b"d")],
                      commit_message="dev", revision="dev")
    dev = api.model_info(repo_id, revision="dev")
    assert [s.rfilename for s in dev.siblings] == api.list_repo_files(repo_id, revision="dev")
    assert "dev.txt" not in api.list_repo_files(repo_id)
    assert "safetensors" in dev.tags and "safetensors" not in api.model_info(repo_id).tags


def test_model_info_expand(api, repo_factory):
    repo_id = repo_factory()
    api.create_commit(repo_id, operations=[CommitOperationAdd("x.txt", b"x")],
                      commit_message="x")
    with httpx.Client(headers={"Authorization": f"Bearer {api.token}"}) as http:
        url = f"{api.endpoint}/api/models/{repo_id}"
        assert http.get(url, params={"expand": "siblings"}).json() == {
            "_id": http.get(url).json()["_id"], "id": repo_id,
            "siblings": [{"rfilename": ".gitattributes"}, {"rfilename": "x.txt"}]}
        assert set(http.get(url, params={"expand": "sha"}).json()) == {"_id", "id", "sha"}
