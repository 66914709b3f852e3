"""listing indexes

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-27 09:00:00

Every sort a listing offers reads an index in order (the type, then the sort key)
instead of sorting all the repos of a type: lastModified had one; createdAt,
downloads and likes get theirs.
"""
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_repos_type_created_at', 'repos', ['type', 'created_at'])
    op.create_index('ix_repos_type_downloads', 'repos', ['type', 'downloads'])
    op.create_index('ix_repos_type_likes', 'repos', ['type', 'likes'])


def downgrade() -> None:
    op.drop_index('ix_repos_type_likes', table_name='repos')
    op.drop_index('ix_repos_type_downloads', table_name='repos')
    op.drop_index('ix_repos_type_created_at', table_name='repos')
