"""A stand-in for the inference gateway's endpoint picker: the pool's numbers as llm-d's
router exports them (or, asked for `?generation=gie`, under the Gateway API Inference
Extension's older names), computed from the simulator's own engines. The names come from
specs/gateway.py, which the dashboards and alerts read too."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from engine_shim.simulator.engine import Engine
from specs.gateway import GATEWAY_SERIES

POOL = "llmkpi-sim-pool"
PLUGIN = ("plugin_name", "disagg-profile-handler"), ("plugin_type", "disagg-profile-handler")


class EndpointPicker:
    """Counts the routing decisions the simulator makes; renders the EPP's /metrics."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.decisions: Counter[str] = Counter()
        self.requests = 0

    def routed(self, disaggregated: bool) -> None:
        self.requests += 1
        self.decisions["prefill-decode" if disaggregated else "decode-only"] += 1

    def render(self, decode: Sequence[Engine], prefill: Sequence[Engine],
               generation: str = "llm-d") -> str:
        index = 1 if generation == "gie" else 0

        def name(field: str) -> str:
            names = GATEWAY_SERIES[field].names
            return names[min(index, len(names) - 1)]

        engines = [*decode, *prefill]
        pool = f'name="{POOL}"'
        kv = sum(1.0 - e.free_blocks / e.profile.num_blocks for e in engines) / len(engines)
        queue = sum(len(e.waiting) + e.deferred for e in engines) / len(engines)
        lines = [f"# TYPE {name('pool_kv_cache')} gauge",
                 f"{name('pool_kv_cache')}{{{pool}}} {kv!r}",
                 f"# TYPE {name('pool_queue')} gauge",
                 f"{name('pool_queue')}{{{pool}}} {queue!r}",
                 f"# TYPE {name('ready_endpoints')} gauge",
                 f"{name('ready_endpoints')}{{{pool}}} {len(engines)}"]
        decisions = name("disagg_decisions")
        lines.append(f"# TYPE {decisions.removesuffix('_total')} counter")
        plugin = ",".join(f'{k}="{v}"' for k, v in PLUGIN)
        for decision in ("decode-only", "prefill-decode"):
            lines.append(f'{decisions}{{decision_type="{decision}",model_name="{self.model}",'
                         f"{plugin}}} {self.decisions[decision]}")
        saturation = name("pool_saturation")
        lines.append(f"# TYPE {saturation} gauge")
        stages = {"decode": _saturation(decode), "prefill": _saturation(prefill)}
        stages["effective"] = max(stages.values())
        for stage, value in sorted(stages.items()):
            lines.append(f'{saturation}{{inference_pool="{POOL}",stage="{stage}"}} {value!r}')
        requests = name("requests")
        lines.append(f"# TYPE {requests.removesuffix('_total')} counter")
        lines.append(f'{requests}{{model_name="{self.model}",target_model_name="{self.model}"}}'
                     f" {self.requests}")
        return "\n".join(lines) + "\n"


def _saturation(engines: Sequence[Engine]) -> float:
    """A stage's load against its batch capacity, the fullest engine's: 1.0 when running
    and waiting requests fill max_num_seqs (the EPP's utilisation detector's set point)."""
    if not engines:
        return 0.0
    return max((len(e.running) + len(e.waiting) + e.deferred) / e.profile.max_num_seqs
               for e in engines)
