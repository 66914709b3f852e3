"""Password sign-in, throttled per account: failures slow down guessing one account's
password, wherever the guesses come from.

The first `free` failed attempts for a name cost nothing. Each failure from then on
refuses the name's next attempts for a delay that doubles (`base`, 2 x `base`, ...,
at most `cap`: 30 s up to 15 minutes by default); a success forgets the failures, and
so does `forget_after` without any attempt. Once throttled, one attempt at a time is
let through, so parallel guesses gain nothing either.

A refused attempt never reaches the password check, so its answer cannot tell a right
guess from a wrong one. Every name typed is throttled alike, existing or not: throttling
only real accounts would tell which exist. Names are kept as keyed hashes, a bounded
number of them (the oldest go first), so a flood of made-up names costs fixed memory.

The state lives in this process's memory: each worker process keeps its own and a
restart forgets it (the audit log keeps every failure). The price of throttling per
account is that anyone can delay a user's password sign-in by up to `cap`; tokens and
existing sessions are unaffected. Per client address, `hver.api.limits` bounds the
attempts across accounts.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from hver.errors import HverError, Unauthorized

FREE_FAILURES = 5
BASE_DELAY = 30.0  # seconds
MAX_DELAY = 15 * 60.0
FORGET_AFTER = 24 * 3600.0  # seconds without an attempt
MAX_TRACKED = 100_000  # names
SWEEP_EVERY = 60.0


class SignInThrottled(HverError):
    """Too many failed sign-ins for this account: wait `retry_after` seconds."""

    status = 429
    code = "TooManyRequests"

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed sign-ins for this account. "
                         f"Try again in {retry_after} s.")
        self.retry_after = retry_after


@dataclass
class _Record:
    failures: int = 0
    pending: int = 0  # attempts begun, not yet decided
    locked_until: float = 0.0
    last: float = 0.0


class LoginThrottle:
    """Failed sign-ins per account name, and the delays they earn. Thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, *,
                 free: int = FREE_FAILURES, base: float = BASE_DELAY, cap: float = MAX_DELAY,
                 forget_after: float = FORGET_AFTER, max_tracked: int = MAX_TRACKED) -> None:
        self.clock = clock
        self.free, self.base, self.cap = free, base, cap
        self.forget_after, self.max_tracked = forget_after, max_tracked
        self._key = secrets.token_bytes(32)
        self._records: dict[bytes, _Record] = {}  # least recently attempted first
        self._lock = threading.Lock()
        self._swept = clock()

    @contextmanager
    def attempt(self, name: str) -> Iterator[None]:
        """Around one password check for `name`: SignInThrottled before it, while the
        name is throttled; the check's Unauthorized counts as a failure, its success
        forgets the failures."""
        key = self._begin(name)
        try:
            yield
        except Unauthorized:
            self._end(key, failed=True)
            raise
        except BaseException:
            self._end(key, failed=None)  # no verdict on the password
            raise
        self._end(key, failed=False)

    def _digest(self, name: str) -> bytes:
        # Lower case: account names are unique whatever their case.
        return hashlib.blake2b(name.lower().encode("utf-8", "surrogatepass"), key=self._key,
                               digest_size=16).digest()

    def _begin(self, name: str) -> bytes:
        key = self._digest(name)
        now = self.clock()
        with self._lock:
            self._sweep(now)
            record = self._records.pop(key, None) or _Record()
            self._records[key] = record  # now the most recent
            record.last = now
            if now < record.locked_until:
                raise SignInThrottled(max(1, math.ceil(record.locked_until - now)))
            if record.pending and record.failures + record.pending >= self.free:
                raise SignInThrottled(1)  # one throttled attempt at a time
            record.pending += 1
            while len(self._records) > self.max_tracked:
                del self._records[next(iter(self._records))]
        return key

    def _end(self, key: bytes, failed: bool | None) -> None:
        now = self.clock()
        with self._lock:
            record = self._records.get(key)
            if record is None:  # pushed out by a flood of other names meanwhile
                return
            record.pending = max(0, record.pending - 1)
            if failed is None:
                return
            if not failed:
                if not record.pending:
                    del self._records[key]
                else:
                    record.failures = 0
                    record.locked_until = 0.0
                return
            record.failures += 1
            record.last = now
            if record.failures >= self.free:
                doublings = min(record.failures - self.free, 32)
                record.locked_until = now + min(self.base * 2 ** doublings, self.cap)

    def _sweep(self, now: float) -> None:
        """Forget names not tried for `forget_after`: the oldest come first."""
        if now - self._swept < SWEEP_EVERY:
            return
        self._swept = now
        while self._records:
            key = next(iter(self._records))
            record = self._records[key]
            if record.pending or now - record.last < self.forget_after:
                break
            del self._records[key]
