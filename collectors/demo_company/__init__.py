"""`llmkpi demo-data`: a seeded, internally consistent company that sells LLM-backed features.

`generate` writes every input in the same real formats a user imports (CSV, Jira and
PagerDuty exports, Cobertura XML, a Mixpanel export, a real git repository); `load` imports
them through the ordinary importers, then writes the request ledger and engine readings,
which have no file format of their own. The same seed gives the same company.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from collectors.demo_company import business, engineering, product, serving
from collectors.demo_company.timeline import Timeline, build_timeline
from collectors.demo_company.traffic import Pod, Traffic

Say = Callable[[str], None]
TENANTS = [f"tenant-{i:04d}" for i in range(8)]  # the names `make demo`'s live traffic uses
KPI_CONFIG = "kpi.yaml"
RAW_DAYS = 2  # a real fleet's day is ~100k requests: the demo keeps two days of them raw
SAMPLED_PER_DAY = 2500


@dataclass(frozen=True)
class DemoCompany:
    directory: Path
    months: int
    seed: int
    end_month: date
    pods: tuple[Pod, ...]
    base_per_day: float
    raw_days: int | None = RAW_DAYS  # None: every request as a raw ledger row

    def timeline(self) -> Timeline:
        return build_timeline(self.months, self.seed, self.end_month, TENANTS)

    def traffic(self) -> Traffic:
        return Traffic(self.timeline(), list(self.pods), self.base_per_day)

    def raw_from(self) -> datetime:
        """Where the raw ledger rows begin: the last `raw_days` of the history."""
        timeline = self.timeline()
        if self.raw_days is None:
            return timeline.start
        return max(timeline.start, timeline.end - timedelta(days=self.raw_days))

    def thin(self, start: datetime) -> int:
        """One arrival cluster in how many is drawn for a rolled-up month: about
        SAMPLED_PER_DAY requests a day stand for the whole day's traffic."""
        growth = self.timeline().growth[self.timeline().month_index(start)]
        return max(1, round(self.base_per_day * growth / SAMPLED_PER_DAY))


def _csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _jira_csv(path: Path, items: list[dict[str, Any]]) -> None:
    """Jira repeats `Labels` once per label: as many columns as the most-labelled item."""
    width = max([1, *(len(i["Labels"]) for i in items)])
    plain = [k for k in items[0] if k != "Labels"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(plain + ["Labels"] * width)
        for item in items:
            labels = item["Labels"] + [""] * (width - len(item["Labels"]))
            writer.writerow([item[k] for k in plain] + labels)


def generate(directory: Path, *, months: int, seed: int, end_month: date, pods: list[Pod],
             base_per_day: float = 500.0, raw_days: int | None = RAW_DAYS,
             say: Say = print) -> DemoCompany:
    directory.mkdir(parents=True, exist_ok=True)
    company = DemoCompany(directory, months, seed, end_month, tuple(pods), base_per_day,
                          raw_days)
    timeline = company.timeline()
    staff = business.people(timeline)
    _csv(directory / "people.csv", [
        {"person": p.person, "team": p.team, "tech": str(p.tech).lower(),
         "hired": p.hired.isoformat(), "exited": p.exited.isoformat() if p.exited else "",
         "hourly_rate": p.hourly_rate} for p in staff])
    bills = [serving.gpu_cost(timeline, pods, i) for i in range(months)]
    finance, revenue = business.finance(timeline, staff, bills, company.traffic())
    _csv(directory / "finance.csv", finance)
    _csv(directory / "tenant-revenue.csv", revenue)
    _csv(directory / "gpus.csv", [
        r | {"valid_from": r["valid_from"].isoformat(),
             "valid_to": r["valid_to"].isoformat() if r["valid_to"] else ""}
        for r in serving.gpu_rows(timeline, pods)])
    say(f"demo company: {len(staff)} people, {months} months of finance,"
        f" outage {timeline.outage.start:%Y-%m-%d %H:%M} for {timeline.outage.hours:.1f} h")
    hist = engineering.history(timeline, staff)
    repo = directory / "repo"
    marks_file = repo / ".git" / "demo-marks"
    if not marks_file.exists():
        if repo.exists():  # a run stopped half-way: start the repository again
            shutil.rmtree(repo)
        shas = engineering.write_repository(repo, hist)
    else:  # a second run reuses the repository the first wrote
        marks = marks_file.read_text().split()
        shas = dict(zip(marks[::2], marks[1::2], strict=True))
    _csv(directory / "deployments.csv", engineering.deployment_rows(hist, shas))
    _csv(directory / "incidents.csv", engineering.incidents(timeline, hist))
    items, releases = engineering.work_items(timeline)
    _jira_csv(directory / "jira-export.csv", items)
    _csv(directory / "releases.csv", releases)
    for name, text in engineering.coverage_reports(timeline):
        (directory / name).write_text(text, encoding="utf-8")
    lines = product.events(timeline)
    (directory / "mixpanel-export.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    say(f"demo company: {len(hist.commits)} commits, {len(hist.deployments)} deployments,"
        f" {len(items)} work items, {len(lines)} product events")
    (directory / KPI_CONFIG).write_text(
        "# The demo company's KPI choices (`--kpi-config` / `--config`):\n"
        "version: 1\n"
        "# team attrition (KPI 14) follows the serving teams; tech-team turnover (KPI 18)\n"
        "# every tech team\n"
        "engineering_teams: [inference, platform]\n"
        "margin_basis: fully_loaded\n", encoding="utf-8")
    manifest = {"months": months, "seed": seed, "end_month": end_month.isoformat()[:7],
                "base_per_day": base_per_day, "raw_days": raw_days,
                "pods": [p.name for p in pods]}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return company
