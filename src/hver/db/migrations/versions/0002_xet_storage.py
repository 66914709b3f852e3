"""Xet storage: xorbs, files, the dedup index; which Xet file backs a repo's LFS object

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 04:45:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('xet_xorbs',
    sa.Column('hash', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('unpacked_size', sa.BigInteger(), nullable=False),
    sa.Column('num_chunks', sa.Integer(), nullable=False),
    sa.Column('chunk_index', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('hash')
    )
    op.create_table('xet_xorb_uploads',
    sa.Column('xorb_hash', sa.String(length=64), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['xorb_hash'], ['xet_xorbs.hash'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('xorb_hash', 'account_id')
    )
    op.create_table('xet_files',
    sa.Column('file_hash', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('terms', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('file_hash')
    )
    op.create_table('xet_file_xorbs',
    sa.Column('file_hash', sa.String(length=64), nullable=False),
    sa.Column('xorb_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['file_hash'], ['xet_files.file_hash'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['xorb_hash'], ['xet_xorbs.hash']),
    sa.PrimaryKeyConstraint('file_hash', 'xorb_hash')
    )
    op.create_index('ix_xet_file_xorbs_xorb_hash', 'xet_file_xorbs', ['xorb_hash'])
    with op.batch_alter_table('lfs_objects') as batch:
        batch.add_column(sa.Column('xet_hash', sa.String(length=64), nullable=True))
        batch.create_index('ix_lfs_objects_xet_hash', ['xet_hash'])
        batch.create_foreign_key('fk_lfs_objects_xet_hash', 'xet_files', ['xet_hash'],
                                 ['file_hash'])
    op.create_table('xet_chunks',
    sa.Column('chunk_hash', sa.String(length=64), nullable=False),
    sa.Column('xorb_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['xorb_hash'], ['xet_xorbs.hash']),
    sa.PrimaryKeyConstraint('chunk_hash')
    )


def downgrade() -> None:
    op.drop_table('xet_chunks')
    with op.batch_alter_table('lfs_objects') as batch:
        batch.drop_constraint('fk_lfs_objects_xet_hash', type_='foreignkey')
        batch.drop_index('ix_lfs_objects_xet_hash')
        batch.drop_column('xet_hash')
    op.drop_index('ix_xet_file_xorbs_xorb_hash', table_name='xet_file_xorbs')
    op.drop_table('xet_file_xorbs')
    op.drop_table('xet_files')
    op.drop_table('xet_xorb_uploads')
    op.drop_table('xet_xorbs')
