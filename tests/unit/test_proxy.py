"""The sidecar's forwarding rules (engine_shim/proxy.py), apart from the measuring: which
requests are timed, where they go, which headers cross, which outcome a status is."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from engine_shim.proxy import (
    forward_headers,
    is_measured,
    outcome_for_status,
    response_headers,
    upstream_url,
)


@pytest.mark.parametrize(("method", "path", "measured"), [
    ("POST", "/v1/chat/completions", True),
    ("POST", "/v1/completions", True),
    ("GET", "/v1/chat/completions", False),  # not a generation
    ("POST", "/v1/embeddings", False),
    ("GET", "/v1/models", False),
    ("POST", "/v1/chat/completions/", False),  # another path, forwarded as it is
])
def test_only_completion_posts_are_measured(method: str, path: str, measured: bool) -> None:
    assert is_measured(method, path) is measured


def test_the_path_and_query_reach_the_engine_byte_for_byte() -> None:
    url = upstream_url("http://vllm:8000/", "/v1/models?x=%2F&y=a%20b")
    assert str(url) == "http://vllm:8000/v1/models?x=%2F&y=a%20b"


def test_hop_by_hop_headers_stay_behind_and_the_rest_cross() -> None:
    sent = CIMultiDict([("Authorization", "Bearer sk-1"), ("Connection", "keep-alive"),
                        ("Host", "sidecar:8080"), ("Content-Length", "12"),
                        ("X-Tenant", "acme"), ("Transfer-Encoding", "chunked"),
                        ("X-Custom", "a"), ("X-Custom", "b")])
    forwarded = forward_headers(sent)
    assert forwarded.getall("X-Custom") == ["a", "b"]  # repeated headers keep their order
    assert set(forwarded) == {"Authorization", "X-Tenant", "X-Custom"}
    back = response_headers(CIMultiDict([("Content-Type", "text/event-stream"),
                                         ("Date", "x"), ("Server", "uvicorn"),
                                         ("Keep-Alive", "5"), ("X-Request-Id", "r1")]))
    assert set(back) == {"Content-Type", "X-Request-Id"}


@pytest.mark.parametrize(("status", "outcome"), [
    (200, "ok"), (307, "ok"), (400, "rejected"), (429, "rejected"), (499, "rejected"),
    (500, "error"), (503, "error")])
def test_outcome_of_a_status(status: int, outcome: str) -> None:
    assert outcome_for_status(status) == outcome
