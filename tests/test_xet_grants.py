"""Xorb upload grants, as hf_xet 1.8.0 uses them (`hver.core.xet_grants`).

The real client uploads every xorb through a grant (ask, PUT the bytes to the grant's
URL without CAS credentials, commit); the attacks show that the PUT only stages bytes,
bound to one xorb, length, repo and account until the grant expires, and that only the
commit by that repo's and account's write token turns them into a xorb, after the same
checks as `POST /v1/xorbs`.
"""

from __future__ import annotations

import hashlib
import random
import re
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import hf_xet
import httpx
import pytest
from huggingface_hub import HfApi, constants, hf_hub_download
from xetkit import Cas, make_file, shard_for

from hver.xet.hashing import hex_hash

MB = 1024 * 1024
pytestmark = pytest.mark.usefixtures("no_server_errors")
CHECKSUM = {"algo": "crc64nvme", "value": "12345"}  # the local store does not check it


@pytest.fixture(autouse=True)
def xet_client(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", False)
    monkeypatch.setenv("HF_XET_CACHE", str(tmp_path / "xet-cache"))


def grant(cas: Cas, xorb: bytes, length: int) -> httpx.Response:
    return cas.call("POST", f"/v1/xorb-grants/default/{hex_hash(xorb)}",
                    f'{{"length": {length}, "checksum": {{"algo": "crc64nvme", '
                    f'"value": "{CHECKSUM["value"]}"}}}}'.encode(),
                    headers={"Content-Type": "application/json"})


def put(g: dict[str, Any], body: bytes, url: str | None = None) -> httpx.Response:
    """The upload as the client sends it: the grant's method and headers, no CAS token."""
    return httpx.request(g["method"], url or g["url"], content=body, headers=g["headers"],
                         timeout=60)


def commit(cas: Cas, xorb: bytes, grant_id: str) -> httpx.Response:
    return cas.call("POST", f"/v1/xorb-commits/default/{hex_hash(xorb)}/grant/{grant_id}")


def staged(server: Any) -> list[Path]:
    return sorted((server.data / "tmp").glob("direct-*"))


def stored(server: Any, xorb: bytes) -> Path:
    h = hex_hash(xorb)
    return server.data / "blobs" / "xet" / "xorbs" / h[:2] / h


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query)) | changes
    return parts._replace(query=urlencode(query)).geturl()


# -- the real client ----------------------------------------------------------------------------


@pytest.fixture
def logged_server(unstarted_server: Callable[..., Any], tmp_path: Path) -> Iterator[Any]:
    """A server of its own that logs every request (the session server logs warnings)."""
    srv = unstarted_server(tmp_path / "data", rate_limit_anonymous="0")
    srv.env["HVER_LOG_LEVEL"] = "info"
    srv.data.mkdir(parents=True)
    srv.start()
    yield srv
    srv.stop()


def requests_in_log(srv: Any) -> list[tuple[str, str, int]]:
    text = (srv.data.parent / f"server-{srv.port}.log").read_text(errors="replace")
    return [(m[1], m[2], int(m[3])) for m in
            re.finditer(r'"([A-Z]+) (\S+) HTTP/[\d.]+" (\d{3})', text)]


