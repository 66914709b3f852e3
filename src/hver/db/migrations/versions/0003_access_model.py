"""Access model: passwords, disabled users, fine-grained tokens, gated-repo requests, audit

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 05:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('accounts') as batch:
        batch.add_column(sa.Column('password_hash', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('disabled', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
    with op.batch_alter_table('tokens') as batch:
        batch.add_column(sa.Column('scopes', sa.JSON(), nullable=True))
    op.create_table('access_requests',
    sa.Column('repo_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['repo_id'], ['repos.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('repo_id', 'user_id')
    )
    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=96), nullable=True),
    sa.Column('event', sa.String(length=64), nullable=False),
    sa.Column('target', sa.String(length=300), nullable=True),
    sa.Column('details', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_audit_events_at', 'audit_events', ['at'])
    op.create_index('ix_audit_events_event', 'audit_events', ['event'])


def downgrade() -> None:
    op.drop_index('ix_audit_events_event', table_name='audit_events')
    op.drop_index('ix_audit_events_at', table_name='audit_events')
    op.drop_table('audit_events')
    op.drop_table('access_requests')
    with op.batch_alter_table('tokens') as batch:
        batch.drop_column('scopes')
    with op.batch_alter_table('accounts') as batch:
        batch.drop_column('disabled')
        batch.drop_column('password_hash')
