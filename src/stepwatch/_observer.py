"""The Monitor's observer: what the instrument layer reports, fanned out to the tracker and the bus.

Data flows one way (see ``docs/architecture.md``): handles record and report
here; this observer feeds the :class:`~stepwatch.progress.ProgressTracker`
and the :class:`~stepwatch.events.EventBus`; the Monitor answers queries from
them. Nothing here calls back into a handle: handles arrive as read-only
views, and the payloads of the events that are also span events arrive
already built (the instrument layer built the span event from the same
payload). Payloads are handed to the bus as they are: each is a new dict
built for this one event. A step's start and end, the events every step
makes, go to the bus by value (:meth:`~stepwatch.events.EventBus.record`):
their dicts are built only if someone reads them.

Every hook is guarded here, once: a failure is reported (logged once,
counted) and never reaches the host.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from stepwatch import semconv
from stepwatch._safety import report
from stepwatch.events import EventBus
from stepwatch.progress import ExecutionView, ProgressTracker, StepView
from stepwatch.semconv import EventType

__all__ = ["MonitorObserver"]

# A step's start and end are recorded by value (EventBus.record): the keys of
# semconv.StepStartedData and StepEndedData, in their declared order.
_STEP_STARTED_KEYS: Final = tuple(semconv.StepStartedData.__annotations__)
_STEP_ENDED_REASON_KEYS: Final = tuple(semconv.StepEndedData.__annotations__)
_STEP_ENDED_KEYS: Final = _STEP_ENDED_REASON_KEYS[:-1]  # without the optional "reason", the last


class MonitorObserver:
    """Implements :class:`stepwatch._telemetry.Observer` for one Monitor."""

    __slots__ = ("bus", "tracker")

    def __init__(self, tracker: ProgressTracker, bus: EventBus) -> None:
        self.tracker = tracker
        self.bus = bus

    def enqueued(self, execution_id: str, data: semconv.ExecutionQueuedData, at: float) -> None:
        try:
            self.tracker.enqueued(
                data["name"], execution_id, data["queue"], at, data["attempt"], data.get("due_at")
            )
            self.bus.publish(EventType.EXECUTION_CREATED, execution_id, dict(data), at)
            self.bus.publish(EventType.EXECUTION_QUEUED, execution_id, data, at)
        except Exception:
            report("monitor.enqueued", "stepwatch: monitor failed", exc_info=True)

    def execution_started(
        self, execution: ExecutionView, data: semconv.ExecutionStartedData
    ) -> None:
        try:
            self.tracker.started(execution)
            self.bus.publish(EventType.EXECUTION_STARTED, execution.id, data, execution.started_at)
        except Exception:
            report("monitor.execution_started", "stepwatch: monitor failed", exc_info=True)

    def execution_ended(
        self,
        execution: ExecutionView,
        event_type: EventType,
        data: semconv.ExecutionEndedData,
        sla: semconv.SLAViolatedData | None,
    ) -> None:
        try:
            announced = self.tracker.ended(execution)
            at = execution.ended_at
            self.bus.publish(event_type, execution.id, data, at)
            if sla is not None and not announced:
                self.bus.publish(EventType.SLA_VIOLATED, execution.id, sla, at)
        except Exception:
            report("monitor.execution_ended", "stepwatch: monitor failed", exc_info=True)

    def step_started(self, step: StepView, execution_id: str | None) -> None:
        try:
            self.bus.record(
                EventType.STEP_STARTED,
                execution_id,
                _STEP_STARTED_KEYS,
                (step.name, step.step_type, step.attempt),
                step.started_at,
            )
        except Exception:
            report("monitor.step_started", "stepwatch: monitor failed", exc_info=True)

    def step_ended(self, step: StepView, execution_id: str | None) -> None:
        try:
            outcome, ended_at = step.outcome, step.ended_at
            if outcome is None or ended_at is None:
                return
            reason = step.reason
            values: tuple[Any, ...] = (
                step.name,
                step.step_type,
                semconv.OUTCOME_VALUES[outcome],
                max(ended_at - step.started_at, 0.0),
                step.attempt,
            )
            if reason is None:
                keys = _STEP_ENDED_KEYS
            else:
                keys, values = _STEP_ENDED_REASON_KEYS, (*values, reason)
            self.bus.record(semconv.STEP_END_EVENTS[outcome], execution_id, keys, values, ended_at)
        except Exception:
            report("monitor.step_ended", "stepwatch: monitor failed", exc_info=True)

    def step_progressed(
        self, execution_id: str | None, data: semconv.StepProgressData, at: float
    ) -> None:
        try:
            self.bus.publish(EventType.STEP_PROGRESS, execution_id, data, at)
        except Exception:
            report("monitor.step_progressed", "stepwatch: monitor failed", exc_info=True)

    def lifecycle(
        self,
        event_type: EventType,
        execution_id: str | None,
        data: Mapping[str, Any],
        at: float,
    ) -> None:
        try:
            self.bus.publish(event_type, execution_id, data, at)
        except Exception:
            report("monitor.lifecycle", "stepwatch: monitor failed", exc_info=True)
