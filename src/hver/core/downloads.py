"""Download counts, gathered in memory and written in one transaction every
`download_flush_interval` seconds (and when the server stops), never on the read path.

What a process has counted and not yet written is added to the count it shows
(`pending_at`), so its own answers are exact at once; another worker's counts reach the
database, and so every answer and listing, within the interval. A process killed
without its shutdown (SIGKILL, power loss) loses at most that interval's counts.

A reader must know whether the database row it read already holds a flush's counts:
flushes are numbered (`epoch`, odd while one is being written), and a reader takes the
epoch before reading the row and asks for the pending count at that epoch; `None` means
a flush overlapped, and it reads again.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import TYPE_CHECKING

from sqlalchemy import update

from hver.db.engine import QUIET
from hver.db.models import Repo

if TYPE_CHECKING:
    from hver.db.engine import Database

log = logging.getLogger("hver")
# How long a reader waits for a running flush before reading anyway (a flush is one
# short write; this bounds the wait should a caller hold the write lock itself).
SETTLE_WAIT_S = 1.0


class DownloadCounter:
    def __init__(self, db: Database, interval: float) -> None:
        self.db = db
        self.interval = interval
        self._cond = threading.Condition()
        self._pending: Counter[int] = Counter()
        self._epoch = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, repo_pk: int) -> None:
        """Count one download of the repo with primary key `repo_pk`."""
        with self._cond:
            self._pending[repo_pk] += 1
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="hver-downloads",
                                                daemon=True)
                self._thread.start()

    @property
    def epoch(self) -> int:
        """The number of flushes begun and ended: odd while one is being written."""
        return self._epoch

    def settled_epoch(self) -> int:
        """The current epoch, once no flush is being written."""
        with self._cond:
            self._cond.wait_for(lambda: self._epoch % 2 == 0, timeout=SETTLE_WAIT_S)
            return self._epoch

    def pending_at(self, epoch: int, repo_pk: int) -> int | None:
        """Downloads of the repo counted here and not in the database as of `epoch`;
        None when a flush has started since."""
        with self._cond:
            if self._epoch != epoch:
                return None
            return self._pending.get(repo_pk, 0)

    def flush(self) -> None:
        """Write what was counted, in one transaction."""
        with self._cond:
            if not self._pending:
                return
            batch, self._pending = self._pending, Counter()
            self._epoch += 1
        try:
            with self.db.write() as session:
                # Quiet: cached repo rows are not dropped for this (`epoch` tells this
                # process's readers; other processes' see it within `cache_ttl`).
                for repo_pk, n in sorted(batch.items()):
                    session.execute(update(Repo).where(Repo.id == repo_pk)
                                    .values(downloads=Repo.downloads + n),
                                    execution_options={QUIET: True})
        except Exception:
            log.exception("writing %d download counts failed; kept for the next try",
                          sum(batch.values()))
            with self._cond:
                self._pending.update(batch)
        finally:
            with self._cond:
                self._epoch += 1
                self._cond.notify_all()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.flush()

    def close(self) -> None:
        """Stop the writer thread and write what is left."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout=30)
        self.flush()
