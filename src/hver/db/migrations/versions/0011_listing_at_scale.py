"""listing indexes at scale

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-05 12:00:00

Every listing a page of `list_models` & co can ask for reads an index in its order
instead of sorting the repos of a type (at 1,000,000 repos a sort is seconds):

- the default order (newest id first) and `sort=id` (by name) get theirs;
- the sort indexes end with the id, the tie-break: SQLite's indexes end with the rowid
  anyway, PostgreSQL's did not, so it sorted every tie (most repos have no downloads);
- ascending listings tie by id descending: downloads and likes, where ties are many,
  get indexes in that order (dates are nearly unique, their ties are sorted cheaply);
- `author=` (any case) with each sort: type, lower(namespace), the sort key, id.
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

SORTS = ('last_modified', 'created_at', 'downloads', 'likes')


def upgrade() -> None:
    op.create_index('ix_repos_type_id', 'repos', ['type', 'id'])
    op.create_index('ix_repos_type_name', 'repos', ['type', 'name', 'id'])
    for sort in SORTS:
        op.drop_index(f'ix_repos_type_{sort}', table_name='repos')
        op.create_index(f'ix_repos_type_{sort}', 'repos', ['type', sort, 'id'])
    for sort in ('downloads', 'likes'):
        op.create_index(f'ix_repos_type_asc_{sort}', 'repos', ['type', sort, sa.text('id DESC')])
    for sort in ('id', *SORTS):
        op.create_index(f'ix_repos_type_author_{sort}', 'repos',
                        ['type', sa.text('lower(namespace)'), sort,
                         *([] if sort == 'id' else ['id'])])


def downgrade() -> None:
    for sort in ('id', *SORTS):
        op.drop_index(f'ix_repos_type_author_{sort}', table_name='repos')
    for sort in ('downloads', 'likes'):
        op.drop_index(f'ix_repos_type_asc_{sort}', table_name='repos')
    for sort in SORTS:
        op.drop_index(f'ix_repos_type_{sort}', table_name='repos')
        op.create_index(f'ix_repos_type_{sort}', 'repos', ['type', sort])
    op.drop_index('ix_repos_type_name', table_name='repos')
    op.drop_index('ix_repos_type_id', table_name='repos')
