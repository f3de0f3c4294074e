"""speech: pronunciation dictionary, how each bulletin was read, bulletin warnings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 00:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('pronunciationentry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('term', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('term_key', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('spoken', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('note', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('term_key')
    )
    op.create_table('bulletinspeech',
    sa.Column('bulletin_id', sa.Integer(), nullable=False),
    sa.Column('spoken_text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('requested_engine', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('engine', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('voice', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('dictionary_hits', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['bulletin_id'], ['bulletin.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('bulletin_id')
    )
    with op.batch_alter_table('bulletin', schema=None) as batch_op:
        batch_op.add_column(sa.Column('warnings', sa.JSON(), server_default=sa.text("'[]'"), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('bulletin', schema=None) as batch_op:
        batch_op.drop_column('warnings')
    op.drop_table('bulletinspeech')
    op.drop_table('pronunciationentry')