def test_the_client_uploads_every_xorb_through_a_grant(logged_server: Any,
                                                       tmp_path: Path) -> None:
    name, token, api = logged_server.new_user_api("grants")
    repo = f"{name}/big"
    api.create_repo(repo)
    src = tmp_path / "big.bin"
    rng = random.Random(130)
    src.write_bytes(b"".join(rng.randbytes(10 * MB) for _ in range(13)))  # 3 xorbs
    api.upload_file(path_or_fileobj=str(src), path_in_repo="big.bin", repo_id=repo)

    seen = requests_in_log(logged_server)
    cas = [(m, p.split("?")[0], s) for m, p, s in seen if p.startswith("/xet/")]
    grants = [c for c in cas if "/v1/xorb-grants/default/" in c[1]]
    puts = [c for c in cas if c[0] == "PUT" and "/uploads/" in c[1]]
    commits = [c for c in cas if "/v1/xorb-commits/default/" in c[1]]
    assert len(grants) >= 3 and {s for *_, s in grants} == {201}, cas
    assert len(puts) == len(grants) and {s for *_, s in puts} == {200}, cas
    assert len(commits) == len(grants) and {s for *_, s in commits} == {200}, cas
    assert not [c for c in cas if "/v1/xorbs/" in c[1]], "fell back to POST /v1/xorbs"
    assert [s for m, p, s in cas if m == "POST" and p.endswith("/v2/shards")] == [200], cas
    assert not [c for c in cas if c[1].endswith("/v1/shards")], "fell back to v1 shards"
    assert not staged(logged_server)

    got = hf_hub_download(repo, "big.bin", cache_dir=tmp_path / "c", token=token,
                          endpoint=logged_server.endpoint)
    assert hashlib.sha256(Path(got).read_bytes()).digest() == \
        hashlib.sha256(src.read_bytes()).digest()
    (entry,) = api.get_paths_info(repo, ["big.bin"])
    assert entry.xet_hash == hf_xet.hash_files([str(src)])[0].hash


# -- the flow by hand ---------------------------------------------------------------------------


def test_grant_put_commit(server: Any, api: HfApi, repo_factory: Callable[..., str]) -> None:
    repo = repo_factory()
    cas = Cas(server.endpoint, repo, api.token, "write")
    body, xorb, index, chunks = make_file(101)

    r = grant(cas, xorb, len(body))
    assert r.status_code == 201, r.text
    g = r.json()
    assert set(g) == {"id", "method", "url", "headers"} and g["method"] == "PUT"
    assert isinstance(g["headers"], dict)
    assert "Authorization" not in g["headers"] and cas.token not in g["url"]
    assert put(g, body).status_code == 200
    assert staged(server) and not stored(server, xorb).exists()  # staged, not a xorb yet
    r = commit(cas, xorb, g["id"])
    assert r.status_code == 200 and r.json() == {"was_inserted": True}, r.text
    assert stored(server, xorb).read_bytes() == body
    assert not staged(server)
    # A retried commit, and a new grant, find it stored for this account.
    r = commit(cas, xorb, g["id"])
    assert r.status_code == 200 and r.json() == {"was_inserted": False}, r.text
    assert grant(cas, xorb, len(body)).status_code == 200
    r = cas.call("POST", "/v1/shards", shard_for(xorb, index, chunks))
    assert r.status_code == 200, r.text


def test_a_repeated_grant_replaces_what_was_staged(server: Any, api: HfApi,
                                                   repo_factory: Callable[..., str]) -> None:
    repo = repo_factory()
    cas = Cas(server.endpoint, repo, api.token, "write")
    body, xorb, *_ = make_file(102)
    first = grant(cas, xorb, len(body)).json()
    second = grant(cas, xorb, len(body)).json()
    assert first["id"] != second["id"]
    assert put(first, b"\x00" * len(body)).status_code == 200
    assert put(second, body).status_code == 200
    assert len(staged(server)) == 1
    r = commit(cas, xorb, first["id"])
    assert r.status_code == 200 and r.json() == {"was_inserted": True}, r.text
    assert stored(server, xorb).read_bytes() == body


# -- attacks ------------------------------------------------------------------------------------


