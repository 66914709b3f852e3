"""Guessing passwords and tokens: attacks on the rate limits (issue 11).

Before the fix, any `Authorization` header moved a request to a fresh per-token bucket
and the sign-in form ignored the header: a made-up `Bearer` per attempt gave an attacker
unlimited password guesses, and made-up tokens unlimited requests (and token guesses)
past the anonymous limit. Nothing throttled guesses at one account either.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from webforms import browser, sign_in

from hver.core.login_throttle import LoginThrottle, SignInThrottled
from hver.errors import Unauthorized

Server = Any


def made_up() -> dict[str, str]:
    return {"authorization": f"Bearer hf_{secrets.token_hex(16)}"}


def assert_throttled(r: httpx.Response, longest: int = 60) -> int:
    """A 429 with the Hub's error headers and a usable Retry-After; returns the wait."""
    assert r.status_code == 429, (r.status_code, r.text[:300])
    assert r.headers["X-Error-Code"] == "TooManyRequests", r.headers
    assert r.headers.get("X-Error-Message"), r.headers
    wait = int(r.headers["Retry-After"])
    assert 1 <= wait <= longest, wait
    assert "hver_session" not in r.headers.get("set-cookie", "")
    return wait


def login(srv: Server, name: str, password: str, headers: dict[str, str] | None = None
          ) -> httpx.Response:
    return httpx.post(f"{srv.endpoint}/login", headers={"Accept": "text/html", **(headers or {})},
                      data={"username": name, "password": password, "next": "/"})


# -- per client address ------------------------------------------------------------------


