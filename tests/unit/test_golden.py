"""Generators are deterministic: same input, same bytes (`pytest --update-golden` rewrites).

The committed dashboards/generated/ and alerts/generated/ are goldens of the defaults;
tests/golden/<kind>/<case>/ holds an input and the output expected from it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from alerts import build as alert_build
from alerts import config as alert_config
from dashboards import build as dashboard_build
from kpi_mapping import config as kpi_config

GOLDEN = Path(__file__).resolve().parents[1] / "golden"


def compare(expected_dir: Path, produced: dict[str, str], update: bool) -> None:
    if update:
        expected_dir.mkdir(parents=True, exist_ok=True)
        for old in expected_dir.iterdir():
            if old.name not in produced and old.suffix in (".json", ".yml"):
                old.unlink()
        for name, text in produced.items():
            (expected_dir / name).write_text(text, encoding="utf-8")
        return
    on_disk = sorted(p.name for p in expected_dir.iterdir() if p.suffix in (".json", ".yml"))
    assert on_disk == sorted(produced), "files differ: run pytest --update-golden and review"
    for name, text in produced.items():
        assert (expected_dir / name).read_text(encoding="utf-8") == text, (
            f"{expected_dir / name} is stale: run pytest --update-golden and review the diff")


def test_committed_dashboards_are_what_the_generator_writes(update_golden: bool) -> None:
    compare(dashboard_build.GENERATED_DIR, dashboard_build.render_all(), update_golden)


def test_committed_rules_are_what_the_default_slo_config_gives(update_golden: bool) -> None:
    config = alert_config.load(alert_build.DEFAULT_CONFIG)
    compare(alert_build.GENERATED_DIR, alert_build.render_all(config), update_golden)


@pytest.mark.parametrize("case", sorted(p.name for p in (GOLDEN / "alerts").iterdir()))
def test_alert_rules_golden(case: str, update_golden: bool) -> None:
    folder = GOLDEN / "alerts" / case
    config = alert_config.load(folder / "slo.yaml")
    compare(folder / "expected", alert_build.render_all(config), update_golden)


def test_dashboards_with_a_kpi_config_golden(update_golden: bool) -> None:
    folder = GOLDEN / "dashboards" / "kpi-config"
    bands = kpi_config.load(folder / "kpi.yaml").bands
    compare(folder / "expected", dashboard_build.render_all(bands), update_golden)


def test_rendering_twice_gives_the_same_bytes() -> None:
    assert dashboard_build.render_all() == dashboard_build.render_all()
    config = alert_config.load(alert_build.DEFAULT_CONFIG)
    assert alert_build.render_all(config) == alert_build.render_all(config)


KUBERNETES_GENERATED = Path(__file__).resolve().parents[2] / "deploy/kubernetes/base/generated"


def test_committed_kubernetes_resources_are_what_the_generators_write(
        update_golden: bool) -> None:
    """deploy/kubernetes/base/generated holds the PrometheusRules and dashboard ConfigMaps
    `llmkpi alerts build --format prometheus-operator` and `llmkpi dashboards build --format
    configmap` write for the defaults: nothing is hand-copied."""
    config = alert_config.load(alert_build.DEFAULT_CONFIG)
    produced = {**alert_build.render(config, "prometheus-operator"),
                **dashboard_build.render(form="configmap")}
    if update_golden:
        for name, text in produced.items():
            (KUBERNETES_GENERATED / name).write_text(text, encoding="utf-8")
        return
    on_disk = sorted(p.name for p in KUBERNETES_GENERATED.iterdir())
    assert on_disk == sorted(produced), "files differ: run pytest --update-golden and review"
    for name, text in produced.items():
        assert (KUBERNETES_GENERATED / name).read_text(encoding="utf-8") == text, (
            f"{KUBERNETES_GENERATED / name} is stale: run pytest --update-golden")
