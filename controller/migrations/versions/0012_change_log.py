"""changelog: the change feed's log, so a controller that missed a notification catches up (issue 16)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 08:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'changelog',
        sa.Column('seq', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
                  nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('origin', sa.String(length=120), nullable=False),
        sa.Column('at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('seq'),
    )
    op.create_index(op.f('ix_changelog_at'), 'changelog', ['at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_changelog_at'), table_name='changelog')
    op.drop_table('changelog')
