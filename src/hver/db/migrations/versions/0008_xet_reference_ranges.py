"""Xet: the chunk ranges each file uses per xorb; several xorbs per dedup chunk

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 10:00:00

A shard may reference the chunk ranges of files its uploader may read, not whole xorbs:
`xet_file_xorbs.ranges` keeps, per file and xorb, the merged ranges its terms use, so the
check never reads every term of every file. The dedup index keeps several xorbs per chunk
(`xet_dedup_chunks`, replacing `xet_chunks`): one xorb that nobody else may reference can
no longer hide a chunk from everyone's dedup answers.
"""
from __future__ import annotations

import struct

import sqlalchemy as sa
from alembic import op

from hver.xet.hashing import hex_hash

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

_TERM = struct.Struct("<32sIII")


def _pack(ranges: list[tuple[int, int]]) -> bytes:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return b"".join(struct.pack("<II", a, b) for a, b in merged)


def upgrade() -> None:
    with op.batch_alter_table('xet_file_xorbs') as batch:
        batch.add_column(sa.Column('ranges', sa.LargeBinary(), nullable=True))
    conn = op.get_bind()
    file_xorbs = sa.table('xet_file_xorbs', sa.column('file_hash', sa.String),
                          sa.column('xorb_hash', sa.String), sa.column('ranges', sa.LargeBinary))
    for file_hash, terms in conn.execute(sa.text("SELECT file_hash, terms FROM xet_files")):
        spans: dict[str, list[tuple[int, int]]] = {}
        for xorb, start, end, _ in _TERM.iter_unpack(terms):
            spans.setdefault(hex_hash(xorb), []).append((start, end))
        for xorb, ranges in spans.items():
            conn.execute(file_xorbs.update().where(
                file_xorbs.c.file_hash == file_hash, file_xorbs.c.xorb_hash == xorb
            ).values(ranges=_pack(ranges)))
    op.create_table('xet_dedup_chunks',
    sa.Column('chunk_hash', sa.String(length=64), nullable=False),
    sa.Column('xorb_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['xorb_hash'], ['xet_xorbs.hash']),
    sa.PrimaryKeyConstraint('chunk_hash', 'xorb_hash')
    )
    op.execute("INSERT INTO xet_dedup_chunks (chunk_hash, xorb_hash) "
               "SELECT chunk_hash, xorb_hash FROM xet_chunks")
    op.drop_table('xet_chunks')


def downgrade() -> None:
    op.create_table('xet_chunks',
    sa.Column('chunk_hash', sa.String(length=64), nullable=False),
    sa.Column('xorb_hash', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['xorb_hash'], ['xet_xorbs.hash']),
    sa.PrimaryKeyConstraint('chunk_hash')
    )
    op.execute("INSERT INTO xet_chunks (chunk_hash, xorb_hash) "
               "SELECT chunk_hash, MIN(xorb_hash) FROM xet_dedup_chunks GROUP BY chunk_hash")
    op.drop_table('xet_dedup_chunks')
    with op.batch_alter_table('xet_file_xorbs') as batch:
        batch.drop_column('ranges')
