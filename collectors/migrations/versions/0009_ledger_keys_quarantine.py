"""ledger: the client's X-Request-Id apart from the key, a truncated marker, a quarantine

The ledger's key is the data plane's own request id; what the client sent as X-Request-Id
is kept in client_request_id (indexed), so two requests sharing one are two rows. Text
longer than its column is cut and marked `truncated`; a row the store still refuses goes to
ledger_quarantine with the reason instead of failing its batch (collectors/ledger.py).

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ledger') as batch:
        batch.add_column(sa.Column('client_request_id', sa.String(length=128), nullable=True))
        batch.add_column(sa.Column('truncated', sa.Boolean(), nullable=False,
                                   server_default=sa.false()))
        batch.create_index('ix_ledger_client_request_id', ['client_request_id'])
    op.create_table(
        'ledger_quarantine',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('consumer', sa.String(length=200), nullable=False),
        sa.Column('request_id', sa.String(length=128), nullable=False),
        sa.Column('reason', sa.String(length=500), nullable=False),
        sa.Column('row', sa.String(), nullable=False),
        sa.Column('quarantined', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'))


def downgrade() -> None:
    op.drop_table('ledger_quarantine')
    with op.batch_alter_table('ledger') as batch:
        batch.drop_index('ix_ledger_client_request_id')
        batch.drop_column('truncated')
        batch.drop_column('client_request_id')
