"""Several server processes on one data directory act as one hub: `hver serve` with its
default worker count, and two separate servers sharing a database (as N servers behind a
load balancer do). Rate limits, the sign-in throttle, caches and download counts are the
state that used to be per process.

Two servers on one data directory are used where a test must choose which process
answers: workers of one server share a socket, and the kernel picks.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from hver.core.rate_limits import SYNC_EVERY, SYNC_SHARE

Server = Any

# A write of what a process spent follows within SYNC_EVERY; wait a few times that.
SETTLE = 6 * SYNC_EVERY + 0.5


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def whoami(srv: Server, token: str) -> httpx.Response:
    return httpx.get(f"{srv.endpoint}/api/whoami-v2", headers=auth(token))


@pytest.fixture
def pair(tmp_path: Path, unstarted_server: Callable[..., Server]
         ) -> Iterator[Callable[..., tuple[Server, Server]]]:
    """Two servers (one worker each) on one data directory."""
    started: list[Server] = []

    def make(**settings: str) -> tuple[Server, Server]:
        data = tmp_path / "data"
        data.mkdir()
        a = unstarted_server(data, **settings)
        a.start()
        started.append(a)
        b = unstarted_server(data, **settings)
        b.start()
        started.append(b)
        return a, b

    yield make
    for srv in started:
        srv.stop()


def test_a_token_budget_is_shared_by_every_server(pair: Callable[..., tuple[Server, Server]]
                                                  ) -> None:
    a, b = pair(rate_limit="20")
    name = f"u-{uuid.uuid4().hex[:6]}"
    a.hver("user", "create", name)
    token = a.hver("token", "create", name)
    assert whoami(a, token).status_code == 200  # accepted: the token has its own budget
    assert whoami(b, token).status_code == 200
    spent_a = 2 + sum(whoami(a, token).status_code == 200 for _ in range(12))
    time.sleep(SETTLE)
    # What `a` spent is `b`'s to know: of 20, about 6 are left, not 19.
    answers = [whoami(b, token).status_code for _ in range(20)]
    allowed = answers.count(200)
    assert answers.count(429) == 20 - allowed
    # Give or take the refill (one every 3 s) over the seconds this takes.
    assert 20 - spent_a - 1 <= allowed <= 20 - spent_a + 3, (spent_a, answers)
    # `a` learns of `b`'s spending in the round after it next uses the bucket (its view
    # of a bucket it has not used lately is not kept fresh: that would cost a read per
    # bucket and round): one more request at most.
    # The budget refills at 20 a minute (one every 3 s, about 2 over these sleeps): had
    # `a` not learnt of `b`'s spending it would still allow its own 6, so 5 requests all
    # pass; knowing it, some of them are refused.
    time.sleep(SETTLE)
    whoami(a, token)
    time.sleep(SETTLE)
    late = [whoami(a, token) for _ in range(5)]
    refused = [r for r in late if r.status_code == 429]
    assert refused, [r.status_code for r in late]
    assert refused[0].headers["X-Error-Code"] == "TooManyRequests"


def test_a_burst_over_both_servers_overspends_by_a_few_percent_at_most(
        pair: Callable[..., tuple[Server, Server]]) -> None:
    a, b = pair(rate_limit="200")
    name = f"u-{uuid.uuid4().hex[:6]}"
    a.hver("user", "create", name)
    token = a.hver("token", "create", name)
    assert whoami(a, token).status_code == 200
    assert whoami(b, token).status_code == 200
    time.sleep(SETTLE)

    def hammer(srv: Server) -> int:
        with httpx.Client(headers=auth(token)) as client:
            return sum(client.get(f"{srv.endpoint}/api/whoami-v2").status_code == 200
                       for _ in range(150))

    with ThreadPoolExecutor(4) as pool:
        allowed = sum(pool.map(hammer, [a, b, a, b]))
    # 600 asked of a budget of 198 left; apart, the two would have given up to 396.
    slack = 2 * (int(200 * SYNC_SHARE) + 5)
    assert 190 <= allowed <= 198 + slack, allowed


def test_a_throttled_account_is_throttled_on_every_server(
        pair: Callable[..., tuple[Server, Server]]) -> None:
    a, b = pair(rate_limit_anonymous="0")
    name = f"u-{uuid.uuid4().hex[:6]}"
    a.hver("user", "create", name)
    a.hver("user", "set-password", name, stdin="the-right-password\n")

    def login(srv: Server, password: str) -> httpx.Response:
        return httpx.post(f"{srv.endpoint}/login", headers={"Accept": "text/html"},
                          data={"username": name, "password": password, "next": "/"})

    for n in range(5):
        assert login(a if n % 2 else b, f"guess-{n}").status_code == 401
    for srv in (a, b):
        r = login(srv, "the-right-password")
        assert r.status_code == 429, r.status_code
        assert 25 <= int(r.headers["Retry-After"]) <= 30
    # A restart forgets nothing: the failures are in the database.
    a.stop()
    a.start()
    assert login(a, "the-right-password").status_code == 429


def test_a_revoked_token_stops_at_once_on_the_other_server(
        pair: Callable[..., tuple[Server, Server]]) -> None:
    a, b = pair()
    name = f"u-{uuid.uuid4().hex[:6]}"
    a.hver("user", "create", name)
    token = a.hver("token", "create", name, "--name", "t")
    for _ in range(3):  # cached by both
        assert whoami(a, token).status_code == 200
        assert whoami(b, token).status_code == 200
    a.hver("token", "revoke", name, "t")  # another process on the machine, as an admin would
    assert whoami(b, token).status_code == 401
    assert whoami(a, token).status_code == 401


def test_serve_defaults_to_a_worker_per_core(tmp_path: Path,
                                             unstarted_server: Callable[..., Server]) -> None:
    """`hver serve` alone runs one worker per core (here at least 2, asked for when the
    machine has one), and the workers answer as one hub: downloads counted once each."""
    import os

    data = tmp_path / "data"
    data.mkdir()
    cores = len(os.sched_getaffinity(0))
    srv = unstarted_server(data, workers="0" if cores > 1 else "2", rate_limit_anonymous="0")
    srv.start()
    try:
        name = f"u-{uuid.uuid4().hex[:6]}"
        srv.hver("user", "create", name)
        token = srv.hver("token", "create", name)
        from huggingface_hub import HfApi

        api = HfApi(endpoint=srv.endpoint, token=token)
        repo = api.create_repo(f"{name}/m").repo_id
        api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=repo)

        def get(_: int) -> int:
            with httpx.Client() as client:  # a connection each: either worker may take it
                return client.get(f"{srv.endpoint}/{repo}/resolve/main/config.json",
                                  headers=auth(token)).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(get, range(40))) == {200}
        pids = set(_children(srv.proc.pid))
        assert len(pids) >= 2, pids
        deadline = time.time() + 10
        while time.time() < deadline:
            info = httpx.get(f"{srv.endpoint}/api/models/{repo}", headers=auth(token)).json()
            if info.get("downloads") == 40:
                break
            time.sleep(0.3)
        assert info.get("downloads") == 40, info
    finally:
        srv.stop()
    assert srv.proc is None


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a server's workers)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out
