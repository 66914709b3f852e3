"""Hostile input, generated: schemathesis over the served OpenAPI schema, hypothesis over
`hver.names`, and random weird paths through the real HTTP API.

Every refusal must be a 4xx carrying X-Error-Code, never a 5xx or a dropped connection;
a refused request writes nothing (another user's repo keeps its commits, refs and
settings) and no path parameter, however encoded, creates a file outside the data dir.

The schemathesis run uses its own server (server_factory): it creates, deletes and moves
repos at random, which must not disturb the session server other tests share.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup

from hver.errors import HverError
from hver.names import (
    RepoType,
    split_repo_id,
    validate_branch,
    validate_folder,
    validate_namespace,
    validate_part,
    validate_path,
)

# Bounded, reproducible generation: no example database, no shrinking of the HTTP runs.
FUZZ_EXAMPLES = 8  # per operation, per variant (which repo it aims at), per auth mode
MIN_FUZZ_REQUESTS = 1500
HTTP_PATH_EXAMPLES = 150  # each sends 4 requests
_FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True, database=None,
    suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate],
)
_NAMES_SETTINGS = settings(max_examples=400, deadline=None, derandomize=True, database=None,
                           suppress_health_check=[HealthCheck.too_slow])

# -- raw HTTP, so that nothing normalises `..` or re-encodes a path on the way out -------


def raw_request(port: int, method: str, target: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int | None, dict[str, str], bytes]:
    """(status, lower-cased headers, body); status None when the server dropped the connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, target, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    except (http.client.HTTPException, ConnectionError) as e:
        return None, {}, repr(e).encode()
    finally:
        conn.close()


def log_tail(server: Any, since: int = 0, limit: int = 4000) -> str:
    log = server.data.parent / f"server-{server.port}.log"
    if not log.exists():
        return ""
    with log.open("rb") as fh:
        fh.seek(since)
        return fh.read().decode("utf-8", "replace")[-limit:]


def log_size(server: Any) -> int:
    log = server.data.parent / f"server-{server.port}.log"
    return log.stat().st_size if log.exists() else 0


def tree_snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, str]:
    """Relative path -> sha256 of content ('<dir>' for directories), skipping `skip` subtrees."""
    out: dict[str, str] = {}
    skip_s = tuple(str(s) for s in skip)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if os.path.join(dirpath, d) not in skip_s]
        for d in dirnames:
            out[os.path.relpath(os.path.join(dirpath, d), root)] = "<dir>"
        for f in filenames:
            full = os.path.join(dirpath, f)
            if full in skip_s:
                continue
            try:
                with open(full, "rb") as fh:
                    out[os.path.relpath(full, root)] = hashlib.sha256(fh.read()).hexdigest()
            except OSError:
                out[os.path.relpath(full, root)] = "<unreadable>"
    return out


# -- hostile segments ---------------------------------------------------------------------

MARKER = f"hverfuzz-{uuid.uuid4().hex[:10]}"
# Raw (already percent-encoded where needed) URL path segments.
HOSTILE_SEGMENTS = [
    "..", "%2e%2e", "%2E%2E", "..%2F..%2F..%2F..", "%2e%2e%2f%2e%2e%2f", "..%2f..%2f..%2fetc",
    "%252e%252e%252f", "%2Fetc%2Fpasswd", "%2F" + MARKER, "%00", "a%00b", "%00..%2F",
    "..%5C..%5C", "%5C", "....%2F%2F", "%c0%ae%c0%ae%c0%af", "%e2%80%a5", "%ff%fe",
    "%01", "%7f", "%0a", "%0d%0aX-Injected:%201", "refs%2Fheads%2F..%2F..%2FHEAD",
    "refs%2F..%2F..%2F..%2F" + MARKER, "..%2F..%2F..%2F..%2F..%2F" + MARKER,
    "%2Ftmp%2F" + MARKER, ".git", "HEAD", "refs%2Fheads%2Fmain.lock", "a%2F.b", "x.lock%2Fy",
    "@%7B0%7D", "~1", "%5B", "n" * 300, "%C3%A9" * 200, "%25", "%2525", "%ZZ", ";", "*",
]


