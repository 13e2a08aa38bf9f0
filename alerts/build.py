"""Writes the rule files (`llmkpi alerts build`): SLOs, serving, cost and KPI rules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from alerts import cost, kpi, serving, slo
from alerts import rules as r
from alerts.config import AlertConfig

PACKAGE = Path(__file__).resolve().parent
DEFAULT_CONFIG = PACKAGE / "slo.yaml"
GENERATED_DIR = PACKAGE / "generated"


def rule_files(config: AlertConfig) -> dict[str, list[r.Group]]:
    """File name -> groups, in a fixed order; each alert in the group of what it reads."""
    return {
        "llmkpi-slo.rules.yml": slo.groups(config),
        "llmkpi-serving.rules.yml": [r.Group("llmkpi-serving", list(serving.alerts(config)))],
        # an alert and the recording rules it reads share a group: evaluated in order
        "llmkpi-cost.rules.yml": [r.Group("llmkpi-cost",
                                          [*cost.recordings(), *cost.alerts(config)])],
        "llmkpi-kpi.rules.yml": [r.Group("llmkpi-kpi", list(kpi.alerts(config)))],
    }


def render_all(config: AlertConfig) -> dict[str, str]:
    return {name: r.render(groups) for name, groups in rule_files(config).items()}


def write(out: Path, config: AlertConfig, say: Callable[[str], None] = print) -> list[Path]:
    """Writes each file whole (temporary name, then rename): Prometheus never reads half."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all(config).items():
        path = out / name
        tmp = path.with_name(name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        written.append(path)
        say(f"{path}: {text.count('- record:')} recording rules,"
            f" {text.count('- alert:')} alerts")
    return written
