"""idempotency keys: the first answer of a state-changing POST, kept 24 h (docs/faults.md)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 00:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table('idempotencykey',
    sa.Column('username', _S(length=100), nullable=False),
    sa.Column('key', _S(length=255), nullable=False),
    sa.Column('route', _S(length=200), nullable=False),
    sa.Column('fingerprint', _S(length=64), nullable=False),
    sa.Column('status', sa.Integer(), nullable=False),
    sa.Column('body', sa.JSON(), nullable=True),
    sa.Column('ref', _S(length=100), nullable=True),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('username', 'key')
    )
    op.create_index('ix_idempotencykey_created_at', 'idempotencykey', ['created_at'])


def downgrade() -> None:
    op.drop_index('ix_idempotencykey_created_at', 'idempotencykey')
    op.drop_table('idempotencykey')
