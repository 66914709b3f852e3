"""repo redirects; account names looked up whatever their case

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 12:30:00

A moved repo keeps answering at its old id, as on the Hub: `repo_redirects` maps an id
(type, namespace, name; unique whatever its case, as repo ids) to the repo it was moved
from. A repo created at that id takes it back (the row goes); deleting the repo removes
its rows (ON DELETE CASCADE). Namespaces are looked up whatever their case: account
names get an index on lower(name).
"""
from alembic import op
import sqlalchemy as sa


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

REDIRECT_INDEX = 'uq_repo_redirects_type_lower_namespace_name'
ACCOUNT_INDEX = 'ix_accounts_lower_name'


def upgrade() -> None:
    op.create_table('repo_redirects',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=8), nullable=False),
    sa.Column('namespace', sa.String(length=96), nullable=False),
    sa.Column('name', sa.String(length=96), nullable=False),
    sa.Column('repo_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['repo_id'], ['repos.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_repo_redirects_repo_id', 'repo_redirects', ['repo_id'])
    op.create_index(REDIRECT_INDEX, 'repo_redirects',
                    ['type', sa.text('lower(namespace)'), sa.text('lower(name)')], unique=True)
    op.create_index(ACCOUNT_INDEX, 'accounts', [sa.text('lower(name)')])


def downgrade() -> None:
    op.drop_index(ACCOUNT_INDEX, table_name='accounts')
    op.drop_index(REDIRECT_INDEX, table_name='repo_redirects')
    op.drop_index('ix_repo_redirects_repo_id', table_name='repo_redirects')
    op.drop_table('repo_redirects')
