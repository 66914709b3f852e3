"""A mirror of an upstream hub: repos this hub does not hold are looked up there and
brought in on first use, then caught up with the upstream once per `mirror_ttl`.

Routes never ask whether a repo is mirrored: `hver.api.deps.load_repo` calls `find` when
a repo is missing and `check` when a mirrored one is due; everything else serves the
mirrored repo as any other. Nothing here speaks HTTP to clients.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update

from hver.core import repos as core_repos
from hver.core.accounts import get_account
from hver.core.hub import Hub
from hver.core.lru import Lru
from hver.core.objects import held_object
from hver.db.models import MirrorRepo, Repo
from hver.errors import HverError, RepoNotFound
from hver.mirror import cache, fetch, refs
from hver.mirror.hub_http import HubHttp
from hver.mirror.partial import Part
from hver.mirror.rules import Rules
from hver.mirror.upstream import Upstream, UpstreamUnavailable
from hver.names import RepoType

log = logging.getLogger("hver.mirror")

LEASE_S = 120.0  # how long a server may take to check a repo before another may
RETRY_S = 30.0  # after the upstream failed, the wait before the next try (at most the TTL)
MISSING = 10_000  # ids the upstream said it has no repo for, remembered for a TTL
PACK_CAP = 8 * 2**30  # the most bytes one git fetch may bring
FETCHES = 8  # large files fetched at once, per process (the others queue)
LOOKUPS = 8  # upstream lookups of new repos at once, per process (the rest: 503 at once)


class MirrorUnavailable(HverError):
    """A repo the mirror does not hold, and the upstream did not answer for it."""

    status = 503
    code = "MirrorUnavailable"


class MirrorOffline(MirrorUnavailable):
    """What the mirror does not hold, asked of it while it is offline."""

    code = "MirrorOffline"


class Mirror:
    def __init__(self, hub: Hub, upstream: Upstream, rules: Rules) -> None:
        self.hub = hub
        self.upstream = upstream
        self.rules = rules
        self.ttl = hub.settings.mirror_ttl
        self.offline = hub.settings.offline
        self._next: dict[int, float] = {}  # repo id -> monotonic time of its next check
        self._checked: dict[int, float] = {}  # repo id -> when the upstream last answered
        self._missing: Lru[tuple[str, str, str], float] = Lru(capacity=MISSING)
        self._failed: Lru[tuple[str, str, str], float] = Lru(capacity=MISSING)
        self._retry = min(self.ttl, RETRY_S) if self.ttl > 0 else RETRY_S
        self._down_until = 0.0  # monotonic: the upstream did not answer; until then no
        # lookup asks it (checks of held repos keep their own back-off)
        self._lookups = threading.BoundedSemaphore(LOOKUPS)
        self._guard = threading.Lock()
        self._parts: dict[tuple[int, str], Part] = {}  # (repo id, oid) -> fetch in flight
        # (repo id, oid, size) -> (until, error): a fetch that failed or found nothing
        self._failed_objects: Lru[tuple[int, str, int], tuple[float, str | None]] = Lru(
            capacity=MISSING)
        self._fetches = ThreadPoolExecutor(FETCHES, thread_name_prefix="mirror-fetch")
        self._finding: dict[tuple[str, str, str], list[Any]] = {}  # key -> [lock, users]
        self.reads = cache.Reads(hub.db, hub.settings.download_flush_interval)

    @classmethod
    def open(cls, hub: Hub) -> Mirror | None:
        s = hub.settings
        if not s.upstream_url:
            return None
        from hver.githttp.receive import MIN_OBJECT_CAP

        upstream = HubHttp(s.upstream_url, s.upstream_token, s.tmp_dir,
                           object_cap=max(MIN_OBJECT_CAP, 4 * s.max_inline_file_size),
                           pack_cap=PACK_CAP)
        return cls(hub, upstream, Rules.parse(s.mirror_prefix, s.mirror_allow, s.mirror_deny))

    # -- the hooks -------------------------------------------------------------------------

    def due(self, repo: Repo) -> bool:
        """Whether a repo is a mirror of this upstream that should be checked now (a
        dictionary lookup: hot paths ask it on every request)."""
        if repo.mirror_upstream != self.upstream.url or self.offline:
            return False
        deadline = self._next.get(repo.id)
        return deadline is None or time.monotonic() >= deadline

    def find(self, repo_type: RepoType, namespace: str, name: str) -> None:
        """Bring in the upstream repo a missing local id stands for, if the rules allow
        it and the upstream shows it (public); RepoNotFound otherwise, MirrorUnavailable
        when the upstream does not answer. The caller looks the repo up again."""
        upstream_id = refs.upstream_id(self.rules, namespace, name)
        if self.offline or upstream_id is None or not self.rules.allows(repo_type,
                                                                        upstream_id):
            raise RepoNotFound()
        key = (repo_type.value, namespace.lower(), name.lower())
        until = self._missing.get(key)
        if until is not None and time.monotonic() < until:
            raise RepoNotFound()
        unavailable = MirrorUnavailable(
            f"The upstream hub did not answer for {upstream_id}; try again later.")
        with self._one_at_a_time(key):
            with self.hub.db.read() as session:
                account = get_account(session, namespace)
                if account is not None and account.mirror_upstream is None:
                    raise RepoNotFound()  # a local namespace
                existing = core_repos.find_repo(session, repo_type, namespace, name)
            if existing is not None:  # brought in meanwhile, or not the caller's to read:
                if existing.private and self.due(existing):
                    self.check(existing)  # hidden as gone upstream: back yet?
                return
            failed = self._failed.get(key)
            if failed is not None and time.monotonic() < failed:
                raise unavailable  # it failed a moment ago (the waiters' answer too)
            if time.monotonic() < self._down_until or not self._lookups.acquire(
                    blocking=False):
                raise unavailable  # the upstream is failing, or slow and asked enough
            try:
                found = self.upstream.repo_info(repo_type, upstream_id)
                if found is None or found.private or found.id.lower() != upstream_id.lower() \
                        or not self.rules.allows(repo_type, found.id):
                    self._missing.put(key, time.monotonic() + self.ttl)
                    raise RepoNotFound()
                repo = refs.bring_in(self.hub, self.upstream, self.rules, repo_type, found)
            except UpstreamUnavailable as exc:
                log.warning("mirror: %s %s: %s", repo_type.value, upstream_id, exc)
                self._failing(key, exc)
                raise unavailable from None
            except HverError:
                raise
            except Exception:
                log.exception("mirror: bringing in %s %s failed", repo_type.value,
                              upstream_id)
                self._failed.put(key, time.monotonic() + self._retry)
                raise unavailable from None
            finally:
                self._lookups.release()
            if repo is None:
                raise RepoNotFound()
            self._checked[repo.id] = time.time()
            self._next[repo.id] = time.monotonic() + self.ttl

    def check(self, repo: Repo, force: bool = False) -> Repo:
        """A due mirrored repo caught up with the upstream by this server, if no other
        server is at it and none did within the TTL (`force`: whenever it was); the repo
        as it is otherwise, and whenever the upstream fails (served stale; the next try
        waits)."""
        now = time.time()
        fresh = now if force else now - self.ttl
        with self.hub.db.atomic() as session:
            claimed = session.execute(
                update(MirrorRepo).where(
                    MirrorRepo.repo_id == repo.id, MirrorRepo.checked_at <= fresh,
                    MirrorRepo.checking_until <= now)
                .values(checking_until=now + LEASE_S)).rowcount  # type: ignore[attr-defined]
            row = session.get(MirrorRepo, repo.id)
            state = (row.checked_at, row.checking_until) if row is not None else None
        if state is None:  # not a mirror's row (removed meanwhile)
            self._next[repo.id] = time.monotonic() + self.ttl
            return repo
        if not claimed:
            self._remember(repo.id, *state, now)
            return repo
        error: str | None = None
        hidden = False
        try:
            repo = refs.catch_up(self.hub, self.upstream, repo)
        except refs.Hidden as exc:
            error, hidden = str(exc), True
            repo = self._reread(repo)
        except UpstreamUnavailable as exc:
            error = str(exc)
            log.warning("mirror: checking %s %s: %s", repo.type, repo.mirror_id, exc)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.exception("mirror: checking %s %s failed", repo.type, repo.mirror_id)
        done = time.time()
        if error is None or hidden:  # an answer, even "gone"
            values: dict[str, Any] = {"checked_at": done, "checking_until": 0.0,
                                      "last_error": error}
        else:
            values = {"checking_until": done + min(self.ttl, RETRY_S),
                      "last_error": error[:500]}
        with self.hub.db.atomic() as session:
            session.execute(update(MirrorRepo).where(MirrorRepo.repo_id == repo.id)
                            .values(**values))
        self._remember(repo.id, values.get("checked_at", state[0]),
                       values["checking_until"], done)
        return repo

    def bring_object(self, repo: Repo, oid: str, size: int,
                     where: tuple[str, str] | None = None) -> bool:
        """Have a mirrored repo hold a large file one of its commits names, fetching it
        from the upstream and waiting until it is here; False when this hub cannot (not
        a mirror of this upstream, or the upstream has no such object).
        MirrorUnavailable when the upstream did not send it, MirrorOffline when
        offline: the client should try again, not take the file for missing."""
        part = self.start(repo, oid, size, where)
        if part is None:
            return True  # held (or not a mirror's: the caller's check answers)
        part.wait_done(None)
        if part.error is not None:
            raise MirrorUnavailable("The upstream hub did not send this file; try again "
                                    "later.")
        return part.found

    def start(self, repo: Repo, oid: str, size: int,
              where: tuple[str, str] | None = None) -> Part | None:
        """The fetch of a large file of a mirrored repo, started now unless one is in
        flight (one per file in this process, however many ask; through Xet when
        `where`, a commit and path, names it and the upstream stores it so). None when
        there is nothing to fetch: held already, or not a mirror of this upstream."""
        if repo.mirror_upstream != self.upstream.url:
            return None
        if held_object(self.hub, repo.id, oid, size) is not None:
            return None
        if self.offline:
            raise MirrorOffline("This file has not been brought in from the upstream hub, "
                                "and this hub is offline.")
        key = (repo.id, oid)
        failed = self._failed_objects.get((repo.id, oid, size))
        if failed is not None and time.monotonic() < failed[0]:
            answer = Part(size)  # failed a moment ago: the same answer, no new fetch
            answer.finish(False, failed[1])
            return answer
        with self._guard:
            part = self._parts.get(key)
            if part is None or part.size != size:
                part = self._parts[key] = Part(size)
                self._fetches.submit(self._fetch, repo, oid, size, where, part)
            return part

    def read(self, repo: Repo, oid: str, size: int, hit: bool) -> None:
        """Note that a large file a repo holds was read (only a mirrored repo's is kept:
        `cache.Reads`, in memory); `hit`: count it in the repo's hit ratio."""
        if repo.mirror_upstream is not None:
            self.reads.read(repo.id, oid, size, hit)

    def in_flight(self, repo_pk: int, oid: str) -> Part | None:
        """The fetch of a file of a mirrored repo now in flight in this process."""
        with self._guard:
            return self._parts.get((repo_pk, oid))

    def _fetch(self, repo: Repo, oid: str, size: int, where: tuple[str, str] | None,
               part: Part) -> None:
        try:
            part.finish(fetch.bring_object(self.hub, self.upstream, repo, oid, size, where,
                                           part))
        except UpstreamUnavailable as exc:
            log.warning("mirror: %s of %s %s: %s", oid, repo.type, repo.mirror_id, exc)
            part.finish(False, str(exc))
        except BaseException as exc:
            log.exception("mirror: fetching %s of %s %s failed", oid, repo.type,
                          repo.mirror_id)
            part.finish(False, f"{type(exc).__name__}: {exc}")
        finally:
            if not part.found:
                self._failed_objects.put((repo.id, oid, size),
                                         (time.monotonic() + self._retry, part.error))
            with self._guard:
                if self._parts.get((repo.id, oid)) is part:
                    del self._parts[(repo.id, oid)]
        if part.found:
            self._after_fetch(repo, oid, size)

    def _after_fetch(self, repo: Repo, oid: str, size: int) -> None:
        """A file was brought in: it counts as read now, and the quota is kept (files in
        flight are not released, nor this one: its readers are served it next)."""
        try:
            cache.brought(self.hub, repo.id, oid, size)
            with self._guard:
                fetching = {key[1] for key in self._parts}
            cache.evict(self, fetching | {oid})
        except Exception:
            log.exception("mirror: keeping the quota after fetching %s failed", oid)

    def describe(self, repo: Repo) -> dict[str, Any] | None:
        """What repo info shows of a mirrored repo, from memory (None: not known here)."""
        checked = self._checked.get(repo.id)
        if checked is None:
            return None
        return fields(repo, checked)

    def close(self) -> None:
        self._fetches.shutdown(wait=False, cancel_futures=True)
        self.reads.close()
        self.upstream.close()

    # -- inside ----------------------------------------------------------------------------

    def _reread(self, repo: Repo) -> Repo:
        with self.hub.db.read() as session:
            return session.get(Repo, repo.id) or repo

    def _failing(self, key: tuple[str, str, str], exc: UpstreamUnavailable) -> None:
        """Remember a failed lookup for a while (its waiters and the next callers are
        answered at once); an upstream that did not answer at all is left alone for
        that long by every lookup."""
        until = time.monotonic() + self._retry
        self._failed.put(key, until)
        if exc.unreachable:
            self._down_until = until

    def _remember(self, repo_id: int, checked_at: float, checking_until: float,
                  now: float) -> None:
        self._checked[repo_id] = checked_at
        due_at = checked_at + self.ttl
        if due_at <= now:  # due, but another server checks it, or a failure's wait
            due_at = checking_until
        self._next[repo_id] = time.monotonic() + max(1.0, due_at - now)

    @contextmanager
    def _one_at_a_time(self, key: tuple[str, str, str]) -> Iterator[None]:
        """One request of this process brings a repo in; the others wait for it."""
        with self._guard:
            entry = self._finding.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._finding[key]


def fields(repo: Repo, checked_at: float | None) -> dict[str, Any]:
    """The `mirror` field of a mirrored repo's info."""
    last = None
    if checked_at:
        last = datetime.fromtimestamp(checked_at, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {"upstream": repo.mirror_upstream, "id": repo.mirror_id, "lastSync": last}


def read_fields(hub: Hub, repo: Repo) -> dict[str, Any]:
    """`fields` of a mirrored repo, asking the database when this process has not seen
    the repo checked (a worker thread's call, not the event loop's)."""
    if hub.mirror is not None and (known := hub.mirror.describe(repo)) is not None:
        return known
    with hub.db.read() as session:
        row = session.get(MirrorRepo, repo.id)
        return fields(repo, row.checked_at if row is not None else None)
