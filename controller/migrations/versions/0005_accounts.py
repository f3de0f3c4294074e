"""accounts: org units, sessions, audit log; approval on bulletins; org unit of users and zones

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 00:00:00
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString


def upgrade() -> None:
    op.create_table('orgunit',
    sa.Column('id', _S(length=63), nullable=False),
    sa.Column('name', _S(length=200), nullable=False),
    sa.Column('parent_id', _S(length=63), nullable=True),
    sa.ForeignKeyConstraint(['parent_id'], ['orgunit.id']),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('usersession',
    sa.Column('token_hash', _S(length=64), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('csrf', _S(length=64), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('token_hash')
    )
    op.create_index('ix_usersession_user_id', 'usersession', ['user_id'])
    op.create_table('auditentry',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sa.BigInteger(), nullable=False),
    sa.Column('username', _S(length=100), nullable=False),
    sa.Column('action', _S(length=64), nullable=False),
    sa.Column('target', _S(length=200), nullable=False),
    sa.Column('detail', _S(length=1000), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_auditentry_at', 'auditentry', ['at'])
    with op.batch_alter_table('user') as b:
        b.add_column(sa.Column('org_unit_id', _S(length=63), nullable=True))
    with op.batch_alter_table('zone') as b:
        b.add_column(sa.Column('org_unit_id', _S(length=63), nullable=True))
    with op.batch_alter_table('bulletin') as b:
        b.add_column(sa.Column('approval', _S(length=16), nullable=False, server_default='approved'))
        b.add_column(sa.Column('org_unit_id', _S(length=63), nullable=True))
        b.add_column(sa.Column('submitted_at', sa.BigInteger(), nullable=True))
        b.add_column(sa.Column('decided_by', _S(length=100), nullable=False, server_default=''))
        b.add_column(sa.Column('decided_at', sa.BigInteger(), nullable=True))
        b.add_column(sa.Column('decision_note', _S(length=500), nullable=False, server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('bulletin') as b:
        for c in ('decision_note', 'decided_at', 'decided_by', 'submitted_at', 'org_unit_id', 'approval'):
            b.drop_column(c)
    with op.batch_alter_table('zone') as b:
        b.drop_column('org_unit_id')
    with op.batch_alter_table('user') as b:
        b.drop_column('org_unit_id')
    op.drop_index('ix_auditentry_at', 'auditentry')
    op.drop_table('auditentry')
    op.drop_index('ix_usersession_user_id', 'usersession')
    op.drop_table('usersession')
    op.drop_table('orgunit')
