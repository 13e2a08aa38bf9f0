"""Writes the rule files (`llmkpi alerts build`): SLOs, serving, cost and KPI rules."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from alerts import cost, kpi, serving, slo
from alerts import rules as r
from alerts.config import AlertConfig

FORMATS = ("files", "prometheus-operator")
OPERATOR_FILE = "llmkpi-prometheusrules.yaml"
# Prometheus Operator picks PrometheusRules by label (the Prometheus resource's ruleSelector)
OPERATOR_LABELS = {"app.kubernetes.io/part-of": "llmkpi", "app.kubernetes.io/component": "alerts"}
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


def render_operator(config: AlertConfig) -> dict[str, str]:
    """The same groups as Prometheus Operator `PrometheusRule` resources, one per rule file
    (named after it), all in one multi-document YAML file for a kustomization."""
    docs: list[dict[str, Any]] = []
    for name, groups in rule_files(config).items():
        r.check_order(groups)
        docs.append({"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                     "metadata": {"name": name.removesuffix(".rules.yml"),
                                  "labels": dict(OPERATOR_LABELS)},
                     "spec": {"groups": [group.to_dict() for group in groups]}})
    body = "---\n".join(yaml.safe_dump(doc, sort_keys=False, width=100_000,
                                        allow_unicode=True) for doc in docs)
    return {OPERATOR_FILE: r.HEADER + body}


def render(config: AlertConfig, form: str = "files") -> dict[str, str]:
    """File name -> text in the format asked for (FORMATS)."""
    if form == "prometheus-operator":
        return render_operator(config)
    if form == "files":
        return render_all(config)
    raise ValueError(f"unknown format {form!r}: one of {', '.join(FORMATS)}")


def write(out: Path, config: AlertConfig, say: Callable[[str], None] = print,
          form: str = "files") -> list[Path]:
    """Writes each file whole (temporary name, then rename): Prometheus never reads half."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render(config, form).items():
        path = out / name
        tmp = path.with_name(name + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        written.append(path)
        say(f"{path}: {text.count('- record:')} recording rules,"
            f" {text.count('- alert:')} alerts")
    return written
