"""What the page is given by `llmkpi app`: the store, the KPI config, the SLOs, Prometheus.

The launcher (the composition root) reads the SLO config and builds the PromQL; the page
receives them as plain data in one JSON file, the SLOs in the one model of specs/slo.py.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from specs.slo import Slo


@dataclass(frozen=True)
class LiveQuery:
    """An instant PromQL query shown as one number when a Prometheus URL is configured."""

    label: str
    promql: str
    unit: Literal["seconds", "ratio", "budget"]  # budget: remaining error budget, may be < 0
    name_by: str | None = None  # a label of the answer that names it (the SLO of a budget)
    group: str = "health"  # health: the live row; ttft: where first tokens' time goes


@dataclass(frozen=True)
class PageConfig:
    database: str
    kpi_config: str | None = None
    prometheus_url: str | None = None
    slos: tuple[Slo, ...] = ()  # the SLO config's, as specs/slo.py models them
    live: tuple[LiveQuery, ...] = ()
    history: int = 6  # periods shown in the cost-over-time chart and the sparklines
    throttled_is_failure: bool = False  # the SLO config's availability switch (429s)

    def to_json(self) -> str:
        doc = asdict(self) | {"slos": [s.to_dict() for s in self.slos]}
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> PageConfig:
        doc: dict[str, Any] = json.loads(text)
        return cls(database=str(doc["database"]), kpi_config=doc.get("kpi_config"),
                   prometheus_url=doc.get("prometheus_url"),
                   slos=tuple(Slo.from_dict(s) for s in doc.get("slos", [])),
                   live=tuple(LiveQuery(**q) for q in doc.get("live", [])),
                   history=int(doc.get("history", 6)),
                   throttled_is_failure=bool(doc.get("throttled_is_failure", False)))

    @classmethod
    def from_argv(cls, argv: list[str]) -> PageConfig:
        """`streamlit run app/streamlit_app.py -- CONFIG` where CONFIG is the JSON itself (what
        `llmkpi app` passes: no file left behind) or a JSON file's path."""
        if len(argv) != 1:
            raise SystemExit("usage: llmkpi app [--database URL] (it writes the page's config)")
        text = argv[0] if argv[0].lstrip().startswith("{") else Path(argv[0]).read_text(
            encoding="utf-8")
        return cls.from_json(text)
