"""ledger: on PostgreSQL, partitioned by day of arrival, so raw rows past their retention
go by dropping a day's partition (collectors/retention.py) while the hourly roll-ups stay

A partitioned table's keys must hold the partition column: the primary key becomes (id,
arrival) and the natural key (source, request_id, arrival) — a record delivered twice
carries the same arrival, so it is still stored once. Existing rows move into one partition
per day they arrived on; a default partition takes rows of days not yet made. The id
sequence carries on. SQLite keeps one table (retention deletes rows there).

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def _indexes() -> list[str]:
    """The ledger's secondary indexes (not its keys), as CREATE INDEX statements."""
    rows = op.get_bind().execute(text(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
        " AND tablename = 'ledger' AND indexname LIKE 'ix_ledger_%' ORDER BY indexname"))
    return [str(definition).replace(" ONLY ", " ") for _name, definition in rows]


def _move(keys: str, partition_by: str) -> None:
    bind = op.get_bind()
    sequence = bind.execute(text("SELECT pg_get_serial_sequence('ledger', 'id')")).scalar()
    indexes = _indexes()
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY NONE")
    op.execute(f"CREATE TABLE ledger_moved (LIKE ledger INCLUDING DEFAULTS){partition_by}")
    if partition_by:
        op.execute("CREATE TABLE ledger_default PARTITION OF ledger_moved DEFAULT")
        days = bind.execute(text(
            "SELECT DISTINCT date_trunc('day', arrival AT TIME ZONE 'UTC') FROM ledger"))
        for (day,) in days:
            op.execute(f"CREATE TABLE ledger_p{day:%Y%m%d} PARTITION OF ledger_moved FOR"
                       f" VALUES FROM ('{day:%Y-%m-%d} 00:00:00+00')"
                       f" TO (('{day:%Y-%m-%d} 00:00:00+00'::timestamptz + interval '1 day'))")
    op.execute("INSERT INTO ledger_moved SELECT * FROM ledger")
    op.execute("DROP TABLE ledger")
    op.execute("ALTER TABLE ledger_moved RENAME TO ledger")
    op.execute(keys)
    for statement in indexes:
        op.execute(statement)
    op.execute(f"ALTER SEQUENCE {sequence} OWNED BY ledger.id")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _move("ALTER TABLE ledger ADD CONSTRAINT ledger_pkey PRIMARY KEY (id, arrival),"
          " ADD CONSTRAINT ledger_source_request_id_key UNIQUE (source, request_id, arrival)",
          " PARTITION BY RANGE (arrival)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _move("ALTER TABLE ledger ADD CONSTRAINT ledger_pkey PRIMARY KEY (id),"
          " ADD CONSTRAINT ledger_source_request_id_key UNIQUE (source, request_id)", "")
