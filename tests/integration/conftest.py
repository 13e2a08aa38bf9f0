"""Fixtures shared by integration tests."""

from tests.integration.store_fixtures import store  # noqa: F401 - the two-database store fixture
