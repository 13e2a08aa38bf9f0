"""The reliability suite shares the integration fixtures: the two-database store, and the
sidecar tests run once per data plane (test_hostile_requests is in SIDECAR_SUITE)."""

from tests.integration.conftest import (  # noqa: F401 - fixtures and hooks, by name
    _parametrized_plane,
    apps,
    data_plane,
    pytest_generate_tests,
    store,
)
