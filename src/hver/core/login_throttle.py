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

The state lives in the database (`sign_in_failures`), so every worker process and every
server on it throttles a name alike, and a restart forgets nothing; without a database
(`db=None`) it lives in this process's memory. An attempt whose process died before its
verdict stops counting as pending after `PENDING_TTL`. The price of throttling per
account is that anyone can delay a user's password sign-in by up to `cap`; tokens and
existing sessions are unaffected. Per client address, `hver.api.limits` bounds the
attempts across accounts.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from hver.db.models import SignInFailure
from hver.errors import HverError, Unauthorized

if TYPE_CHECKING:
    from hver.db.engine import Database

FREE_FAILURES = 5
BASE_DELAY = 30.0  # seconds
MAX_DELAY = 15 * 60.0
FORGET_AFTER = 24 * 3600.0  # seconds without an attempt
MAX_TRACKED = 100_000  # names
SWEEP_EVERY = 60.0
PENDING_TTL = 120.0  # seconds: no password check takes longer
END_TRIES = 4  # writes of a verdict, on a busy database


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
    pending_since: float = 0.0
    locked_until: float = 0.0
    last: float = 0.0

    @property
    def empty(self) -> bool:
        return not self.failures and not self.pending


class _MemoryRecords:
    """Records in this process's memory, least recently attempted first."""

    def __init__(self, max_tracked: int) -> None:
        self.max_tracked = max_tracked
        self.records: dict[bytes, _Record] = {}
        self._lock = threading.Lock()

    @contextmanager
    def record(self, key: bytes, touch: bool) -> Iterator[_Record]:
        with self._lock:
            record = self.records.pop(key, None) if touch else self.records.get(key)
            record = record or _Record()
            yield record
            if record.empty:
                self.records.pop(key, None)
            else:
                self.records[key] = record  # now the most recent when touched
            while len(self.records) > self.max_tracked:
                del self.records[next(iter(self.records))]

    def sweep(self, before: float) -> None:
        with self._lock:
            while self.records:
                key = next(iter(self.records))
                record = self.records[key]
                if record.pending or record.last >= before:
                    break
                del self.records[key]


class _DatabaseRecords:
    """Records in the `sign_in_failures` table, each read and written in one transaction
    (SQLite's write lock, PostgreSQL's row lock), so concurrent attempts queue."""

    def __init__(self, db: Database, max_tracked: int) -> None:
        self.db = db
        self.max_tracked = max_tracked

    @contextmanager
    def record(self, key: bytes, touch: bool) -> Iterator[_Record]:
        dialect = postgresql if self.db.engine.dialect.name == "postgresql" else sqlite
        with self.db.write() as session:
            # The row first, so that two servers' first attempts at a name queue on it.
            session.execute(dialect.insert(SignInFailure)
                            .values(key=key, failures=0, pending=0, pending_since=0.0,
                                    locked_until=0.0, last=0.0)
                            .on_conflict_do_nothing(index_elements=[SignInFailure.key]))
            row = session.execute(select(SignInFailure).where(SignInFailure.key == key)
                                  .with_for_update()).scalar_one()
            record = _Record(row.failures, row.pending, row.pending_since, row.locked_until,
                             row.last)
            yield record
            if record.empty:
                session.delete(row)
                return
            row.failures, row.pending, row.pending_since = (
                record.failures, record.pending, record.pending_since)
            row.locked_until, row.last = record.locked_until, record.last

    def sweep(self, before: float) -> None:
        with self.db.write() as session:
            # Pending attempts older than PENDING_TTL are dead (their process stopped).
            session.execute(delete(SignInFailure).where(
                SignInFailure.last < before,
                (SignInFailure.pending == 0) | (SignInFailure.pending_since < before)))
            extra = session.execute(select(func.count()).select_from(SignInFailure)
                                    ).scalar_one() - self.max_tracked
            if extra > 0:  # a flood of names: the least recently tried go first
                oldest = select(SignInFailure.key).order_by(SignInFailure.last).limit(extra)
                session.execute(delete(SignInFailure).where(SignInFailure.key.in_(oldest)))


