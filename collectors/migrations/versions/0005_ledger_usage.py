"""ledger_usage: the ledger per pod, hour, tenant, feature and model; ledger.itl_counts

Cost allocation, serving health and the SLOs read the roll-up instead of raw rows, so a
period answers the same once its raw rows have aged out. The ledger keeps each request's
token gaps in the ITL histogram's bins. Both roll-ups are emptied so the next refresh
rebuilds them from the ledger.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ledger') as batch:
        batch.add_column(sa.Column('itl_counts', sa.String(), nullable=True))
    op.create_table(
        'ledger_usage',
        sa.Column('pod', sa.String(length=128), nullable=False),
        sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
        sa.Column('tenant', sa.String(length=64), nullable=False),
        sa.Column('feature', sa.String(length=64), nullable=False),
        sa.Column('model', sa.String(length=256), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False)
          for name in ('requests', 'ok', 'failed', 'throttled', 'cancelled')),
        *(sa.Column(name, sa.BigInteger(), nullable=False)
          for name in ('input_tokens', 'cached_tokens', 'output_tokens', 'prefill_us',
                       'decode_us')),
        sa.Column('ttft_counts', sa.String(), nullable=False),
        sa.Column('itl_counts', sa.String(), nullable=False),
        sa.PrimaryKeyConstraint('pod', 'hour', 'tenant', 'feature', 'model'))
    op.execute("DELETE FROM ledger_hour")
    op.execute("DELETE FROM rollup_state WHERE name = 'ledger_hour'")


def downgrade() -> None:
    op.drop_table('ledger_usage')
    with op.batch_alter_table('ledger') as batch:
        batch.drop_column('itl_counts')
    op.execute("DELETE FROM ledger_hour")
    op.execute("DELETE FROM rollup_state WHERE name = 'ledger_hour'")
