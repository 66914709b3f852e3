"""Rate-limit token buckets that every worker process and every server on one database
share.

A bucket holds a minute's budget (`per_minute` requests) and refills continuously. Each
process decides on its own, from memory, with no database round trip on the request's
path: it keeps a local view of each bucket in use and spends from it. A background
thread shares what matters, a few times a second (`SYNC_EVERY`):

- it writes the spending of the buckets that spent at least `SYNC_SHARE` of their
  capacity since their last write, or fell below half of it (at once, when a bucket
  crosses the first mark): one upsert per limiter, with the refill arithmetic in SQL and
  the database's clock, returning each bucket's shared level, which becomes the view;
- it reads the shared level of the other buckets used since the last round.

A bucket that spends little (a visitor's few requests, a scanner's one per address) is
never written: its row would cost more than it tells. So a client spreading requests
over P processes can overspend by about `SYNC_SHARE` of the budget per process, plus what
arrives during one round; what was overspent is taken off the shared bucket (down to
`FLOOR` budgets below zero), so that the client then waits it off. With one process the
answers are exactly a token bucket's. Should the database stall, each process goes on
with its own view, and so with its own budget, until the writes resume.

Shared rows are written in `Database.atomic` transactions (SQLite's writer lock for a
moment; on PostgreSQL no lock beyond the rows'), and swept once idle for two windows.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, case, cast, delete, func, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from hver.db.engine import Database
from hver.db.models import RateBucket

log = logging.getLogger("hver")

WINDOW = 60.0  # seconds: limits are requests per minute
SWEEP_EVERY = 60.0  # seconds between removals of full (idle) buckets
SYNC_EVERY = 0.25  # seconds between rounds of sharing
SYNC_SHARE = 0.05  # of a bucket's capacity spent here that makes it written at once
SYNC_GAP = 0.02  # seconds at least between two rounds
FLOOR = 4  # budgets a shared bucket may be overspent by, at most
BATCH = 500  # buckets per statement


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    debt: int = 0  # requests allowed here and not yet written to the shared bucket


class RateLimiter:
    """Token buckets of `per_minute` requests, refilled continuously; 0 means no limit.

    `name` tells this limiter's buckets apart from other limiters' in the shared store;
    without a store (`shared=None`) the buckets are this process's alone."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic, *,
                 name: str = "", shared: SharedBuckets | None = None) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / WINDOW  # tokens per second
        self.clock = clock
        self.name = name.encode()
        self.buckets: dict[bytes, _Bucket] = {}
        self.touched: set[bytes] = set()  # used since the last round of sharing
        self.swept = clock()
        self.lock = threading.Lock()  # the event loop spends, the sharing thread shares
        self.shared = shared if self.capacity > 0 else None
        self.threshold = max(1, int(self.capacity * SYNC_SHARE))
        if self.shared is not None:
            self.shared.register(self)

    def take(self, key: bytes) -> float:
        """Spend one request of `key`'s budget: 0 when allowed, else seconds until one is."""
        if self.capacity <= 0:
            return 0.0
        now = self.clock()
        with self.lock:
            if now - self.swept >= SWEEP_EVERY:
                self._sweep(now)
            bucket = self.buckets.get(key)
            if bucket is None:
                bucket = self.buckets[key] = _Bucket(self.capacity, now)
            else:
                self._refill(bucket, now)
            if self.shared is not None:
                self.touched.add(key)
            if bucket.tokens < 1.0:
                return (1.0 - bucket.tokens) / self.rate
            bucket.tokens -= 1.0
            if self.shared is None:
                return 0.0
            bucket.debt += 1
            urgent = bucket.debt == self.threshold
        if urgent:
            self.shared.wake()
        return 0.0

    def _refill(self, bucket: _Bucket, now: float) -> None:
        if now > bucket.stamp:
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now

    def _sweep(self, now: float) -> None:
        """Forget buckets that have refilled: the same as no bucket (what they owed but
        never wrote is forgiven: less than `SYNC_SHARE` of a budget)."""
        self.swept = now
        full = [k for k, b in self.buckets.items()
                if b.tokens + (now - b.stamp) * self.rate >= self.capacity]
        for k in full:
            del self.buckets[k]

    def round(self) -> tuple[dict[bytes, int], list[bytes], float]:
        """For a round of sharing: the debts to write (they start over), the other keys
        used since the last round (to read), and this process's time now."""
        now = self.clock()
        with self.lock:
            write: dict[bytes, int] = {}
            for key in self.touched:
                bucket = self.buckets.get(key)
                if bucket is None:
                    continue
                self._refill(bucket, now)
                if bucket.debt and (bucket.debt >= self.threshold
                                    or bucket.tokens < self.capacity / 2):
                    write[key] = bucket.debt
                    bucket.debt = 0
            read = [k for k in self.touched if k not in write and k in self.buckets]
            self.touched = set()
            return write, read, now

    def learn(self, key: bytes, level: float, stamp: float) -> None:
        """The shared bucket's level as of `stamp` (this process's time), after what this
        process wrote up to then."""
        with self.lock:
            bucket = self.buckets.get(key)
            if bucket is None:
                self.buckets[key] = _Bucket(level, stamp)
                return
            # Spent here since the round began: still owed, and not in the shared level.
            bucket.tokens = min(self.capacity, level) - bucket.debt
            bucket.stamp = stamp

    def owe(self, debts: dict[bytes, int]) -> None:
        """Debts a failed write did not record: owed again."""
        with self.lock:
            for key, n in debts.items():
                bucket = self.buckets.get(key)
                if bucket is not None:
                    bucket.debt += n
                    self.touched.add(key)


