"""owned delivery: broadcast_owner (a lease per broadcast), zone_claim (zones on air
cluster-wide), airing_request (commands carried out by the owner) (issue 16 part 2)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 08:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'broadcast_owner',
        sa.Column('broadcast_id', sa.String(length=63), nullable=False),
        sa.Column('holder', sa.String(length=120), nullable=False),
        sa.Column('expires_at', sa.BigInteger(), nullable=False),
        sa.Column('epoch', sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(['broadcast_id'], ['broadcast.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('broadcast_id'),
    )
    op.create_table(
        'zone_claim',
        sa.Column('zone', sa.String(length=100), nullable=False),
        sa.Column('item_id', sa.String(length=140), nullable=False),
        sa.Column('broadcast_id', sa.String(length=63), nullable=False),
        sa.Column('priority', sa.String(length=16), nullable=False),
        sa.Column('holder', sa.String(length=120), nullable=False),
        sa.Column('expires_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('zone'),
    )
    op.create_table(
        'airing_request',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('broadcast_id', sa.String(length=63), nullable=False),
        sa.Column('action', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.String(length=200), nullable=False),
        sa.Column('origin', sa.String(length=120), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.Column('done_at', sa.BigInteger(), nullable=True),
        sa.Column('outcome', sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_airing_request_broadcast_id'), 'airing_request', ['broadcast_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_airing_request_broadcast_id'), table_name='airing_request')
    op.drop_table('airing_request')
    op.drop_table('zone_claim')
    op.drop_table('broadcast_owner')
