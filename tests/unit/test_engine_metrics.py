import pytest

from engine_shim.engine_metrics import NAME_TABLE, parse_exposition, snapshots_from_text

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


def test_every_field_of_the_table_is_a_snapshot_field() -> None:
    from dataclasses import fields

    from engine_shim.records import EngineSnapshot

    names = {f.name for f in fields(EngineSnapshot)}
    assert set(NAME_TABLE) <= names