def _hostile_text() -> st.SearchStrategy[str]:
    pieces = st.sampled_from([
        "", ".", "..", "/", "//", "\\", "\x00", "\x01", "\x7f", "\n", " ", "~", "^", ":", "?",
        "*", "[", "@{", ".git", ".lock", "-", "_", "a", "Z9", "é", "\u2025", "\ud800",
        "\u0085", "\u202e", "%2e", "%2F", "refs/", "heads/", "main", "x" * 97,
    ])
    structured = st.lists(pieces, max_size=8).map("".join)
    anything = st.text(st.characters(exclude_categories=()), max_size=120)
    return st.one_of(structured, anything, st.text(max_size=40))


HOSTILE_TEXT = _hostile_text()

# -- part 1 and 2: schemathesis over the whole schema, on a dedicated server --------------


def _victim_state(srv: Any, token: str, repo_id: str) -> dict[str, Any]:
    h = {"authorization": f"Bearer {token}"}
    base = f"{srv.endpoint}/api/models/{repo_id}"
    info = httpx.get(base, headers=h, timeout=30)
    assert info.status_code == 200, info.text
    data = info.json()
    out: dict[str, Any] = {
        "info": {k: data.get(k) for k in ("id", "sha", "private", "gated", "disabled")},
        "siblings": sorted(s["rfilename"] for s in data.get("siblings", [])),
    }
    for branch in ("main", "dev"):
        r = httpx.get(f"{base}/commits/{branch}", headers=h, timeout=30)
        assert r.status_code == 200, r.text
        out[f"commits:{branch}"] = [c["id"] for c in r.json()]
    r = httpx.get(f"{base}/refs", params={"include_prs": "1"}, headers=h, timeout=30)
    assert r.status_code == 200, r.text
    out["refs"] = r.json()
    return out


def _fuzz_operations(schema: Any) -> list[Any]:
    ops = []
    for result in schema.get_all_operations():
        ops.append(result.ok())  # the served schema must be loadable in full
    return ops


