"""`llmkpi demo-data`: generate the demo company and load it into the store.

The fleet's timings are the simulator's own profiles, so the generated ledger reads like
the live simulator's traffic: an H100 pod all year (its price cut in month 6) and an L4 pod
added in month 4 as traffic grows.
"""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from pathlib import Path

from collectors.demo_company import RAW_DAYS, DemoCompany, generate
from collectors.demo_company.load import load
from collectors.demo_company.timeline import add_months
from collectors.demo_company.traffic import Pod
from collectors.store import Store
from engine_shim.simulator.profiles import get_profile


def pods(months: int) -> list[Pod]:
    """On-demand list rates GPU clouds publish (2025): one H100 SXM at $2.99 an hour, cut to
    $2.49 by a commitment from month 6; one L4 at $0.71 from month 4, where the gateway sends
    search to a 3B model."""
    return [Pod("vllm-0", "H100-80GB", 2.99, get_profile("h100-llama3-8b"), 0,
                price_cut=(min(5, months - 1), 2.49)),
            Pod("vllm-1", "L4-24GB", 0.71, get_profile("l4-llama3.2-3b"), min(3, months - 1),
                features=("search",))]


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


BASE_PER_DAY = 55_000.0  # requests a day in the first month; traffic roughly doubles in a year


def make(directory: Path, months: int, seed: int, end_month: date,
         base_per_day: float = BASE_PER_DAY, raw_days: int | None = RAW_DAYS) -> DemoCompany:
    if not 2 <= months <= 36:
        raise ValueError(f"--months {months}: give 2 to 36")
    return generate(directory, months=months, seed=seed, end_month=end_month,
                    pods=pods(months), base_per_day=base_per_day, raw_days=raw_days, say=say)


def run(directory: Path, database: str, months: int, seed: int, end_month: date,
        base_per_day: float = BASE_PER_DAY, raw_days: int | None = RAW_DAYS
        ) -> dict[str, int]:
    company = make(directory, months, seed, end_month, base_per_day, raw_days)
    store = Store.open(database)
    try:
        say(f"loading into {database}")
        return load(store, company, say=say)
    finally:
        store.close()
