"""Indexes on time: ledger_usage(hour) and ledger(arrival)

Every reader of the usage roll-up (cost, serving health, SLOs) takes a window of hours of
every pod, and the key starts with the pod, so each read scanned the whole table; the page's
"as of" (the newest request) scanned the ledger. A year of demo roll-up: a month's read
went from a scan of 160k rows to the month's rows.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_ledger_usage_hour', 'ledger_usage', ['hour'])
    op.create_index('ix_ledger_arrival', 'ledger', ['arrival'])


def downgrade() -> None:
    op.drop_index('ix_ledger_arrival', table_name='ledger')
    op.drop_index('ix_ledger_usage_hour', table_name='ledger_usage')
