"""journal_offset: where each durable journal consumer is, committed with its rows

The data plane appends one line per request to a local journal; the ledger consumer commits
the position after a batch with the batch's rows, so a killed telemetry process resumes
exactly there (engine_shim/journal.py, engine_shim/tailer.py).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'journal_offset',
        sa.Column('consumer', sa.String(length=200), nullable=False),
        sa.Column('segment', sa.BigInteger(), nullable=False),
        sa.Column('offset', sa.BigInteger(), nullable=False),
        sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('consumer'))


def downgrade() -> None:
    op.drop_table('journal_offset')
