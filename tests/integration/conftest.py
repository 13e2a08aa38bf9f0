"""Fixtures shared by integration tests."""

import os
from collections.abc import Iterator

import pytest

from tests.integration import helpers
from tests.integration.store_fixtures import store  # noqa: F401 - the two-database store fixture

# The sidecar suite runs against both data planes (issue 16): each test of these modules
# that starts a sidecar (helpers.sidecar, sidecar_in_process) runs once per plane.
SIDECAR_SUITE = {"test_sidecar_fidelity", "test_sidecar_edges", "test_sidecar_openai",
                 "test_otel_traces", "test_ledger", "test_mixpanel_events",
                 "test_prometheus_scrape", "test_data_planes", "test_hostile_requests",
                 "test_engine_timings", "test_pd_ledger"}
PLANES = os.environ.get("LLMKPI_TEST_DATA_PLANES", "python,nginx").split(",")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if module not in SIDECAR_SUITE:
        return
    if "data_plane" in metafunc.fixturenames:  # a fixture it uses starts the sidecar
        metafunc.parametrize("data_plane", PLANES, indirect=True, scope="module")
    elif _starts_sidecar(metafunc):
        metafunc.fixturenames.append("data_plane")
        metafunc.parametrize("data_plane", PLANES, indirect=True, scope="module")


def _starts_sidecar(metafunc: pytest.Metafunc) -> bool:
    import inspect

    source = inspect.getsource(metafunc.function)
    return "sidecar" in source and '"--data-plane"' not in source  # not if it picks one


@pytest.fixture(autouse=True)
def _parametrized_plane(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test given a plane by pytest_generate_tests without asking for the data_plane
    fixture (its helpers start the sidecar): set that plane around the test. Appending to
    metafunc.fixturenames does not make pytest run the fixture, so this does it."""
    callspec = getattr(request.node, "callspec", None)
    plane = callspec.params.get("data_plane") if callspec is not None else None
    if plane is None or "data_plane" in request.fixturenames:
        yield
        return
    before = helpers.DATA_PLANE["name"]
    helpers.DATA_PLANE["name"] = plane
    try:
        yield
    finally:
        helpers.DATA_PLANE["name"] = before


@pytest.fixture
def apps() -> Iterator[helpers.BackgroundApps]:
    """aiohttp apps served from a background loop (fake receivers, scripted engines)."""
    background = helpers.BackgroundApps()
    yield background
    background.close()


@pytest.fixture(scope="module")
def data_plane(request: pytest.FixtureRequest) -> Iterator[str]:
    """Module-scoped, so a module-scoped stack built on a sidecar (test_sidecar_openai)
    is built once per plane; such fixtures ask for it to be set up first."""
    plane = getattr(request, "param", "python")
    before = helpers.DATA_PLANE["name"]
    helpers.DATA_PLANE["name"] = plane
    try:
        yield plane
    finally:
        helpers.DATA_PLANE["name"] = before