def test_grant_urls_take_only_what_they_were_signed_for(
        server: Any, api: HfApi, repo_factory: Callable[..., str],
        server_factory: Callable[..., Any]) -> None:
    repo = repo_factory()
    cas = Cas(server.endpoint, repo, api.token, "write")
    body, xorb, *_ = make_file(103)
    _, other_xorb, *_ = make_file(104)
    g = grant(cas, xorb, len(body)).json()
    q = dict(parse_qsl(urlsplit(g["url"]).query))
    tampered = [
        with_query(g["url"], sig=("0" if q["sig"][0] != "0" else "1") + q["sig"][1:]),
        with_query(g["url"], xorb=hex_hash(other_xorb)),
        with_query(g["url"], len=str(len(body) + 1)),
        with_query(g["url"], exp=str(int(q["exp"]) + 3600)),
        with_query(g["url"], repo=str(int(q["repo"]) + 1)),
        with_query(g["url"], account=str(int(q["account"]) + 1)),
        g["url"].replace(f"/uploads/{g['id']}", f"/uploads/{g['id'][::-1]}"),
        g["url"].split("?")[0],
    ]
    for url in tampered:
        r = put(g, body, url)
        assert r.status_code == 403, (url, r.status_code, r.text)
    # The right URL takes exactly the granted length.
    for wrong in (body[:-1], body + b"x"):
        r = put(g, wrong)
        assert r.status_code == 400, r.text
    assert not staged(server)
    assert commit(cas, xorb, g["id"]).status_code == 404  # nothing uploaded for it

    short = server_factory(signed_url_ttl="1")
    name, token, short_api = short.new_user_api("ttl")
    short_api.create_repo(f"{name}/r")
    short_cas = Cas(short.endpoint, f"{name}/r", token, "write")
    g = grant(short_cas, xorb, len(body)).json()
    time.sleep(2.1)
    r = put(g, body)
    assert r.status_code == 403 and "expired" in r.text, r.text
    assert not staged(short)


def test_staged_bytes_are_checked_at_commit(server: Any, api: HfApi,
                                            repo_factory: Callable[..., str]) -> None:
    repo = repo_factory()
    cas = Cas(server.endpoint, repo, api.token, "write")
    body, xorb, index, chunks = make_file(105)
    cases = [(b"\x07" + body[1:], "InvalidXorb"), (body + b"\0\1", "InvalidXorb"),
             (body[:-10] + b"\0" * 10, "HashMismatch")]
    for bad, code in cases:
        g = grant(cas, xorb, len(bad)).json()
        assert put(g, bad).status_code == 200  # the PUT only stages
        r = commit(cas, xorb, g["id"])
        assert r.status_code == 400 and r.headers["X-Error-Code"] == code, r.text
        assert not stored(server, xorb).exists() and not staged(server)
    # Another xorb's valid bytes, under this xorb's name.
    other_body, *_ = make_file(106)
    g = grant(cas, xorb, len(other_body)).json()
    assert put(g, other_body).status_code == 200
    r = commit(cas, xorb, g["id"])
    assert r.status_code == 400 and r.headers["X-Error-Code"] == "HashMismatch", r.text
    assert not stored(server, xorb).exists() and not staged(server)
    assert not list((server.data / "tmp").glob("upload-*"))
    r = cas.call("POST", "/v1/shards", shard_for(xorb, index, chunks))
    assert r.status_code == 400 and r.headers["X-Error-Code"] == "XorbNotFound", r.text
    assert grant(cas, xorb, len(body)).status_code == 201  # still not this account's


def test_only_the_granted_repo_and_account_commit(
        server: Any, api: HfApi, user: Any, other: Any,
        repo_factory: Callable[..., str]) -> None:
    repo_a, repo_b = repo_factory(), repo_factory()
    cas_a = Cas(server.endpoint, repo_a, user.token, "write")
    body, xorb, index, chunks = make_file(107)
    g = grant(cas_a, xorb, len(body)).json()
    assert put(g, body).status_code == 200

    theirs = f"{other.name}/own-{uuid.uuid4().hex[:6]}"
    HfApi(endpoint=server.endpoint, token=other.token).create_repo(theirs)
    intruders = [Cas(server.endpoint, repo_b, user.token, "write"),  # same account, repo B
                 Cas(server.endpoint, theirs, other.token, "write")]  # another account
    for cas in intruders:
        r = commit(cas, xorb, g["id"])
        assert r.status_code == 404, r.text
    r = commit(Cas(server.endpoint, repo_a, user.token, "read"), xorb, g["id"])
    assert r.status_code == 403, r.text
    # A read token cannot ask for grants either.
    assert grant(Cas(server.endpoint, repo_a, user.token, "read"), xorb,
                 len(body)).status_code == 403
    assert not stored(server, xorb).exists() and len(staged(server)) == 1

    r = commit(cas_a, xorb, g["id"])
    assert r.status_code == 200 and r.json() == {"was_inserted": True}, r.text
    # The xorb is the uploader's to reference, not the other account's.
    r = intruders[1].call("POST", "/v1/shards", shard_for(xorb, index, chunks))
    assert r.status_code == 400 and r.headers["X-Error-Code"] == "XorbNotFound", r.text


