"""deploy/ agrees with what the generators write: datasource, dashboards path, job, rules."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from alerts import build as alert_build
from alerts import config as alert_config
from dashboards import build as dashboard_build

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_grafana_provisions_the_datasource_the_dashboards_default_to() -> None:
    doc = yaml.safe_load((DEPLOY / "grafana/provisioning/datasources/llmkpi.yml").read_text())
    (source,) = doc["datasources"]
    assert source["type"] == "prometheus" and source["isDefault"]
    for text in dashboard_build.render_all().values():
        variable = json.loads(text)["templating"]["list"][0]
        assert variable["name"] == "datasource" and variable["query"] == "prometheus"
        assert variable["current"]["value"] == source["name"]


def test_grafana_loads_dashboards_from_a_file_provider() -> None:
    doc = yaml.safe_load((DEPLOY / "grafana/provisioning/dashboards/llmkpi.yml").read_text())
    (provider,) = doc["providers"]
    assert provider["type"] == "file" and provider["options"]["path"].startswith("/")


def test_prometheus_scrapes_the_job_the_alerts_watch_and_loads_the_rule_files() -> None:
    doc = yaml.safe_load((DEPLOY / "prometheus/prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in doc["scrape_configs"]}
    default = alert_config.load(alert_build.DEFAULT_CONFIG)
    assert default.sidecar_job in jobs
    relabels = jobs[default.sidecar_job]["relabel_configs"]
    assert any(r.get("target_label") == "pod" for r in relabels), "dashboards filter by pod"
    (pattern,) = doc["rule_files"]
    names = alert_build.render_all(default)
    assert all(Path(name).match(Path(pattern).name) for name in names)


def test_the_shipped_alertmanager_routes_pages_and_tickets_apart() -> None:
    """amtool (Alertmanager's own) accepts the config and routes every severity the
    generated alerts carry to its receiver."""
    import shutil
    import subprocess

    amtool = shutil.which("amtool")
    assert amtool, "amtool comes with prometheus-alertmanager (make test installs it)"
    path = str(DEPLOY / "alertmanager/alertmanager.yml")
    checked = subprocess.run([amtool, "check-config", path], capture_output=True, text=True,
                             check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    severities = set()
    for text in alert_build.render_all(alert_config.load(alert_build.DEFAULT_CONFIG)).values():
        for group in yaml.safe_load(text)["groups"]:
            severities |= {r["labels"]["severity"] for r in group["rules"] if "alert" in r}
    assert severities == {"page", "ticket"}
    receivers = {}
    for severity in sorted(severities):
        routed = subprocess.run([amtool, "config", "routes", "test", f"--config.file={path}",
                                 f"severity={severity}", "alertname=LlmkpiX", "model=m"],
                                capture_output=True, text=True, check=False)
        receivers[severity] = routed.stdout.strip()
    assert receivers == {"page": "pager", "ticket": "tickets"}
