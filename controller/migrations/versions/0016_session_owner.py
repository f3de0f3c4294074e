"""session leases: relay_owner and live_owner, one owning controller per relay and per live
session, the lease of broadcast_owner (issue 16 part 2)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 14:20:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'relay_owner',
        sa.Column('relay_id', sa.String(length=63), nullable=False),
        sa.Column('holder', sa.String(length=120), nullable=False),
        sa.Column('expires_at', sa.BigInteger(), nullable=False),
        sa.Column('epoch', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['relay_id'], ['relay.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('relay_id'),
    )
    op.create_table(
        'live_owner',
        sa.Column('session_id', sa.String(length=63), nullable=False),
        sa.Column('holder', sa.String(length=120), nullable=False),
        sa.Column('expires_at', sa.BigInteger(), nullable=False),
        sa.Column('epoch', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('session_id'),
    )


def downgrade() -> None:
    op.drop_table('live_owner')
    op.drop_table('relay_owner')
