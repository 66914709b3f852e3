"""Limits: per-token and anonymous rate limits (429 + Retry-After) and request body caps (413).

Each test starts its own server with small limits; the session server keeps the defaults,
which the rest of the suite must never reach.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from huggingface_hub import HfApi, constants, hf_hub_download

MB = 1024 * 1024


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def assert_error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["X-Error-Code"] == code, r.headers
    assert r.headers.get("X-Error-Message"), r.headers
    assert r.json()["error"] == r.headers["X-Error-Message"]


def assert_rate_limited(r: httpx.Response, resource: str, limit: int) -> int:
    """A 429 with the Hub's error headers and a usable Retry-After; returns the wait."""
    assert_error(r, 429, "TooManyRequests")
    wait = int(r.headers["Retry-After"])
    assert 1 <= wait <= 60, wait
    assert r.headers["RateLimit"] == f'"{resource}";r=0;t={wait}'
    assert f"q={limit};w=60" in r.headers["RateLimit-Policy"]
    return wait


def server_log(srv: Any) -> str:
    log: Path = srv.data.parent / f"server-{srv.port}.log"
    return log.read_text(errors="replace") if log.exists() else ""


def whoami(srv: Any, headers: dict[str, str]) -> httpx.Response:
    return httpx.get(f"{srv.endpoint}/api/whoami-v2", headers=headers)


# -- rate limits --------------------------------------------------------------------------


def test_rate_limit_per_token_and_anonymous(server_factory: Callable[..., Any]) -> None:
    srv = server_factory(rate_limit="5", rate_limit_anonymous="3")
    name, token, _ = srv.new_user_api("rl")
    second = srv.hver("token", "create", name)
    other_name, other_token, _ = srv.new_user_api("rl-other")

    for _ in range(5):
        r = whoami(srv, auth(token))
        assert r.status_code == 200 and r.json()["name"] == name
    assert_rate_limited(whoami(srv, auth(token)), "api", 5)
    # git sends the token as a Basic password: the same token, the same budget.
    basic = base64.b64encode(f"git:{token}".encode()).decode()
    assert_rate_limited(whoami(srv, {"authorization": f"Basic {basic}"}), "api", 5)

    # Other tokens, of the same user or another, have budgets of their own.
    r = whoami(srv, auth(second))
    assert r.status_code == 200 and r.json()["name"] == name
    r = whoami(srv, auth(other_token))
    assert r.status_code == 200 and r.json()["name"] == other_name

    # Anonymous requests share the client address's stricter budget...
    for _ in range(3):
        r = httpx.get(f"{srv.endpoint}/api/models")
        assert r.status_code == 200 and isinstance(r.json(), list)
    assert_rate_limited(httpx.get(f"{srv.endpoint}/api/models"), "anonymous", 3)
    # ...which tokens from the same address do not touch,
    r = httpx.get(f"{srv.endpoint}/api/models", headers=auth(second))
    assert r.status_code == 200 and isinstance(r.json(), list)
    # and the health check is never limited.
    for _ in range(5):
        r = httpx.get(f"{srv.endpoint}/api/health")
        assert r.status_code == 200 and r.json()["status"] == "ok"
    assert "Traceback" not in server_log(srv)


def test_exempt_users_tokens_are_not_limited(server_factory: Callable[..., Any]) -> None:
    """`rate_limit_exempt` (a benchmark's user): its accepted tokens have no limit; every
    other token keeps its budget; a revoked one is refused as before."""
    srv = server_factory(rate_limit="3", rate_limit_anonymous="3",
                         rate_limit_exempt=" Bench , ci")
    srv.hver("user", "create", "bench")
    token = srv.hver("token", "create", "bench", "--name", "load")
    _, limited, _ = srv.new_user_api("rl-limited")
    for _ in range(20):
        assert whoami(srv, auth(token)).status_code == 200
    for _ in range(3):
        assert whoami(srv, auth(limited)).status_code == 200
    assert_rate_limited(whoami(srv, auth(limited)), "api", 3)
    srv.hver("token", "revoke", "bench", "load")
    assert whoami(srv, auth(token)).status_code == 401


