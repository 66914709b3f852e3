"""Engine from a URL, migrations at start, and sessions for reads and writes.

SQLite is the embedded default: WAL, a busy timeout, and writes that take the
write lock at BEGIN (`BEGIN IMMEDIATE`) so two writers queue instead of
failing halfway with SQLITE_BUSY on lock upgrade.

PostgreSQL keeps that contract: a write transaction first takes one transaction-scoped
advisory lock, so writers from every process and machine run one at a time and each reads
what the previous one committed (the domain code counts likes and checks names
case-insensitively before inserting, as a single writer may). Reads never wait for it.
Migrations run as such a write, so servers starting together on an empty database
migrate it once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import ORMExecuteState, Session, SessionTransaction, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration's revision (tests/test_db.py checks it is alembic's head): a
# database already there is not handed to alembic, whose import alone costs a command
# line call a fifth of a second.
SCHEMA_HEAD = "0016"
# The key of the PostgreSQL advisory lock every write transaction holds ("hver").
WRITE_LOCK = 0x68766572
# Threads that may hold a connection at once: the server runs blocking work on anyio's
# default thread pool (40), and the event loop's thread and the download flusher read
# and write too. A pool this big never closes a connection for being one too many, so
# connections (and their PRAGMAs) are made once, not per busy moment.
POOL_SIZE = 48
MMAP_SIZE = 1 << 34
# An execution option for a write that changes nothing any cache holds (a token's
# last-use time): `Database(on_change=...)` is not told of it.
QUIET = "hver_quiet"
_CHANGED = "hver_changed"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        # LIFO: the connection used last, whose page cache is warm, serves the next request.
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False},
                               pool_size=POOL_SIZE, max_overflow=16, pool_use_lifo=True)

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we issue BEGIN ourselves, below
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            # Reads map the file rather than copy each page into the connection's own cache
            # (2 MB, cold on a connection not used lately): a listing at 1,000,000 repos
            # reads thousands of pages at random. As much as SQLite allows (its build's
            # cap, 2 GB in common builds). The pages are the OS's page cache, shared by all
            # connections and processes and reclaimable, but those read count in each
            # process's RSS (`RssFile`): a worker that listed much of a 1.6 GB database
            # shows ~400 MB, ~100 MB of it its own.
            cur.execute(f"PRAGMA mmap_size={MMAP_SIZE}")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            options = conn.get_execution_options()
            if options.get("hver_write") or options.get("hver_atomic"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

        return engine
    engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=POOL_SIZE - 10)
    if engine.dialect.name == "postgresql":

        @event.listens_for(engine, "connect")
        def _on_pg_connect(dbapi_conn: Any, _record: Any) -> None:
            # No JIT compilation: hver's queries are short, and a listing read in order with
            # a LIMIT has a plan whose estimated cost passes `jit_above_cost` while it runs in
            # a millisecond; compiling it took 25 ms. (A no-op on servers without JIT.)
            autocommit = dbapi_conn.autocommit
            dbapi_conn.autocommit = True
            try:
                cur = dbapi_conn.cursor()
                cur.execute("SELECT set_config(name, 'off', false) FROM pg_settings "
                            "WHERE name = 'jit'")
                cur.close()
            finally:
                dbapi_conn.autocommit = autocommit

        @event.listens_for(engine, "begin")
        def _on_pg_begin(conn: Any) -> None:
            if conn.get_execution_options().get("hver_write"):
                conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")

    return engine


def alembic_config(url: str) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (idempotent, safe at every start)."""
    if schema_version(engine) == SCHEMA_HEAD:
        return
    from alembic import command

    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.execution_options(hver_write=True).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def schema_version(engine: Engine) -> str | None:
    """The migration the database is at; None for a new one."""
    try:
        with engine.connect() as conn:
            version = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except DBAPIError:  # no such table yet
        return None
    return None if version is None else str(version)


class Database:
    def __init__(self, url: str, watched: dict[str, str] | None = None,
                 on_change: Callable[[set[str]], None] | None = None) -> None:
        """`on_change`, when given, is called after every committed transaction that wrote
        rows of a table named in `watched` (table name -> kind), with those kinds."""
        self.engine = make_engine(url)
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(
            self.engine.execution_options(hver_write=True), expire_on_commit=False
        )
        self._atomic = sessionmaker(
            self.engine.execution_options(hver_atomic=True), expire_on_commit=False
        )
        if watched and on_change is not None:
            for maker in (self._read, self._write):
                _track_changes(maker, watched, on_change)

    def migrate(self) -> None:
        migrate(self.engine)

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._read() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """One transaction holding the write lock; committed on success, rolled back on error."""
        with self._write() as session, session.begin():
            yield session

    @contextmanager
    def atomic(self) -> Iterator[Session]:
        """A transaction of statements atomic by themselves (upserts of one row each), which
        needs no order with other writers: SQLite's writer lock (any write takes it), not
        the database-wide lock `write` takes on PostgreSQL."""
        with self._atomic() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()


# Changes a token's last use makes, which no cache holds: not reported.
_QUIET_COLUMNS = {"tokens": {"last_used_at"}}


def _track_changes(maker: sessionmaker[Session], watched: dict[str, str],
                   on_change: Callable[[set[str]], None]) -> None:
    """Report the watched tables a session's transaction wrote, once it has committed:
    objects flushed (added, changed, deleted) and bulk UPDATE/DELETE/INSERT statements."""

    @event.listens_for(maker, "after_transaction_create")
    def _begin(session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None:
            session.info.pop(_CHANGED, None)

    @event.listens_for(maker, "after_flush")
    def _flushed(session: Session, _context: Any) -> None:
        changed: set[str] = session.info.setdefault(_CHANGED, set())
        for obj in chain(session.new, session.deleted):
            kind = watched.get(getattr(obj, "__tablename__", ""))
            if kind is not None:
                changed.add(kind)
        for obj in session.dirty:
            table = getattr(obj, "__tablename__", "")
            kind = watched.get(table)
            if kind is not None and kind not in changed \
                    and _really_changed(obj, _QUIET_COLUMNS.get(table)):
                changed.add(kind)

    @event.listens_for(maker, "do_orm_execute")
    def _executed(state: ORMExecuteState) -> None:
        if not (state.is_update or state.is_delete or state.is_insert):
            return
        if state.execution_options.get(QUIET):
            return
        table = getattr(getattr(state.statement, "table", None), "name", None)
        kind = watched.get(table or "")
        if kind is not None:
            state.session.info.setdefault(_CHANGED, set()).add(kind)

    @event.listens_for(maker, "after_commit")
    def _committed(session: Session) -> None:
        changed = session.info.pop(_CHANGED, None)
        if changed:
            on_change(changed)


def _really_changed(obj: object, quiet: set[str] | None) -> bool:
    """Whether a dirty object has a changed column other than the `quiet` ones."""
    state = inspect(obj)
    return any(attr.history.has_changes() for attr in state.attrs
               if not quiet or attr.key not in quiet)
