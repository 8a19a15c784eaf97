"""A worker process for the fleet-wide attempt tests: runs executions from carriers it is sent.

Each request is ``(carrier, attempt, retry)``: start the execution from the
carrier (telling it the attempt when not ``None``), end it with ``retry()``
when asked, and answer with this process's ``workflow.execution.active``
level in state ``pending`` (unclamped: it is the fleet sum that must stay >= 0).
"""

from __future__ import annotations

from multiprocessing.queues import Queue
from typing import Any

import stepwatch
from stepwatch.testing import Harness, capture


def pending_level(sw: Harness) -> float:
    """This process's ``workflow.execution.active{state=pending}``, summed over names."""
    points = sw.metric_points("workflow.execution.active", {"workflow.execution.state": "pending"})
    return sum(point.value for point in points)


def serve(requests: Queue[Any], answers: Queue[Any]) -> None:
    """Answer requests until ``None`` arrives."""
    with capture() as sw:
        answers.put(("ready", 0.0))
        while (request := requests.get()) is not None:
            carrier, attempt, retry = request
            with stepwatch.execution("job", carrier=carrier, attempt=attempt) as ex:
                if retry:
                    ex.retry("scheduled again")
            answers.put((ex.attempt, pending_level(sw)))
