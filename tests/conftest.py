"""Shared fixtures: an installed Monitor over in-memory sinks with a fake clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from stepwatch import testing
from stepwatch.testing import Harness, capture

# ``make test`` runs the default profile; ``make fuzz`` the fuzz profile
# (1,500 cases per hypothesis test, over 10,000 across tests/test_fuzz.py).
settings.register_profile(
    "default", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile(
    "fuzz", max_examples=1_500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("default")


@pytest.fixture
def sw() -> Iterator[Harness]:
    """A Monitor wired to in-memory span exporter and metric reader, installed."""
    testing.reset_internal_errors()
    with capture() as harness:
        yield harness


@pytest.fixture(autouse=True)
def _no_internal_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test starts with no internal-error counts and, unless it provokes some
    (``@pytest.mark.internal_errors``), ends with none: stepwatch contained nothing."""
    testing.reset_internal_errors()
    yield
    if request.node.get_closest_marker("internal_errors") is None:
        assert testing.internal_errors() == {}, "stepwatch contained failures of its own"