class LoginThrottle:
    """Failed sign-ins per account name, and the delays they earn. Thread-safe; the
    database's calls block, so call `attempt` from a worker thread."""

    def __init__(self, clock: Callable[[], float] = time.time, *,
                 free: int = FREE_FAILURES, base: float = BASE_DELAY, cap: float = MAX_DELAY,
                 forget_after: float = FORGET_AFTER, max_tracked: int = MAX_TRACKED,
                 db: Database | None = None, secret: bytes | None = None) -> None:
        self.clock = clock
        self.free, self.base, self.cap = free, base, cap
        self.forget_after = forget_after
        # Names are kept as keyed hashes: the key derives from the hub's secret where the
        # records are shared, so every process names a record alike.
        self._key = hmac.new(secret or secrets.token_bytes(32), b"hver sign-in throttle",
                             hashlib.sha256).digest()
        self._store: _MemoryRecords | _DatabaseRecords = (
            _MemoryRecords(max_tracked) if db is None else _DatabaseRecords(db, max_tracked))
        self._swept = clock()
        self._sweep_lock = threading.Lock()

    @property
    def _records(self) -> dict[bytes, _Record]:
        """The records in memory (tests look at them); empty when kept in the database."""
        return self._store.records if isinstance(self._store, _MemoryRecords) else {}

    @contextmanager
    def attempt(self, name: str) -> Iterator[None]:
        """Around one password check for `name`: SignInThrottled before it, while the
        name is throttled; the check's Unauthorized counts as a failure, its success
        forgets the failures."""
        key = self._begin(name)
        started = self.clock()
        try:
            yield
        except Unauthorized:
            self._end(key, started, failed=True)
            raise
        except BaseException:
            self._end(key, started, failed=None)  # no verdict on the password
            raise
        self._end(key, started, failed=False)

    def _digest(self, name: str) -> bytes:
        # Lower case: account names are unique whatever their case.
        return hashlib.blake2b(name.lower().encode("utf-8", "surrogatepass"), key=self._key,
                               digest_size=16).digest()

    def _begin(self, name: str) -> bytes:
        key = self._digest(name)
        now = self.clock()
        self._sweep(now)
        refused: SignInThrottled | None = None
        with self._store.record(key, touch=True) as record:
            record.last = now
            if record.pending and now - record.pending_since > PENDING_TTL:
                record.pending = 0  # their process died before a verdict
            if now < record.locked_until:
                refused = SignInThrottled(max(1, math.ceil(record.locked_until - now)))
            elif record.pending and record.failures + record.pending >= self.free:
                refused = SignInThrottled(1)  # one throttled attempt at a time
            else:
                record.pending += 1
                record.pending_since = now
        if refused is not None:
            raise refused
        return key

    def _end(self, key: bytes, started: float, failed: bool | None) -> None:
        for attempt in range(END_TRIES):
            try:
                return self._record_end(key, started, failed)
            except OperationalError:  # a busy database: the verdict must not be lost
                if attempt == END_TRIES - 1:
                    raise
                time.sleep(0.05 * 2 ** attempt)

    def _record_end(self, key: bytes, started: float, failed: bool | None) -> None:
        now = self.clock()
        with self._store.record(key, touch=False) as record:
            if record.empty:  # pushed out by a flood of other names meanwhile
                return
            if now - started <= PENDING_TTL:  # else no longer counted as pending
                record.pending = max(0, record.pending - 1)
            if failed is None:
                return
            if not failed:
                record.failures = 0
                record.locked_until = 0.0
                return
            record.failures += 1
            record.last = now
            if record.failures >= self.free:
                doublings = min(record.failures - self.free, 32)
                record.locked_until = now + min(self.base * 2 ** doublings, self.cap)

    def _sweep(self, now: float) -> None:
        """Forget names not tried for `forget_after` (at most once a `SWEEP_EVERY`)."""
        with self._sweep_lock:
            if now - self._swept < SWEEP_EVERY:
                return
            self._swept = now
        self._store.sweep(now - self.forget_after)
