"""ledger: the id of the transaction that wrote each row, the roll-up's watermark under
concurrent writers

On PostgreSQL ids are handed out at insert and transactions commit in any order, so the
roll-up's "highest id seen" could pass a row that commits later with a lower id and never
count it. Each row now carries its transaction's id (the column's default,
pg_current_xact_id()); the roll-up's watermark becomes the snapshot's xmin, below which
every transaction has ended (collectors/rollup.Cursor). Rows already rolled up get 0; rows
still waiting get this migration's transaction id, which becomes the watermark, so the next
refresh takes them. SQLite (one writer at a time, ids in commit order) keeps its id
watermark; the column stays NULL there.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

TXID = "(pg_current_xact_id()::text::bigint)"


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    with op.batch_alter_table('rollup_state') as batch:  # a transaction id outgrows int32
        batch.alter_column('last_id', type_=sa.BigInteger(), existing_type=sa.Integer(),
                           existing_nullable=False)
    with op.batch_alter_table('ledger') as batch:
        batch.add_column(sa.Column('txid', sa.BigInteger(), nullable=True,
                                   server_default=sa.text(TXID) if postgres else None))
        batch.create_index('ix_ledger_txid', ['txid'])
    if postgres:
        last = "(SELECT last_id FROM rollup_state WHERE name = 'ledger_hour')"
        op.execute(f"UPDATE ledger SET txid = CASE WHEN id <= COALESCE({last}, 0) THEN 0"
                   f" ELSE {TXID} END")
        op.execute(f"UPDATE rollup_state SET last_id = {TXID} WHERE name = 'ledger_hour'")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE rollup_state SET last_id = COALESCE((SELECT max(id) FROM ledger"
                   " WHERE txid < rollup_state.last_id), 0) WHERE name = 'ledger_hour'")
    with op.batch_alter_table('ledger') as batch:
        batch.drop_index('ix_ledger_txid')
        batch.drop_column('txid')
