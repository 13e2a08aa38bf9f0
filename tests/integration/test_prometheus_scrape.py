"""A real Prometheus server scrapes the sidecar under load; PromQL agrees with the client."""

from __future__ import annotations

import asyncio
import base64
import bisect
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, cast

import pytest

from llmkpi import processes
from llmkpi.loadgen import LoadSpec, quantile, run_load
from specs import catalog
from tests.integration.helpers import (
    PrometheusProc,
    prometheus,
    prometheus_binary,
    sidecar,
    simulator,
)
from tests.unit.test_web_config import self_signed

pytestmark = pytest.mark.integration


def test_histogram_quantile_matches_client_p95_and_exemplars_link_traces(tmp_path: Path) -> None:
    with simulator(tmp_path, profile="h100-llama3-8b", seed=5) as upstream, \
            sidecar(tmp_path, upstream) as proc, \
            prometheus(tmp_path, {"sidecar": proc.metrics_url.split("/")[2]}) as prom:
        prom.wait_scraped("sidecar")
        start = time.time()
        spec = LoadSpec(target=proc.url, tenants=3, rps=12, duration=10, seed=5,
                        prompt_median=300, output_median=30)
        results = asyncio.run(run_load(spec, progress_out=None))
        records = proc.records(expect=len(results) + 1)
        time.sleep(2.5)  # two more scrapes
        exact = prom.query("histogram_quantile(0.95, sum by (le) "
                           "(llmkpi_time_to_first_token_seconds_bucket))")
        windowed = prom.query("histogram_quantile(0.95, sum by (le) "
                              "(rate(llmkpi_time_to_first_token_seconds_bucket[1m])))")
        per_tenant = prom.query('sum by (tenant) (llmkpi_requests_total{outcome="ok"})')
        exemplars = prom.exemplars("llmkpi_time_to_first_token_seconds_bucket",
                                   start - 5, time.time() + 5)
        engine_up = prom.query("llmkpi_engine_up")

    client_p95 = quantile([r.ttft for r in results if r.ttft is not None], 0.95)
    sidecar_p95 = quantile([r.time_to_first_token for r in records
                            if r.time_to_first_token is not None], 0.95)
    promql_p95 = float(exact[0]["value"][1])
    # The histogram holds exactly the sidecar's values; histogram_quantile interpolates inside
    # a bucket, so the estimate lies in the bucket of the sidecar's own p95 or a neighbour.
    bounds = catalog.TTFT_BUCKETS.bounds
    i = bisect.bisect_left(bounds, sidecar_p95)  # sidecar p95 is in (bounds[i-1], bounds[i]]
    low, high = bounds[max(i - 2, 0)], bounds[min(i + 1, len(bounds) - 1)]
    assert low <= promql_p95 <= high, (sidecar_p95, promql_p95)
    # The client's p95 also holds its own overhead and CPU contention (a few ms, more on a
    # busy machine): near, not equal.
    assert abs(promql_p95 - client_p95) < 0.35 * client_p95, (client_p95, promql_p95)
    assert float(windowed[0]["value"][1]) > 0

    assert sum(float(s["value"][1]) for s in per_tenant) == len(results) + 1  # + warm-up
    assert {s["metric"]["tenant"] for s in per_tenant} == {r.tenant for r in records}
    assert engine_up and float(engine_up[0]["value"][1]) == 1

    trace_ids = {e["labels"]["trace_id"] for series in exemplars for e in series["exemplars"]}
    assert trace_ids, "no exemplars stored"
    assert trace_ids <= {r.trace_id for r in records}


def test_protected_metrics_answer_only_over_tls_with_the_password(tmp_path: Path) -> None:
    """--web-config-file (TLS + bcrypt basic auth): the right password over TLS gets the
    metrics, a wrong one or none gets 401, plain HTTP gets nothing; a real Prometheus with
    the shipped scrape settings sees the target up, one with a wrong password down."""
    import bcrypt

    cert, key = self_signed(tmp_path)
    hashed = bcrypt.hashpw(b"scrape-pw", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {cert}\n  key_file: {key}\n"
                   f"basic_auth_users:\n  prometheus: '{hashed}'\n")
    with simulator(tmp_path) as upstream, sidecar(
            tmp_path, upstream, "--web-config-file", str(web), "--metrics-host",
            "127.0.0.1") as proc:
        host = proc.metrics_url.split("/")[2]
        context = ssl.create_default_context(cafile=str(cert))

        def get(password: str | None, scheme: str = "https") -> tuple[int, bool]:
            request = urllib.request.Request(f"{scheme}://{host}/metrics")
            if password is not None:
                token = base64.b64encode(f"prometheus:{password}".encode()).decode()
                request.add_header("Authorization", f"Basic {token}")
            try:
                with urllib.request.urlopen(request, context=context if scheme == "https"
                                            else None, timeout=5) as resp:
                    return int(resp.status), b"llmkpi_engine_up" in resp.read()
            except urllib.error.HTTPError as exc:
                return int(exc.code), b"llmkpi_" in exc.read()

        deadline = time.monotonic() + 20
        while True:  # the sidecar opens /metrics a moment after its traffic port
            try:
                status = get("scrape-pw")
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert (status, get("wrong"), get(None)) == ((200, True), (401, False), (401, False))
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            get("scrape-pw", scheme="http")
        config = processes.prometheus_config({"sidecar": host, "intruder": host},
                                             interval="1s")
        jobs = cast(list[dict[str, Any]], config["scrape_configs"])
        for job, password in zip(jobs, ("scrape-pw", "guess"), strict=True):
            job.update(scheme="https", tls_config={"ca_file": str(cert)},
                       basic_auth={"username": "prometheus", "password": password})
        started, url = processes.start_prometheus(
            prometheus_binary(), config, tmp_path / "prometheus.yml", tmp_path / "tsdb",
            tmp_path / "logs", "--log.level=warn")
        with processes.running(started):
            processes.wait_http(f"{url}/-/ready", started, timeout=60)
            prom = PrometheusProc(url, started)
            prom.wait_scraped("sidecar")
            time.sleep(2)
            assert prom.query('up{job="intruder"}')[0]["value"][1] == "0"
