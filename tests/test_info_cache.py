"""Repo info (`model_info` & co) answered from memory: the same answer as from git and the
database, and never one a change has ended.

`cold` is a second server on the session server's data directory with `cache_ttl=0`: it
caches no repo row, so it answers every info request the slow way (database, git). The
session server is asked twice first (the second answer from memory), then both are
compared byte for byte. The invalidation tests make the server cache an answer, change
what it shows (through the API, in the server's own process, or with the `hver` command
line, another process), and check the very next request.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi
from huggingface_hub.errors import RepositoryNotFoundError
from starlette.routing import Match, Route

README = b"---\nlicense: mit\ntags: [cached]\npipeline_tag: fill-mask\nlibrary_name: x\n---\n# x\n"


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def info_url(server: Any, repo_id: str, repo_type: str = "model",
             revision: str | None = None) -> str:
    url = f"{server.endpoint}/api/{repo_type}s/{repo_id}"
    if revision is not None:
        url += f"/revision/{quote(revision, safe='')}"
    return url


def get(server: Any, repo_id: str, *, repo_type: str = "model", revision: str | None = None,
        token: str | None = None, params: list[tuple[str, str]] | None = None
        ) -> httpx.Response:
    return httpx.get(info_url(server, repo_id, repo_type, revision), params=params or [],
                     headers=bearer(token))


def twice(call: Callable[[], httpx.Response], status: int = 200) -> httpx.Response:
    """Call twice (the second answered from what the first cached); both must be `status`,
    with the same body."""
    first, second = call(), call()
    assert first.status_code == status, (first.status_code, first.text)
    assert second.status_code == status, (second.status_code, second.text)
    assert first.content == second.content
    return second


@pytest.fixture(scope="module")
def cold(server: Any, unstarted_server: Callable[..., Any]) -> Iterator[Any]:
    srv = unstarted_server(server.data, cache_ttl="0", rate_limit_anonymous="0")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def owner(user_factory: Callable[..., Any]) -> Any:
    return user_factory("info-cache")


@pytest.fixture(scope="module")
def repos(server: Any, owner: Any) -> dict[str, Any]:
    """A representative set: a model with a card, config.json, a large file, a branch, a
    tag and a pull request; a bare model; a private model; a dataset; a space."""
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    ns = owner.name
    model = f"{ns}/full-{uuid.uuid4().hex[:6]}"
    api.create_repo(model)
    api.create_commit(model, operations=[
        CommitOperationAdd("README.md", README),
        CommitOperationAdd("config.json", b'{"model_type": "bert"}'),
        CommitOperationAdd("sub/dir/notes.txt", b"notes\n"),
        CommitOperationAdd("weights.bin", os.urandom(20_000)),
    ], commit_message="files")
    first = api.list_repo_commits(model)[0].commit_id
    api.create_branch(model, branch="feature/x")
    api.create_tag(model, tag="v1")
    api.upload_file(path_or_fileobj=b"---\nlicense: apache-2.0\ntags: [dev]\n---\n",
                    path_in_repo="README.md", repo_id=model, revision="feature/x")
    pr = api.create_commit(model, operations=[CommitOperationAdd("pr.txt", b"pr")],
                           commit_message="pr", create_pr=True)
    bare = f"{ns}/bare-{uuid.uuid4().hex[:6]}"
    api.create_repo(bare)
    private = f"{ns}/private-{uuid.uuid4().hex[:6]}"
    api.create_repo(private, private=True)
    api.upload_file(path_or_fileobj=README, path_in_repo="README.md", repo_id=private)
    dataset = f"{ns}/data-{uuid.uuid4().hex[:6]}"
    api.create_repo(dataset, repo_type="dataset")
    api.upload_file(path_or_fileobj=b"a,b\n1,2\n", path_in_repo="data/train.csv",
                    repo_id=dataset, repo_type="dataset")
    space = f"{ns}/space-{uuid.uuid4().hex[:6]}"
    api.create_repo(space, repo_type="space", space_sdk="gradio")
    return {"model": model, "first": first, "pr": pr.pr_revision, "bare": bare,
            "private": private, "dataset": dataset, "space": space}


QUERIES: list[list[tuple[str, str]]] = [
    [],
    [("blobs", "true")],
    [("blobs", "1"), ("securityStatus", "true")],
    [("expand", "downloads"), ("expand", "pipeline_tag")],
    [("expand", "siblings"), ("expand", "sha")],
    [("expand", "cardData"), ("expand", "usedStorage"), ("expand", "tags")],
]


def test_answers_from_memory_equal_the_slow_ones(server, cold, owner, repos):
    cases: list[tuple[str, str, str | None, str | None]] = [
        ("model", repos["model"], None, None),
        ("model", repos["model"], "main", None),
        ("model", repos["model"], "feature/x", None),  # its own card
        ("model", repos["model"], "refs/heads/feature/x", None),
        ("model", repos["model"], "v1", None),
        ("model", repos["model"], repos["first"], None),
        ("model", repos["model"], repos["pr"], None),
        ("model", repos["bare"], None, None),
        ("model", repos["private"], None, owner.token),
        ("dataset", repos["dataset"], None, None),
        ("space", repos["space"], None, None),
        ("space", repos["space"], "main", owner.token),
    ]
    for repo_type, repo_id, revision, token in cases:
        for params in QUERIES:
            where = (repo_type, repo_id, revision, params)
            ask = functools.partial(get, repo_id=repo_id, repo_type=repo_type,
                                    revision=revision, token=token, params=params)
            warm = twice(lambda: ask(server))  # noqa: B023 (called at once)
            slow = ask(cold)
            assert slow.status_code == 200, (where, slow.text)
            assert warm.content == slow.content, where
            assert warm.headers["content-type"] == slow.headers["content-type"]
    body = get(server, repos["model"], revision="feature/x").json()
    assert body["cardData"]["license"] == "apache-2.0" and "dev" in body["tags"]


def storage_dir(server: Any, sha: str) -> Path:
    """The git directory of the repo whose main branch is at `sha`."""
    for ref in (server.data / "repos").glob("*/*.git/refs/heads/main"):
        if ref.read_text().strip() == sha:
            return ref.parent.parent.parent
    raise AssertionError(f"no repo at {sha}")


def test_seen_info_is_answered_without_reading_git_objects(server, owner):
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    repo_id = f"{owner.name}/memory-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    sha = api.upload_file(path_or_fileobj=README, path_in_repo="README.md",
                          repo_id=repo_id).oid
    seen = twice(lambda: get(server, repo_id, params=[("blobs", "true")]))
    objects = storage_dir(server, sha) / "objects"
    away = objects.with_name("objects.away")
    objects.rename(away)
    try:  # no object can be read now: only memory can answer
        again = get(server, repo_id, params=[("blobs", "true")])
        at_main = get(server, repo_id, revision="main", params=[("blobs", "true")])
        # A query not asked before: made anew, from the commit's cached parts.
        fields = get(server, repo_id, params=[("blobs", "true"), ("expand", "sha"),
                                              ("expand", "siblings"), ("expand", "cardData")])
    finally:
        away.rename(objects)
    assert again.status_code == 200 and again.content == seen.content
    assert at_main.status_code == 200 and at_main.content == seen.content
    assert fields.status_code == 200, fields.text
    full = seen.json()
    assert fields.json() == {k: full[k] for k in ("_id", "id", "sha", "cardData", "siblings")}


def test_early_routes_take_only_what_the_info_routes_took(tmp_path):
    """The early info routes (matched before every other router) must take no request that
    a route before the info routes would have taken."""
    from hver.app import create_app
    from hver.config import Settings

    app = create_app(Settings.from_env({}, data=tmp_path))
    routes = list(_flat(app.router.routes))
    app.state.hub.close()
    early = [r for r in routes if getattr(r, "endpoint", None) is not None
             and r.endpoint.__name__ == "info_early"]
    assert len(early) == 6
    rest = [r for r in routes if r not in early]
    # Every literal segment any route has, as a namespace, name or revision.
    words = {seg for r in rest if isinstance(r, Route) for seg in r.path.split("/")
             if seg and "{" not in seg} | {"x"}
    paths = [f"/api/{plural}/{a}/{b}{tail}" for plural in ("models", "datasets", "spaces")
             for a in words for b in ("x", *words)
             for tail in ("", "/revision/main", f"/revision/{a}")]
    for path in paths:
        scope = {"type": "http", "method": "GET", "path": path, "root_path": ""}
        took = next(r for r in early if r.matches(scope)[0] is Match.FULL)
        before = next((r for r in rest if isinstance(r, Route)
                       and r.matches(scope)[0] is Match.FULL), None)
        assert before is not None and before.endpoint.__name__ in ("info", "info_at"), (
            path, took.path, getattr(before, "path", None))


def test_early_list_routes_take_only_what_the_list_route_took(tmp_path):
    """The early listing routes (`/api/models` & co) take the requests the generic listing
    route took, and no other route before it would have."""
    from hver.app import create_app
    from hver.config import Settings

    app = create_app(Settings.from_env({}, data=tmp_path))
    routes = list(_flat(app.router.routes))
    app.state.hub.close()
    early = [r for r in routes if getattr(r, "endpoint", None) is not None
             and r.endpoint.__name__ == "list_early"]
    assert len(early) == 3
    rest = [r for r in routes if r not in early]
    for plural in ("models", "datasets", "spaces"):
        scope = {"type": "http", "method": "GET", "path": f"/api/{plural}", "root_path": ""}
        assert any(r.matches(scope)[0] is Match.FULL for r in early)
        before = next(r for r in rest if isinstance(r, Route)
                      and r.matches(scope)[0] is Match.FULL)
        assert before.endpoint.__name__ == "list_repos", before.path


def _flat(routes: list[Any]) -> Iterator[Any]:
    for r in routes:
        inner = getattr(r, "original_router", None)
        yield from _flat(inner.routes) if inner is not None else [r]


# -- invalidation ------------------------------------------------------------------------------


def missing(server: Any) -> httpx.Response:
    return get(server, f"nobody-{uuid.uuid4().hex[:6]}/nothing")


def assert_same_404(r: httpx.Response, server: Any) -> None:
    m = missing(server)
    assert r.status_code == m.status_code == 404
    assert r.json() == m.json()
    assert r.headers.get("x-error-code") == m.headers.get("x-error-code")


def test_repo_made_private_is_missing_to_the_next_request(server, owner, other):
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    repo_id = f"{owner.name}/vis-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    twice(lambda: get(server, repo_id))
    twice(lambda: get(server, repo_id, token=other.token))
    twice(lambda: get(server, repo_id, revision="main"))
    api.update_repo_settings(repo_id, private=True)
    assert_same_404(get(server, repo_id), server)
    assert_same_404(get(server, repo_id, revision="main"), server)
    assert_same_404(get(server, repo_id, token=other.token), server)
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=server.endpoint).model_info(repo_id)
    body = get(server, repo_id, token=owner.token).json()
    assert body["private"] is True
    api.update_repo_settings(repo_id, private=False)
    assert twice(lambda: get(server, repo_id)).json()["private"] is False
    api.update_repo_settings(repo_id, gated="auto")  # info stays public, flag shown
    assert get(server, repo_id).json()["gated"] == "auto"


def test_moved_branch_tag_and_pr_are_seen_by_the_next_info(server, owner):
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    repo_id = f"{owner.name}/moves-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    first = twice(lambda: get(server, repo_id)).json()
    sha = api.upload_file(path_or_fileobj=README, path_in_repo="README.md",
                          repo_id=repo_id).oid
    after = get(server, repo_id).json()
    assert after["sha"] == sha != first["sha"]
    assert "README.md" in {s["rfilename"] for s in after["siblings"]}
    assert after["cardData"]["license"] == "mit"
    assert HfApi(endpoint=server.endpoint).model_info(repo_id).sha == sha
    # Another branch and a tag: cached, moved or deleted, asked again.
    api.create_branch(repo_id, branch="dev", revision=first["sha"])
    assert twice(lambda: get(server, repo_id, revision="dev")).json()["sha"] == first["sha"]
    dev = api.upload_file(path_or_fileobj=b"d", path_in_repo="d.txt", repo_id=repo_id,
                          revision="dev").oid
    assert get(server, repo_id, revision="dev").json()["sha"] == dev
    api.delete_branch(repo_id, branch="dev")
    assert get(server, repo_id, revision="dev").status_code == 404
    api.create_tag(repo_id, tag="v1", revision=first["sha"])
    twice(lambda: get(server, repo_id, revision="v1"))
    api.delete_tag(repo_id, tag="v1")
    assert get(server, repo_id, revision="v1").status_code == 404
    # A file deleted from main is gone from the next info.
    api.delete_file("README.md", repo_id=repo_id)
    last = get(server, repo_id).json()
    assert "README.md" not in {s["rfilename"] for s in last["siblings"]}
    assert last["cardData"] == {}


def test_revoked_token_is_refused_by_the_next_info(server, user_factory):
    u = user_factory("info-revoke")
    api = HfApi(endpoint=server.endpoint, token=u.token)
    repo_id = f"{u.name}/secret-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id, private=True)
    for how in ("api", "cli"):
        made = httpx.post(f"{server.endpoint}/api/settings/tokens", headers=bearer(u.token),
                          json={"name": f"doomed-{how}", "role": "read"})
        assert made.status_code == 200, made.text
        doomed = made.json()["token"]
        twice(lambda: get(server, repo_id, token=doomed))  # noqa: B023
        twice(lambda: get(server, repo_id, token=doomed, revision="main"))  # noqa: B023
        if how == "api":
            r = httpx.delete(f"{server.endpoint}/api/settings/tokens/doomed-api",
                             headers=bearer(u.token))
            assert r.status_code == 200, r.text
        else:  # another process
            server.hver("token", "revoke", u.name, "doomed-cli")
        assert get(server, repo_id, token=doomed).status_code == 401
        assert get(server, repo_id, token=doomed, revision="main").status_code == 401
    assert get(server, repo_id, token=u.token).status_code == 200  # the other token


def test_likes_downloads_move_and_delete_are_seen_by_the_next_info(server, owner, other):
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    repo_id = f"{owner.name}/live-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=repo_id)
    seen = twice(lambda: get(server, repo_id)).json()
    assert (seen["likes"], seen["downloads"]) == (0, 0)
    liked = httpx.post(f"{server.endpoint}/api/models/{repo_id}/like", headers=bearer(other.token))
    assert liked.status_code == 200, liked.text
    assert get(server, repo_id).json()["likes"] == 1
    r = httpx.get(f"{server.endpoint}/{repo_id}/resolve/main/config.json")  # counted
    assert r.status_code == 200
    assert get(server, repo_id).json()["downloads"] == 1
    # Moved from the command line (another process): the old id redirects, the new answers.
    moved_ns = f"org-{uuid.uuid4().hex[:6]}"
    server.hver("org", "create", moved_ns, "--owner", owner.name)
    server.hver("repo", "transfer", repo_id, moved_ns)
    moved = f"{moved_ns}/{repo_id.split('/')[1]}"
    old = get(server, repo_id)
    assert old.status_code == 307, old.text
    now = twice(lambda: get(server, moved)).json()
    assert now["id"] == moved and now["author"] == moved_ns and now["likes"] == 1
    api.delete_repo(moved)
    assert_same_404(get(server, moved), server)


def test_a_commit_id_is_answered_only_by_the_repo_holding_it(server, owner, other):
    """A commit seen in one repo is not shown through another that lacks it."""
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    secret = f"{owner.name}/holder-{uuid.uuid4().hex[:6]}"
    api.create_repo(secret, private=True)
    sha = api.upload_file(path_or_fileobj=b"secret", path_in_repo="secret.txt",
                          repo_id=secret).oid
    twice(lambda: get(server, secret, revision=sha, token=owner.token))
    theirs = f"{other.name}/public-{uuid.uuid4().hex[:6]}"
    HfApi(endpoint=server.endpoint, token=other.token).create_repo(theirs)
    for _ in range(2):
        r = get(server, theirs, revision=sha, token=other.token)
        assert r.status_code == 404, r.text
        assert r.headers.get("x-error-code") == "RevisionNotFound"
    assert_same_404(get(server, secret, revision=sha, token=other.token), server)


def test_bad_revisions_are_4xx_as_before(server, cold, repos):
    for revision in ("../x", "refs/heads/../../config", "a" * 40, "refs/heads/", "main.lock",
                     "\u00e9t\u00e9", "HEAD", "refs/heads/main/", repos["first"][:7]):
        r = get(server, repos["model"], revision=revision)
        slow = get(cold, repos["model"], revision=revision)
        assert r.status_code == slow.status_code, revision
        assert r.content == slow.content, revision
        if revision != repos["first"][:7]:  # a unique prefix of a commit id names it
            assert 400 <= r.status_code < 500, (revision, r.status_code, r.text)
