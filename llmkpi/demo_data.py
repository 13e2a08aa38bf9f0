"""`llmkpi demo-data`: generate the demo company and load it into the store.

The fleet's timings are the simulator's own profiles, so the generated ledger reads like
the live simulator's traffic: an H100 pod all year (its price cut in month 6) and an L4 pod
added in month 4 as traffic grows.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path

from collectors.demo_company import DemoCompany, generate
from collectors.demo_company.load import load
from collectors.demo_company.serving import Pod
from collectors.demo_company.timeline import add_months
from collectors.store import Store
from engine_shim.simulator.profiles import get_profile


def pods(months: int) -> list[Pod]:
    return [Pod("vllm-0", "H100-80GB", 2.49, get_profile("h100-llama3-8b"), 0,
                price_cut=(min(5, months - 1), 2.19)),
            Pod("vllm-1", "L4-24GB", 0.80, get_profile("l4-llama3-8b"), min(3, months - 1))]


def last_full_month(today: date | None = None) -> date:
    return add_months((today or datetime.now(UTC).date()).replace(day=1), -1)


def parse_month(value: str | None) -> date:
    if not value:
        return last_full_month()
    try:
        return date.fromisoformat(value + "-01")
    except ValueError:
        raise ValueError(f"--end-month {value!r} is not a month (YYYY-MM)") from None


def say(line: str) -> None:
    print(line, end="" if line.startswith("\r") else "\n", file=sys.stderr, flush=True)


def make(directory: Path, months: int, seed: int, end_month: date,
         base_per_day: float = 500.0) -> DemoCompany:
    if not 2 <= months <= 36:
        raise ValueError(f"--months {months}: give 2 to 36")
    return generate(directory, months=months, seed=seed, end_month=end_month,
                    pods=pods(months), base_per_day=base_per_day, say=say)


def run(directory: Path, database: str, months: int, seed: int, end_month: date,
        base_per_day: float = 500.0) -> dict[str, int]:
    company = make(directory, months, seed, end_month, base_per_day)
    store = Store.open(database)
    try:
        say(f"loading into {database}")
        return load(store, company, say=say)
    finally:
        store.close()