def test_cas_calls_count_against_the_account(server_factory: Callable[..., Any]) -> None:
    """A fresh CAS token buys no fresh budget: CAS calls count per account."""
    srv = server_factory(rate_limit="4")
    name, token, api = srv.new_user_api("cas")
    repo_id = f"{name}/cas"
    api.create_repo(repo_id)

    def cas_token(kind: str) -> tuple[str, str]:
        r = httpx.get(f"{srv.endpoint}/api/models/{repo_id}/xet-{kind}-token/main",
                      headers=auth(token))
        assert r.status_code == 200, r.text
        return r.json()["casUrl"], r.json()["accessToken"]

    cas_url, cas = cas_token("write")
    chunk = f"{cas_url}/v1/chunks/default/{'0' * 64}"
    for _ in range(4):
        assert_error(httpx.get(chunk, headers=auth(cas)), 404, "EntryNotFound")
    assert_rate_limited(httpx.get(chunk, headers=auth(cas)), "api", 4)
    _, fresh = cas_token("read")  # the hub token's own budget still has room
    assert fresh != cas
    assert_rate_limited(httpx.get(chunk, headers=auth(fresh)), "api", 4)
    # Another account's CAS calls are unaffected.
    other_name, other_token, other_api = srv.new_user_api("cas-other")
    other_api.create_repo(f"{other_name}/cas")
    r = httpx.get(f"{srv.endpoint}/api/models/{other_name}/cas/xet-write-token/main",
                  headers=auth(other_token))
    other_chunk = f"{r.json()['casUrl']}/v1/chunks/default/{'0' * 64}"
    r = httpx.get(other_chunk, headers=auth(r.json()["accessToken"]))
    assert_error(r, 404, "EntryNotFound")


@pytest.fixture
def no_xet(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[bool], None]]:
    def use_lfs(on: bool) -> None:
        monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", on)

    yield use_lfs


def test_signed_urls_are_not_rate_limited(server_factory: Callable[..., Any],
                                          no_xet: Callable[[bool], None]) -> None:
    srv = server_factory(rate_limit_anonymous="2")
    name, token, api = srv.new_user_api("signed")
    repo_id = f"{name}/signed"
    api.create_repo(repo_id)
    data = os.urandom(2 * MB)
    no_xet(True)
    api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=repo_id)
    r = httpx.get(f"{srv.endpoint}/{repo_id}/resolve/main/w.bin", headers=auth(token))
    assert r.status_code in (302, 307), r.text
    signed = r.headers["location"]
    assert "/_lfs/objects/" in signed

    while (r := httpx.get(f"{srv.endpoint}/api/models")).status_code == 200:
        pass
    assert_rate_limited(r, "anonymous", 2)
    for _ in range(4):  # no token, same address: still served
        got = httpx.get(signed)
        assert got.status_code == 200 and got.content == data


# -- request bodies -----------------------------------------------------------------------


def ndjson(*lines: dict[str, Any]) -> bytes:
    return b"\n".join(json.dumps(line).encode() for line in lines) + b"\n"


def header(summary: str = "test", description: str = "") -> dict[str, Any]:
    return {"key": "header", "value": {"summary": summary, "description": description}}


def file_line(path: str, content: bytes) -> dict[str, Any]:
    return {"key": "file", "value": {"path": path, "content": base64.b64encode(content).decode(),
                                      "encoding": "base64"}}


def chunks(body: bytes, size: int = 256) -> Iterator[bytes]:
    """A body sent without Content-Length (chunked): only counting can catch it."""
    for i in range(0, len(body), size):
        yield body[i:i + size]


def commits(api: HfApi, repo_id: str) -> list[str]:
    return [c.commit_id for c in api.list_repo_commits(repo_id)]


