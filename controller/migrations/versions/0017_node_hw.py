"""node.hw: what a unit says it is in its birth message (``hw``), kept beside ``fw``

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 22:10:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('node') as batch:
        batch.add_column(sa.Column('hw', sa.String(length=64), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('node') as batch:
        batch.drop_column('hw')
