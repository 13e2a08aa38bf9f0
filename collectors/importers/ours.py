"""Importers for llmkpi's own CSV formats (people, finance, GPU inventory, releases, revenue
per tenant, integration attempts) and the registry of every kind (docs/imports.md)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from itertools import pairwise
from pathlib import Path

from sqlmodel import SQLModel, select

from collectors.importers.base import BadInputError, Importer, Unique, read_csv
from collectors.store import Store
from collectors.tables import (
    FinanceMonth,
    GpuAllocation,
    IntegrationAttempt,
    Person,
    Release,
    TenantRevenue,
)

FINANCE_AMOUNTS = ("revenue", "cogs", "operating_expenses", "sales_marketing",
                   "research_development", "cash", "receivables", "mrr_start", "mrr_new",
                   "mrr_expansion", "mrr_contraction", "mrr_churned")
FINANCE_SIGNED = ("net_income", "operating_cash_flow")
FINANCE_COUNTS = ("customers_start", "customers_new", "customers_lost", "accounts")


class PeopleImporter:
    kind = "people"
    columns = ("person", "team", "tech", "hired", "exited", "hourly_rate")

    def load(self, path: Path) -> Iterator[SQLModel]:
        """One row per stint; a person who left and came back has a row per stint, and
        stints of one person may not overlap."""
        stints: dict[str, list[tuple[date, date | None, int]]] = {}
        for cells in read_csv(path, self.columns):
            person = cells.text("person")
            hired = cells.day("hired")
            exited = cells.day("exited", optional=True)
            assert hired is not None
            if exited is not None and exited < hired:
                raise cells.fail("exited", f"{exited} is before hired {hired}")
            for start, end, line in stints.get(person, []):
                if (end is None or hired <= end) and (exited is None or start <= exited):
                    raise cells.fail("hired", f"{person} is already employed on {hired}"
                                              f" (the stint on line {line})")
            stints.setdefault(person, []).append((hired, exited, cells.line))
            yield Person(person=person, team=cells.text("team"), tech=cells.flag("tech"),
                         hired=hired, exited=exited,
                         hourly_rate=cells.number("hourly_rate", optional=True))


class FinanceImporter:
    kind = "finance"
    columns = ("month", *FINANCE_AMOUNTS, *FINANCE_SIGNED, *FINANCE_COUNTS)

    def load(self, path: Path) -> Iterator[SQLModel]:
        unique = Unique("month")
        for cells in read_csv(path, self.columns):
            month = cells.month("month")
            unique.check(cells, month)
            values: dict[str, object] = {f: cells.amount(f) for f in FINANCE_AMOUNTS}
            values |= {f: cells.amount(f, minimum=None) for f in FINANCE_SIGNED}
            values |= {f: cells.integer(f) for f in FINANCE_COUNTS}
            values["ebitda"] = cells.number("ebitda", minimum=None, optional=True)
            values["sales_cycle_days"] = cells.number("sales_cycle_days", optional=True)
            yield FinanceMonth.model_validate({"month": month, **values})
        unique.finish()


class GpuImporter:
    """GPU inventory: one row per pod and span of time with a count and a price. Rows of one
    pod may not overlap (two open price rows would bill its GPUs twice), in the file or
    with what the store holds."""

    kind = "gpus"
    columns = ("pod", "gpu_type", "gpu_count", "dollars_per_gpu_hour", "valid_from", "valid_to")

    def __init__(self) -> None:
        self._lines: dict[tuple[str, datetime], tuple[Path, int]] = {}

    def load(self, path: Path) -> Iterator[SQLModel]:
        """A GPU inventory is a few rows per pod: it is held whole to check for overlaps
        within the file before any row is written."""
        rows: list[GpuAllocation] = []
        unique = Unique("valid_from")
        self._lines = {}
        for cells in read_csv(path, self.columns):
            pod = cells.text("pod")
            start = cells.moment("valid_from")
            end = cells.moment("valid_to", optional=True)
            assert start is not None
            if end is not None and end <= start:
                raise cells.fail("valid_to", f"{end.isoformat()} is not after valid_from")
            unique.check(cells, (pod, start))
            self._lines[(pod, start)] = (path, cells.line)
            rows.append(GpuAllocation(
                pod=pod, gpu_type=cells.text("gpu_type"), valid_from=start, valid_to=end,
                gpu_count=cells.integer("gpu_count", minimum=1),
                dollars_per_gpu_hour=cells.amount("dollars_per_gpu_hour")))
        unique.finish()
        self._overlaps(rows, [])
        yield from rows

    def against_store(self, store: Store, rows: list[SQLModel]) -> list[str]:
        """Refuse a row that overlaps a stored one of its pod (a stored row with the same
        pod and valid_from is replaced, not overlapped)."""
        with store.session() as session:
            stored = list(session.exec(select(GpuAllocation)).all())
        mine = [r for r in rows if isinstance(r, GpuAllocation)]
        self._overlaps(mine, [r for r in stored if (r.pod, _utc(r.valid_from))
                              not in self._lines])
        return []

    def _overlaps(self, rows: list[GpuAllocation], stored: list[GpuAllocation]) -> None:
        spans: dict[str, list[tuple[datetime, datetime | None, bool]]] = {}
        for row, from_file in [*((r, True) for r in rows), *((r, False) for r in stored)]:
            spans.setdefault(row.pod, []).append(
                (_utc(row.valid_from), _utc(row.valid_to) if row.valid_to else None,
                 from_file))
        for pod, items in spans.items():
            items.sort(key=lambda item: item[0])
            for (start, end, _), (later, _later_end, later_in_file) in pairwise(items):
                if end is None or later < end:
                    path, line = self._lines.get((pod, later if later_in_file else start),
                                                 (Path("?"), 0))
                    until = end.isoformat() if end else "open-ended"
                    raise BadInputError(path, line, "valid_from", f"pod {pod}: from"
                                        f" {later.isoformat()} overlaps the row from"
                                        f" {start.isoformat()} ({until}): one price per pod"
                                        " at a time; close the earlier row with valid_to")


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class ReleasesImporter:
    kind = "releases"
    columns = ("name", "target", "released")

    def load(self, path: Path) -> Iterator[SQLModel]:
        unique = Unique("name")
        for cells in read_csv(path, self.columns):
            name = cells.text("name")
            unique.check(cells, name)
            target = cells.day("target")
            assert target is not None
            yield Release(name=name, target=target,
                          released=cells.day("released", optional=True))
        unique.finish()


class TenantRevenueImporter:
    kind = "tenant-revenue"
    columns = ("month", "tenant", "revenue")

    def load(self, path: Path) -> Iterator[SQLModel]:
        unique = Unique("tenant")
        for cells in read_csv(path, self.columns):
            month, tenant = cells.month("month"), cells.text("tenant")
            unique.check(cells, (month.isoformat()[:7], tenant))
            yield TenantRevenue(month=month, tenant=tenant,
                                revenue=cells.amount("revenue"))
        unique.finish()


class IntegrationsImporter:
    kind = "integrations"
    columns = ("id", "integration", "tenant", "attempted", "success")

    def load(self, path: Path) -> Iterator[SQLModel]:
        unique = Unique("id")
        for cells in read_csv(path, self.columns):
            attempt = cells.text("id")
            unique.check(cells, attempt)
            attempted = cells.moment("attempted")
            assert attempted is not None
            yield IntegrationAttempt(id=attempt, integration=cells.text("integration"),
                                     tenant=cells.text("tenant"), attempted=attempted,
                                     success=cells.flag("success"))
        unique.finish()


def _all() -> dict[str, Importer]:
    """Every file importer with its defaults (`prometheus` needs a range: llmkpi.imports)."""
    from collectors.importers.deployments import DeploymentsImporter
    from collectors.importers.events import MixpanelExportImporter, OutboxImporter
    from collectors.importers.git import GitImporter
    from collectors.importers.incidents import IncidentsImporter
    from collectors.importers.jira import WorkItemsImporter
    from collectors.importers.ledger import LedgerImporter
    from collectors.importers.xmlfiles import CoverageImporter, JUnitImporter

    every: list[Importer] = [PeopleImporter(), FinanceImporter(), GpuImporter(),
                             JUnitImporter(), CoverageImporter(), MixpanelExportImporter(),
                             OutboxImporter(), IncidentsImporter(), GitImporter(),
                             DeploymentsImporter(), WorkItemsImporter(), ReleasesImporter(),
                             TenantRevenueImporter(), IntegrationsImporter(), LedgerImporter()]
    return {i.kind: i for i in every}


IMPORTERS = _all()
