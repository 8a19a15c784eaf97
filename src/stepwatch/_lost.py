"""Ending the executions of a process that died while they ran: outcome ``lost``.

A process group member that finds another member dead (by pid and process
start time, see :mod:`stepwatch.group`) and wins the claim on it ends each of
its running executions here, once group-wide: the ``execution.lost`` event,
the duration and outcome metrics with ``workflow.execution.outcome=lost``
(which ``summary().lost_rate`` and the ``ExecutionsLost`` rule read), and a
finished record, so the group's view of the id says ``lost``. No span is
written: the execution's span lived in the dead process and is never ended
(a trace backend shows it incomplete, as it shows any span of a killed
process).
"""

from __future__ import annotations

from stepwatch import _telemetry, semconv
from stepwatch._observer import MonitorObserver
from stepwatch._safety import report
from stepwatch.progress import ExecutionProgress, StepState
from stepwatch.semconv import EventType, ExecutionState, Outcome

__all__ = ["LostExecution", "record_lost"]


class LostExecution:
    """A dead member's running execution, as an ended :class:`~stepwatch.progress.ExecutionView`."""

    __slots__ = (
        "_state",
        "attempt",
        "ended_at",
        "id",
        "name",
        "started_at",
        "total_steps",
        "updated_at",
    )

    outcome = Outcome.LOST
    sla: float | None = None  # its SLA, if any, was the dead process's to judge

    def __init__(self, record: ExecutionProgress, ended_at: float) -> None:
        self.id = record.execution_id
        self.name = record.name
        self.attempt = record.attempt
        self.total_steps = record.total_steps
        self.started_at = record.started_at if record.started_at is not None else ended_at
        self.ended_at = max(ended_at, self.started_at)
        self.updated_at = self.ended_at
        # Its running steps died with it: they count as failed.
        failed = (record.failed_steps or 0) + (record.running_steps or 0)
        self._state = StepState(record.completed_steps or 0, failed, 0, (), None)

    def step_state(self, keep: int | None = None) -> StepState:
        return self._state


def record_lost(
    telemetry: _telemetry.Telemetry,
    observer: MonitorObserver,
    records: list[ExecutionProgress],
    at: float,
) -> int:
    """End each of ``records`` (running executions of a dead process) as ``lost``.

    ``at`` is when their process was last seen alive (its last publish): the
    duration recorded runs from each execution's start to then. Returns how
    many were recorded. Never raises.
    """
    recorded = 0
    for record in records:
        try:
            lost = LostExecution(record, at)
            duration = lost.ended_at - lost.started_at
            telemetry.execution_duration.record(
                duration,
                {
                    semconv.WORKFLOW_DEFINITION_NAME: lost.name,
                    semconv.WORKFLOW_EXECUTION_STATE: ExecutionState.EXECUTING.value,
                    semconv.WORKFLOW_EXECUTION_OUTCOME: Outcome.LOST.value,
                },
            )
            state = lost.step_state()
            data = semconv.ExecutionEndedData(
                name=lost.name,
                outcome=Outcome.LOST.value,
                duration=duration,
                completed_steps=state.completed,
                failed_steps=state.failed,
                attempt=lost.attempt,
                reason="its process died while it ran",
            )
            observer.execution_ended(lost, EventType.EXECUTION_LOST, data, None)
            recorded += 1
        except Exception:
            report("group.lost", "stepwatch: recording a lost execution failed", exc_info=True)
    return recorded