def test_bad_grant_requests(server: Any, api: HfApi, repo_factory: Callable[..., str]) -> None:
    cas = Cas(server.endpoint, repo_factory(), api.token, "write")
    _, xorb, *_ = make_file(108)
    path = f"/v1/xorb-grants/default/{hex_hash(xorb)}"
    for body in (b"", b"[]", b'{"length": 0, "checksum": {"algo": "crc64nvme", "value": "1"}}',
                 b'{"length": 10}', b'{"length": 10, "checksum": {"algo": "md5", "value": "1"}}',
                 b'{"length": 10, "checksum": {"algo": "crc64nvme", "value": 7}}',
                 b'{"length": 10, "checksum": {"algo": "crc64nvme", '
                 b'"value": "18446744073709551616"}}',
                 b'{"length": 10, "checksum": {"algo": "crc64nvme", "value": "\xc2\xb2"}}',
                 b'{"length": 10, "checksum": {"algo": "crc64nvme", "value": "'
                 + b"9" * 5000 + b'"}}',
                 b'{"length": ' + b"9" * 5000 + b"}", b"[" * 100_000):
        r = cas.call("POST", path, body)
        assert r.status_code == 400 and r.headers.get("X-Error-Code"), (body, r.text)
    for body in (b'{"length": 999999999, "checksum": {"algo": "crc64nvme", "value": "1"}}',
                 b" " * 300_000):
        r = cas.call("POST", path, body)
        assert r.status_code == 413, r.text
    r = cas.call("POST", "/v1/xorb-grants/default/nothex", b"{}")
    assert r.status_code == 400 and r.headers["X-Error-Code"] == "InvalidHash"
    # Another prefix is "not offered": the client then uploads through /v1/xorbs.
    assert cas.call("POST", f"/v1/xorb-grants/other/{hex_hash(xorb)}", b"{}").status_code == 404
    r = cas.call("POST", f"/v1/xorb-commits/default/{hex_hash(xorb)}/grant/..")
    assert r.status_code == 404
    r = httpx.post(f"{cas.url}{path}", json={"length": 1, "checksum": CHECKSUM})
    assert r.status_code == 401


def test_stale_staged_uploads_are_swept(server_factory: Callable[..., Any]) -> None:
    srv = server_factory(signed_url_ttl="2")
    name, token, api = srv.new_user_api("sweep")
    api.create_repo(f"{name}/r")
    cas = Cas(srv.endpoint, f"{name}/r", token, "write")
    body, xorb, *_ = make_file(109)
    g = grant(cas, xorb, len(body)).json()
    assert put(g, body).status_code == 200
    assert len(staged(srv)) == 1
    time.sleep(2.5)
    # A later commit (of anything) sweeps it; its own commit finds it too old.
    other_body, other_xorb, *_ = make_file(110)
    g2 = grant(cas, other_xorb, len(other_body)).json()
    assert put(g2, other_body).status_code == 200
    assert commit(cas, other_xorb, g2["id"]).status_code == 200
    assert not staged(srv)
    assert commit(cas, xorb, g["id"]).status_code == 404

    # And so does `hver serve` at start.
    g = grant(cas, xorb, len(body)).json()
    assert put(g, body).status_code == 200
    srv.stop()
    time.sleep(2.5)
    srv.start()
    assert not staged(srv)
