"""ledger_hour counts server-side failures, 429s and cancellations apart (availability)

The roll-up's `failed` used to count client rejections (4xx) too; it now counts server-side
failures only. The roll-up is emptied so the next refresh rebuilds every hour by the new rule.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ledger_hour') as batch:
        batch.add_column(sa.Column('throttled', sa.Integer(), nullable=False,
                                   server_default='0'))
        batch.add_column(sa.Column('cancelled', sa.Integer(), nullable=False,
                                   server_default='0'))
    op.execute("DELETE FROM ledger_hour")
    op.execute("DELETE FROM rollup_state WHERE name = 'ledger_hour'")


def downgrade() -> None:
    with op.batch_alter_table('ledger_hour') as batch:
        batch.drop_column('cancelled')
        batch.drop_column('throttled')
    op.execute("DELETE FROM ledger_hour")
    op.execute("DELETE FROM rollup_state WHERE name = 'ledger_hour'")
