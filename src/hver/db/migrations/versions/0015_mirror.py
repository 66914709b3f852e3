"""mirror of an upstream hub

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 21:00:00

Repos and namespaces the mirror brings in from an upstream hub are marked as such
(`mirror_upstream`, and the repo's id upstream); `mirror_repos` keeps when each was last
checked against the upstream, the lease of the server checking it now, what
`hver mirror add` pinned (a revision and file patterns kept fetched), and how many
files and bytes were brought in for it.
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('accounts') as batch:
        batch.add_column(sa.Column('mirror_upstream', sa.String(length=300), nullable=True))
    with op.batch_alter_table('repos') as batch:
        batch.add_column(sa.Column('mirror_upstream', sa.String(length=300), nullable=True))
        batch.add_column(sa.Column('mirror_id', sa.String(length=200), nullable=True))
    op.create_table('mirror_repos',
    sa.Column('repo_id', sa.Integer(), nullable=False),
    sa.Column('checked_at', sa.Float(), nullable=False),
    sa.Column('changed_at', sa.Float(), nullable=False),
    sa.Column('checking_until', sa.Float(), nullable=False),
    sa.Column('last_error', sa.String(length=500), nullable=True),
    sa.Column('pinned', sa.String(length=255), nullable=True),
    sa.Column('include', sa.JSON(), nullable=True),
    sa.Column('exclude', sa.JSON(), nullable=True),
    sa.Column('fetched_files', sa.Integer(), nullable=False, server_default='0'),
    sa.Column('fetched_bytes', sa.BigInteger(), nullable=False, server_default='0'),
    sa.ForeignKeyConstraint(['repo_id'], ['repos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repo_id'),
    )


def downgrade() -> None:
    op.drop_table('mirror_repos')
    with op.batch_alter_table('repos') as batch:
        batch.drop_column('mirror_id')
        batch.drop_column('mirror_upstream')
    with op.batch_alter_table('accounts') as batch:
        batch.drop_column('mirror_upstream')
