"""people keyed by person and hire date (leavers who return); the hourly ledger roll-up

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

PERSON_COLUMNS = "person, hired, team, tech, exited, hourly_rate"


def _person_table(name: str, key: tuple[str, ...]) -> None:
    op.create_table(
        name,
        sa.Column('person', sa.String(length=128), nullable=False),
        sa.Column('hired', sa.Date(), nullable=False),
        sa.Column('team', sa.String(length=64), nullable=False),
        sa.Column('tech', sa.Boolean(), nullable=False),
        sa.Column('exited', sa.Date(), nullable=True),
        sa.Column('hourly_rate', sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint(*key, name=f'{name}_pkey'),
    )


def _swap_person(key: tuple[str, ...]) -> None:
    """Rebuild `person` with a new primary key, keeping every row (SQLite cannot alter a key)."""
    _person_table('person_swap', key)
    op.execute(f"INSERT INTO person_swap ({PERSON_COLUMNS}) SELECT {PERSON_COLUMNS} FROM person")
    op.drop_table('person')
    op.rename_table('person_swap', 'person')
    if op.get_bind().dialect.name == 'postgresql':
        op.execute("ALTER TABLE person RENAME CONSTRAINT person_swap_pkey TO person_pkey")


def upgrade() -> None:
    _swap_person(('person', 'hired'))
    op.create_index('ix_ledger_pod_arrival', 'ledger', ['pod', 'arrival'])
    op.create_table(
        'ledger_hour',
        sa.Column('pod', sa.String(length=128), nullable=False),
        sa.Column('hour', sa.DateTime(timezone=True), nullable=False),
        sa.Column('requests', sa.Integer(), nullable=False),
        sa.Column('ok', sa.Integer(), nullable=False),
        sa.Column('failed', sa.Integer(), nullable=False),
        sa.Column('input_tokens', sa.Integer(), nullable=False),
        sa.Column('output_tokens', sa.Integer(), nullable=False),
        sa.Column('busy_seconds', sa.Float(), nullable=False),
        sa.Column('ttft_counts', sa.String(), nullable=False),
        sa.Column('e2e_counts', sa.String(), nullable=False),
        sa.PrimaryKeyConstraint('pod', 'hour'),
    )
    op.create_table(
        'rollup_state',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('last_id', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('name'),
    )


def downgrade() -> None:
    op.drop_table('rollup_state')
    op.drop_table('ledger_hour')
    op.drop_index('ix_ledger_pod_arrival', table_name='ledger')
    _swap_person(('person',))
