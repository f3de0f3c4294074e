"""broadcast (status, air_at) index: the overdue scan every controller runs every 2 s

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 00:05:00
"""
from __future__ import annotations

from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_broadcast_status_air_at', 'broadcast', ['status', 'air_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_broadcast_status_air_at', table_name='broadcast')
