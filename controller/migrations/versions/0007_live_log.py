"""live log: a record of every live session from a phone, and its archived audio

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 00:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table('livelog',
    sa.Column('id', _S(length=63), nullable=False),
    sa.Column('user', _S(length=100), nullable=False),
    sa.Column('priority', _S(length=16), nullable=False),
    sa.Column('target', sa.JSON(), nullable=False),
    sa.Column('nodes', sa.JSON(), nullable=False),
    sa.Column('state', _S(length=16), nullable=False),
    sa.Column('reason', _S(length=200), nullable=False),
    sa.Column('opened_at', sa.BigInteger(), nullable=False),
    sa.Column('started_at', sa.BigInteger(), nullable=True),
    sa.Column('ended_at', sa.BigInteger(), nullable=True),
    sa.Column('frames', sa.Integer(), nullable=False),
    sa.Column('bytes_in', sa.BigInteger(), nullable=False),
    sa.Column('units_heard', sa.JSON(), nullable=False),
    sa.Column('units_refused', sa.JSON(), nullable=False),
    sa.Column('archive', _S(length=300), nullable=True),
    sa.Column('archive_duration_ms', sa.BigInteger(), nullable=True),
    sa.Column('archive_note', _S(length=300), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_livelog_user', 'livelog', ['user'])
    op.create_index('ix_livelog_opened_at', 'livelog', ['opened_at'])


def downgrade() -> None:
    op.drop_index('ix_livelog_opened_at', 'livelog')
    op.drop_index('ix_livelog_user', 'livelog')
    op.drop_table('livelog')
