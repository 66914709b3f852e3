"""The schema comes only from migrations, and the migrations match the models."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from hver.db.engine import Database
from hver.db.models import Base


def test_migrations_match_models(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'hver.db'}")
    db.migrate()
    db.migrate()  # idempotent: a second start changes nothing
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    db.dispose()
    assert diff == []


def test_the_schema_head_is_alembics(tmp_path: Path) -> None:
    """`SCHEMA_HEAD` (a database there is not handed to alembic) names the newest
    migration: a migration added without it would never run on an existing database."""
    from alembic.script import ScriptDirectory

    from hver.db.engine import SCHEMA_HEAD, alembic_config, schema_version

    url = f"sqlite:///{tmp_path / 'hver.db'}"
    assert ScriptDirectory.from_config(alembic_config(url)).get_current_head() == SCHEMA_HEAD
    db = Database(url)
    assert schema_version(db.engine) is None
    db.migrate()
    assert schema_version(db.engine) == SCHEMA_HEAD
    db.dispose()
