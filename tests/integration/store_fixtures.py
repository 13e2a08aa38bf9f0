"""A store on SQLite and on PostgreSQL (a fresh schema on the local server) for every test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import text
from sqlmodel import SQLModel

from collectors.store import Store

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        opened = Store.open(str(tmp_path / "store.sqlite"))
        yield opened
        opened.close()
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES.replace("postgresql://", "postgresql://"),
                             autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL at 127.0.0.1:5432 is not reachable: {exc}")
    opened = Store.open(POSTGRES, connect_args={"options": f"-csearch_path={schema}"})
    yield opened
    opened.close()
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def dump(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, for 'the store is exactly as it was' checks."""
    out = {}
    with store.engine.connect() as conn:
        for name, table in sorted(SQLModel.metadata.tables.items()):
            rows = conn.execute(table.select()).fetchall()
            out[name] = sorted((tuple(r) for r in rows), key=repr)
        out["alembic_version"] = [tuple(r) for r in conn.execute(
            text("SELECT version_num FROM alembic_version"))]
    return out


def write_pd_fleet(store: Store) -> None:
    """tests/unit/test_cost_roles.py's two P/D requests (a prefill pod pf, a decode pod dc,
    $36 per GPU-hour each for the hour they ran in), stored and rolled up."""
    from datetime import timedelta

    from collectors import rollup
    from collectors.tables import GpuAllocation, LedgerRow
    from tests.unit.test_cost_roles import LEDGER, T0, T1

    with store.write_session() as session:
        for n, item in enumerate(LEDGER.to_dict("records")):
            arrival = item["arrival"].to_pydatetime()
            session.add(LedgerRow(
                source="sidecar", request_id=f"r{n}", tenant=item["tenant"],
                model=item["model"], feature=item["feature"], endpoint="chat",
                pod=item["pod"], role=item["role"], arrival=arrival,
                finish=arrival + timedelta(seconds=item["e2e_latency"]), outcome="ok",
                http_status=200, time_to_first_token=item["time_to_first_token"],
                e2e_latency=item["e2e_latency"], queue_time=item["queue_time"],
                prompt_tokens=item["prompt_tokens"], output_tokens=item["output_tokens"],
                cached_prompt_tokens=0))
        for pod in ("pf", "dc"):
            session.add(GpuAllocation(pod=pod, valid_from=T0, valid_to=T1, gpu_type="H100",
                                      gpu_count=1, dollars_per_gpu_hour=36.0))
        session.commit()
    rollup.refresh(store)