def test_schemathesis_no_server_errors_and_no_stray_writes(server_factory, tmp_path):
    t0 = time.monotonic()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "sentinel.txt").write_text("untouched")
    # No rate limits: a 429 would hide what the handler does with the fuzzed request.
    srv = server_factory(rate_limit="0", rate_limit_anonymous="0")
    log_start = log_size(srv)

    victim_name, victim_token, victim_api = srv.new_user_api("bob")
    victim = f"{victim_name}/victim"
    victim_api.create_repo(victim)
    victim_api.upload_file(path_or_fileobj=b"hello", path_in_repo="README.md", repo_id=victim)
    victim_api.upload_file(path_or_fileobj=b"{}", path_in_repo="sub/config.json",
                           repo_id=victim)
    victim_api.create_branch(victim, branch="dev")
    victim_api.create_tag(victim, tag="v1", tag_message="release")
    [victim_git] = [p for p in (srv.data / "repos").glob("*/*.git")]
    attacker_name, attacker_token, attacker_api = srv.new_user_api("alice")
    own = f"{attacker_name}/own"
    attacker_api.create_repo(own)
    attacker_api.upload_file(path_or_fileobj=b"x", path_in_repo="a/b.txt", repo_id=own)

    before_state = _victim_state(srv, victim_token, victim)
    before_git = tree_snapshot(victim_git)
    data_dir = srv.data
    log_file = data_dir.parent / f"server-{srv.port}.log"
    # Everything of this test's tmp dir but the data dir and the server log: the fuzzer's
    # traversals must leave it exactly as it was (the sibling `outside` dir included).
    before_outside = tree_snapshot(tmp_path.parent, skip=(data_dir, log_file))
    instance = (data_dir / "instance.id").read_text().strip()

    schema = schemathesis.openapi.from_url(f"{srv.endpoint}/api/openapi.json")
    ops = _fuzz_operations(schema)
    assert len(ops) >= 40, [op.label for op in ops]

    requests_made = 0
    statuses: dict[int, int] = {}
    failures: dict[str, list[str]] = {}  # kind -> reproductions

    def fail(kind: str, where: str) -> None:
        failures.setdefault(kind, []).append(where)

    auths = {"alice-write": {"Authorization": f"Bearer {attacker_token}"}, "anonymous": {}}

    def variants(op: Any) -> dict[str, dict[str, str]]:
        names = {p.name for p in op.path_parameters}
        out: dict[str, dict[str, str]] = {"generated": {}}
        if {"ns", "name"} <= names:
            for label, repo_id in (("victim", victim), ("own", own)):
                ns, name = repo_id.split("/")
                pinned = {"ns": ns, "name": name}
                if "plural" in names:
                    pinned["plural"] = "models"
                out[label] = pinned
        return out

    def fuzz(op: Any, variant: str, pinned: dict[str, str], label: str,
             headers: dict[str, str]) -> None:
        @_FUZZ_SETTINGS
        @given(case=op.as_strategy(path_parameters=pinned or None))
        def run(case: Any) -> None:
            nonlocal requests_made
            if "{instance}" in op.path:  # a dependency, not a declared parameter
                case.path = op.path.replace("{instance}", f"{instance}.0")
            requests_made += 1
            where = f"[{label}, {variant}] " + case.as_curl_command(
                headers=headers, base_url=srv.endpoint)
            try:
                response = case.call(base_url=srv.endpoint, headers=headers, timeout=60)
            except Exception as e:  # a dropped connection is a server error too
                fail(f"no response ({type(e).__name__}) on {case.method} {op.path}", where)
                return
            statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
            try:
                case.validate_response(response, checks=[not_a_server_error])
            except (Failure, FailureGroup):
                fail(f"{response.status_code} on {case.method} {op.path}", where)
            if (400 <= response.status_code < 500 and case.method.upper() != "HEAD"
                    and not response.headers.get("x-error-code")):
                fail(f"{response.status_code} without X-Error-Code on {case.method} {op.path}",
                     where)

        run()

    for op in ops:
        for variant, pinned in variants(op).items():
            for auth_label, headers in auths.items():
                fuzz(op, variant, pinned, auth_label, headers)

    # Then the hostile segments, aimed at every path parameter of the victim's routes.
    hostile_requests = 0
    vns, vname = victim.split("/")
    onslaught = [
        ("POST", "/api/models/{v}/branch/{x}", b""),
        ("DELETE", "/api/models/{v}/branch/{x}", None),
        ("POST", "/api/models/{v}/tag/{x}", b'{"tag": "t1"}'),
        ("DELETE", "/api/models/{v}/tag/{x}", None),
        ("POST", "/api/models/{v}/commit/{x}", b'{"key":"header","value":{"summary":"x"}}\n'),
        ("PUT", "/api/models/{v}/settings", b'{"private": true}'),
        ("GET", "/{v}/resolve/{x}/README.md", None),
        ("GET", "/{v}/resolve/main/{x}", None),
        ("GET", "/api/models/{v}/tree/main/{x}", None),
        ("GET", "/api/models/{v}/revision/{x}", None),
        ("POST", "/api/models/{x}/{x}/branch/dev", b""),
        ("DELETE", "/api/models/" + vns + "/{x}/branch/dev", None),
    ]
    for seg in HOSTILE_SEGMENTS:
        for method, template, body in onslaught:
            target = template.replace("{v}", victim).replace("{x}", seg)
            for auth_label, headers in auths.items():
                hdrs = {**headers, "Content-Type": "application/json"}
                if "/commit/" in target:
                    hdrs["Content-Type"] = "application/x-ndjson"
                status, resp_headers, text = raw_request(srv.port, method, target, body, hdrs)
                hostile_requests += 1
                where = f"[{auth_label}] {method} {target} body={body!r}"
                if status is None or status >= 500:
                    fail(f"{status} on hostile {method} {template}", f"{where} -> {text[:200]!r}")
                elif status >= 400 and not resp_headers.get("x-error-code"):
                    fail(f"{status} without X-Error-Code on hostile {method} {template}", where)
    # Commits and LFS/preupload paths in bodies, as the attacker on its own repo.
    for seg in HOSTILE_SEGMENTS:
        path = seg.replace("%2F", "/").replace("%00", "\x00") + "/" + MARKER
        ndjson = b"\n".join(json.dumps(line).encode() for line in (
            {"key": "header", "value": {"summary": "x"}},
            {"key": "file", "value": {"path": path, "content": "eA==", "encoding": "base64"}},
        ))
        for target, body, ctype in (
            (f"/api/models/{own}/commit/main", ndjson, "application/x-ndjson"),
            (f"/api/models/{own}/preupload/main",
             json.dumps({"files": [{"path": path, "size": 1, "sample": "eA=="}]}).encode(),
             "application/json"),
            (f"/api/models/{own}/paths-info/main",
             json.dumps({"paths": [path]}).encode(), "application/json"),
        ):
            status, resp_headers, text = raw_request(
                srv.port, "POST", target, body,
                {**auths["alice-write"], "Content-Type": ctype})
            hostile_requests += 1
            if status is None or status >= 500:
                fail(f"{status} on hostile body path, POST {target.split('/')[-2]}",
                     f"POST {target} body={body!r} -> {text[:200]!r}")

    elapsed = time.monotonic() - t0
    print(f"\nschemathesis: {len(ops)} operations, {requests_made} requests; hostile segments: "
          f"{hostile_requests} requests; statuses {dict(sorted(statuses.items()))}; "
          f"{sum(map(len, failures.values()))} failures of {len(failures)} kinds; {elapsed:.1f}s")

    # No writes from rejected requests, no files outside the data dir.
    assert _victim_state(srv, victim_token, victim) == before_state
    assert tree_snapshot(victim_git) == before_git
    assert tree_snapshot(tmp_path.parent, skip=(data_dir, log_file)) == before_outside
    assert (outside / "sentinel.txt").read_text() == "untouched"
    for stray in (Path("/tmp") / MARKER, Path.cwd() / MARKER, data_dir.parent / MARKER,
                  Path("/") / MARKER, data_dir / MARKER):
        assert not stray.exists(), stray
    assert requests_made >= MIN_FUZZ_REQUESTS, requests_made

    assert not failures, (
        "5xx, dropped connections or 4xx without X-Error-Code (kind: count, first request):\n"
        + "\n".join(f"- {kind}: {len(w)}x, e.g. {w[0][:600]}"
                    for kind, w in sorted(failures.items()))
        + "\n--- server log ---\n" + log_tail(srv, log_start)
    )


