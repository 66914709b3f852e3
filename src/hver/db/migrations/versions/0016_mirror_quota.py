"""mirror quota: reads of mirrored large files

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-05 12:00:00

`mirror_objects` keeps when each large file a mirrored repo holds was last read (the
quota evicts the least recently read first); `mirror_repos.hits` counts the reads of
files a mirrored repo held (the misses are `fetched_files`). Files held before this
migration have no row: they count as never read since.
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('mirror_repos') as batch:
        batch.add_column(sa.Column('hits', sa.BigInteger(), nullable=False,
                                   server_default='0'))
    op.create_table('mirror_objects',
    sa.Column('repo_id', sa.Integer(), nullable=False),
    sa.Column('oid', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('last_access', sa.Float(), nullable=False),
    sa.ForeignKeyConstraint(['repo_id'], ['repos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repo_id', 'oid'),
    )
    op.create_index(op.f('ix_mirror_objects_last_access'), 'mirror_objects',
                    ['last_access'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_mirror_objects_last_access'), table_name='mirror_objects')
    op.drop_table('mirror_objects')
    with op.batch_alter_table('mirror_repos') as batch:
        batch.drop_column('hits')
