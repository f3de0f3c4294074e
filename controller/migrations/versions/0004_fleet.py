"""fleet control: node credentials, desired settings, command log, telemetry history

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 00:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('nodecredential',
    sa.Column('node_id', sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('issued_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('issued_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['node_id'], ['node.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('node_id')
    )
    op.create_table('nodesetting',
    sa.Column('node_id', sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
    sa.Column('volume', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['node_id'], ['node.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('node_id')
    )
    op.create_table('nodecommand',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('args', sa.JSON(), nullable=False),
    sa.Column('target', sa.JSON(), nullable=False),
    sa.Column('results', sa.JSON(), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('finished_at', sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('nodecommand', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_nodecommand_created_at'), ['created_at'], unique=False)

    op.create_table('telemetrysample',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('node_id', sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
    sa.Column('at', sa.BigInteger(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('telemetrysample', schema=None) as batch_op:
        batch_op.create_index('ix_telemetrysample_node_at', ['node_id', 'at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('telemetrysample', schema=None) as batch_op:
        batch_op.drop_index('ix_telemetrysample_node_at')
    op.drop_table('telemetrysample')
    with op.batch_alter_table('nodecommand', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_nodecommand_created_at'))
    op.drop_table('nodecommand')
    op.drop_table('nodesetting')
    op.drop_table('nodecredential')
