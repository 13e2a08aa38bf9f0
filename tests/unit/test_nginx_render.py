"""The nginx data plane's config reaches an engine served under a base path, as the Python
data plane does (a P/D prefill pod behind http://host:port/prefill)."""

from __future__ import annotations

import re
from pathlib import Path

from engine_shim.nginx_plane import MEASURED, NginxConfig, render


def passes(upstream: str, tmp_path: Path) -> dict[str, str]:
    text = render(NginxConfig(upstream=upstream, host="127.0.0.1", port=8080,
                              journal=tmp_path, salt="s"))
    found = re.findall(r"location (?:= )?(\S+) \{(?:[^{}]|\{[^{}]*\})*?proxy_pass (\S+);",
                       text)
    return dict(found)


def test_without_a_base_path_the_uri_goes_as_it_came(tmp_path: Path) -> None:
    found = passes("http://127.0.0.1:8000", tmp_path)
    assert set(found.values()) == {"http://llmkpi_engine"}
    assert set(found) == {*MEASURED, "/"}


def test_under_a_base_path_every_location_goes_below_it(tmp_path: Path) -> None:
    found = passes("http://127.0.0.1:8000/prefill/", tmp_path)
    assert found["/"] == "http://llmkpi_engine/prefill/"
    for path in MEASURED:
        assert found[path] == f"http://llmkpi_engine/prefill{path}"
