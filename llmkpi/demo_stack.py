"""The demo's outer ring: generated dashboards and rules, a Prometheus that loads them, the
KPI and cost reports on disk, and the executive view."""

from __future__ import annotations

import json
import shutil
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from llmkpi import processes

APP_PORT = 8501


def build_generated(workdir: Path) -> list[Path]:
    """Dashboards and alert rules from the defaults; returns the rule files."""
    from alerts import build as alert_build
    from alerts import config as alert_config
    from dashboards import build as dashboard_build

    dashboards = dashboard_build.write(workdir / "dashboards", say=lambda _line: None)
    rules = alert_build.write(workdir / "rules", alert_config.load(alert_build.DEFAULT_CONFIG),
                              say=lambda _line: None)
    print(f"generated: {len(dashboards)} Grafana dashboards in {workdir / 'dashboards'},"
          f" {len(rules)} Prometheus rule files in {workdir / 'rules'}")
    return rules


def start_prometheus(workdir: Path, targets: dict[str, tuple[str, dict[str, str]]],
                     rules: list[Path], logs: Path) -> tuple[processes.Started, str] | None:
    """A Prometheus scraping `targets` (job -> (host:port, labels)) with the generated rules,
    when the binary is installed (Debian package `prometheus`); None otherwise. Its data
    folder is kept, so a second demo run still shows the first one's series."""
    binary = shutil.which("prometheus")
    if binary is None:
        print("prometheus: not installed, skipped (Debian package `prometheus`)")
        return None
    config = processes.prometheus_config(
        {job: target for job, (target, _) in targets.items()}, rules, "5s",
        {job: labels for job, (_, labels) in targets.items()})
    return processes.start_prometheus(binary, config, workdir / "prometheus.yml",
                                      workdir / "prometheus-data", logs)


def write_reports(database: str, workdir: Path, kpi_config: Path | None = None
                  ) -> dict[str, Path]:
    """The KPI and cost reports of the last full month, as JSON, and the KPI table printed."""
    from collectors.store import Store
    from kpi_mapping import config as kpi_config_mod
    from kpi_mapping import cost_report, report

    config = kpi_config_mod.load(kpi_config) if kpi_config else kpi_config_mod.KpiConfig()
    from kpi_mapping.periods import period_containing

    period = period_containing("month", datetime.now(UTC).date()).previous()
    out = workdir / "reports"
    out.mkdir(parents=True, exist_ok=True)
    store = Store.open(database)
    try:
        result = report.build(store, period, config)
        cost = cost_report.report(store, period)
    finally:
        store.close()
    paths = {"kpi": out / f"kpi-{period.label}.json", "cost": out / f"cost-{period.label}.json"}
    paths["kpi"].write_text(json.dumps(report.to_dict(result, config), indent=2) + "\n")
    paths["cost"].write_text(json.dumps(cost, indent=2, default=str) + "\n")
    print("\n" + report.format_table(result, config))
    per_m = cost["per_million_tokens"]
    rate = (f"; ${per_m['fully_loaded']:,.4f} per million tokens fully loaded"
            f" (${per_m['busy_time']:,.4f} busy-time)" if per_m["fully_loaded"] else "")
    print(f"\nGPU cost {period.label}: bill ${cost['gpu_bill']:,.2f}, idle ${cost['idle']:,.2f},"
          f" {cost['requests']:,} requests priced by their GPU time{rate}")
    return paths


def app_port() -> int:
    """8501, Streamlit's usual port, unless something already holds it."""
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", APP_PORT))
        except OSError:
            return processes.free_port()
    return APP_PORT


def page_answers(url: str) -> int:
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = resp.read()
    if b"<div id=\"root\"" not in body and b"streamlit" not in body.lower():
        raise RuntimeError(f"{url} answered, but not with the Streamlit page")
    return int(resp.status)
