"""never reuse ids; repo ids unique whatever their case

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 09:00:00

SQLite gives a new row the largest id + 1, so the id of the newest token, repo, account,
session or audit event came back after a delete (and a signed grant naming a revoked
token's id could name the next token). The tables are rebuilt with AUTOINCREMENT, keeping
every row's id, index, unique constraint and foreign key; sqlite_sequence starts at the
largest id (for tokens, the largest the audit log names). PostgreSQL's sequences never
reuse an id: nothing to do there.

Repo ids become unique whatever their case, per type, as on the Hub: the unique index on
(type, lower(namespace), lower(name)) replaces the case-sensitive constraint. Repos that
already differ only in case keep their rows: the oldest keeps its name, each later one is
renamed `NAME-ID` (recorded in the audit log as a move by "@migration").

SQLite cannot reflect AUTOINCREMENT or expression indexes: a later batch rebuild of these
tables must pass `table_kwargs={"sqlite_autoincrement": True}` and create the index again
(tests/attacks/test_ids.py checks the schema the migrations leave).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

TABLES = ('accounts', 'tokens', 'repos', 'web_sessions', 'audit_events')
CASE_INDEX = 'uq_repos_type_lower_namespace_name'
OLD_UNIQUE = 'uq_repos_type_namespace_name'
MAX_NAME = 96

_repos = sa.table('repos', sa.column('id', sa.Integer), sa.column('type', sa.String),
                  sa.column('namespace', sa.String), sa.column('name', sa.String))
_audit = sa.table('audit_events', sa.column('at', sa.DateTime), sa.column('actor', sa.String),
                  sa.column('event', sa.String), sa.column('target', sa.String),
                  sa.column('details', sa.JSON))


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == 'sqlite':
        with _sqlite_foreign_keys_off(bind, down_revision):
            _rename_case_duplicates(bind)
            for table in TABLES:
                with op.batch_alter_table(table, recreate='always',
                                          table_kwargs={'sqlite_autoincrement': True}) as batch:
                    if table == 'repos':
                        batch.drop_constraint(OLD_UNIQUE, type_='unique')
            _sequence_at_least(bind, 'tokens', _largest_audited_token_id(bind))
    else:
        _rename_case_duplicates(bind)
        op.drop_constraint(OLD_UNIQUE, 'repos', type_='unique')
    op.create_index(CASE_INDEX, 'repos',
                    ['type', sa.text('lower(namespace)'), sa.text('lower(name)')], unique=True)


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_index(CASE_INDEX, table_name='repos')
    if bind.dialect.name == 'sqlite':
        with _sqlite_foreign_keys_off(bind, revision):
            for table in TABLES:
                with op.batch_alter_table(table, recreate='always') as batch:
                    if table == 'repos':
                        batch.create_unique_constraint(OLD_UNIQUE, ['type', 'namespace', 'name'])
    else:
        op.create_unique_constraint(OLD_UNIQUE, 'repos', ['type', 'namespace', 'name'])


def _rename_case_duplicates(bind: sa.Connection) -> None:
    """Repos whose ids differ only in case: the oldest keeps its name, the others get
    `-ID` appended (names are ASCII, so Python's and SQL's lower() agree)."""
    rows = bind.execute(sa.select(_repos).order_by(_repos.c.id)).all()
    taken = {(r.type, r.namespace.lower(), r.name.lower()) for r in rows}
    seen: set[tuple[str, str, str]] = set()
    for row in rows:
        key = (row.type, row.namespace.lower(), row.name.lower())
        if key not in seen:
            seen.add(key)
            continue
        new = _free_name(row.name, row.id, row.type, row.namespace, taken)
        taken.add((row.type, row.namespace.lower(), new.lower()))
        bind.execute(sa.update(_repos).where(_repos.c.id == row.id).values(name=new))
        bind.execute(sa.insert(_audit).values(
            at=datetime.now(UTC).replace(tzinfo=None), actor='@migration', event='repo.move',
            target=f'{row.type}/{row.namespace}/{new}',
            details={'source': f'{row.namespace}/{row.name}',
                     'reason': 'another repo has this id in another case'}))


def _free_name(name: str, repo_id: int, repo_type: str, namespace: str,
               taken: set[tuple[str, str, str]]) -> str:
    n = 0
    while True:
        suffix = f'-{repo_id}' + (f'-{n}' if n else '')
        candidate = name[:MAX_NAME - len(suffix)] + suffix
        if (repo_type, namespace.lower(), candidate.lower()) not in taken:
            return candidate
        n += 1


@contextmanager
def _sqlite_foreign_keys_off(bind: sa.Connection, at: str) -> Iterator[None]:
    """Rebuilding a table drops the old one, and with foreign keys enforced that drop would
    first delete its rows, cascading to every row that references them (every token of
    every account). SQLite only switches enforcement between transactions: what ran before
    this migration is committed (a migration boundary), the rebuild runs in a transaction
    of its own without enforcement, checked before it ends, and enforcement is back on when
    the connection goes back to its pool, after that transaction. Another process may
    take the write lock between the two transactions: if it migrated the database (it is
    no longer at `at`), this one fails, and finds the schema current when started again."""
    if not bind.exec_driver_sql('PRAGMA foreign_keys').scalar():
        yield  # a plain connection (alembic's own engine): nothing is enforced
        return
    dbapi: Any = bind.connection.dbapi_connection
    in_transaction = bool(dbapi.in_transaction)
    if in_transaction:
        bind.exec_driver_sql('COMMIT')
    bind.exec_driver_sql('PRAGMA foreign_keys=OFF')
    if not in_transaction:
        try:
            yield
            _check_foreign_keys(bind)
        finally:
            bind.exec_driver_sql('PRAGMA foreign_keys=ON')
        return

    pending = [dbapi]

    def back_on(dbapi_connection: Any, _record: Any) -> None:
        if pending and dbapi_connection is dbapi and not dbapi_connection.in_transaction:
            dbapi_connection.execute('PRAGMA foreign_keys=ON')
            pending.clear()

    sa.event.listen(bind.engine.pool, 'checkin', back_on)
    bind.exec_driver_sql('BEGIN IMMEDIATE')
    if bind.exec_driver_sql('SELECT version_num FROM alembic_version').scalar() != at:
        raise RuntimeError('Another process migrated this database meanwhile; start again.')
    yield
    _check_foreign_keys(bind)


def _check_foreign_keys(bind: sa.Connection) -> None:
    broken = bind.exec_driver_sql('PRAGMA foreign_key_check').all()
    if broken:
        raise RuntimeError(f'Rows with broken foreign keys after the rebuild: {broken[:10]}')


def _largest_audited_token_id(bind: sa.Connection) -> int | None:
    """The largest token id the audit log names: a token revoked before this migration
    may have had a larger id than any token left."""
    try:
        value = bind.exec_driver_sql(
            "SELECT max(CAST(json_extract(details, '$.token_id') AS INTEGER)) "
            "FROM audit_events WHERE event IN ('token.create', 'token.revoke')").scalar()
    except sa.exc.OperationalError:  # an SQLite built without JSON functions
        return None
    return int(value) if value is not None else None


def _sequence_at_least(bind: sa.Connection, table: str, value: int | None) -> None:
    """Make the next AUTOINCREMENT id of `table` larger than `value`."""
    if value is None:
        return
    seq = bind.execute(sa.text('SELECT seq FROM sqlite_sequence WHERE name = :t'),
                       {'t': table}).first()
    if seq is None:
        bind.execute(sa.text('INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :v)'),
                     {'t': table, 'v': value})
    elif seq[0] < value:
        bind.execute(sa.text('UPDATE sqlite_sequence SET seq = :v WHERE name = :t'),
                     {'t': table, 'v': value})
