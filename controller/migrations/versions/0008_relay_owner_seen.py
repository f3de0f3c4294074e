"""relay.owner_seen_at: when the controller running a relay last said so (takeover by another)

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-23 00:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('relay') as b:
        b.add_column(sa.Column('owner_seen_at', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('relay') as b:
        b.drop_column('owner_seen_at')
