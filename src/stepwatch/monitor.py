"""The in-process Monitor: live progress, lifecycle events, and (later) health.

Usage::

    monitor = stepwatch.Monitor(tracer_provider=tp, meter_provider=mp)
    monitor.install()                  # decorators now emit through it
    monitor.progress("n-42")           # ExecutionProgress | None
    monitor.events(execution_id="n-42")

A Monitor is the instrument layer's observer: every execution and step start
and end, progress report, approval and enqueue reaches its
:class:`~stepwatch.progress.ProgressTracker` and
:class:`~stepwatch.events.EventBus` synchronously, so queries read their own
writes. Nothing here runs I/O on the engine's thread.

Configuration (constructor arguments): ``retention`` and ``max_finished``
bound the finished executions kept; ``max_events`` the event history;
``max_subscriber_queue`` each subscriber's undelivered events.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from stepwatch import _telemetry
from stepwatch._safety import report
from stepwatch.events import (
    DEFAULT_MAX_HISTORY,
    DEFAULT_MAX_QUEUE,
    Callback,
    EventBus,
    ExecutionEvent,
    Subscription,
)
from stepwatch.progress import (
    DEFAULT_MAX_FINISHED,
    DEFAULT_RETENTION,
    ExecutionProgress,
    ProgressTracker,
)
from stepwatch.semconv import EXECUTION_END_EVENTS, STEP_END_EVENTS, EventType

if TYPE_CHECKING:
    from stepwatch.instrument import Execution, Step

__all__ = ["Monitor"]

_logger = logging.getLogger(__name__)


class Monitor:
    """Watches executions in this process and answers queries about them.

    Args:
        tracer_provider: Where spans go; ``None`` means the global
            OpenTelemetry tracer provider (resolved lazily).
        meter_provider: Where metrics go; ``None`` means the global meter
            provider (resolved lazily).
        rules: Alerting rules (used by ``health()``); reserved until the
            health evaluator lands.
        clock: Zero-argument callable returning epoch seconds (default
            ``time.time``); every duration stepwatch records and every
            time-based decision of the Monitor reads it.
        retention: Seconds finished executions stay queryable.
        max_finished: Finished executions kept at most.
        max_events: Events kept in the history.
        max_subscriber_queue: Undelivered events kept per subscriber.

    Raises:
        TypeError: ``clock`` is not callable.
        ValueError: a bound is not positive.

    Creating a Monitor has no global side effects; :meth:`install` (or
    :func:`stepwatch.configure`) makes it the one the decorators use.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        rules: Any = None,
        clock: Callable[[], float] | None = None,
        retention: float = DEFAULT_RETENTION,
        max_finished: int = DEFAULT_MAX_FINISHED,
        max_events: int = DEFAULT_MAX_HISTORY,
        max_subscriber_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        if clock is not None and not callable(clock):
            raise TypeError(f"clock must be a zero-argument callable, got {type(clock).__name__}")
        self.clock: Callable[[], float] = clock or time.time
        self.rules = rules
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self.tracker = ProgressTracker(self.clock, retention=retention, max_finished=max_finished)
        self.bus = EventBus(self.clock, max_history=max_events, max_queue=max_subscriber_queue)
        self._telemetry = _telemetry.build(tracer_provider, meter_provider, self.clock, self)
        self._owned_shutdowns: list[Callable[[], Any]] = []
        self.exporters: tuple[object, ...] = ()
        """The span and metric exporters :func:`stepwatch.configure` built (empty otherwise)."""
        self._closed = False

    # --------------------------------------------------------------- lifecycle
    def install(self) -> Monitor:
        """Make this the Monitor the decorators emit through; returns ``self``."""
        _telemetry.install(self._telemetry)
        return self

    def uninstall(self) -> None:
        """Stop being the installed Monitor (if it is)."""
        _telemetry.uninstall(self._telemetry)

    @property
    def installed(self) -> bool:
        """Whether this is the installed Monitor."""
        return _telemetry.installed() is self._telemetry

    def shutdown(self) -> None:
        """Uninstall, stop subscribers, flush and shut down providers ``configure`` created.

        Providers given by the caller are flushed, not shut down: they are the
        caller's. Idempotent; never raises.
        """
        if self._closed:
            return
        self._closed = True
        self.uninstall()
        self.bus.close()
        for provider in (self.tracer_provider, self.meter_provider):
            flush = getattr(provider, "force_flush", None)
            if flush is not None:
                try:
                    flush()
                except Exception:
                    report("monitor.flush", "stepwatch: flushing a provider failed", exc_info=True)
        for shutdown in self._owned_shutdowns:
            try:
                shutdown()
            except Exception:
                report(
                    "monitor.shutdown", "stepwatch: shutting down a provider failed", exc_info=True
                )

    def __enter__(self) -> Monitor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    # ----------------------------------------------------------------- queries
    def progress(self, execution_id: str) -> ExecutionProgress | None:
        """Progress of a pending, running or recently finished execution, or ``None``."""
        return self.tracker.get(execution_id)

    def active_executions(self) -> list[ExecutionProgress]:
        """Pending and running executions, oldest first."""
        return self.tracker.active()

    def events(
        self,
        *,
        execution_id: str | None = None,
        event_type: EventType | str | None = None,
        since: int | None = None,
        limit: int | None = None,
    ) -> list[ExecutionEvent]:
        """Events from the bounded history, oldest first (see :meth:`EventBus.events`)."""
        return self.bus.events(
            execution_id=execution_id, event_type=event_type, since=since, limit=limit
        )

    def subscribe(
        self,
        callback: Callback,
        *,
        execution_id: str | None = None,
        event_type: EventType | str | None = None,
    ) -> Subscription:
        """Deliver future matching events to ``callback``, off the engine's thread.

        Sync callbacks run on a thread of their own; async ones on the event
        loop running when they subscribed (or a private loop). A slow or
        failing subscriber never blocks the engine or other subscribers.
        """
        return self.bus.subscribe(callback, execution_id=execution_id, event_type=event_type)

    def unsubscribe(self, subscription: Subscription) -> None:
        """Stop delivery to ``subscription`` at once."""
        self.bus.unsubscribe(subscription)

    # -------------------------------------------- observer (instrument layer)
    def execution_started(self, execution: Execution) -> None:
        try:
            self.tracker.started(execution)
            data: dict[str, Any] = {"name": execution.name}
            if execution.total_steps is not None:
                data["total_steps"] = execution.total_steps
            if execution.queue_wait is not None:
                data["queue_wait"] = execution.queue_wait
            self.bus.publish(EventType.EXECUTION_STARTED, execution.id, data, execution.started_at)
        except Exception:
            report("monitor.execution_started", "stepwatch: monitor failed", exc_info=True)

    def execution_ended(self, execution: Execution) -> None:
        try:
            self.tracker.ended(execution)
            outcome = execution.outcome
            if outcome is None:
                return
            ended_at = execution.ended_at
            duration = None if ended_at is None else ended_at - execution.started_at
            completed, failed, _ = execution.counts()
            data: dict[str, Any] = {
                "name": execution.name,
                "outcome": outcome.value,
                "duration": duration,
                "completed_steps": completed,
                "failed_steps": failed,
            }
            if execution._reason is not None:
                data["reason"] = execution._reason
            self.bus.publish(EXECUTION_END_EVENTS[outcome], execution.id, data, ended_at)
            if execution.sla_violated:
                self.bus.publish(
                    EventType.SLA_VIOLATED,
                    execution.id,
                    {"name": execution.name, "sla": execution.sla, "duration": duration},
                    ended_at,
                )
        except Exception:
            report("monitor.execution_ended", "stepwatch: monitor failed", exc_info=True)

    def step_started(self, step: Step) -> None:
        try:
            execution = step.execution
            self.bus.publish(
                EventType.STEP_STARTED,
                execution.id if execution is not None else None,
                {"step": step.name, "step_type": step.step_type},
                step.started_at,
            )
        except Exception:
            report("monitor.step_started", "stepwatch: monitor failed", exc_info=True)

    def step_ended(self, step: Step) -> None:
        try:
            outcome = step.outcome
            if outcome is None:
                return
            execution = step.execution
            ended_at = step.ended_at
            self.bus.publish(
                STEP_END_EVENTS[outcome],
                execution.id if execution is not None else None,
                {
                    "step": step.name,
                    "step_type": step.step_type,
                    "outcome": outcome.value,
                    "duration": None if ended_at is None else ended_at - step.started_at,
                },
                ended_at,
            )
        except Exception:
            report("monitor.step_ended", "stepwatch: monitor failed", exc_info=True)

    def step_progressed(self, step: Step, emit: bool) -> None:
        if not emit:
            return
        try:
            execution = step.execution
            self.bus.publish(
                EventType.STEP_PROGRESS,
                execution.id if execution is not None else None,
                {
                    "step": step.name,
                    "fraction": step.fraction,
                    "done": step.done,
                    "total": step.total,
                    "message": step.message,
                },
            )
        except Exception:
            report("monitor.step_progressed", "stepwatch: monitor failed", exc_info=True)

    def enqueued(self, name: str, execution_id: str, queue: str, at: float) -> None:
        try:
            self.tracker.enqueued(name, execution_id, queue, at)
            data = {"name": name, "queue": queue}
            self.bus.publish(EventType.EXECUTION_CREATED, execution_id, data, at)
            self.bus.publish(EventType.EXECUTION_QUEUED, execution_id, dict(data), at)
        except Exception:
            report("monitor.enqueued", "stepwatch: monitor failed", exc_info=True)

    def lifecycle(
        self, event_type: EventType, execution_id: str | None, data: dict[str, Any]
    ) -> None:
        try:
            self.bus.publish(event_type, execution_id, data)
        except Exception:
            report("monitor.lifecycle", "stepwatch: monitor failed", exc_info=True)

    def eta(self, execution: Execution, now: float) -> float | None:
        return self.tracker.eta(execution, now)

    def __repr__(self) -> str:
        return f"<stepwatch.Monitor installed={self.installed}>"
