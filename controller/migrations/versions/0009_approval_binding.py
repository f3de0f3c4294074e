"""dictionaries per org unit; approval bound to the audio (sha256) and spoken text approved

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 00:00:00

* pronunciationentry.org_unit_id (None: the top of the tree, as every entry so far);
  ``term_key`` unique per org unit instead of globally.
* bulletin.approved_sha256 / approved_spoken_text / pending_reason. Bulletins approved before
  this revision are bound to the audio and spoken text they have now.
* bulletinspeech.speed: the speed a bulletin was rendered at (to re-render it faithfully).
"""
from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_S = sqlmodel.sql.sqltypes.AutoString
# 0002 created the unique constraint on term_key without a name: name it for batch mode (SQLite)
_NAMES = {"uq": "uq_%(table_name)s_%(column_0_name)s"}


def _old_unique_name() -> str:
    if op.get_bind().dialect.name == "postgresql":
        return "pronunciationentry_term_key_key"
    return "uq_pronunciationentry_term_key"


def upgrade() -> None:
    with op.batch_alter_table('pronunciationentry', naming_convention=_NAMES) as b:
        b.drop_constraint(_old_unique_name(), type_='unique')
        b.add_column(sa.Column('org_unit_id', _S(length=63), nullable=True))
        b.create_unique_constraint('uq_pronunciation_org_term', ['org_unit_id', 'term_key'])
        b.create_index('ix_pronunciationentry_org_unit_id', ['org_unit_id'])
    with op.batch_alter_table('bulletin') as b:
        b.add_column(sa.Column('approved_sha256', _S(length=64), nullable=True))
        b.add_column(sa.Column('approved_spoken_text', _S(), nullable=True))
        b.add_column(sa.Column('pending_reason', _S(length=500), nullable=False, server_default=''))
    with op.batch_alter_table('bulletinspeech') as b:
        b.add_column(sa.Column('speed', sa.Float(), nullable=True))
    op.execute("UPDATE bulletin SET approved_sha256 = audio_sha256 WHERE approval = 'approved'")
    op.execute("UPDATE bulletin SET approved_spoken_text = (SELECT spoken_text FROM bulletinspeech "
               "WHERE bulletinspeech.bulletin_id = bulletin.id) WHERE approval = 'approved'")


def downgrade() -> None:
    with op.batch_alter_table('bulletinspeech') as b:
        b.drop_column('speed')
    with op.batch_alter_table('bulletin') as b:
        for c in ('pending_reason', 'approved_spoken_text', 'approved_sha256'):
            b.drop_column(c)
    # entries of several org units may share a term now: keep the top's (or the first) of each
    op.execute("DELETE FROM pronunciationentry WHERE id NOT IN (SELECT MIN(id) FROM pronunciationentry "
               "GROUP BY term_key)")
    with op.batch_alter_table('pronunciationentry') as b:
        b.drop_index('ix_pronunciationentry_org_unit_id')
        b.drop_constraint('uq_pronunciation_org_term', type_='unique')
        b.drop_column('org_unit_id')
        # the name 0002 gave it on each (upgrade drops it by that name again)
        b.create_unique_constraint(_old_unique_name(), ['term_key'])
