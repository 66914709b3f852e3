"""listing tags and trigrams

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 15:00:00

A tag filter or a search whose matches are rare read the whole type in the sort's order
to fill a page (at 1,000,000 repos, up to a second). Two tables let a listing find those
matches first and sort only them (`core.repos.list_repos`):

- `repo_tags` (tag, repo_id): each `filter=` value that matches the repo, as
  `core.cards.tag_matches` decides: its index tags and `key:value` for its card's values;
- `repo_grams` (gram, repo_id): each three-character substring of the lowercased repo id,
  which `search=` (a substring of the id, any case) looks up.

Both are filled here for the existing repos, from their stored tags and card data, with
the rules as they are in this revision (copied, so this migration never changes).
"""
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

MAX_TAG = 200
CHUNK = 5000


def upgrade() -> None:
    op.create_table('repo_tags',
    sa.Column('tag', sa.String(length=MAX_TAG), nullable=False),
    sa.Column('repo_id', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('tag', 'repo_id'),
    sqlite_with_rowid=False,
    )
    op.create_table('repo_grams',
    sa.Column('gram', sa.String(length=3), nullable=False),
    sa.Column('repo_id', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('gram', 'repo_id'),
    sqlite_with_rowid=False,
    )
    _backfill()


def downgrade() -> None:
    op.drop_table('repo_grams')
    op.drop_table('repo_tags')


def _backfill() -> None:
    conn = op.get_bind()
    repos = sa.table('repos', sa.column('id', sa.Integer), sa.column('namespace', sa.String),
                     sa.column('name', sa.String), sa.column('tags', sa.JSON),
                     sa.column('card_data', sa.JSON))
    tags_t = sa.table('repo_tags', sa.column('tag', sa.String), sa.column('repo_id', sa.Integer))
    grams_t = sa.table('repo_grams', sa.column('gram', sa.String),
                       sa.column('repo_id', sa.Integer))
    last = 0
    while True:
        rows = conn.execute(
            sa.select(repos.c.id, repos.c.namespace, repos.c.name, repos.c.tags,
                      repos.c.card_data)
            .where(repos.c.id > last).order_by(repos.c.id).limit(CHUNK)).all()
        if not rows:
            return
        last = rows[-1].id
        tag_rows = sorted((t, r.id) for r in rows for t in _terms(r.tags, r.card_data))
        gram_rows = sorted((g, r.id) for r in rows for g in _grams(f"{r.namespace}/{r.name}"))
        if tag_rows:
            conn.execute(sa.insert(tags_t), [{'tag': t, 'repo_id': i} for t, i in tag_rows])
        if gram_rows:
            conn.execute(sa.insert(grams_t), [{'gram': g, 'repo_id': i} for g, i in gram_rows])


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value if v is not None]
    return [str(value)]


def _terms(tags: Any, card: Any) -> set[str]:
    out = {t for t in (tags or []) if isinstance(t, str) and t}
    if isinstance(card, dict):
        for key, value in card.items():
            if ':' in key or key == 'library':
                continue
            out.update(f'{key}:{v}' for v in _as_list(value) if v)
        library = card.get('library_name')
        if isinstance(library, str) and library:
            out.add(f'library:{library}')
    return {t for t in out if len(t) <= MAX_TAG}


def _grams(repo_id: str) -> Iterator[str]:
    text = repo_id.lower()
    return iter({text[i:i + 3] for i in range(len(text) - 2)})
