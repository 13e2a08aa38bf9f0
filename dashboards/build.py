"""Writes every dashboard as `<uid>.json` into a folder (`llmkpi dashboards build`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from grafanalib import core as g

from dashboards import cost, disaggregated, executive, panels, serving, slo
from kpi_mapping.mappings import Bands

GENERATED_DIR = Path(__file__).resolve().parent / "generated"


def dashboards(bands: Mapping[int, Bands | None] | None = None) -> list[g.Dashboard]:
    return [serving.build(), disaggregated.build(), cost.build(), executive.build(bands),
            slo.build()]


def render_all(bands: Mapping[int, Bands | None] | None = None) -> dict[str, str]:
    """File name -> JSON text, in a fixed order."""
    return {f"{board.uid}.json": panels.render(board) for board in dashboards(bands)}


def write(out: Path, bands: Mapping[int, Bands | None] | None = None,
          say: Callable[[str], None] = print) -> list[Path]:
    """Writes each file whole (temporary name, then rename) so Grafana never reads half."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all(bands).items():
        path = out / name
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        written.append(path)
        say(f"{path}: {text.count(chr(10))} lines")
    return written
