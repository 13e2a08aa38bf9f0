"""engine snapshots keyed by engine, model, pod and time; EBITDA and sales cycle in finance

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('engine_snapshot') as batch:
        batch.create_unique_constraint('uq_engine_snapshot_reading',
                                       ['engine', 'model', 'pod', 'taken'])
    with op.batch_alter_table('finance_month') as batch:
        batch.add_column(sa.Column('ebitda', sa.Float(), nullable=True))
        batch.add_column(sa.Column('sales_cycle_days', sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('finance_month') as batch:
        batch.drop_column('sales_cycle_days')
        batch.drop_column('ebitda')
    with op.batch_alter_table('engine_snapshot') as batch:
        batch.drop_constraint('uq_engine_snapshot_reading', type_='unique')
