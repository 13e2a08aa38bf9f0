"""kpi_period_cache: each closed period's 19 KPI pairs, kept so the page and reports do not
recompute a year of history on every view (kpi_mapping/period_cache.py).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'kpi_period_cache',
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('start', sa.DateTime(timezone=True), nullable=False),
        sa.Column('key', sa.String(length=64), nullable=False),
        sa.Column('computed', sa.DateTime(timezone=True), nullable=False),
        sa.Column('import_id', sa.BigInteger(), nullable=False),
        sa.Column('requests', sa.BigInteger(), nullable=False),
        sa.Column('pairs', sa.String(), nullable=False),
        sa.PrimaryKeyConstraint('kind', 'start', 'key'))


def downgrade() -> None:
    op.drop_table('kpi_period_cache')
