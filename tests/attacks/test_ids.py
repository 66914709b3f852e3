"""A deleted thing's id never names a new one (issue 11).

SQLite hands out the largest id + 1, so before migration 0007 the id of the newest repo,
token or account came back after a delete: a signed grant or a client that kept the
revoked token's or deleted repo's id would then name someone else's. Each test deletes
the newest row and makes another, through the real server.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from alembic import command
from sqlalchemy import text

from hver.db.engine import Database, alembic_config

NEVER_REUSED = ("accounts", "tokens", "repos", "web_sessions", "audit_events")


def _auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _repo_id_number(server: Any, token: str, repo_id: str) -> int:
    r = httpx.get(f"{server.endpoint}/api/models/{repo_id}", headers=_auth(token))
    assert r.status_code == 200, r.text
    return int(r.json()["_id"])


def test_deleted_repo_id_is_not_given_to_the_next_repo(server, api, user) -> None:  # type: ignore[no-untyped-def]
    first = f"{user.name}/ids-{uuid.uuid4().hex[:8]}"
    api.create_repo(first)
    old = _repo_id_number(server, user.token, first)
    api.delete_repo(first)
    second = f"{user.name}/ids-{uuid.uuid4().hex[:8]}"
    api.create_repo(second)
    assert _repo_id_number(server, user.token, second) > old


def test_revoked_token_id_is_not_given_to_the_next_token(server, user) -> None:  # type: ignore[no-untyped-def]
    url = f"{server.endpoint}/api/settings/tokens"
    made = httpx.post(url, headers=_auth(user.token), json={"name": "short-lived"})
    assert made.status_code == 200, made.text
    old = int(made.json()["id"])
    gone = httpx.delete(f"{url}/{old}", headers=_auth(user.token))
    assert gone.status_code == 200, gone.text
    again = httpx.post(url, headers=_auth(user.token), json={"name": "next"})
    assert again.status_code == 200, again.text
    assert int(again.json()["id"]) > old


def test_deleted_account_id_is_not_given_to_the_next_account(server) -> None:  # type: ignore[no-untyped-def]
    """hver has no user deletion yet: the row goes as an administrator (or a future
    `hver user delete`) would take it, and the next user must not inherit its id."""
    _, token, gone_api = server.new_user_api("ids-gone")
    old = int(gone_api.whoami()["id"])
    db = sqlite3.connect(server.data / "hver.db", timeout=60)
    try:
        db.execute("PRAGMA foreign_keys=ON")  # its tokens go with it
        with db:
            db.execute("DELETE FROM accounts WHERE id = ?", (old,))
    finally:
        db.close()
    # A write outside hver bumps no cache stamp: it is seen within HVER_CACHE_TTL (5 s).
    deadline = time.monotonic() + 10
    while httpx.get(f"{server.endpoint}/api/whoami-v2", headers=_auth(token)).status_code != 401:
        assert time.monotonic() < deadline, "a deleted account's token still works"
        time.sleep(0.2)
    _, _, next_api = server.new_user_api("ids-next")
    assert int(next_api.whoami()["id"]) > old


def test_migrated_schema_never_reuses_ids(tmp_path: Path) -> None:
    """The schema the migrations leave: every table whose ids name things is AUTOINCREMENT
    (SQLite cannot reflect it, so the model/migration drift check would not see it go),
    and repo ids are unique whatever their case."""
    path = tmp_path / "hver.db"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    db.dispose()
    con = sqlite3.connect(path)
    schema = dict(con.execute("SELECT name, sql FROM sqlite_master"))
    con.close()
    for table in NEVER_REUSED:
        assert "AUTOINCREMENT" in schema[table], schema[table]
    assert "lower(namespace), lower(name)" in schema["uq_repos_type_lower_namespace_name"]


def _insert(conn: Any, table: str, **row: Any) -> None:
    cols = ", ".join(row)
    conn.execute(text(f"INSERT INTO {table} ({cols}) VALUES ({', '.join(':' + c for c in row)})"),
                 row)


def test_migration_keeps_rows_and_ids_and_starts_above_them(tmp_path: Path) -> None:
    """A database from before 0007, with rows in every rebuilt table and their dependants:
    the upgrade keeps every row and id, numbers on from the largest (for tokens, the largest
    the audit log names: the newest token was revoked before the upgrade), keeps foreign
    keys enforced, and renames repos whose ids differ only in case, oldest first."""
    path = tmp_path / "hver.db"
    db = Database(f"sqlite:///{path}")
    cfg = alembic_config(str(db.engine.url))
    with db.engine.execution_options(hver_write=True).begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0006")
    at = "2026-01-01 00:00:00"
    with db.write() as s:
        conn = s.connection()
        for i, name in ((1, "alice"), (2, "bob"), (7, "team")):
            _insert(conn, "accounts", id=i, name=name, kind="org" if name == "team" else "user",
                    is_admin=False, disabled=False, created_at=at)
        _insert(conn, "memberships", org_id=7, user_id=2, role="admin")
        for i in (3, 4):
            _insert(conn, "tokens", id=i, user_id=1, name=f"t{i}", role="write",
                    token_hash=f"h{i}", created_at=at)
        _insert(conn, "audit_events", id=5, at=at, actor="@cli", event="token.revoke",
                target="alice", details=json.dumps({"token_id": 9}))
        for i, name in ((10, "secret"), (11, "SECRET"), (12, "other")):
            _insert(conn, "repos", id=i, type="model", namespace="alice", name=name,
                    storage_key=f"key{i}", private=False, created_at=at, last_modified=at,
                    tags="[]", downloads=0, likes=1)
            _insert(conn, "likes", user_id=2, repo_id=i, created_at=at)
            _insert(conn, "lfs_objects", repo_id=i, oid="0" * 64, size=1, created_at=at)
        _insert(conn, "web_sessions", id=6, secret_hash="s", user_id=1, created_at=at,
                expires_at=at)
    db.migrate()

    def rows(sql: str) -> list[tuple[Any, ...]]:
        with db.read() as s:
            return [tuple(r) for r in s.execute(text(sql))]

    assert rows("SELECT id FROM accounts ORDER BY id") == [(1,), (2,), (7,)]
    assert rows("SELECT id FROM tokens ORDER BY id") == [(3,), (4,)]
    assert rows("SELECT id, name FROM repos ORDER BY id") == [
        (10, "secret"), (11, "SECRET-11"), (12, "other")]
    assert rows("SELECT count(*) FROM likes") == [(3,)]
    assert rows("SELECT count(*) FROM lfs_objects") == [(3,)]
    assert rows("SELECT count(*) FROM memberships") == [(1,)]
    assert rows("SELECT id FROM web_sessions") == [(6,)]
    moved = rows("SELECT actor, event, target FROM audit_events WHERE actor = '@migration'")
    assert moved == [("@migration", "repo.move", "model/alice/SECRET-11")]

    with db.write() as s:
        conn = s.connection()
        _insert(conn, "accounts", name="carol", kind="user", is_admin=False, disabled=False,
                created_at=at)
        _insert(conn, "tokens", user_id=1, name="new", role="write", token_hash="new",
                created_at=at)
        _insert(conn, "repos", type="model", namespace="alice", name="new", storage_key="new",
                private=False, created_at=at, last_modified=at, tags="[]", downloads=0,
                likes=0)
    assert rows("SELECT id FROM accounts WHERE name = 'carol'") == [(8,)]
    assert rows("SELECT id FROM tokens WHERE name = 'new'") == [(10,)]  # above revoked 9
    assert rows("SELECT id FROM repos WHERE name = 'new'") == [(13,)]
    # Foreign keys are enforced again on the pooled connections: a delete cascades.
    with db.write() as s:
        s.execute(text("DELETE FROM repos WHERE id = 10"))
    assert rows("SELECT count(*) FROM likes") == [(2,)]
    db.dispose()
