"""Who may do what: every actor × repo × endpoint family, as one explicit table.

All repos belong to one org, so org roles matter. The expectations follow the Hub's
rules as docs/security.md states them for hver:

- a repo the request may not read answers as a missing one: 404 `RepoNotFound`, with
  the same status, code and message as a repo that does not exist;
- a gated repo's info and listing are public, its files (and Xet read tokens) need an
  accepted request: 401 `GatedRepo` anonymously, 403 `GatedRepo` logged in; the
  namespace (owner, org members) and site admins always have access;
- read tokens never write (403); org readers read but do not write (403); org writers
  write but do not configure or delete (403); org admins and site admins do all;
- a fine-grained token reaches only what its scopes name; outside them its user is
  treated as having no access: private repos are missing, public ones read-only, and a
  gated repo's files are as closed as to any outsider.

Each cell is its own test case, named `ACTOR/REPO/FAMILY` (e.g. `org-reader/private/write`).
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from dataclasses import dataclass

import httpx
import pytest
from huggingface_hub import CommitOperationAdd, HfApi, constants

pytestmark = pytest.mark.usefixtures("no_server_errors")

CONFIG = b'{"model_type": "authz-matrix"}\n'
WEIGHTS = os.urandom(48 * 1024)  # a plain LFS object
XET_WEIGHTS = os.urandom(96 * 1024)  # stored through Xet
README = b"---\nlicense: other\n---\n# authz matrix\n"


@dataclass(frozen=True)
class Expect:
    status: int
    code: str | None = None  # X-Error-Code
    listed: bool | None = None  # for the `list` family: does the repo appear?


OK = Expect(200)
SEEN = Expect(200, listed=True)  # list: the repo appears under ?author=ORG
HIDDEN = Expect(200, listed=False)  # list: it does not
AUTH = Expect(401, "Unauthorized")  # anonymous where a login is needed
DENY = Expect(403, "Forbidden")  # may read, may not do this
NF = Expect(404, "RepoNotFound")  # may not read: the repo does not exist for them
G401 = Expect(401, "GatedRepo")  # gated files, anonymously
G403 = Expect(403, "GatedRepo")  # gated files, logged in without access

ACTORS = ("anonymous", "owner-read", "owner-write", "owner-fg-other", "other",
          "org-reader", "org-writer", "org-admin", "site-admin")
REPOS = ("public", "private", "gated")
FAMILIES = ("metadata", "file-config", "file-lfs", "file-xet", "list", "write", "settings",
            "delete", "xet-read-token", "xet-write-token")

# fmt: off
# ACTOR: {REPO: expectations, in FAMILIES order}
#                 metadata config lfs   xet   list    write settings delete xet-r xet-w
TABLE: dict[str, dict[str, tuple[Expect, ...]]] = {
    "anonymous": {
        "public":  (OK,     OK,    OK,   OK,   SEEN,   AUTH, AUTH,    AUTH,  OK,   AUTH),
        "private": (NF,     NF,    NF,   NF,   HIDDEN, NF,   NF,      AUTH,  NF,   NF),
        "gated":   (OK,     G401,  G401, G401, SEEN,   AUTH, AUTH,    AUTH,  G401, AUTH),
    },
    "owner-read": {
        "public":  (OK,     OK,    OK,   OK,   SEEN,   DENY, DENY,    DENY,  OK,   DENY),
        "private": (OK,     OK,    OK,   OK,   SEEN,   DENY, DENY,    DENY,  OK,   DENY),
        "gated":   (OK,     OK,    OK,   OK,   SEEN,   DENY, DENY,    DENY,  OK,   DENY),
    },
    "owner-write": {
        "public":  (OK,     OK,    OK,   OK,   SEEN,   OK,   OK,      OK,    OK,   OK),
        "private": (OK,     OK,    OK,   OK,   SEEN,   OK,   OK,      OK,    OK,   OK),
        "gated":   (OK,     OK,    OK,   OK,   SEEN,   OK,   OK,      OK,    OK,   OK),
    },
    "owner-fg-other": {
        "public":  (OK,     OK,    OK,   OK,   SEEN,   DENY, DENY,    DENY,  OK,   DENY),
        "private": (NF,     NF,    NF,   NF,   HIDDEN, NF,   NF,      NF,    NF,   NF),
        "gated":   (OK,     G403,  G403, G403, SEEN,   DENY, DENY,    DENY,  G403, DENY),
    },
    # Readers with a write token may upload content for a pull request (xet-w), and on a
    # gated repo only with access to its files; no commit of theirs moves a branch.
    "other": {
        "public":  (OK,     OK,    OK,   OK,   SEEN,   DENY, DENY,    DENY,  OK,   OK),
        "private": (NF,     NF,    NF,   NF,   HIDDEN, NF,   NF,      NF,    NF,   NF),
        "gated":   (OK,     G403,  G403, G403, SEEN,   DENY, DENY,    DENY,  G403, G403),
    },
    "org-reader": {
        "public":  (OK,     OK,    OK,   OK,   SEEN,   DENY, DENY,    DENY,  OK,   OK),
        "private": (OK,     OK,    OK,   OK,   SEEN,   DENY, DENY,    DENY,  OK,   OK),
        "gated":   (OK,     OK,    OK,   OK,   SEEN,   DENY, DENY,    DENY,  OK,   OK),
    },
    "org-writer": {
        "public":  (OK,     OK,    OK,   OK,   SEEN,   OK,   DENY,    DENY,  OK,   OK),
        "private": (OK,     OK,    OK,   OK,   SEEN,   OK,   DENY,    DENY,  OK,   OK),
        "gated":   (OK,     OK,    OK,   OK,   SEEN,   OK,   DENY,    DENY,  OK,   OK),
    },
    "org-admin": {
        "public":  (OK,     OK,    OK,   OK,   SEEN,   OK,   OK,      OK,    OK,   OK),
        "private": (OK,     OK,    OK,   OK,   SEEN,   OK,   OK,      OK,    OK,   OK),
        "gated":   (OK,     OK,    OK,   OK,   SEEN,   OK,   OK,      OK,    OK,   OK),
    },
    "site-admin": {
        "public":  (OK,     OK,    OK,   OK,   SEEN,   OK,   OK,      OK,    OK,   OK),
        "private": (OK,     OK,    OK,   OK,   SEEN,   OK,   OK,      OK,    OK,   OK),
        "gated":   (OK,     OK,    OK,   OK,   SEEN,   OK,   OK,      OK,    OK,   OK),
    },
}
# fmt: on

EXPECTED: dict[tuple[str, str, str], Expect] = {
    (actor, repo, family): expect
    for actor, rows in TABLE.items()
    for repo, row in rows.items()
    for family, expect in zip(FAMILIES, row, strict=True)
}
CELLS = 270  # 9 actors × 3 repos × 10 endpoint families


@dataclass
class World:
    endpoint: str
    org: str
    tokens: dict[str, str | None]  # actor -> bearer token
    repos: dict[str, str]  # "public" / "private" / "gated" -> repo id
    scoped: str  # the one repo the fine-grained token names
    owner_token: str


@pytest.fixture(scope="module")
def world(server, user_factory) -> World:  # type: ignore[no-untyped-def]
    """One org with its members, a site admin, an outsider, and the three repos."""
    owner = user_factory("owner")
    org = f"authz-{uuid.uuid4().hex[:8]}"
    server.hver("org", "create", org, "--owner", owner.name)
    tokens: dict[str, str | None] = {
        "anonymous": None, "owner-read": owner.read_token, "owner-write": owner.token,
    }
    for actor, role in (("org-reader", "read"), ("org-writer", "write"),
                        ("org-admin", "admin")):
        name = f"{actor}-{uuid.uuid4().hex[:6]}"
        _, tokens[actor] = server.hver("user", "create", name, "--token", "write").splitlines()
        server.hver("org", "add-member", org, name, "--role", role)
    other = f"other-{uuid.uuid4().hex[:6]}"
    _, tokens["other"] = server.hver("user", "create", other, "--token", "write").splitlines()
    site_admin = f"site-admin-{uuid.uuid4().hex[:6]}"
    _, tokens["site-admin"] = server.hver("user", "create", site_admin, "--admin",
                                          "--token", "write").splitlines()

    api = HfApi(endpoint=server.endpoint, token=owner.token)
    scoped = f"{org}/elsewhere"
    api.create_repo(scoped, private=True)
    tokens["owner-fg-other"] = server.hver("token", "create", owner.name, "--fine-grained",
                                           "--repo", f"{scoped}:read,write")
    repos = {}
    for kind in REPOS:
        repo_id = f"{org}/{kind}-{uuid.uuid4().hex[:6]}"
        api.create_repo(repo_id, private=kind == "private")
        with pytest.MonkeyPatch.context() as mp:  # weights.bin as a plain LFS object
            mp.setattr(constants, "HF_HUB_DISABLE_XET", True)
            api.create_commit(repo_id, commit_message="files", operations=[
                CommitOperationAdd("README.md", README),
                CommitOperationAdd("config.json", CONFIG),
                CommitOperationAdd("weights.bin", WEIGHTS),
            ])
        api.upload_file(path_or_fileobj=XET_WEIGHTS, path_in_repo="model.safetensors",
                        repo_id=repo_id, commit_message="xet weights")
        if kind == "gated":
            api.update_repo_settings(repo_id, gated="manual")  # and nobody is accepted
        repos[kind] = repo_id
    assert set(tokens) == set(ACTORS)
    return World(server.endpoint, org, tokens, repos, scoped, owner.token)


def _headers(token: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"} if token else {}


FILES = {"file-config": ("config.json", CONFIG), "file-lfs": ("weights.bin", WEIGHTS),
         "file-xet": ("model.safetensors", XET_WEIGHTS)}
SETTINGS = {"public": {"private": False}, "private": {"private": True},
            "gated": {"gated": "manual"}}  # each leaves the repo as it is


def _commit_body(path: str) -> bytes:
    lines = [
        {"key": "header", "value": {"summary": f"add {path}", "description": ""}},
        {"key": "file", "value": {"path": path, "encoding": "base64",
                                  "content": base64.b64encode(b"matrix\n").decode()}},
    ]
    return "\n".join(json.dumps(x) for x in lines).encode()


def _throwaway(w: World, kind: str) -> str:
    """A fresh repo of the org, private or gated like `kind`, for one delete cell."""
    repo_id = f"{w.org}/del-{kind}-{uuid.uuid4().hex[:8]}"
    owner = _headers(w.owner_token)
    r = httpx.post(f"{w.endpoint}/api/repos/create", headers=owner, json={
        "name": repo_id.split("/")[1], "organization": w.org, "type": "model",
        "private": kind == "private"})
    assert r.status_code == 200, r.text
    if kind == "gated":
        r = httpx.put(f"{w.endpoint}/api/models/{repo_id}/settings", headers=owner,
                      json={"gated": "manual"})
        assert r.status_code == 200, r.text
    return repo_id


def call(w: World, actor: str, family: str, repo_id: str, kind: str) -> httpx.Response:
    """One request of an endpoint family on `repo_id`, as `actor`."""
    base, headers = w.endpoint, _headers(w.tokens[actor])
    if family == "metadata":
        return httpx.get(f"{base}/api/models/{repo_id}", headers=headers)
    if family in FILES:
        return httpx.get(f"{base}/{repo_id}/resolve/main/{FILES[family][0]}", headers=headers,
                         follow_redirects=True)
    if family == "list":
        return httpx.get(f"{base}/api/models", params={"author": w.org}, headers=headers)
    if family == "write":
        return httpx.post(f"{base}/api/models/{repo_id}/commit/main",
                          content=_commit_body(f"matrix/{actor}-{uuid.uuid4().hex[:6]}.txt"),
                          headers=headers | {"content-type": "application/x-ndjson"})
    if family == "settings":
        return httpx.put(f"{base}/api/models/{repo_id}/settings", headers=headers,
                         json=SETTINGS[kind])
    if family == "delete":
        ns, name = repo_id.split("/")
        return httpx.request("DELETE", f"{base}/api/repos/delete", headers=headers,
                             json={"name": name, "organization": ns, "type": "model"})
    if family in ("xet-read-token", "xet-write-token"):
        kind_of_token = family.split("-")[1]
        return httpx.get(f"{base}/api/models/{repo_id}/xet-{kind_of_token}-token/main",
                         headers=headers)
    raise AssertionError(family)


def _exists(w: World, repo_id: str) -> bool:
    r = httpx.get(f"{w.endpoint}/api/models/{repo_id}", headers=_headers(w.owner_token))
    assert r.status_code in (200, 404), r.text
    return r.status_code == 200


def _signature(r: httpx.Response) -> tuple[int, str | None, str | None]:
    return r.status_code, r.headers.get("x-error-code"), r.headers.get("x-error-message")


@pytest.mark.parametrize(
    ("actor", "kind", "family"),
    [pytest.param(a, k, f, id=f"{a}/{k}/{f}") for (a, k, f) in EXPECTED],
)
def test_cell(world: World, actor: str, kind: str, family: str) -> None:
    expect = EXPECTED[(actor, kind, family)]
    repo_id = _throwaway(world, kind) if family == "delete" else world.repos[kind]
    r = call(world, actor, family, repo_id, kind)
    body = r.text[:300] if "json" in r.headers.get("content-type", "") else f"{len(r.content)} B"
    got = f"{r.status_code} {r.headers.get('x-error-code')}: {body}"
    assert r.status_code == expect.status, got
    if expect.code is not None:
        assert r.headers.get("x-error-code") == expect.code, got

    if r.status_code == 200:  # what was allowed really happened
        if family == "metadata":
            assert r.json()["id"] == repo_id
        elif family in FILES:
            assert r.content == FILES[family][1]
        elif family == "list":
            ids = {m["id"] for m in r.json()}
            assert (repo_id in ids) is expect.listed, sorted(ids)
        elif family == "settings":
            assert r.json() == {"private": kind == "private",
                                "gated": "manual" if kind == "gated" else False}
        elif family in ("xet-read-token", "xet-write-token"):
            assert r.json()["accessToken"] and r.json()["casUrl"]
    if family == "delete":  # gone exactly when allowed; tidy up the rest
        assert _exists(world, repo_id) is (r.status_code != 200)
        if r.status_code != 200:
            owner = _headers(world.owner_token)
            ns, name = repo_id.split("/")
            httpx.request("DELETE", f"{world.endpoint}/api/repos/delete", headers=owner,
                          json={"name": name, "organization": ns, "type": "model"})

    # A private repo refused to someone who may not read it looks exactly like a missing one.
    if kind == "private" and expect in (NF, AUTH):
        missing = f"{world.org}/missing-{uuid.uuid4().hex[:8]}"
        twin = call(world, actor, family, missing, kind)
        assert _signature(twin) == _signature(r)


def test_fine_grained_token_reaches_its_scope(world: World) -> None:
    """The scoped token works where it points, so its refusals above are about scope."""
    headers = _headers(world.tokens["owner-fg-other"])
    r = httpx.get(f"{world.endpoint}/api/models/{world.scoped}", headers=headers)
    assert r.status_code == 200, r.text
    r = httpx.post(f"{world.endpoint}/api/models/{world.scoped}/commit/main",
                   content=_commit_body("scoped.txt"),
                   headers=headers | {"content-type": "application/x-ndjson"})
    assert r.status_code == 200, r.text


def test_matrix_size() -> None:
    assert len(ACTORS) * len(REPOS) * len(FAMILIES) == CELLS
    assert len(EXPECTED) == CELLS
    assert list(TABLE) == list(ACTORS)
    assert all(list(rows) == list(REPOS) for rows in TABLE.values())
