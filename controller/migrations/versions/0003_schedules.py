"""schedules: schedule, schedulerun, scheduler_lease, apscheduler_jobs; broadcast.play_at

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 00:00:00

``apscheduler_jobs`` is APScheduler 3's SQLAlchemyJobStore table, created here so Alembic owns
the schema (APScheduler's own create-if-missing then does nothing). The lease row is seeded.
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('schedule',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('bulletin_id', sa.Integer(), nullable=False),
    sa.Column('targets', sa.JSON(), nullable=False),
    sa.Column('priority', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('spec', sa.JSON(), nullable=False),
    sa.Column('repeat', sa.Integer(), nullable=False),
    sa.Column('interval_s', sa.Integer(), nullable=False),
    sa.Column('exceptions', sa.JSON(), nullable=False),
    sa.Column('valid_for_s', sa.Integer(), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('deleted', sa.Boolean(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('version_at', sa.BigInteger(), nullable=False),
    sa.Column('last_slot_at', sa.BigInteger(), nullable=True),
    sa.Column('created_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('schedule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedule_bulletin_id'), ['bulletin_id'], unique=False)

    op.create_table('schedulerun',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('schedule_id', sa.Integer(), nullable=False),
    sa.Column('slot_at', sa.BigInteger(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('late_ms', sa.BigInteger(), nullable=True),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('broadcast_ids', sa.JSON(), nullable=False),
    sa.Column('fired_by', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('created_at', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['schedule_id'], ['schedule.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('schedule_id', 'slot_at', name='uq_schedulerun_slot')
    )
    with op.batch_alter_table('schedulerun', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_schedulerun_schedule_id'), ['schedule_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_schedulerun_status'), ['status'], unique=False)

    lease = op.create_table('scheduler_lease',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=63), nullable=False),
    sa.Column('holder', sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
    sa.Column('expires_at', sa.BigInteger(), nullable=False),
    sa.Column('acquired_at', sa.BigInteger(), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    op.bulk_insert(lease, [{'name': 'schedules', 'holder': '', 'expires_at': 0, 'acquired_at': 0, 'epoch': 0}])

    # APScheduler 3.x SQLAlchemyJobStore(tablename="apscheduler_jobs"), column for column
    op.create_table('apscheduler_jobs',
    sa.Column('id', sa.Unicode(length=191), nullable=False),
    sa.Column('next_run_time', sa.Float(precision=25), nullable=True),
    sa.Column('job_state', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('apscheduler_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_apscheduler_jobs_next_run_time', ['next_run_time'], unique=False)

    with op.batch_alter_table('broadcast', schema=None) as batch_op:
        batch_op.add_column(sa.Column('play_at', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('broadcast', schema=None) as batch_op:
        batch_op.drop_column('play_at')
    with op.batch_alter_table('apscheduler_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_apscheduler_jobs_next_run_time')
    op.drop_table('apscheduler_jobs')
    op.drop_table('scheduler_lease')
    with op.batch_alter_table('schedulerun', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_schedulerun_status'))
        batch_op.drop_index(batch_op.f('ix_schedulerun_schedule_id'))
    op.drop_table('schedulerun')
    with op.batch_alter_table('schedule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_schedule_bulletin_id'))
    op.drop_table('schedule')