class SharedBuckets:
    """The `rate_buckets` table, shared by one background thread per process."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.limiters: list[RateLimiter] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._swept = time.monotonic()

    def register(self, limiter: RateLimiter) -> None:
        """Share `limiter`'s buckets from now on, in place of an earlier one of its name
        (an app rebuilt on the same hub)."""
        with self._lock:
            self.limiters = [o for o in self.limiters if o.name != limiter.name] + [limiter]
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="hver-rate-limits",
                                                daemon=True)
                self._thread.start()

    def wake(self) -> None:
        """A bucket crossed its mark: share now rather than at the next round."""
        self._wake.set()

    def sync(self) -> None:
        """One round: write what must be written, read what others may have spent."""
        for limiter in self.limiters:
            write, read, local_now = limiter.round()
            if write:
                self._write(limiter, write, local_now)
            if read:
                self._read(limiter, read, local_now)
        if time.monotonic() - self._swept >= SWEEP_EVERY:
            self._swept = time.monotonic()
            self._sweep()

    def _now(self) -> ColumnElement[Any]:
        """The database's clock, in seconds since the epoch: one clock for every server."""
        if self.db.engine.dialect.name == "postgresql":
            return cast(func.extract("epoch", func.clock_timestamp()), Float)
        return (func.julianday("now") - literal(2440587.5)) * literal(86400.0)

    def _write(self, limiter: RateLimiter, debts: dict[bytes, int], local_now: float) -> None:
        cap, prefix = limiter.capacity, limiter.name + b":"
        now = self._now()
        excluded = (postgresql.insert(RateBucket) if self._pg() else sqlite.insert(RateBucket)
                    ).excluded
        # A new row holds `cap - n`; an old one is refilled to now and spends
        # `cap - excluded.tokens`, that is `n`.
        elapsed = case((RateBucket.stamp < excluded.stamp, excluded.stamp - RateBucket.stamp),
                       else_=0.0)
        refilled = RateBucket.tokens + elapsed * limiter.rate
        level = case((refilled > cap, cap), else_=refilled) - (cap - excluded.tokens)
        update = {"tokens": case((level < -FLOOR * cap, -FLOOR * cap), else_=level),
                  "stamp": case((RateBucket.stamp < excluded.stamp, excluded.stamp),
                                else_=RateBucket.stamp)}
        items = sorted(debts.items())
        try:
            levels: dict[bytes, float] = {}
            with self.db.atomic() as session:
                for chunk in _chunks(items, BATCH):
                    rows = [{"key": prefix + k, "tokens": max(-FLOOR * cap, cap - n),
                             "stamp": now} for k, n in chunk]
                    insert = postgresql.insert if self._pg() else sqlite.insert
                    stmt = insert(RateBucket).values(rows).on_conflict_do_update(
                        index_elements=[RateBucket.key], set_=update,
                    ).returning(RateBucket.key, RateBucket.tokens)
                    for key, tokens in session.execute(stmt):
                        levels[bytes(key)[len(prefix):]] = float(tokens)
        except Exception:
            log.exception("writing rate-limit buckets failed; kept for the next round")
            limiter.owe(debts)
            return
        for key, tokens in levels.items():
            limiter.learn(key, tokens, local_now)

    def _read(self, limiter: RateLimiter, keys: list[bytes], local_now: float) -> None:
        prefix = limiter.name + b":"
        now = self._now()
        try:
            with self.db.read() as session:
                for chunk in _chunks(keys, BATCH):
                    rows = session.execute(
                        select(RateBucket.key, RateBucket.tokens, now - RateBucket.stamp)
                        .where(RateBucket.key.in_([prefix + k for k in chunk]))).all()
                    for stored, tokens, age in rows:
                        level = tokens + max(0.0, float(age)) * limiter.rate
                        limiter.learn(bytes(stored)[len(prefix):], level, local_now)
        except Exception:
            log.exception("reading rate-limit buckets failed")

    def _sweep(self) -> None:
        """Drop shared buckets idle long enough to be full again, whatever they owed."""
        try:
            with self.db.atomic() as session:
                session.execute(delete(RateBucket).where(
                    RateBucket.stamp < self._now() - (FLOOR + 2) * WINDOW))
        except Exception:
            log.exception("sweeping rate-limit buckets failed")

    def _pg(self) -> bool:
        return self.db.engine.dialect.name == "postgresql"

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(SYNC_EVERY)
            self._wake.clear()
            try:
                self.sync()
            except Exception:  # never let the limits fall back to per process for good
                log.exception("sharing rate limits failed")
            self._stop.wait(SYNC_GAP)

    def close(self) -> None:
        """Stop the sharing thread and write what is left."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=10)
        for limiter in self.limiters:  # everything owed, whatever its size
            with limiter.lock:
                debts = {k: b.debt for k, b in limiter.buckets.items() if b.debt}
                for bucket in limiter.buckets.values():
                    bucket.debt = 0
            if debts:
                self._write(limiter, debts, limiter.clock())


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