def test_no_header_escapes_the_sign_in_limit(server_factory: Callable[..., Server]) -> None:
    srv = server_factory(rate_limit_anonymous="5")
    name, token, _ = srv.new_user_api("victim")
    srv.hver("user", "set-password", name, stdin="right-password-1\n")

    # A made-up bearer (or a real token) per attempt, a new name each time so that no
    # account is throttled: the address's five attempts a minute are spent all the same.
    for _ in range(5):
        r = login(srv, f"guess-{uuid.uuid4().hex[:8]}", "password1", made_up())
        assert r.status_code == 401, r.text[:300]
    for headers in (made_up(), {"authorization": f"Bearer {token}"}, {}):
        assert_throttled(login(srv, name, "right-password-1", headers))
    # The address's other requests are not the sign-in budget's business.
    r = httpx.get(f"{srv.endpoint}/api/whoami-v2", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200 and r.json()["name"] == name


def test_made_up_tokens_get_no_budget_of_their_own(
        server_factory: Callable[..., Server]) -> None:
    srv = server_factory(rate_limit="50", rate_limit_anonymous="3")
    name, token, _ = srv.new_user_api("known")
    doomed = {"authorization": f"Bearer {srv.hver('token', 'create', name, '--name', 'doomed')}"}
    real = {"authorization": f"Bearer {token}"}
    for headers in (real, doomed):
        assert httpx.get(f"{srv.endpoint}/api/whoami-v2", headers=headers).status_code == 200

    # Made-up tokens spend their address's budget (three a minute, of which the real
    # tokens' first requests took two) however many different ones are tried: a token
    # guesser is limited like anyone without a token.
    codes = [httpx.get(f"{srv.endpoint}/api/models", headers=made_up()) for _ in range(6)]
    assert [r.status_code for r in codes] == [401] + [429] * 5, [r.text for r in codes]
    for r in codes[1:]:
        assert r.headers["X-Error-Code"] == "TooManyRequests"
        assert 1 <= int(r.headers["Retry-After"]) <= 60

    # A token the hub has accepted keeps its own budget, and plain visitors theirs.
    for _ in range(3):
        r = httpx.get(f"{srv.endpoint}/api/whoami-v2", headers=real)
        assert r.status_code == 200 and r.json()["name"] == name
    assert httpx.get(f"{srv.endpoint}/api/models").status_code == 200

    # A revoked token is forgotten: from then on it spends the address's (spent) budget.
    srv.hver("token", "revoke", name, "doomed")
    assert httpx.get(f"{srv.endpoint}/api/whoami-v2", headers=doomed).status_code == 401
    r = httpx.get(f"{srv.endpoint}/api/whoami-v2", headers=doomed)
    assert r.status_code == 429, r.text
    assert httpx.get(f"{srv.endpoint}/api/whoami-v2", headers=real).status_code == 200


# -- per account -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _clean(no_server_errors: None) -> None:
    pass


def test_guessing_one_password_is_throttled(server: Server, web_user_factory) -> None:  # type: ignore[no-untyped-def]
    who = web_user_factory("target")
    for n in range(5):
        assert login(server, who.name, f"guess-{n}").status_code == 401
    # Refused before the password is checked: the right one gets the same answer as a
    # wrong one, so a throttled guess tells nothing, and through any header.
    right = login(server, who.name, who.password)
    wait = assert_throttled(right, longest=30)
    wrong = login(server, who.name, "guess-5", made_up())
    assert_throttled(wrong, longest=30)
    assert right.text.replace(who.password, "") == right.text
    assert "Too many failed sign-ins" in right.text and 'role="alert"' in right.text
    assert wait >= 25

    # Other accounts are not affected, and the failures are in the audit log.
    other = web_user_factory("bystander")
    with browser(server) as b:
        assert sign_in(b, other.name, other.password).status_code == 303
    failures = [e for e in json.loads(server.hver("audit", "--event", "login.failure",
                                                  "--json"))
                if e["target"] == who.name]
    assert len(failures) == 5


def test_names_that_do_not_exist_are_throttled_alike(server: Server) -> None:
    """Throttling only real accounts would tell which names exist."""
    name = f"nobody-{uuid.uuid4().hex[:8]}"
    for n in range(5):
        assert login(server, name, f"guess-{n}").status_code == 401
    assert_throttled(login(server, name, "guess-5"), longest=30)


def test_a_success_forgets_the_failures(server: Server, web_user_factory) -> None:  # type: ignore[no-untyped-def]
    """Only failures count, and only since the last success: a user's typos between
    sign-ins never add up; five in a row do."""
    who = web_user_factory("typo")
    for _ in range(3):
        for n in range(4):
            assert login(server, who.name, f"typo-{n}").status_code == 401
        assert login(server, who.name, who.password).status_code == 303
    for n in range(5):
        assert login(server, who.name, f"typo-{n}").status_code == 401
    assert_throttled(login(server, who.name, who.password), longest=30)


def test_parallel_guesses_gain_nothing(server: Server, web_user_factory) -> None:  # type: ignore[no-untyped-def]
    who = web_user_factory("parallel")
    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(lambda n: login(server, who.name, f"p-{n}").status_code,
                              range(20)))
    assert codes.count(401) <= 5 and codes.count(401) + codes.count(429) == 20, codes
    assert_throttled(login(server, who.name, who.password), longest=30)


# -- the delays (core, with a clock of our own) ------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fail(throttle: LoginThrottle, name: str) -> None:
    with pytest.raises(Unauthorized), throttle.attempt(name):
        raise Unauthorized("Invalid username or password.")


def refused_for(throttle: LoginThrottle, name: str) -> int:
    with pytest.raises(SignInThrottled) as info, throttle.attempt(name):
        pytest.fail("the password was checked")
    return info.value.retry_after


def test_delays_double_up_to_a_cap() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock)
    for _ in range(4):
        fail(throttle, "alice")
    fail(throttle, "alice")
    waits = []
    for _ in range(8):
        waits.append(refused_for(throttle, "alice"))
        clock.now += waits[-1]  # the lock is over: one more guess, and a longer lock
        fail(throttle, "alice")
    assert waits == [30, 60, 120, 240, 480, 900, 900, 900]
    with throttle.attempt("bob"):  # other names are free
        pass
    clock.now += 900
    with throttle.attempt("alice"):  # the right password, at last: all forgotten
        pass
    for _ in range(4):
        fail(throttle, "alice")
    with throttle.attempt("alice"):  # four failures are free again
        pass


def test_flooding_names_costs_bounded_memory() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock, max_tracked=100)
    for n in range(1000):
        fail(throttle, f"name-{n}")
    assert len(throttle._records) <= 100
    clock.now += 25 * 3600 + 60
    with throttle.attempt("someone"):
        pass
    assert len(throttle._records) == 0
