"""`llmkpi dashboards build` and `llmkpi alerts build`: the generated Grafana dashboards
and Prometheus rule files, written whole into a folder."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path
from typing import Any

from llmkpi import settings as settings_mod


def add_arguments(sub: Any) -> None:
    dash = sub.add_parser("dashboards", help="generate the Grafana dashboards (JSON)")
    dash.add_argument("action", choices=("build",))
    dash.add_argument("--out", required=True, help="folder for the dashboard JSON files")
    dash.add_argument("--kpi-config", help="KPI config YAML whose bands colour the"
                      " executive dashboard (default LLMKPI_KPI_CONFIG, else the defaults)")

    al = sub.add_parser("alerts", help="generate the Prometheus recording and alert rules")
    al.add_argument("action", choices=("build",))
    al.add_argument("--slo-config", help="SLO config YAML (default: the embedded"
                    " alerts/slo.yaml)")
    al.add_argument("--out", required=True, help="folder for the rule files")


def run_dashboards(args: argparse.Namespace) -> int:
    from dashboards import build
    from kpi_mapping import config

    path = settings_mod.kpi_config_path(args.kpi_config)
    bands = config.load(path).bands if path else None
    written = build.write(Path(args.out), bands)
    print(f"{len(written)} dashboards in {args.out}; Grafana provisioning:"
          " deploy/grafana/provisioning")
    return 0


def run_alerts(args: argparse.Namespace) -> int:
    from alerts import build, config

    path = Path(args.slo_config) if args.slo_config else build.DEFAULT_CONFIG
    written = build.write(Path(args.out), config.load(path))
    return check_rules(written)


def check_rules(paths: list[Path]) -> int:
    """`promtool check rules` on the files when promtool is installed (it ships with the
    Prometheus package); 1 when it finds a problem."""
    promtool = shutil.which("promtool")
    if promtool is None:
        print("promtool not found: rules written but not checked")
        return 0
    result = subprocess.run([promtool, "check", "rules", *map(str, paths)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        print(result.stdout + result.stderr)
        return 1
    print(f"promtool check rules: {len(paths)} files pass")
    return 0
