"""relay presets, zone power windows, the audio library, acknowledged alerts (issue 14)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 08:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table(
        'relaypreset',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('name', _S(length=100), nullable=False),
        sa.Column('url', _S(length=500), nullable=False),
        sa.Column('mode', _S(length=16), nullable=False),
        sa.Column('org_unit_id', _S(length=63), nullable=True),
        sa.Column('created_by', _S(length=100), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_table(
        'zonewindow',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('zone_id', _S(length=63), nullable=False),
        sa.Column('on_at', _S(length=5), nullable=False),
        sa.Column('off_at', _S(length=5), nullable=False),
        sa.Column('days', sa.JSON(), nullable=False),
        sa.Column('enabled', sa.Boolean(), nullable=False),
        sa.Column('done_at', sa.BigInteger(), nullable=True),
        sa.Column('created_by', _S(length=100), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['zone_id'], ['zone.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_zonewindow_zone_id'), 'zonewindow', ['zone_id'], unique=False)
    op.create_table(
        'audioitem',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('title', _S(length=200), nullable=False),
        sa.Column('audio_sha256', _S(length=64), nullable=False),
        sa.Column('duration_ms', sa.Integer(), nullable=False),
        sa.Column('source_format', _S(length=16), nullable=False),
        sa.Column('org_unit_id', _S(length=63), nullable=True),
        sa.Column('created_by', _S(length=100), nullable=False),
        sa.Column('created_at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['audio_sha256'], ['audioasset.sha256']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(op.f('ix_audioitem_org_unit_id'), 'audioitem', ['org_unit_id'], unique=False)
    op.create_table(
        'alertack',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('key', _S(length=200), nullable=False),
        sa.Column('at', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_id', 'key'),
    )


def downgrade() -> None:
    op.drop_table('alertack')
    op.drop_index(op.f('ix_audioitem_org_unit_id'), table_name='audioitem')
    op.drop_table('audioitem')
    op.drop_index(op.f('ix_zonewindow_zone_id'), table_name='zonewindow')
    op.drop_table('zonewindow')
    op.drop_table('relaypreset')
