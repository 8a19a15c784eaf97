"""Shared fixtures: an installed Monitor over in-memory sinks with a fake clock."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stepwatch import _safety
from stepwatch.testing import Harness, capture


@pytest.fixture
def sw() -> Iterator[Harness]:
    """A Monitor wired to in-memory span exporter and metric reader, installed."""
    _safety.reset_internal_errors()
    with capture() as harness:
        yield harness


@pytest.fixture(autouse=True)
def _fresh_internal_errors() -> None:
    _safety.reset_internal_errors()