# -- part 3: hver.names, property-based ---------------------------------------------------


def _assert_clean(value: str) -> None:
    assert not value.startswith("/"), value
    assert ".." not in value.split("/"), value
    assert not any(ord(c) < 0x20 or ord(c) == 0x7F for c in value), value
    assert _is_utf8(value), f"lone surrogate accepted: {value!r}"
    root = Path("/srv/hver-root").resolve()
    joined = Path(root, value).resolve()
    assert joined == root or root in joined.parents, (value, joined)


def _is_utf8(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _accepts(fn: Any, value: Any) -> bool:
    try:
        fn(value)
    except HverError:
        return False
    return True


@_NAMES_SETTINGS
@given(value=HOSTILE_TEXT)
def test_names_parts_and_namespaces(value):
    for fn in (validate_part, validate_namespace):
        if _accepts(fn, value):
            _assert_clean(value)
            assert "/" not in value and "\\" not in value
            assert value.isascii() and len(value) <= 96


@_NAMES_SETTINGS
@given(ns=HOSTILE_TEXT, name=HOSTILE_TEXT)
def test_names_repo_ids(ns, name):
    repo_id = f"{ns}/{name}"
    try:
        got = split_repo_id(repo_id)
    except HverError:
        return
    assert got == (ns, name)
    _assert_clean(repo_id)
    assert Path("/srv/hver-root", ns, name).resolve().parent == Path("/srv/hver-root", ns)


@_NAMES_SETTINGS
@given(value=HOSTILE_TEXT)
def test_names_repo_types(value):
    try:
        got = RepoType.parse(value)
    except HverError:
        return
    assert isinstance(got, RepoType)


@_NAMES_SETTINGS
@given(value=HOSTILE_TEXT)
def test_names_in_repo_paths(value):
    for fn in (validate_path, validate_folder):
        try:
            got = fn(value)
        except HverError:
            continue
        _assert_clean(got)
        # A backslash may be part of a name, never a way out on a Windows checkout.
        pieces = re.split(r"[/\\]", got)
        assert got and ".git" not in pieces and ".." not in pieces and "" not in pieces
        assert len(got.encode("utf-8")) <= 4096


@_NAMES_SETTINGS
@given(value=HOSTILE_TEXT)
def test_names_branches(value):
    if _accepts(validate_branch, value):
        _assert_clean(value)
        _assert_clean("refs/heads/" + value)


@_NAMES_SETTINGS
@given(value=HOSTILE_TEXT)
def test_accepted_branch_names_are_valid_git_refs(value):
    """What validate_branch lets through, the git store must accept: else a 500 on create."""
    from dulwich.refs import check_ref_format

    if not _accepts(validate_branch, value):
        return
    assert _is_utf8(value), f"lone surrogate accepted: {value!r}"
    assert check_ref_format(b"refs/heads/" + value.encode()), f"git refuses {value!r}"


# -- part 3: random weird paths through the real HTTP API ---------------------------------

_URL_PIECES = st.sampled_from([
    "..", ".", "%2e%2e", "%2E%2e", "%2f", "%2F", "%252F", "%5c", "%00", "%01", "%7f", "%0a",
    "%ff", "%c0%ae", "%e2%80%ae", "%C3%A9", "%", "%%", "%zz", "%2", "~", "@", ";", ",", "=",
    "&", "*", "'", ".git", "HEAD", "README.md", "sub", "a", "main", "refs", "heads", "-",
    "x" * 255, "y" * 2000,
])
_URL_SEGMENT = st.one_of(
    st.lists(_URL_PIECES, min_size=1, max_size=5).map("".join),
    st.text(max_size=30).map(lambda s: quote(s, safe="")),
    st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="#?/"),
            max_size=20),
)
_URL_PATH = st.lists(_URL_SEGMENT, min_size=1, max_size=6).map("/".join)


