"""The generated dashboards: modern panels, stable ids, catalogue names only, bands right."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from dashboards import build, panels
from kpi_mapping.mappings import MAPPINGS, Bands, Range
from specs import catalog

DOCS = {name: json.loads(text) for name, text in build.render_all().items()}
NAME_RE = re.compile(r"\b(llmkpi_[a-z0-9_:]+)")
KNOWN = ({s.name for s in catalog.ALL_METRICS}
         | {f"{s.name}_{part}" for s in catalog.ALL_METRICS if s.type == "histogram"
            for part in ("bucket", "count", "sum")}
         | {s.name for s in catalog.RECORDED_SERIES})


def panels_of(uid: str) -> list[dict[str, Any]]:
    return list(DOCS[f"{uid}.json"]["panels"])


def titles(uid: str) -> set[str]:
    return {p["title"] for p in panels_of(uid)}


def test_five_dashboards_with_stable_uids_and_explicit_modern_schema() -> None:
    assert sorted(DOCS) == ["llmkpi-cost.json", "llmkpi-disaggregated.json",
                            "llmkpi-executive.json", "llmkpi-serving.json", "llmkpi-slo.json"]
    for name, doc in DOCS.items():
        assert doc["uid"] == name.removesuffix(".json")
        assert doc["schemaVersion"] == panels.SCHEMA_VERSION
        assert "rows" not in doc and "do not edit" in doc["description"]


@pytest.mark.parametrize("name", sorted(DOCS))
def test_panels_are_modern_numbered_and_placed_without_overlap(name: str) -> None:
    doc = DOCS[name]
    ids = [p["id"] for p in doc["panels"]]
    assert ids == list(range(1, len(ids) + 1))
    assert {p["type"] for p in doc["panels"]} <= {"timeseries", "stat", "row", "heatmap"}
    cells: set[tuple[int, int]] = set()
    for p in doc["panels"]:
        pos = p["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= panels.GRID_WIDTH, p["title"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not mine & cells, f"{p['title']} overlaps another panel"
        cells |= mine
        for target in p.get("targets", []):
            assert target["datasource"] == panels.DATASOURCE


@pytest.mark.parametrize("name", sorted(DOCS))
def test_every_metric_name_comes_from_the_catalogue(name: str) -> None:
    queries = panels.panel_queries(DOCS[name])
    assert queries
    for title, expr in queries:
        for metric in NAME_RE.findall(expr):
            assert metric in KNOWN, f"{name} / {title}: {metric} is not in exporters/catalog"
    for variable in DOCS[name]["templating"]["list"]:
        for metric in NAME_RE.findall(str(variable["query"])):
            assert metric in KNOWN, f"{name} variable {variable['name']}: {metric}"


def test_serving_has_what_an_operator_looks_for() -> None:
    want = {"Time to first token", "Inter-token latency", "End-to-end latency", "Queue time",
            "Tokens / s in and out", "Requests by outcome", "KV-cache usage",
            "Requests running and waiting", "Preemptions / s", "Prefix-cache hit rate"}
    assert want <= titles("llmkpi-serving")
    variables = [v["name"] for v in DOCS["llmkpi-serving.json"]["templating"]["list"]]
    assert variables == ["datasource", "model", "tenant", "pod"]
    for p in panels_of("llmkpi-serving"):
        if p["title"] in ("Time to first token", "Inter-token latency", "End-to-end latency"):
            assert [t["legendFormat"] for t in p["targets"]] == ["p50", "p95", "p99"]
        for target in p.get("targets", []):
            assert 'pod=~"$pod"' in target["expr"], p["title"]
            assert 'model=~"$model"' in target["expr"], p["title"]


def test_disaggregated_serving_answers_where_the_time_went() -> None:
    want = {"TTFT decomposition by tenant (mean)", "Transfer time per transfer",
            "Transfers and failures / s", "Expired KV leases / s", "Waiting requests by role",
            "Prompt tokens / s by source", "Routing decisions / s", "Pool saturation by stage"}
    assert want <= titles("llmkpi-disaggregated")
    queries = dict(panels.panel_queries(DOCS["llmkpi-disaggregated.json"]))
    # the gateway panels read both generations of the endpoint picker's names
    assert "llm_d_epp_flow_control_pool_saturation or" in queries["Pool saturation by stage"]
    assert "inference_extension_flow_control_pool_saturation" in \
        queries["Pool saturation by stage"]


def test_cost_and_slo_dashboards_cover_their_questions() -> None:
    assert {"$ per million tokens by model", "GPU cost by tenant", "GPU cost by feature",
            "Idle cost", "Gross margin by tenant", "Tokens by tenant (dashboard range)",
            "Tokens by feature (dashboard range)"} <= titles("llmkpi-cost")
    assert {"Objective", "Error budget remaining", "Burn rate per window"} \
        <= titles("llmkpi-slo")


def colour_at(steps: list[dict[str, Any]], value: float) -> str:
    colour = steps[0]["color"]
    for step in steps[1:]:
        if value >= step["value"]:
            colour = step["color"]
    return str(colour)


@pytest.mark.parametrize("mapping", [m for m in MAPPINGS if m.bands], ids=lambda m: m.key)
def test_band_thresholds_colour_every_value_as_its_band(mapping: Any) -> None:
    bands: Bands = mapping.bands
    steps = panels.band_thresholds(bands)
    ends = sorted({e for r in (bands.green, bands.amber) for e in (r.lo, r.hi)
                   if e is not None})
    probes = [ends[0] - 1, *ends, *(e - 1e-9 for e in ends), *(e + 1e-9 for e in ends),
              ends[-1] * 2 + 1]
    for value in probes:
        assert colour_at(steps, value) == panels.BAND_COLOURS[bands.of(value)], value


def test_executive_shows_19_mappings_ceo_beside_cto_and_the_north_star() -> None:
    found = panels_of("llmkpi-executive")
    for mapping in MAPPINGS:
        ceo = [p for p in found if p["title"] == f"{mapping.id}. {mapping.ceo_kpi}"]
        assert len(ceo) == 1, mapping.key
        i = found.index(ceo[0])
        cto, band = found[i + 1], found[i + 2]
        assert cto["title"] == mapping.cto_metric
        assert cto["gridPos"]["y"] == ceo[0]["gridPos"]["y"] == band["gridPos"]["y"]
        assert f'mapping="{mapping.id}"' in cto["targets"][0]["expr"]
        assert band["fieldConfig"]["defaults"]["mappings"] == panels.BAND_CODE_MAPPINGS
        steps = cto["fieldConfig"]["defaults"]["thresholds"]["steps"]
        if mapping.bands:
            assert steps == panels.band_thresholds(mapping.bands)
        else:  # "set per company": no colours until a KPI config gives bands
            assert steps == [{"color": "text", "value": None}]
    assert {"Revenue per employee", "Engineer Productivity Index"} <= {p["title"]
                                                                       for p in found}


def test_a_kpi_config_recolours_the_executive_dashboard() -> None:
    strict = Bands(Range(hi=0.3), Range(hi=1.0))
    doc = json.loads(build.render_all({13: strict})["llmkpi-executive.json"])
    cto = next(p for p in doc["panels"] if p["title"] == "Response time")
    steps = cto["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert colour_at(steps, 0.4) == "orange"  # green under the default 0.5 s
    assert colour_at(steps, 0.2) == "green"


def test_the_command_writes_the_dashboards_coloured_by_a_kpi_config(tmp_path: Any) -> None:
    from pathlib import Path

    from kpi_mapping import config
    from llmkpi.cli import main

    kpi_yaml = Path(__file__).resolve().parents[1] / "golden/dashboards/kpi-config/kpi.yaml"
    assert main(["dashboards", "build", "--out", str(tmp_path), "--kpi-config",
                 str(kpi_yaml)]) == 0
    expected = build.render_all(config.load(kpi_yaml).bands)
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == expected
    assert expected != build.render_all()


def test_latency_panels_show_exemplars_heatmaps_read_buckets_and_boards_link() -> None:
    serving = DOCS["llmkpi-serving.json"]
    by_title = {p["title"]: p for p in serving["panels"]}
    assert all(t["exemplar"] for t in by_title["Time to first token"]["targets"])
    heat = by_title["Time to first token, every request"]
    assert heat["type"] == "heatmap" and heat["options"]["calculate"] is False
    assert heat["targets"][0]["format"] == "heatmap" and "_bucket" in heat["targets"][0]["expr"]
    for doc in DOCS.values():  # every board links to the others and marks rollouts, incidents
        assert doc["links"][0]["tags"] == ["llmkpi"] and doc["links"][0]["keepTime"]
        assert [a["name"] for a in doc["annotations"]["list"]] == ["Rollouts", "Incidents"]
    slo = {p["title"]: p for p in DOCS["llmkpi-slo.json"]["panels"]}
    assert slo["Error budget remaining over time"]["fieldConfig"]["defaults"].get("min") is None
    executive = json.dumps(DOCS["llmkpi-executive.json"])
    assert '"unit": "d"' not in executive and '"unit": "h"' not in executive  # no auto-scale