def test_body_limits(server_factory: Callable[..., Any], no_xet: Callable[[bool], None],
                     tmp_path: Path) -> None:
    srv = server_factory(max_request_body="1000", max_inline_file_size="1000",
                         max_commit_body="6000", max_commit_files="2")
    name, token, api = srv.new_user_api("body")
    repo_id = f"{name}/limits"
    api.create_repo(repo_id)
    create = f"{srv.endpoint}/api/repos/create"

    # A JSON body over max_request_body: refused by its Content-Length, or while counted.
    big = json.dumps({"name": "too-big", "organization": None, "pad": "x" * 2000}).encode()
    headers = {**auth(token), "content-type": "application/json"}
    assert_error(httpx.post(create, content=big, headers=headers), 413, "PayloadTooLarge")
    assert_error(httpx.post(create, content=chunks(big), headers=headers), 413,
                 "PayloadTooLarge")
    batch = f"{srv.endpoint}/{repo_id}.git/info/lfs/objects/batch"
    lfs_body = json.dumps({"operation": "upload", "objects": [
        {"oid": hashlib.sha256(str(n).encode()).hexdigest(), "size": 1} for n in range(20)]})
    assert_error(httpx.post(batch, content=chunks(lfs_body.encode()), headers=headers), 413,
                 "PayloadTooLarge")
    assert "too-big" not in [m.id.split("/")[-1] for m in api.list_models(author=name)]
    # Just under the limit is fine.
    small = json.dumps({"name": "small", "pad": "x" * 900}).encode()
    assert len(small) <= 1000
    r = httpx.post(create, content=chunks(small), headers=headers)
    assert r.status_code == 200, r.text
    assert api.repo_info(f"{name}/small").id == f"{name}/small"

    # Commits have their own limits: a body over max_request_body is accepted...
    url = f"{srv.endpoint}/api/models/{repo_id}/commit/main"
    nd = {**auth(token), "content-type": "application/x-ndjson"}
    body = ndjson(header(), file_line("a.txt", b"a" * 900))
    assert len(body) > 1000
    r = httpx.post(url, content=chunks(body), headers=nd)
    assert r.status_code == 200, r.text
    assert commits(api, repo_id)[0] == r.json()["commitOid"]
    before = commits(api, repo_id)
    # ...max_commit_body is enforced as the body streams...
    r = httpx.post(url, content=chunks(ndjson(header(description="d" * 7000))), headers=nd)
    assert_error(r, 413, "PayloadTooLarge")
    # ...and max_commit_files counts operations.
    three = ndjson(header(), *(file_line(f"{n}.txt", b"x") for n in range(3)))
    assert_error(httpx.post(url, content=three, headers=nd), 413, "PayloadTooLarge")
    assert commits(api, repo_id) == before
    two = ndjson(header(), *(file_line(f"{n}.txt", b"x") for n in range(2)))
    r = httpx.post(url, content=two, headers=nd)
    assert r.status_code == 200, r.text

    # Large files far over max_request_body stream through LFS and Xet unhindered.
    for via_lfs in (True, False):
        no_xet(via_lfs)
        data = os.urandom(3 * MB)
        path = f"{'lfs' if via_lfs else 'xet'}-{uuid.uuid4().hex[:6]}.bin"
        api.upload_file(path_or_fileobj=data, path_in_repo=path, repo_id=repo_id)
        (entry,) = api.get_paths_info(repo_id, [path])
        assert entry.lfs is not None and entry.size == len(data)
        assert (entry.xet_hash is None) == via_lfs
        got = hf_hub_download(repo_id, path, cache_dir=tmp_path / "cache", token=token,
                              endpoint=srv.endpoint)
        assert Path(got).read_bytes() == data
    assert "Traceback" not in server_log(srv)


def test_token_bucket_refills_and_forgets_idle_buckets() -> None:
    from hver.api.limits import RateLimiter

    now = [1000.0]
    limiter = RateLimiter(60, clock=lambda: now[0])  # one request a second, bursts of 60
    assert [limiter.take(b"a") for _ in range(60)] == [0.0] * 60
    assert limiter.take(b"a") == pytest.approx(1.0)
    assert limiter.take(b"b") == 0.0  # another key, its own budget
    now[0] += 2.5
    assert [limiter.take(b"a") for _ in range(2)] == [0.0, 0.0]
    assert limiter.take(b"a") == pytest.approx(0.5)
    now[0] += 120  # both refilled: the next sweep drops them
    assert limiter.take(b"c") == 0.0
    assert set(limiter.buckets) == {b"c"}
    assert RateLimiter(0).take(b"a") == 0.0  # 0: no limit
