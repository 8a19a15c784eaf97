"""The in-process Monitor: live progress, lifecycle events, metrics summaries and health.

Usage::

    monitor = stepwatch.Monitor(tracer_provider=tp, meter_provider=mp)
    monitor.install()                  # decorators now emit through it
    monitor.progress("n-42")           # ExecutionProgress | None
    monitor.events(execution_id="n-42")
    monitor.summary(60)                # MetricsSummary over the last minute
    monitor.health()                   # SystemHealth

The instrument layer reports every execution and step start and end,
progress report, approval and enqueue to the Monitor's private observer
(:mod:`stepwatch._observer`), which feeds the
:class:`~stepwatch.progress.ProgressTracker` and the
:class:`~stepwatch.events.EventBus` synchronously, so queries read their own
writes. Its :class:`~stepwatch.windows.HealthWindows` (``monitor.reader``)
gets the same values the instrument layer records on its metric
instruments, directly, for ``summary()`` and the alert rules: no reader is
attached to any ``MeterProvider``. The Monitor itself keeps
the lifecycle (install, start/stop, shutdown, serve) and answers queries; it
receives nothing from the handles. Nothing here runs I/O on the engine's
thread. See ``docs/architecture.md``.

Configuration (constructor arguments): ``rules`` (:class:`~stepwatch.Rules`)
and ``limits`` (:class:`~stepwatch.Limits`, every memory bound).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import os
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from stepwatch import _attributes as attrs
from stepwatch import _checks as checks
from stepwatch import _fork, _telemetry
from stepwatch._flush import DEFAULT_FLUSH_TIMEOUT, BoundedFlush, FailureBoard
from stepwatch._lost import record_lost
from stepwatch._observer import MonitorObserver
from stepwatch._queues import QueueDepths
from stepwatch._safety import report
from stepwatch.events import Callback, EventBus, ExecutionEvent, Subscription
from stepwatch.group import (
    COMPONENT,
    DEFAULT_PUBLISH_INTERVAL,
    GroupWindows,
    ProcessGroup,
    merge_progress,
    snapshot_document,
)
from stepwatch.health import (
    Alert,
    Check,
    EvaluationLoop,
    ExportStatus,
    HealthEvaluator,
    Rules,
    SystemHealth,
    worst_status,
)
from stepwatch.instrument import remember_dead_run
from stepwatch.limits import Limits
from stepwatch.progress import (
    DurationHistory,
    ExecutionProgress,
    ExecutionQuery,
    ProgressTracker,
    order_executions,
)
from stepwatch.semconv import (
    AlertState,
    CustomEventData,
    EventType,
    ExecutionState,
    Outcome,
    Severity,
)
from stepwatch.summary import MetricsSummary, summarize
from stepwatch.windows import Attributes, HealthWindows, Windows

if TYPE_CHECKING:
    from stepwatch._pipeline import Pipeline
    from stepwatch.http import ServerHandle

__all__ = ["DEFAULT_INTERVAL", "Monitor", "get_monitor"]

DEFAULT_INTERVAL = 10.0
"""Seconds between background evaluations started by :meth:`Monitor.start`."""

_LIVE_MONITORS: weakref.WeakSet[Monitor] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for monitor in list(_LIVE_MONITORS):
        try:
            monitor._after_fork_in_child()
        except Exception:
            report(
                "monitor.fork", "stepwatch: resetting a Monitor after fork failed", exc_info=True
            )


# One hook for every Monitor (a hook per instance could never be unregistered).
os.register_at_fork(after_in_child=_after_fork_in_child)


def get_monitor() -> Monitor | None:
    """The installed Monitor (the one the decorators emit through), or ``None``.

    Named like ``trace.get_tracer_provider()``. :func:`stepwatch.configure`
    installs one per process and keeps it until exit.

    .. versionadded:: 0.3.0
    """
    telemetry = _telemetry.installed()
    if telemetry is None:
        return None
    for monitor in list(_LIVE_MONITORS):
        if monitor._telemetry is telemetry:
            return monitor
    return None


class _ForkedChildObserver(MonitorObserver):
    """A forked child's observer: also tells the group when an execution starts.

    A freshly forked member (RQ's fork per job) would otherwise show a job
    shorter than the publish interval only once it has ended.
    """

    __slots__ = ("_started",)

    def __init__(self, base: MonitorObserver, started: Callable[[], object]) -> None:
        super().__init__(base.tracker, base.bus)
        self._started = started

    def execution_started(self, execution: Any, data: Any) -> None:
        super().execution_started(execution, data)
        try:
            self._started()
        except Exception:
            report("group.publish", "stepwatch: publishing to the process group failed")


_EXECUTION_STATES: tuple[str, ...] = (
    ExecutionState.PENDING.value,
    ExecutionState.EXECUTING.value,
    *(outcome.value for outcome in Outcome),
)
"""The values an execution's ``state`` takes (what ``executions(state=)`` accepts)."""


class Monitor:
    """Watches executions in this process and answers queries about them.

    Args:
        tracer_provider: Where spans go; ``None`` means the global
            OpenTelemetry tracer provider (resolved lazily).
        meter_provider: Where metrics go; ``None`` means the global
            OpenTelemetry meter provider (resolved lazily). Nothing is
            attached to it: the health windows are fed directly.
        rules: :class:`~stepwatch.Rules` for ``health()`` and the window of
            ``summary()`` (default ``Rules()``).
        clock: Zero-argument callable returning epoch seconds (default
            ``time.time``); every duration stepwatch records and every
            time-based decision of the Monitor reads it.
        limits: Every bound on what the Monitor keeps (:class:`~stepwatch.Limits`).
        retention, max_finished, max_events, max_subscriber_queue: Deprecated
            since 0.2.0 (removed in 0.3.0): the same fields of ``limits``.
        export_status: Where exporters report their results (for
            ``TelemetryExportFailing``). Default: the pipeline's, else a fresh
            one nothing reports to.
        pipeline: The providers :func:`stepwatch.configure` built. The Monitor
            owns them: it shuts them down, and rebuilds them in a forked child
            (see ``docs/processes.md``).
        multiprocess_dir: A directory shared by the processes of one group
            (see :mod:`stepwatch.group`): this Monitor publishes there and its
            queries answer for the whole group. ``None``: this process only.
        publish_interval: Seconds between publishes to the group (at most
            every second by default); ``None`` reads the group without
            publishing (a viewer such as ``stepwatch top --dir``).
        flush_timeout: Seconds a forked child's per-execution flush may hold
            the engine up (see :mod:`stepwatch._flush`).

            .. versionadded:: 0.3.0

    Raises:
        TypeError: an argument of the wrong type (``clock`` not callable,
            ``rules`` not a ``Rules``...), named in the message.
        ValueError: an argument out of range, named in the message.

    Creating a Monitor has no global side effects; :meth:`install` (or
    :func:`stepwatch.configure`) makes it the one the decorators use.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        tracer_provider: TracerProvider | None = None,
        meter_provider: MeterProvider | None = None,
        rules: Rules | None = None,
        clock: Callable[[], float] | None = None,
        limits: Limits | None = None,
        export_status: ExportStatus | None = None,
        pipeline: Pipeline | None = None,
        multiprocess_dir: str | os.PathLike[str] | None = None,
        publish_interval: float | None = DEFAULT_PUBLISH_INTERVAL,
        flush_timeout: float = DEFAULT_FLUSH_TIMEOUT,
        retention: float | None = None,
        max_finished: int | None = None,
        max_events: int | None = None,
        max_subscriber_queue: int | None = None,
    ) -> None:
        self._given_clock = checks.function(clock, "clock", optional=True)
        self.flush_timeout: float = checks.seconds(flush_timeout, "flush_timeout")
        """Seconds a forked child's per-execution flush may take."""
        # Made here, before any fork: the parent and all its children share it.
        self._failure_board = FailureBoard()
        self._flusher: BoundedFlush | None = None
        self.clock: Callable[[], float] = clock or time.time
        self.rules: Rules = (
            Rules()
            if rules is None
            else checks.instance(rules, "rules", Rules, "a stepwatch.Rules")
        )
        limits = (
            Limits()
            if limits is None
            else checks.instance(limits, "limits", Limits, "a stepwatch.Limits")
        )
        self.limits: Limits = _fold_deprecated(
            limits,
            retention=retention,
            max_finished=max_finished,
            max_events=max_events,
            max_subscriber_queue=max_subscriber_queue,
        )
        """Every bound on what this Monitor keeps."""
        self.history = DurationHistory(self.limits)
        self.tracker = ProgressTracker(self.clock, self.limits, self.history)
        self.bus = EventBus(
            self.clock,
            max_history=self.limits.max_events,
            max_queue=self.limits.max_subscriber_queue,
        )
        self._observer = MonitorObserver(self.tracker, self.bus)
        self._pipeline = pipeline
        self._owned_providers: list[Any] = list(pipeline.owned) if pipeline else []
        self.shutdown_timeout: float | None = (
            pipeline.export_timeout if pipeline is not None and pipeline.exporters else None
        )
        """Default deadline (seconds) of :meth:`shutdown`; ``None`` waits as long as it takes."""
        self.exporters: tuple[object, ...] = pipeline.exporters if pipeline else ()
        """The span and metric exporters :func:`stepwatch.configure` built (empty otherwise)."""
        self.export_status = export_status or (pipeline.status if pipeline else ExportStatus())
        """Results of the exporters ``configure()`` built or adopted (TelemetryExportFailing)."""
        self.reader = HealthWindows(
            self.clock, window=self.rules.window, max_series=self.limits.max_series
        )
        """The :class:`~stepwatch.windows.HealthWindows` behind ``summary()`` and the rules:
        fed directly by the instrument layer, attached to no ``MeterProvider``."""
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self._queues = QueueDepths()
        self._evaluator = HealthEvaluator(
            self.rules,
            self.reader,
            self.tracker,
            self.bus,
            self.clock,
            self.export_status,
            self._queues.total,
        )
        self._evaluator.scheduled = self._scheduled
        self.group: ProcessGroup | None = None
        """This process's membership of a process group, or ``None``."""
        if multiprocess_dir is not None:
            self.group = ProcessGroup(
                multiprocess_dir,
                self._group_document,
                self.clock,
                publish_interval,
                on_lost=self._record_lost,
                on_adopt=self._adopt_pending,
                on_dead=_remember_dead_runs,
            )
            self._evaluator.remote_running = self._remote_running
            if publish_interval is not None:
                group = self.group
                self._evaluator.add_check(COMPONENT, group.health, critical=False, timeout=5.0)
        self._windows: Windows = self._connect_windows()
        # Made in a forked child (a prefork pool's worker_process_init, say):
        # it may leave with os._exit too, so it flushes per execution.
        self._telemetry = self._build_telemetry(forked=_fork.in_forked_child())
        self._loop: EvaluationLoop | None = None
        self._closed = False
        _LIVE_MONITORS.add(self)
        if self.group is not None:
            self.group.start()

    def _connect_windows(self) -> Windows:
        """What ``summary()`` and the rules read: the reader, or the group's merged view."""
        windows: Windows = self.reader
        if self.group is not None:
            windows = GroupWindows(self.reader, self.group.peers, self.clock)
        self._evaluator.reader = windows
        return windows

    def _build_telemetry(self, *, forked: bool = False) -> _telemetry.Telemetry:
        """The bundle the decorators emit through; in a forked child, flushing per execution."""
        observer = self._observer
        flush: Callable[[], None] | None = None
        if forked:
            group = self.group
            self._flusher = BoundedFlush(
                lambda: (self.tracer_provider, self.meter_provider),
                before=None if group is None else group.publish,
                failures=lambda: self.export_status.failures,
                board=self._failure_board,
                timeout=self.flush_timeout,
            )
            flush = self._flusher
            if group is not None:
                observer = _ForkedChildObserver(observer, group.publish_if_fresh)
        return _telemetry.build(
            self.tracer_provider,
            self.meter_provider,
            self._given_clock,
            observer,
            self.rules.sla,
            limits=self.limits,
            history=self.history,
            flush=flush,
            windows=self.reader,
        )

    def _after_fork_in_child(self) -> None:
        """Engines fork workers: the child starts clean where threads and locks are concerned.

        Threads do not survive ``fork``, and a lock another thread held at that
        moment stays held forever in the child. So the child gets fresh locks,
        forgets the parent's running executions and subscribers, and (if the
        parent's loop ran) starts its own evaluation loop. The history of
        finished executions and events is kept.

        Telemetry: providers ``configure()`` built are rebuilt (a new telemetry
        source with its own ``service.instance.id`` that exports only what it
        records, on locks no parent thread can hold); providers it reused (the
        distro's, the application's) forget the parent's metric points and
        take a new ``service.instance.id`` (:mod:`stepwatch._otel_internals`).
        Every execution that ends in the child is flushed to the exporters at
        once, within ``flush_timeout``, since the child may leave with
        ``os._exit`` right after (RQ's horse, a billiard or ``multiprocessing``
        pool child): this hook runs for every ``os.fork``, whatever after-fork
        hooks the engine's process library runs or skips.
        """
        self.tracker.after_fork_in_child()
        self.bus.after_fork_in_child()
        self.reader.after_fork_in_child()
        self._evaluator.after_fork_in_child()
        pipeline = self._pipeline
        if pipeline is not None and pipeline.respawn():
            self._owned_providers = list(pipeline.owned)
            self.exporters = pipeline.exporters
            self.tracer_provider = pipeline.tracer_provider or self.tracer_provider
            if pipeline.meter_provider is not None:
                self.meter_provider = pipeline.meter_provider
                self._queues.attach(self.meter_provider)
        installed = self.installed
        self._telemetry = self._build_telemetry(forked=True)
        if installed:
            _telemetry.install(self._telemetry)
        if self.group is not None:
            self.group.after_fork_in_child()
        loop = self._loop
        if loop is not None:
            loop.after_fork_in_child()

    # --------------------------------------------------------------- lifecycle
    def install(self) -> Monitor:
        """Make this the Monitor the decorators emit through; returns ``self``."""
        _telemetry.install(self._telemetry)
        return self

    def uninstall(self) -> None:
        """Stop being the installed Monitor (if it is)."""
        _telemetry.uninstall(self._telemetry)

    @property
    def closed(self) -> bool:
        """Whether :meth:`shutdown` ran.

        .. versionadded:: 0.2.0
        """
        return self._closed

    @property
    def installed(self) -> bool:
        """Whether this is the installed Monitor."""
        return _telemetry.installed() is self._telemetry

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop the loop, uninstall, stop subscribers, then flush telemetry.

        Providers built for this Monitor (by :func:`stepwatch.configure`, or the
        private meter provider) are shut down, which flushes them. Providers
        given by the caller are flushed, not shut down: they are the caller's
        (nothing of the Monitor's is attached to them).

        Args:
            timeout: Seconds to wait for the flush; ``None`` means
                :attr:`shutdown_timeout` (``configure()`` sets it from
                ``OTEL_EXPORTER_OTLP_TIMEOUT``; unbounded otherwise). When it
                passes (an unreachable backend with a full queue), ``shutdown``
                returns and the flush goes on in a daemon thread until the
                process exits.

        Returns:
            ``True`` when everything was flushed in time (or there was nothing
            to do), ``False`` when the deadline passed first. Idempotent; never raises.
        """
        if self._closed:
            return True
        self._closed = True
        budget = self.shutdown_timeout if timeout is None else timeout
        # One deadline for everything: the loop, the group's publisher and the flush.
        deadline = None if budget is None else time.monotonic() + budget

        def remaining() -> float | None:
            return None if deadline is None else max(deadline - time.monotonic(), 0.0)

        loop, self._loop = self._loop, None
        if loop is not None:
            loop.stop(5.0 if deadline is None else remaining())
        group = self.group
        if group is not None:
            group.sweep()  # a member leaving (a burst worker) still ends a dead peer's runs
        self.uninstall()
        self.bus.close()
        if group is not None:
            group.stop(remaining())
            group.publish()  # the last word: nothing running here any more
        if deadline is None:
            self._flush_providers()
            return True
        done = threading.Event()

        def flush() -> None:
            try:
                self._flush_providers()
            finally:
                done.set()

        threading.Thread(target=flush, name="stepwatch-shutdown", daemon=True).start()
        if done.wait(remaining()):
            return True
        report(
            "monitor.shutdown.timeout",
            "stepwatch: telemetry not flushed within %s s (is the backend reachable?); "
            "returning, the flush goes on in the background",
            budget,
        )
        return False

    def _flush_providers(self) -> None:
        for provider in (self.tracer_provider, self.meter_provider):
            if provider is None:
                continue
            owned = any(provider is mine for mine in self._owned_providers)
            action = "shutdown" if owned else "force_flush"
            method = getattr(provider, action, None)
            if method is None:
                continue
            try:
                method()
            except Exception:
                report(
                    f"monitor.{action}", "stepwatch: %s of a provider failed", action, exc_info=True
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
        """Progress of a pending, running or recently finished execution, or ``None``.

        In a process group, the most advanced record of the id in any process.
        An id longer than ``Limits.max_id_length`` is looked up as it was
        recorded (:meth:`Limits.bounded_id`).
        """
        execution_id = self._bounded(execution_id)
        local = self.tracker.get(execution_id)
        if self.group is None:
            return local
        records = [] if local is None else [local]
        for peer in self.group.peers():
            records.extend(
                p for p in (*peer.executions, *peer.finished) if p.execution_id == execution_id
            )
        return merge_progress(records).get(execution_id)

    def active_executions(self, limit: int | None = None) -> list[ExecutionProgress]:
        """Running executions (oldest first), then pending ones (oldest first).

        Running first, so a long queue never hides what runs. In a process
        group, the whole group's.

        Args:
            limit: At most this many (the oldest); ``None`` for all. Only the
                executions returned are snapshotted.

        Raises:
            TypeError, ValueError: ``limit`` is not an int >= 0.

        .. versionchanged:: 0.2.0 ``limit``.
        .. versionchanged:: 0.3.0 Running first.
        """
        checks.count(limit, "limit", minimum=0, optional=True)
        if self.group is None:
            return self.tracker.active(limit)
        local = self.tracker.active()
        records = list(local)
        finished: list[ExecutionProgress] = []
        for peer in self.group.peers():
            records.extend(peer.executions)
            finished.extend(peer.finished)
        candidates = {record.execution_id for record in records}
        for execution_id in candidates:
            own = self.tracker.get(execution_id)
            if own is not None:
                records.append(own)
        records.extend(p for p in finished if p.execution_id in candidates)
        live = (ExecutionState.PENDING.value, ExecutionState.EXECUTING.value)
        active = order_executions(p for p in merge_progress(records).values() if p.state in live)
        return active if limit is None else active[:limit]

    def executions(
        self,
        *,
        state: str | Iterable[str] | None = None,
        workflow: str | None = None,
        outcome: Outcome | str | None = None,
        since: float | datetime.datetime | None = None,
        until: float | datetime.datetime | None = None,
        limit: int = 100,
    ) -> list[ExecutionProgress]:
        """Running, pending and ended executions, filtered: the history of runs.

        Args:
            state: Only these ``state`` values: ``"pending"``, ``"executing"``
                or an outcome value (one, or several).
            workflow: Only executions of this name.
            outcome: Only ended executions with this outcome (``state=`` one outcome).
            since: Only executions active at or after this time (epoch
                seconds or a ``datetime``): still pending or running, or
                ended at or after it.
            until: Only executions that started (or were enqueued) before it.
            limit: At most this many.

        Returns:
            Running executions first (oldest start first), then pending
            (oldest first), then ended ones (newest end first). Ended
            executions are those still retained (``Limits.retention`` and
            ``max_finished``). In a process group, every member's.

        Raises:
            TypeError, ValueError: a filter of the wrong type or value, naming it.

        .. versionadded:: 0.3.0
        """
        states: set[str] | None = None
        if state is not None:
            given = [state] if isinstance(state, str) else list(state)
            for value in given:
                checks.choice(value, "state", _EXECUTION_STATES)
            states = set(given)
        if outcome is not None:
            wanted = checks.member(outcome, "outcome", Outcome).value
            states = {wanted} if states is None else states & {wanted}
        if workflow is not None:
            checks.name(workflow, "workflow")
        query = ExecutionQuery(
            states=None if states is None else frozenset(states),
            workflow=workflow,
            since=checks.moment(since, "since"),
            until=checks.moment(until, "until"),
            limit=checks.count(limit, "limit", minimum=0),
        )
        local = self.tracker.select(query)
        if self.group is None:
            return local
        records = list(local)
        for peer in self.group.peers():
            records.extend(p for p in (*peer.executions, *peer.finished) if query.matches(p))
        merged = merge_progress(records).values()
        return order_executions(p for p in merged if query.matches(p))[:limit]

    def _remote_running(self) -> list[tuple[str, str, float]]:
        """The group's other processes' running executions, for ``StuckExecutions``."""
        if self.group is None:
            return []
        return [
            (p.name, p.execution_id, p.updated_at)
            for peer in self.group.peers()
            for p in peer.executions
            if p.started_at is not None and p.state == ExecutionState.EXECUTING.value
        ]

    def _record_lost(self, records: list[ExecutionProgress], at: float) -> None:
        """A dead group member's running executions, claimed by this member: end them ``lost``."""
        recorded = record_lost(self._telemetry, self._observer, records, at)
        if recorded and self.group is not None:
            self.group.publish()  # the group sees them ended now, not a second later

    def _adopt_pending(self, levels: dict[tuple[str, Attributes], float]) -> None:
        """Carry on the ``pending`` of a dead member whose file this member retired.

        Its enqueues (or its starts of others' enqueues) still count in the
        group's backlog; only the group's view is fed (the exported metric
        is this process's own).
        """
        for (metric, attributes), value in levels.items():
            self.reader.add(metric, value, dict(attributes))
        if self.group is not None:
            self.group.publish()

    def _group_document(self) -> dict[str, Any]:
        """What this process publishes to its group."""
        self.reader.refresh()
        return snapshot_document(
            self.tracker.active(),
            self.tracker.finished_records(),
            self.reader.export_windows(),
            self._evaluator.alerts(active=True, limit=1_000),
            self.tracker.scheduled(),
        )

    def events(
        self,
        *,
        execution_id: str | None = None,
        event_type: EventType | str | Iterable[EventType | str] | None = None,
        since: int | None = None,
        limit: int | None = None,
        workflow: str | None = None,
        after: float | datetime.datetime | None = None,
        before: float | datetime.datetime | None = None,
    ) -> list[ExecutionEvent]:
        """Events from the bounded history, oldest first (see :meth:`EventBus.events`).

        Filters: one execution, one or several types, ``since`` a ``seq``,
        a ``workflow`` (execution name), a time range ``after <= timestamp <
        before`` (epoch seconds or ``datetime``); ``limit`` keeps the most recent.

        .. versionchanged:: 0.3.0 Several types, ``workflow``, ``after``, ``before``.
        """
        return self.bus.events(
            execution_id=self._bounded(execution_id),
            event_type=event_type,
            since=since,
            limit=limit,
            workflow=workflow,
            after=after,
            before=before,
        )

    def _bounded(self, execution_id: Any) -> Any:
        """A queried id as recorded: shortened as ``Limits.bounded_id`` says (others as given)."""
        if isinstance(execution_id, str):
            return self.limits.bounded_id(execution_id)
        return execution_id

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
        return self.bus.subscribe(
            callback, execution_id=self._bounded(execution_id), event_type=event_type
        )

    def unsubscribe(self, subscription: Subscription | Callback) -> None:
        """Stop delivery at once: to ``subscription``, or to every subscription of a callback.

        A callback matches by ``==`` (as ``atexit.unregister`` compares), so
        ``unsubscribe(obj.method)`` ends ``subscribe(obj.method)``.

        .. versionchanged:: 0.2.0 Accepts the callback.
        .. versionchanged:: 0.3.0 Callbacks compared with ``==``, not identity.
        """
        self.bus.unsubscribe(subscription)

    def summary(self, window: float | None = None, *, name: str | None = None) -> MetricsSummary:
        """Rates, durations and SLA compliance over the last ``window`` seconds.

        Args:
            window: Seconds, in (0, 86400]; default ``rules.window``. Up to the
                rules window the answer comes from 10 s slots; a longer one
                from 10-minute slots kept for 24 hours (whole slots: up to one
                slot more of the past).
            name: Only this execution name.

        .. versionchanged:: 0.2.0 Windows up to 24 hours (was: the rules window).

        Raises:
            ValueError: ``window`` out of range.
            TypeError: ``window`` or ``name`` of the wrong type.
        """
        window = self.rules.window if window is None else checks.seconds(window, "window")
        longest = self.reader.day_window
        if window > longest:
            raise ValueError(
                f"window must be a finite number of seconds in (0, {longest:g}], "
                f"got {checks.show(window)}"
            )
        checks.name(name, "name", optional=True)
        self._windows.refresh()
        return summarize(
            self._windows, float(window), name, self._queues.total(), self._scheduled(name)
        )

    def _scheduled(self, name: str | None = None) -> int:
        """Work enqueued for later and not due yet: this process's, plus the group's
        (a peer's as of its last publish, dead or alive: its work still waits)."""
        now = self.clock()
        found = [self.tracker.scheduled()]
        if self.group is not None:
            found.extend(peer.scheduled for peer in self.group.peers())
        return sum(
            count
            for by_name in found
            for key, by_due in by_name.items()
            if name is None or key == name
            for due, count in by_due.items()
            if due > now
        )

    def health(self, *, refresh: bool = False, max_age: float | None = None) -> SystemHealth:
        """The last evaluated health; evaluates now when asked, never evaluated, or stale.

        Args:
            refresh: Evaluate now.
            max_age: Seconds; a cached evaluation at least this old, or made
                before the latest :meth:`add_check`, is replaced by a new one.
                The HTTP health routes pass :attr:`evaluation_interval`, so a
                served Monitor never answers from a result older than that,
                loop or no loop.

        In a process group the rules read the group's merged windows, and the
        alerts other processes fire on their own checks count too.

        .. versionchanged:: 0.2.0 ``max_age``.
        """
        checks.seconds(max_age, "max_age", optional=True, allow_zero=True)
        health = self._evaluator.health(refresh=refresh, max_age=max_age)
        extra = self._peer_alerts({a.id for a in health.alerts})
        if not extra:
            return health
        alerts = health.alerts + extra
        return dataclasses.replace(
            health, alerts=alerts, status=worst_status(health.status, alerts)
        )

    async def ahealth(self, *, refresh: bool = False, max_age: float | None = None) -> SystemHealth:
        """:meth:`health` for an asyncio loop: an evaluation runs on a worker thread.

        Component checks can take up to their timeouts; awaiting this keeps
        the loop serving meanwhile. Without ``refresh`` (and with a fresh
        enough cached result) it answers at once.

        .. versionadded:: 0.3.0
        """
        checks.seconds(max_age, "max_age", optional=True, allow_zero=True)
        return await asyncio.to_thread(self.health, refresh=refresh, max_age=max_age)

    def emit(self, name: str, execution_id: str | None = None, **attributes: Any) -> None:
        """Publish an engine's own event, inside an execution or outside any.

        The history, subscribers and ``/events`` streams get an
        :attr:`EventType.CUSTOM <stepwatch.EventType.CUSTOM>` event whose data is
        ``{"name": None, "event": name, "attributes": {...}}`` (``name`` is the
        execution's name only for :meth:`Execution.event
        <stepwatch.Execution.event>`, which also writes a span event). Use it
        for what happens beside executions: a worker joining, a deploy, a
        broker failing over. A name that is not a non-empty string is refused
        and invalid attribute values dropped (each logged once). Never raises.

        .. versionadded:: 0.3.0
        """
        try:
            if not isinstance(name, str) or not name.strip():
                report("monitor.emit.name", "stepwatch: event name %r is not a string", name)
                return
            if execution_id is not None:  # as recorded: ``Limits.bounded_id`` of its text
                text = execution_id if isinstance(execution_id, str) else attrs.text(execution_id)
                execution_id = self.limits.bounded_id(str.__str__(text))
            data = CustomEventData(
                name=None,
                event=attrs.text(name),
                attributes=attrs.clean_attributes(attributes, "monitor.emit"),
            )
            self.bus.publish(EventType.CUSTOM, execution_id, data, self.clock())
        except Exception:
            report("monitor.emit", "stepwatch: emit() failed", exc_info=True)

    def silence(self, rule: str, for_seconds: float) -> float:
        """Silence a built-in rule for ``for_seconds`` (0 lifts the silence).

        The rule is still evaluated, but its alerts count neither in
        :meth:`health` nor in :meth:`alerts`, and no ``alert.fired`` event is
        published for them; an alert still firing when the silence ends is
        announced then. This process's alerts only (not the group's peers').

        Returns:
            When the silence ends (epoch seconds, the Monitor's clock).

        Raises:
            ValueError: not a built-in rule name, or a negative ``for_seconds``.

        .. versionadded:: 0.3.0
        """
        return self._evaluator.silence(rule, for_seconds)

    def _peer_alerts(self, known: set[str]) -> list[Alert]:
        if self.group is None:
            return []
        found: dict[str, Alert] = {}
        for peer in self.group.peers():
            if not peer.alive:
                continue
            for alert in peer.alerts:
                if alert.id not in known and alert.state is AlertState.FIRING:
                    found.setdefault(alert.id, alert)
        return sorted(found.values(), key=lambda a: (a.started_at, a.id))

    def alerts(
        self,
        severity: Severity | str | None = None,
        limit: int = 100,
        *,
        active: bool | None = None,
    ) -> list[Alert]:
        """Alerts as of the last evaluation: firing first, then resolved (newest first).

        Args:
            severity: Only this severity.
            limit: At most this many.
            active: ``True`` firing only, ``False`` resolved only, ``None`` both.

        Raises:
            ValueError: an unknown severity or a negative limit.
        """
        alerts = self._evaluator.alerts(severity, limit, active=active)
        if self.group is None or active is False:
            return alerts
        wanted = None if severity is None else Severity(severity)
        extra = [
            a
            for a in self._peer_alerts({a.id for a in alerts})
            if wanted is None or a.severity is wanted
        ]
        firing = [a for a in alerts if a.state is AlertState.FIRING]
        rest = [a for a in alerts if a.state is not AlertState.FIRING]
        return [*sorted([*firing, *extra], key=lambda a: (a.started_at, a.id)), *rest][:limit]

    def add_check(
        self, name: str, check: Check, *, critical: bool = True, timeout: float = 5.0
    ) -> None:
        """Add a component health check, run on every evaluation.

        Args:
            name: The component's name.
            check: Sync or async callable returning ``bool`` or a ``ComponentHealth``.
            critical: Whether its failure makes the process unhealthy (else degraded).
            timeout: Seconds; a check still running then is reported failed
                ("timed out"), and no second run of it starts until it returns.

        Raises:
            TypeError, ValueError: bad arguments, naming the argument.
        """
        self._evaluator.add_check(name, check, critical=critical, timeout=timeout)

    def observe_queue_depth(self, callback: Callable[[], float], *, queue: str = "default") -> None:
        """Read a real broker's queue depth with ``callback`` instead of counting enqueues.

        The callback is called at each metric collection (exported as the
        gauge ``workflow.execution.queue.depth{workflow.execution.queue}``) and
        by ``summary()`` and the ``QueueBacklog`` rule (the sum over queues).
        A failing callback, or one returning anything but a finite number
        >= 0 (NaN, infinity, a negative depth), is logged and skipped.

        Raises:
            TypeError: ``callback`` is not callable.
            ValueError: ``queue`` is empty.
        """
        checks.function(callback, "callback")
        checks.name(queue, "queue")
        self._queues.observe(queue, callback, self.meter_provider)

    def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        heartbeat: float | None = None,
        request_timeout: float = 10.0,
        max_connections: int = 64,
    ) -> ServerHandle:
        """Serve this Monitor over HTTP on a daemon thread (see :mod:`stepwatch.http`).

        Args:
            host: Interface to bind; loopback by default.
            port: TCP port; 0 picks a free one (read it from ``handle.url``).
            token: When set, every route but ``/livez`` needs ``Authorization: Bearer <token>``
                (and the dashboard's page at ``/``, which holds no data and asks for it).
            heartbeat: Seconds between SSE heartbeat comments (default 15).
            request_timeout: Seconds a connection may stay silent (a half-sent
                request) before it is dropped.
            max_connections: Connections served at once; past it new ones get
                503 at once, and ``GET /livez`` is still answered.

                .. versionadded:: 0.2.0

        Returns:
            A handle with ``.url`` and ``.close()``.

        Raises:
            OSError: the address cannot be bound.
            ValueError: an empty token.
        """
        from stepwatch.http import serve  # noqa: PLC0415 - http.server only when serving

        return serve(
            self,
            host,
            port,
            token=token,
            heartbeat=heartbeat,
            request_timeout=request_timeout,
            max_connections=max_connections,
        )

    # ------------------------------------------------------ background loop
    def start(self, interval: float = DEFAULT_INTERVAL) -> None:
        """Evaluate health every ``interval`` seconds on a daemon thread.

        The loop survives its own errors, restarts in a child after
        ``os.fork``, and stops promptly on :meth:`stop`. Calling ``start``
        again restarts it with the new interval.

        Raises:
            ValueError: ``interval`` is not a positive number.
        """
        interval = checks.seconds(interval, "interval")
        self.stop()
        self._loop = EvaluationLoop(self._evaluator, interval)
        self._loop.start()

    def stop(self) -> None:
        """Stop the background evaluation (if running); returns once it has stopped."""
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.stop()

    @property
    def evaluation_interval(self) -> float:
        """Seconds between evaluations: the running loop's interval, else :data:`DEFAULT_INTERVAL`.

        .. versionadded:: 0.2.0
        """
        loop = self._loop
        return loop.interval if loop is not None else DEFAULT_INTERVAL

    @property
    def running(self) -> bool:
        """Whether the background evaluation loop is alive."""
        return self._loop is not None and self._loop.alive

    @property
    def loop_died(self) -> bool:
        """Whether :meth:`start` was called and its thread died without :meth:`stop` (``/livez``).

        .. versionadded:: 0.2.0
        """
        return self._loop is not None and not self._loop.alive

    def __repr__(self) -> str:
        return f"<stepwatch.Monitor installed={self.installed}>"


def _remember_dead_runs(records: list[ExecutionProgress]) -> None:
    """A dead group member's runs: a redelivery of one here is its next attempt."""
    for record in records:
        remember_dead_run(record.execution_id, record.attempt)


def _fold_deprecated(limits: Limits, **given: Any) -> Limits:
    """Apply the 0.1 bound arguments (deprecated since 0.2.0) onto ``limits``."""
    used = {key: value for key, value in given.items() if value is not None}
    if not used:
        return limits
    warnings.warn(
        f"Monitor({', '.join(sorted(used))}=...) is deprecated since stepwatch 0.2.0: "
        "pass limits=stepwatch.Limits(...) instead",
        DeprecationWarning,
        stacklevel=3,
    )
    return dataclasses.replace(limits, **used)
