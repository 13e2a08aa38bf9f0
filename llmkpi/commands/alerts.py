"""`llmkpi alerts build`: the generated Prometheus rule files, checked by promtool."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

HELP = "generate the Prometheus recording and alert rules"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("build",))
    parser.add_argument("--slo-config", help="SLO config YAML (default: the embedded"
                        " alerts/slo.yaml)")
    parser.add_argument("--out", required=True, help="folder for the rule files")
    parser.add_argument("--format", default="files",
                        choices=("files", "prometheus-operator"),
                        help="files: Prometheus rule files (default); prometheus-operator:"
                        " PrometheusRule resources in one YAML file for Kubernetes")


def run(args: argparse.Namespace) -> int:
    from alerts import build, config

    path = Path(args.slo_config) if args.slo_config else build.DEFAULT_CONFIG
    config_ = config.load(path)
    written = build.write(Path(args.out), config_, form=args.format)
    if args.format == "prometheus-operator":
        # promtool reads rule files: check the same groups written as one
        with tempfile.TemporaryDirectory() as folder:
            return check_rules(build.write(Path(folder), config_, say=lambda _: None))
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
