"""relays: relay sessions (tiếp sóng) persisted; schedules may relay a stream instead of a bulletin

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-23 00:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table('relay',
    sa.Column('id', _S(length=63), nullable=False),
    sa.Column('url', _S(length=500), nullable=False),
    sa.Column('mode', _S(length=16), nullable=False),
    sa.Column('priority', _S(length=16), nullable=False),
    sa.Column('nodes', sa.JSON(), nullable=False),
    sa.Column('scopes', sa.JSON(), nullable=False),
    sa.Column('target', sa.JSON(), nullable=False),
    sa.Column('start_at', sa.BigInteger(), nullable=True),
    sa.Column('duration_s', sa.Float(), nullable=True),
    sa.Column('state', _S(length=16), nullable=False),
    sa.Column('reason', _S(length=500), nullable=False),
    sa.Column('started_at', sa.BigInteger(), nullable=True),
    sa.Column('ended_at', sa.BigInteger(), nullable=True),
    sa.Column('owner', _S(length=100), nullable=False),
    sa.Column('created_by', _S(length=100), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('schedule_id', sa.Integer(), nullable=True),
    sa.Column('slot_at', sa.BigInteger(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_relay_state', 'relay', ['state'])
    op.create_index('ix_relay_created_at', 'relay', ['created_at'])
    with op.batch_alter_table('schedule') as b:
        b.alter_column('bulletin_id', existing_type=sa.Integer(), nullable=True)
        b.add_column(sa.Column('relay', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('schedule') as b:
        b.drop_column('relay')
        b.alter_column('bulletin_id', existing_type=sa.Integer(), nullable=False)
    op.drop_index('ix_relay_created_at', 'relay')
    op.drop_index('ix_relay_state', 'relay')
    op.drop_table('relay')
