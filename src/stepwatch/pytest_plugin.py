"""The pytest plugin: a ``stepwatch_capture`` fixture for users' tests, with no import.

Installed with stepwatch (entry point ``pytest11``), so any project that has
stepwatch installed gets the fixture::

    def test_deploy_runs_three_steps(stepwatch_capture):
        deploy(plan)
        assert stepwatch_capture.monitor.progress(plan.id).completed_steps == 3
        assert stepwatch_capture.span("execution deploy").status.is_ok

The fixture is :func:`stepwatch.testing.capture` with its defaults: a Monitor
installed over in-memory span and metric sinks and a fake clock
(``stepwatch_capture.clock.advance(seconds)``), restored when the test ends.
Disable the plugin with ``-p no:stepwatch``.

Loading the plugin imports pytest and nothing else of stepwatch's (no SDK, no
Monitor): every pytest session of a project that has stepwatch installed
loads it, and only the tests that use the fixture pay for
:mod:`stepwatch.testing`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from stepwatch.testing import Harness

__all__ = ["stepwatch_capture"]


@pytest.fixture
def stepwatch_capture() -> Iterator[Harness]:
    """A :class:`~stepwatch.testing.Harness`: an installed Monitor, in-memory sinks, a fake clock.

    .. versionadded:: 0.2.0
    """
    from stepwatch.testing import capture  # noqa: PLC0415 - loaded when the fixture is used

    with capture() as harness:
        yield harness
