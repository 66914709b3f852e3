"""rate-limit buckets and sign-in failures shared by every worker

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 15:00:00

Rate-limit buckets and the per-account sign-in throttle lived in each worker process's
memory, which kept one process per server the only exact setting. Both now live in the
database, so that several workers (the default) and several servers share them.
"""
from alembic import op
import sqlalchemy as sa


revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'rate_buckets',
        sa.Column('key', sa.LargeBinary(length=48), nullable=False),
        sa.Column('tokens', sa.Float(), nullable=False),
        sa.Column('stamp', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )
    op.create_index('ix_rate_buckets_stamp', 'rate_buckets', ['stamp'])
    op.create_table(
        'sign_in_failures',
        sa.Column('key', sa.LargeBinary(length=32), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('pending', sa.Integer(), nullable=False),
        sa.Column('pending_since', sa.Float(), nullable=False),
        sa.Column('locked_until', sa.Float(), nullable=False),
        sa.Column('last', sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )
    op.create_index('ix_sign_in_failures_last', 'sign_in_failures', ['last'])


def downgrade() -> None:
    op.drop_index('ix_sign_in_failures_last', table_name='sign_in_failures')
    op.drop_table('sign_in_failures')
    op.drop_index('ix_rate_buckets_stamp', table_name='rate_buckets')
    op.drop_table('rate_buckets')
