"""listing term counts

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 12:00:00

A listing with filters or a search picks its plan by how many repos hold each filter's
tag and each search term's trigrams (`core.repos.list_rows`), and counted those rows on
every request (up to ~10,000 rows each, a few milliseconds for a search). These tables
keep the counts, in step with `repo_tags` and `repo_grams`; filled here from them.
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('repo_tag_counts',
    sa.Column('tag', sa.String(length=200), nullable=False),
    sa.Column('repos', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('tag'),
    sqlite_with_rowid=False,
    )
    op.create_table('repo_gram_counts',
    sa.Column('gram', sa.String(length=3), nullable=False),
    sa.Column('repos', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('gram'),
    sqlite_with_rowid=False,
    )
    op.execute('INSERT INTO repo_tag_counts (tag, repos) '
               'SELECT tag, count(*) FROM repo_tags GROUP BY tag')
    op.execute('INSERT INTO repo_gram_counts (gram, repos) '
               'SELECT gram, count(*) FROM repo_grams GROUP BY gram')


def downgrade() -> None:
    op.drop_table('repo_gram_counts')
    op.drop_table('repo_tag_counts')
