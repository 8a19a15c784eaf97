"""The in-process Monitor: live progress, lifecycle events, metrics summaries and health.

Usage::

    monitor = stepwatch.Monitor(tracer_provider=tp, meter_provider=mp)
    monitor.install()                  # decorators now emit through it
    monitor.progress("n-42")           # ExecutionProgress | None
    monitor.events(execution_id="n-42")
    monitor.summary(60)                # MetricsSummary over the last minute
    monitor.health()                   # SystemHealth

A Monitor is the instrument layer's observer: every execution and step start
and end, progress report, approval and enqueue reaches its
:class:`~stepwatch.progress.ProgressTracker` and
:class:`~stepwatch.events.EventBus` synchronously, so queries read their own
writes. Its :class:`~stepwatch.reader.HealthMetricReader` reads stepwatch's
own metrics for ``summary()`` and the alert rules. Nothing here runs I/O on
the engine's thread.

Configuration (constructor arguments): ``rules`` (:class:`~stepwatch.Rules`),
``retention`` and ``max_finished`` bound the finished executions kept;
``max_events`` the event history; ``max_subscriber_queue`` each subscriber's
undelivered events.
"""

from __future__ import annotations

import dataclasses
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from multiprocessing import util as multiprocessing_util
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.trace import TracerProvider

from stepwatch import _telemetry, semconv
from stepwatch._safety import report
from stepwatch.events import (
    DEFAULT_MAX_HISTORY,
    DEFAULT_MAX_QUEUE,
    Callback,
    EventBus,
    ExecutionEvent,
    Subscription,
)
from stepwatch.group import (
    DEFAULT_PUBLISH_INTERVAL,
    GroupWindows,
    ProcessGroup,
    merge_progress,
    snapshot_document,
)
from stepwatch.health import (
    Alert,
    Check,
    ExportStatus,
    HealthEvaluator,
    Rules,
    SystemHealth,
    worst_status,
)
from stepwatch.progress import (
    DEFAULT_MAX_FINISHED,
    DEFAULT_RETENTION,
    ExecutionProgress,
    ProgressTracker,
)
from stepwatch.reader import HealthMetricReader, Windows
from stepwatch.semconv import (
    EXECUTION_END_EVENTS,
    STEP_END_EVENTS,
    AlertState,
    EventType,
    ExecutionState,
    Severity,
)
from stepwatch.summary import MetricsSummary, summarize
from stepwatch.version import __version__

if TYPE_CHECKING:
    from stepwatch._pipeline import Pipeline
    from stepwatch.http import ServerHandle
    from stepwatch.instrument import Execution, Step

__all__ = ["DEFAULT_INTERVAL", "Monitor"]

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


