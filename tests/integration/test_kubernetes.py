"""deploy/kubernetes: every overlay builds with kustomize, every object is valid for the
Kubernetes API (kubernetes-validate, strict, Kubernetes 1.33) or for the Prometheus
Operator's resources, the rules inside the PrometheusRules pass promtool, the dashboards in
the ConfigMaps are the generated ones, and the pieces point at each other (monitors at pods
and ports, services at pods, secrets at keys that exist)."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from alerts import build as alert_build
from alerts import config as alert_config
from dashboards import build as dashboard_build

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
SCHEMAS = ROOT / "tests" / "data" / "kubernetes"
KUBERNETES_VERSION = "1.33.0"
OVERLAYS = sorted(p.name for p in (KUBE / "overlays").iterdir())
CRDS = {"PodMonitor": "podmonitor", "PrometheusRule": "prometheusrule"}


def kustomize(folder: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.fail("kubectl (with its kustomize) is not installed: it comes with this"
                    " machine's image; elsewhere install kubectl 1.27 or newer")
    done = subprocess.run([kubectl, "kustomize", str(folder)], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module", params=OVERLAYS)
def built(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> list[dict[str, Any]]:
    """The overlay's objects; a secret file the overlay asks for but does not commit is
    made from its committed example."""
    copy_ = tmp_path_factory.mktemp("kube") / "kubernetes"
    shutil.copytree(KUBE, copy_)
    overlay = copy_ / "overlays" / request.param
    for example in overlay.glob("*.example"):
        target = overlay / example.name.removesuffix(".example")
        if not target.exists():
            target.write_text(example.read_text().replace("key-salt=\n", "key-salt=x\n"))
    return kustomize(overlay)


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [doc for doc in docs if doc["kind"] == kind]


def schema(kind: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((SCHEMAS / f"{CRDS[kind]}.schema.yaml").read_text())
    return loaded


def validate(doc: dict[str, Any]) -> None:
    if doc["kind"] in CRDS:
        jsonschema.validate(doc, schema(doc["kind"]))
    else:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_every_object_is_valid_for_its_api(built: list[dict[str, Any]]) -> None:
    kinds = sorted({doc["kind"] for doc in built})
    assert {"Deployment", "Service", "Secret", "ConfigMap", "PodMonitor",
            "PrometheusRule", "CronJob"} <= set(kinds)
    for doc in built:
        validate(doc)


def test_the_validators_refuse_a_broken_object(built: list[dict[str, Any]]) -> None:
    """The checks above can fail: a misspelt field and a port given as a name where a
    number is due are refused, for a core object and for an operator's resource."""
    deployment = copy.deepcopy(by_kind(built, "Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "x"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    deployment = copy.deepcopy(by_kind(built, "Deployment")[0])
    deployment["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    monitor = copy.deepcopy(by_kind(built, "PodMonitor")[0])
    monitor["spec"]["podMetricsEndpoints"][0]["intervall"] = "15s"
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor)
    rule = copy.deepcopy(by_kind(built, "PrometheusRule")[0])
    rule["spec"]["groups"][0]["rules"][0]["for"] = "five minutes"
    with pytest.raises(jsonschema.ValidationError):
        validate(rule)


def pods(built: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {doc["metadata"]["name"]: doc["spec"]["template"]
            for doc in by_kind(built, "Deployment")}


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_monitors_scrape_ports_that_exist_under_the_jobs_the_alerts_watch(
        built: list[dict[str, Any]]) -> None:
    default = alert_config.load(alert_build.DEFAULT_CONFIG)
    jobs = {}
    for monitor in by_kind(built, "PodMonitor"):
        selector = monitor["spec"]["selector"]["matchLabels"]
        targets = [t for t in pods(built).values() if matches(selector, t["metadata"]["labels"])]
        assert targets, f"{monitor['metadata']['name']} selects no pod"
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            for template in targets:
                ports = {p["name"] for c in template["spec"]["containers"]
                         for p in c.get("ports", [])}
                assert endpoint["port"] in ports
            (job,) = [r["replacement"] for r in endpoint["relabelings"]
                      if r.get("targetLabel") == "job"]
            jobs[monitor["metadata"]["name"]] = job
    assert jobs["llmkpi-sidecar"] == default.sidecar_job
    assert jobs["llmkpi-kpi"] == "llmkpi-kpi"


def test_services_reach_pods_and_named_ports(built: list[dict[str, Any]]) -> None:
    for service in by_kind(built, "Service"):
        targets = [t for t in pods(built).values()
                   if matches(service["spec"]["selector"], t["metadata"]["labels"])]
        assert len(targets) == 1, service["metadata"]["name"]
        ports = {p["name"] for c in targets[0]["spec"]["containers"] for p in c["ports"]}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports


def test_every_secret_key_a_container_needs_is_in_the_secret(
        built: list[dict[str, Any]]) -> None:
    secrets = {doc["metadata"]["name"]: doc for doc in by_kind(built, "Secret")}
    needed = []
    templates = [*pods(built).values(), *(job["spec"]["jobTemplate"]["spec"]["template"]
                                          for job in by_kind(built, "CronJob"))]
    assert len(templates) == 4  # the engine pods, kpi serve, the page, retention
    for template in templates:
        for container in template["spec"]["containers"]:
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    needed.append(ref)
    assert needed
    for ref in needed:
        # kustomize's generator names the secret with a content hash and rewrites the refs
        assert ref["name"] in secrets, ref
        assert ref["key"] in secrets[ref["name"]]["data"], ref


def test_the_sidecar_is_sized_and_probed(built: list[dict[str, Any]]) -> None:
    template = pods(built)["vllm"]
    containers = {c["name"]: c for c in template["spec"]["containers"]}
    sidecar = containers["llmkpi-sidecar"]
    assert sidecar["args"][:3] == ["sidecar", "--upstream", "http://127.0.0.1:8000"]
    assert {"readinessProbe", "livenessProbe"} <= set(sidecar)
    assert "cpu" not in sidecar["resources"]["limits"]  # throttling the relay adds latency
    assert sidecar["resources"]["requests"]["memory"] == "192Mi"
    assert "startupProbe" in containers["vllm"]


def test_production_runs_pinned_engines_on_gpus(tmp_path: Path) -> None:
    copy_ = tmp_path / "kubernetes"
    shutil.copytree(KUBE, copy_)
    overlay = copy_ / "overlays" / "production"
    (overlay / "llmkpi.env").write_text((overlay / "llmkpi.env.example").read_text())
    template = pods(kustomize(overlay))["vllm"]
    engine = {c["name"]: c for c in template["spec"]["containers"]}["vllm"]
    assert engine["image"] == "vllm/vllm-openai:v0.32.0"
    assert engine["resources"]["limits"]["nvidia.com/gpu"] == "1"
    volumes = {v["name"]: v for v in template["spec"]["volumes"]}
    assert set(volumes["models"]) == {"name", "persistentVolumeClaim"}


def test_the_rules_inside_the_prometheusrules_pass_promtool(
        built: list[dict[str, Any]], tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool comes with the prometheus package (make test installs it)"
    rules = by_kind(built, "PrometheusRule")
    paths = []
    for rule in rules:
        path = tmp_path / f"{rule['metadata']['name']}.rules.yml"
        path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
        paths.append(str(path))
    done = subprocess.run([promtool, "check", "rules", *paths], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # ...and they are the groups of the rule files Prometheus itself would load
    files = {name.removesuffix(".rules.yml"): yaml.safe_load(text)["groups"] for name, text in
             alert_build.render_all(alert_config.load(alert_build.DEFAULT_CONFIG)).items()}
    assert {r["metadata"]["name"]: r["spec"]["groups"] for r in rules} == files


def test_the_dashboard_configmaps_hold_the_generated_dashboards(
        built: list[dict[str, Any]]) -> None:
    maps = [doc for doc in by_kind(built, "ConfigMap")
            if doc["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
    held = {name: json.loads(text) for doc in maps for name, text in doc["data"].items()}
    generated = {name: json.loads(text) for name, text in dashboard_build.render_all().items()}
    assert held == generated
    for doc in maps:  # client-side `kubectl apply` keeps the object in a 256 KiB annotation
        assert len(json.dumps(doc)) < 256 * 1024, doc["metadata"]["name"]
