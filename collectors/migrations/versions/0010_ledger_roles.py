"""ledger: the role of the engine that served a row (P/D disaggregation); the roll-ups
count prefills apart from requests and keep the engine queue time

A prefill-role row is the prefill pod's GPU work for a request the decode pod's sidecar
records: the roll-up counts it as a prefill (with its prompt tokens), never as a request,
so tokens are counted once across roles (collectors/usage.py). Existing rows were served
by pods doing both (role "").

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def _role() -> sa.Column:  # type: ignore[type-arg]
    return sa.Column('role', sa.String(length=16), nullable=False, server_default='')


def _count(name: str, kind: type[sa.types.TypeEngine] = sa.Integer) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, kind(), nullable=False, server_default='0')


def upgrade() -> None:
    with op.batch_alter_table('ledger') as batch:
        batch.add_column(_role())
    with op.batch_alter_table('ledger_hour') as batch:
        batch.add_column(_count('prefills'))
        batch.add_column(_role())
    with op.batch_alter_table('ledger_usage') as batch:
        batch.add_column(_count('prefills'))
        batch.add_column(_count('prefill_tokens', sa.BigInteger))
        batch.add_column(_count('queue_us', sa.BigInteger))


def downgrade() -> None:
    with op.batch_alter_table('ledger_usage') as batch:
        for name in ('queue_us', 'prefill_tokens', 'prefills'):
            batch.drop_column(name)
    with op.batch_alter_table('ledger_hour') as batch:
        batch.drop_column('role')
        batch.drop_column('prefills')
    with op.batch_alter_table('ledger') as batch:
        batch.drop_column('role')
