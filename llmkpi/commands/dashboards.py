"""`llmkpi dashboards build`: the generated Grafana dashboards, written whole into a folder."""

from __future__ import annotations

import argparse
from pathlib import Path

from llmkpi import settings as settings_mod

HELP = "generate the Grafana dashboards (JSON)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("build",))
    parser.add_argument("--out", required=True, help="folder for the dashboard JSON files")
    parser.add_argument("--format", default="json", choices=("json", "configmap"),
                        help="json: one file per dashboard (default); configmap: ConfigMaps"
                        " labelled for Grafana's sidecar provisioning, one YAML file")
    parser.add_argument("--kpi-config", help="KPI config YAML whose bands colour the"
                        " executive dashboard (default LLMKPI_KPI_CONFIG, else the defaults)")


def run(args: argparse.Namespace) -> int:
    from dashboards import build
    from kpi_mapping import config

    path = settings_mod.kpi_config_path(args.kpi_config)
    bands = config.load(path).bands if path else None
    written = build.write(Path(args.out), bands, form=args.format)
    if args.format == "configmap":
        print(f"{len(build.dashboards(bands))} dashboards as ConfigMaps in {written[0]}")
    else:
        print(f"{len(written)} dashboards in {args.out}; Grafana provisioning:"
              " deploy/grafana/provisioning")
    return 0