@pytest.fixture(scope="module")
def weird_target(server, user_factory):
    """A public repo on the session server, with a file in a folder, owned by its own user."""
    from huggingface_hub import HfApi

    owner = user_factory("fuzz")
    api = HfApi(endpoint=server.endpoint, token=owner.token)
    repo_id = f"{owner.name}/weird-{uuid.uuid4().hex[:6]}"
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"hello", path_in_repo="sub/README.md", repo_id=repo_id)
    return repo_id, owner


@pytest.mark.usefixtures("no_server_errors")
def test_weird_paths_through_http(server, weird_target):
    repo_id, owner = weird_target
    counter = {"requests": 0}
    bad: list[str] = []

    @settings(max_examples=HTTP_PATH_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(path=_URL_PATH, revision=st.one_of(st.just("main"), _URL_SEGMENT))
    def run(path: str, revision: str) -> None:
        auth = {"Authorization": f"Bearer {owner.read_token}"}
        form = "paths=" + path.replace("&", "%26")
        for method, target, body, ctype in (
            ("GET", f"/{repo_id}/resolve/{revision}/{path}", None, None),
            ("GET", f"/api/models/{repo_id}/tree/{revision}/{path}", None, None),
            ("POST", f"/api/models/{repo_id}/paths-info/{revision}", form.encode(),
             "application/x-www-form-urlencoded"),
            ("POST", f"/api/models/{repo_id}/paths-info/{revision}",
             json.dumps({"paths": [path, path.replace("%2F", "/")]}).encode(),
             "application/json"),
        ):
            headers = dict(auth)
            if ctype:
                headers["Content-Type"] = ctype
            status, resp_headers, text = raw_request(server.port, method, target, body, headers)
            counter["requests"] += 1
            where = f"{method} {target} body={body!r}"
            if status is None or status >= 500:
                bad.append(f"{status}: {where} -> {text[:200]!r}")
            elif 400 <= status < 500 and not resp_headers.get("x-error-code"):
                bad.append(f"{status} without X-Error-Code: {where}")

    t0 = time.monotonic()
    run()
    print(f"\nweird HTTP paths: {counter['requests']} requests, {len(bad)} failures, "
          f"{time.monotonic() - t0:.1f}s")
    assert counter["requests"] >= 4 * HTTP_PATH_EXAMPLES * 0.9
    assert not bad, f"{len(bad)} bad responses:\n" + "\n".join(bad[:30])