class Monitor:
    """Watches executions in this process and answers queries about them.

    Args:
        tracer_provider: Where spans go; ``None`` means the global
            OpenTelemetry tracer provider (resolved lazily).
        meter_provider: Where metrics go. The Monitor's
            :class:`~stepwatch.reader.HealthMetricReader` is attached to it with
            ``add_metric_reader`` when it is an SDK ``MeterProvider``. ``None``
            means the global one when that is an SDK provider, else a private
            provider holding only the Monitor's reader.
        rules: :class:`~stepwatch.Rules` for ``health()`` and the window of
            ``summary()`` (default ``Rules()``).
        clock: Zero-argument callable returning epoch seconds (default
            ``time.time``); every duration stepwatch records and every
            time-based decision of the Monitor reads it.
        retention: Seconds finished executions stay queryable.
        max_finished: Finished executions kept at most.
        max_events: Events kept in the history.
        max_subscriber_queue: Undelivered events kept per subscriber.
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

    Raises:
        TypeError: ``clock`` is not callable or ``rules`` is not a ``Rules``.
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
        rules: Rules | None = None,
        clock: Callable[[], float] | None = None,
        retention: float = DEFAULT_RETENTION,
        max_finished: int = DEFAULT_MAX_FINISHED,
        max_events: int = DEFAULT_MAX_HISTORY,
        max_subscriber_queue: int = DEFAULT_MAX_QUEUE,
        export_status: ExportStatus | None = None,
        pipeline: Pipeline | None = None,
        multiprocess_dir: str | os.PathLike[str] | None = None,
        publish_interval: float | None = DEFAULT_PUBLISH_INTERVAL,
    ) -> None:
        if clock is not None and not callable(clock):
            raise TypeError(f"clock must be a zero-argument callable, got {type(clock).__name__}")
        if rules is not None and not isinstance(rules, Rules):
            raise TypeError(f"rules must be a stepwatch.Rules, got {type(rules).__name__}")
        self.clock: Callable[[], float] = clock or time.time
        self.rules: Rules = rules or Rules()
        self.tracker = ProgressTracker(self.clock, retention=retention, max_finished=max_finished)
        self.bus = EventBus(self.clock, max_history=max_events, max_queue=max_subscriber_queue)
        self._pipeline = pipeline
        self._owned_providers: list[Any] = list(pipeline.owned) if pipeline else []
        self.shutdown_timeout: float | None = (
            pipeline.export_timeout if pipeline is not None and pipeline.exporters else None
        )
        """Default deadline (seconds) of :meth:`shutdown`; ``None`` waits as long as it takes."""
        self.exporters: tuple[object, ...] = pipeline.exporters if pipeline else ()
        """The span and metric exporters :func:`stepwatch.configure` built (empty otherwise)."""
        self.export_status = export_status or (pipeline.status if pipeline else ExportStatus())
        """Results of the exporters ``configure()`` built (for ``TelemetryExportFailing``)."""
        self.reader = HealthMetricReader(self.clock, window=self.rules.window)
        """The :class:`~stepwatch.reader.HealthMetricReader` behind ``summary()`` and the rules."""
        self.tracer_provider = tracer_provider
        self.meter_provider = self._attach_reader(meter_provider)
        self._queue_callbacks: dict[str, Callable[[], float]] = {}
        self._queue_gauge: Any = None
        self._evaluator = HealthEvaluator(
            self.rules,
            self.reader,
            self.tracker,
            self.bus,
            self.clock,
            self.export_status,
            self._observed_queue_depth,
        )
        self.group: ProcessGroup | None = None
        """This process's membership of a process group, or ``None``."""
        if multiprocess_dir is not None:
            self.group = ProcessGroup(
                multiprocess_dir, self._group_document, self.clock, publish_interval
            )
            self._evaluator.remote_running = self._remote_running
        self._windows: Windows = self._connect_windows()
        self._telemetry = self._build_telemetry()
        self._loop: _EvaluationLoop | None = None
        self._closed = False
        _LIVE_MONITORS.add(self)
        if self.group is not None:
            self.group.start()
        # multiprocessing children run these after their own fork set-up: they
        # flush at exit through multiprocessing's finalizers instead.
        multiprocessing_util.register_after_fork(self, Monitor._after_multiprocessing_fork)

    def _connect_windows(self) -> Windows:
        """What ``summary()`` and the rules read: the reader, or the group's merged view."""
        windows: Windows = self.reader
        if self.group is not None:
            windows = GroupWindows(self.reader, self.group.peers, self.clock)
        self._evaluator.reader = windows
        return windows

    def _build_telemetry(self, flush: Callable[[], None] | None = None) -> _telemetry.Telemetry:
        return _telemetry.build(
            self.tracer_provider,
            self.meter_provider,
            self.clock,
            self,
            self.rules.sla,
            flush=flush,
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
        records, on locks no parent thread can hold), and every execution that
        ends in the child is flushed to the exporters at once, since a
        fork-per-job worker may leave with ``os._exit`` right after.
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
                self.meter_provider = self._attach_reader(pipeline.meter_provider, fresh=True)
                self._windows = self._connect_windows()
                if self._queue_callbacks:
                    self._create_queue_gauge()
        installed = self.installed
        self._telemetry = self._build_telemetry(flush=self._flush_now)
        if installed:
            _telemetry.install(self._telemetry)
        if self.group is not None:
            self.group.after_fork_in_child()
        loop = self._loop
        if loop is not None:
            loop.after_fork_in_child()

    def _after_multiprocessing_fork(self) -> None:
        """In a ``multiprocessing`` child: flush once at exit instead of after each execution.

        ``multiprocessing`` runs its finalizers when the child's target returns
        (before its ``os._exit``), so the per-execution flush of a bare
        ``os.fork`` child is not needed there.
        """
        try:
            installed = self.installed
            self._telemetry = self._build_telemetry()
            if installed:
                _telemetry.install(self._telemetry)
            multiprocessing_util.Finalize(self, Monitor.shutdown, args=(self,), exitpriority=10)
        except Exception:
            report("monitor.fork", "stepwatch: multiprocessing child set-up failed", exc_info=True)

    def _flush_now(self) -> None:
        """Push what ended to the exporters and the group (forked children, per execution)."""
        if self.group is not None:
            self.group.publish()
        timeout_millis = (self.shutdown_timeout or 10.0) * 1000
        for provider in (self.tracer_provider, self.meter_provider):
            flush = getattr(provider, "force_flush", None)
            if flush is None:
                continue
            try:
                flush(timeout_millis)
            except Exception:
                report("monitor.flush", "stepwatch: flushing telemetry failed", exc_info=True)

    def _attach_reader(
        self, provider: MeterProvider | None, *, fresh: bool = False
    ) -> MeterProvider:
        if fresh:
            # A forked child's new provider: a new reader, free of the parent's windows.
            self.reader = HealthMetricReader(self.clock, window=self.rules.window)
        if provider is None:
            global_provider = metrics.get_meter_provider()
            if not isinstance(global_provider, SdkMeterProvider):
                private = SdkMeterProvider(metric_readers=[self.reader])
                self._owned_providers.append(private)
                return private
            provider = global_provider
        if isinstance(provider, SdkMeterProvider):
            provider.add_metric_reader(self.reader)
        else:
            report(
                "monitor.reader",
                "stepwatch: %s is not an SDK MeterProvider; summary() and the rate rules "
                "see nothing (attach monitor.reader by hand)",
                type(provider).__name__,
            )
        return provider

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

    def shutdown(self, timeout: float | None = None) -> bool:
        """Stop the loop, uninstall, stop subscribers, then flush telemetry.

        Providers built for this Monitor (by :func:`stepwatch.configure`, or the
        private meter provider) are shut down, which flushes them. Providers
        given by the caller are flushed, not shut down: they are the caller's
        (the Monitor's reader is detached from them).

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
        self.stop()
        self.uninstall()
        self.bus.close()
        group = self.group
        if group is not None:
            group.stop(timeout)
            group.publish()  # the last word: nothing running here any more
        deadline = self.shutdown_timeout if timeout is None else timeout
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
        if done.wait(deadline):
            return True
        report(
            "monitor.shutdown.timeout",
            "stepwatch: telemetry not flushed within %s s (is the backend reachable?); "
            "returning, the flush goes on in the background",
            deadline,
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
        meter_provider = self.meter_provider
        mine = any(meter_provider is owned for owned in self._owned_providers)
        if not mine and isinstance(meter_provider, SdkMeterProvider):
            try:
                meter_provider.remove_metric_reader(self.reader)
            except Exception:
                report("monitor.detach", "stepwatch: could not detach the reader", exc_info=True)

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
        """
        local = self.tracker.get(execution_id)
        if self.group is None:
            return local
        records = [] if local is None else [local]
        for peer in self.group.peers():
            records.extend(
                p for p in (*peer.executions, *peer.finished) if p.execution_id == execution_id
            )
        return merge_progress(records).get(execution_id)

    def active_executions(self) -> list[ExecutionProgress]:
        """Pending and running executions, oldest first (the whole group's, in a group)."""
        local = self.tracker.active()
        if self.group is None:
            return local
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
        active = [p for p in merge_progress(records).values() if p.state in live]
        active.sort(key=lambda p: p.started_at if p.started_at is not None else p.updated_at)
        return active

    def _remote_running(self) -> list[tuple[str, str, float]]:
        """The group's other processes' running executions, for ``StuckExecutions``."""
        if self.group is None:
            return []
        return [
            (p.name, p.execution_id, p.started_at)
            for peer in self.group.peers()
            for p in peer.executions
            if p.started_at is not None and p.state == ExecutionState.EXECUTING.value
        ]

    def _group_document(self) -> dict[str, Any]:
        """What this process publishes to its group."""
        self.reader.refresh()
        return snapshot_document(
            self.tracker.active(),
            self.tracker.finished_records(),
            self.reader.export_windows(),
            self._evaluator.alerts(active=True, limit=1_000),
        )

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

    def summary(self, window: float | None = None, *, name: str | None = None) -> MetricsSummary:
        """Rates, durations and SLA compliance over the last ``window`` seconds.

        Args:
            window: Seconds, in (0, rules.window]; default ``rules.window``.
            name: Only this execution name.

        Raises:
            ValueError: ``window`` out of range.
            TypeError: ``window`` or ``name`` of the wrong type.
        """
        if window is None:
            window = self.rules.window
        if isinstance(window, bool) or not isinstance(window, int | float):
            raise TypeError(f"window must be a number of seconds, got {window!r}")
        if math.isnan(window) or not 0 < window <= self.reader.window:
            raise ValueError(f"window must be in (0, {self.reader.window:g}] seconds, got {window}")
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string, got {type(name).__name__}")
        self._windows.refresh()
        return summarize(self._windows, float(window), name, self._observed_queue_depth())

    def health(self, *, refresh: bool = False) -> SystemHealth:
        """The last evaluated health; ``refresh=True`` (or never evaluated) evaluates now.

        In a process group the rules read the group's merged windows, and the
        alerts other processes fire on their own checks count too.
        """
        health = self._evaluator.health(refresh=refresh)
        extra = self._peer_alerts({a.id for a in health.alerts})
        if not extra:
            return health
        alerts = health.alerts + extra
        return dataclasses.replace(
            health, alerts=alerts, status=worst_status(health.status, alerts)
        )

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
        A failing callback is logged and skipped.

        Raises:
            TypeError: ``callback`` is not callable.
            ValueError: ``queue`` is empty.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, got {type(callback).__name__}")
        if not isinstance(queue, str) or not queue:
            raise ValueError(f"queue must be a non-empty string, got {queue!r}")
        self._queue_callbacks[queue] = callback
        if self._queue_gauge is None:
            self._create_queue_gauge()

    def _create_queue_gauge(self) -> None:
        meter = metrics.get_meter(
            semconv.INSTRUMENTATION_SCOPE, __version__, meter_provider=self.meter_provider
        )
        self._queue_gauge = meter.create_observable_gauge(
            semconv.QUEUE_DEPTH.name,
            callbacks=[self._observe_queues],
            unit=semconv.QUEUE_DEPTH.unit,
            description=semconv.QUEUE_DEPTH.description,
        )

    def _read_queues(self) -> dict[str, float]:
        depths: dict[str, float] = {}
        for queue, callback in list(self._queue_callbacks.items()):
            try:
                depths[queue] = float(callback())
            except Exception:
                report(
                    "monitor.queue_depth",
                    "stepwatch: queue depth callback for %r failed",
                    queue,
                    exc_info=True,
                )
        return depths

    def _observe_queues(self, options: CallbackOptions) -> Iterable[Observation]:
        return [
            Observation(depth, {semconv.WORKFLOW_EXECUTION_QUEUE: queue})
            for queue, depth in self._read_queues().items()
        ]

    def _observed_queue_depth(self) -> float | None:
        if not self._queue_callbacks:
            return None
        return sum(self._read_queues().values())

    def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        token: str | None = None,
        heartbeat: float | None = None,
    ) -> ServerHandle:
        """Serve this Monitor over HTTP on a daemon thread (see :mod:`stepwatch.http`).

        Args:
            host: Interface to bind; loopback by default.
            port: TCP port; 0 picks a free one (read it from ``handle.url``).
            token: When set, every route but ``/livez`` needs ``Authorization: Bearer <token>``.
            heartbeat: Seconds between SSE heartbeat comments (default 15).

        Returns:
            A handle with ``.url`` and ``.close()``.

        Raises:
            OSError: the address cannot be bound.
            ValueError: an empty token.
        """
        from stepwatch.http import serve  # noqa: PLC0415 - http.server only when serving

        return serve(self, host, port, token=token, heartbeat=heartbeat)

    # ------------------------------------------------------ background loop
    def start(self, interval: float = DEFAULT_INTERVAL) -> None:
        """Evaluate health every ``interval`` seconds on a daemon thread.

        The loop survives its own errors, restarts in a child after
        ``os.fork``, and stops promptly on :meth:`stop`. Calling ``start``
        again restarts it with the new interval.

        Raises:
            ValueError: ``interval`` is not a positive number.
        """
        if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval!r}")
        self.stop()
        self._loop = _EvaluationLoop(self, float(interval))
        self._loop.start()

    def stop(self) -> None:
        """Stop the background evaluation (if running); returns once it has stopped."""
        loop, self._loop = self._loop, None
        if loop is not None:
            loop.stop()

    @property
    def running(self) -> bool:
        """Whether the background evaluation loop is alive."""
        return self._loop is not None and self._loop.alive

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

    def enqueued(
        self, name: str, execution_id: str, queue: str, at: float, attempt: int = 1
    ) -> None:
        try:
            self.tracker.enqueued(name, execution_id, queue, at, attempt)
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


class _EvaluationLoop:
    """A daemon thread ticking ``monitor.health(refresh=True)``; restarted after fork."""

    def __init__(self, monitor: Monitor, interval: float) -> None:
        self._monitor = weakref.ref(monitor)
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.ticks = 0

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="stepwatch-health", daemon=True)
        self._thread.start()

    def after_fork_in_child(self) -> None:
        # Threads do not survive fork: a child of a running loop starts its own.
        if not self._stop.is_set():
            self._stop = threading.Event()
            self.start()

    def _run(self) -> None:
        stop = self._stop
        while not stop.is_set():
            monitor = self._monitor()
            if monitor is None:
                return
            try:
                monitor.health(refresh=True)
                self.ticks += 1
            except Exception:
                report("monitor.loop", "stepwatch: health evaluation failed", exc_info=True)
            del monitor
            stop.wait(self.interval)

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
