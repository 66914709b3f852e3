"""likes

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 06:15:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('likes',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('repo_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['repo_id'], ['repos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'repo_id')
    )
    op.create_index('ix_likes_repo_id', 'likes', ['repo_id'])


def downgrade() -> None:
    op.drop_index('ix_likes_repo_id', table_name='likes')
    op.drop_table('likes')
