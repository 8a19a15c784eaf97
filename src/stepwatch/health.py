"""Rules, alerts, component checks and the overall health of an engine process.

Usage::

    monitor = stepwatch.configure(rules=stepwatch.Rules(failure_rate=0.1, for_seconds=60))
    monitor.add_check("database", db.ping, critical=True, timeout=2.0)
    monitor.start(interval=10)          # evaluate in the background
    monitor.health()                    # SystemHealth, cached between evaluations
    monitor.alerts(severity="critical")

Built-in rules (names are stable and shared with the Prometheus export):

============================ ========== ==============================================
rule                         severity   fires when
============================ ========== ==============================================
``HighFailureRate``          critical   an execution name's failure ratio over the
                                        window exceeds ``failure_rate``
``HighTimeoutRate``          warning    likewise for timeouts and ``timeout_rate``
``QueueBacklog``             warning    queued executions exceed ``queue_depth``
``StuckExecutions``          warning    executions with no progress for ``stuck_after``
``SLABurnRate``              critical   SLA error budget burns 14.4x over 1 h and 5 min
                             warning    or 6x over 6 h and 30 min
``ComponentDown``            critical   a check fails (warning for non-critical checks)
``TelemetryExportFailing``   warning    the latest export failed
``ExecutionsLost``           warning    an execution name had executions ``lost`` (their
                                        process died while they ran) in the window
============================ ========== ==============================================

The rate rules and the burn rate are gated by ``min_executions`` (in the
window, per execution name). A condition must hold for ``for_seconds`` before
its alert fires. Health is unhealthy when a critical alert fires or a critical
component fails, degraded on any warning, else healthy.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import math
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from stepwatch import _checks as checks
from stepwatch import semconv
from stepwatch._attributes import describe
from stepwatch._clock import SteadyClock
from stepwatch._models import json_ready
from stepwatch._safety import internal_errors, report
from stepwatch.semconv import AlertState, EventType, ExecutionState, HealthStatus, Outcome, Severity
from stepwatch.summary import execution_outcomes

if TYPE_CHECKING:
    from stepwatch.events import EventBus
    from stepwatch.progress import ProgressTracker
    from stepwatch.windows import Windows

__all__ = [
    "Alert",
    "ComponentHealth",
    "ExportStatus",
    "HealthEvaluator",
    "Rules",
    "SignalStatus",
    "SystemHealth",
    "worst_status",
]

OWN_COMPONENT = "stepwatch"
"""The component that shows stepwatch's own contained failures in health."""

MAX_RESOLVED_ALERTS = 1_000
"""Resolved alerts kept for ``alerts(active=False)``."""

BURN_RATES: tuple[tuple[str, Severity, float, float, float], ...] = (
    ("fast", Severity.CRITICAL, 14.4, 3600.0, 300.0),
    ("slow", Severity.WARNING, 6.0, 6 * 3600.0, 1800.0),
)
"""(label, severity, burn-rate factor, long window s, short window s), after the SRE workbook."""


@dataclass(frozen=True, slots=True)
class Rules:
    """Thresholds of the built-in alert rules, validated at construction.

    Args:
        window: Seconds of history the rate rules look at.
        min_executions: Executions (per name, in the window) below which the
            rate and burn-rate rules stay quiet.
        failure_rate: ``HighFailureRate`` threshold, a ratio in (0, 1].
        timeout_rate: ``HighTimeoutRate`` threshold, a ratio in (0, 1].
        queue_depth: ``QueueBacklog`` threshold (queued executions).
        stuck_after: Seconds with no progress (no step starting or ending, no
            ``progress()``, no ``heartbeat()``) after which a running
            execution counts as stuck.
        sla: Default SLA in seconds for executions declared without one
            (``None``: only executions declaring ``sla=`` are measured).
        sla_objective: Share of executions that must meet their SLA, in (0, 1).
        for_seconds: How long a condition must hold before its alert fires.
        fire_after: Consecutive evaluations a condition must hold before its
            alert fires (with ``for_seconds``, both must be met).
        resolve_after: Consecutive evaluations a firing alert's condition must
            be absent before it resolves: above 1, an alert whose condition
            flaps stays firing instead of firing and resolving each time.

    Raises:
        TypeError: a value of the wrong type, naming the argument.
        ValueError: a value out of range, naming the argument.

    .. versionadded:: 0.1.0
    """

    window: float = 300.0
    min_executions: int = 20
    failure_rate: float = 0.20
    timeout_rate: float = 0.10
    queue_depth: int = 100
    stuck_after: float = 3600.0
    sla: float | None = None
    sla_objective: float = 0.99
    for_seconds: float = 0.0
    fire_after: int = 1
    resolve_after: int = 1

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "window", checks.seconds(self.window, "window", at_least=10))
        set_(self, "failure_rate", checks.ratio(self.failure_rate, "failure_rate"))
        set_(self, "timeout_rate", checks.ratio(self.timeout_rate, "timeout_rate"))
        set_(self, "stuck_after", checks.seconds(self.stuck_after, "stuck_after"))
        set_(self, "for_seconds", checks.seconds(self.for_seconds, "for_seconds", allow_zero=True))
        set_(self, "sla", checks.seconds(self.sla, "sla", optional=True))
        checks.count(self.min_executions, "min_executions")
        checks.count(self.queue_depth, "queue_depth")
        checks.count(self.fire_after, "fire_after", minimum=1)
        checks.count(self.resolve_after, "resolve_after", minimum=1)
        set_(
            self,
            "sla_objective",
            checks.ratio(self.sla_objective, "sla_objective", include_one=False),
        )

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready values."""
        result: dict[str, Any] = json_ready(self)
        return result


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert: a rule's finding for one set of labels.

    Attributes:
        id: Stable per rule and labels (the same condition never makes two alerts).
        rule: The rule's name.
        severity: :class:`~stepwatch.Severity`.
        message: What is wrong, for people.
        labels: What it is about (e.g. ``{"name": "deploy"}``).
        value: The measured value.
        threshold: The rule's threshold.
        state: ``"firing"`` or ``"resolved"``.
        started_at: When it fired (epoch seconds).
        resolved_at: When it resolved, or ``None``.

    .. versionadded:: 0.1.0
    """

    id: str
    rule: str
    severity: Severity
    message: str
    labels: dict[str, str]
    value: float
    threshold: float
    state: AlertState
    started_at: float
    resolved_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready values."""
        result: dict[str, Any] = json_ready(self)
        return result


@dataclass(frozen=True, slots=True)
class ComponentHealth:
    """The result of one component check.

    Attributes:
        name: The component.
        status: ``healthy`` or ``unhealthy`` (a check may also report ``degraded``).
        critical: Whether its failure makes the process unhealthy.
        message: Details (``"timed out"``, an exception...), or ``None``.
        checked_at: When it was checked.
        duration: Seconds the check took, measured on the Monitor's clock
            whatever the check returned or raised; its ``timeout`` when it
            timed out.

    .. versionadded:: 0.1.0
    """

    name: str
    status: HealthStatus
    critical: bool = True
    message: str | None = None
    checked_at: float | None = None
    duration: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready values."""
        result: dict[str, Any] = json_ready(self)
        return result


@dataclass(frozen=True, slots=True)
class SystemHealth:
    """The process's health as of the last evaluation.

    Attributes:
        status: :class:`~stepwatch.HealthStatus`.
        components: Component check results.
        alerts: Alerts firing.
        checked_at: When it was evaluated.

    .. versionadded:: 0.1.0
    """

    status: HealthStatus
    components: list[ComponentHealth] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    checked_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready values."""
        result: dict[str, Any] = json_ready(self)
        return result


@dataclass(slots=True)
class SignalStatus:
    """The export results of one signal (``traces`` or ``metrics``).

    Attributes:
        successes: Exports that succeeded.
        failures: Exports that failed.
        last_ok: Whether the latest export succeeded (``None`` before any).
        last_error: The latest failure's description.
    """

    successes: int = 0
    failures: int = 0
    last_ok: bool | None = None
    last_error: str | None = None


class ExportStatus:
    """Export results per signal, for ``TelemetryExportFailing``.

    Fed by the exporters ``configure()`` builds and by those of the providers
    it adopts (the distro's, under ``opentelemetry-instrument``).

    Thread-safe; fed by the exporters' own threads. Each signal is tracked on
    its own: metrics failing while traces succeed keep the alert firing for
    metrics, whatever the traces do.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.signals: dict[str, SignalStatus] = {}
        """Results per signal name."""
        self.dropped_spans = 0

    def record(self, ok: bool, error: str | None = None, signal: str = "traces") -> None:
        """Record one export's result for ``signal``."""
        with self._lock:
            status = self.signals.get(signal)
            if status is None:
                status = self.signals[signal] = SignalStatus()
            if ok:
                status.successes += 1
            else:
                status.failures += 1
                status.last_error = error
            status.last_ok = ok

    def record_drop(self, count: int = 1) -> None:
        """Record spans the batch processor dropped because its queue was full."""
        with self._lock:
            self.dropped_spans += count

    def failing_signals(self) -> dict[str, SignalStatus]:
        """The signals whose latest export failed (copies)."""
        with self._lock:
            return {
                name: replace(status)
                for name, status in sorted(self.signals.items())
                if status.last_ok is False
            }

    def failing(self) -> bool:
        """Whether the latest export of any signal failed."""
        return bool(self.failing_signals())

    @property
    def failures(self) -> int:
        """Failed exports, all signals together."""
        with self._lock:
            return sum(status.failures for status in self.signals.values())

    @property
    def successes(self) -> int:
        """Successful exports, all signals together."""
        with self._lock:
            return sum(status.successes for status in self.signals.values())

    def after_fork_in_child(self) -> None:
        """A fresh lock (an exporter thread of the parent may have held this one)."""
        self._lock = threading.Lock()


Check = Callable[[], "bool | ComponentHealth | Awaitable[bool | ComponentHealth]"]


class _CheckRunner:
    """Runs one component check on a worker thread with a timeout; one run at a time."""

    def __init__(self, name: str, check: Check, critical: bool, timeout: float) -> None:
        self.name = name
        self.check = check
        self.critical = critical
        self.timeout = timeout
        self._done = threading.Event()
        self._done.set()
        self._result: ComponentHealth | None = None
        self._started = 0.0

    def after_fork_in_child(self) -> None:
        """A run in progress in the parent is not running here: ready to start again."""
        self._done = threading.Event()
        self._done.set()

    def start(self, clock: Callable[[], float]) -> None:
        if not self._done.is_set():
            return  # the previous run still hangs: do not pile up threads
        self._done.clear()
        self._result = None
        self._started = clock()
        threading.Thread(
            target=self._run, args=(clock,), name=f"stepwatch-check-{self.name}", daemon=True
        ).start()

    def _run(self, clock: Callable[[], float]) -> None:
        try:
            outcome: Any = self.check()
            if inspect.isawaitable(outcome):
                outcome = asyncio.run(_await(outcome))
            now = clock()
            took = max(now - self._started, 0.0)
            if isinstance(outcome, ComponentHealth):
                self._result = replace(
                    outcome, name=self.name, critical=self.critical, checked_at=now, duration=took
                )
            else:
                self._result = ComponentHealth(
                    name=self.name,
                    status=HealthStatus.HEALTHY if outcome else HealthStatus.UNHEALTHY,
                    critical=self.critical,
                    message=None if outcome else "check returned false",
                    checked_at=now,
                    duration=took,
                )
        except BaseException as exc:  # a check's SystemExit is its failure, not ours
            now = clock()
            self._result = ComponentHealth(
                name=self.name,
                status=HealthStatus.UNHEALTHY,
                critical=self.critical,
                message=f"{type(exc).__name__}: {describe(exc)}",
                checked_at=now,
                duration=max(now - self._started, 0.0),
            )
        finally:
            self._done.set()

    def result(self, deadline: float, clock: Callable[[], float]) -> ComponentHealth:
        """The run's result, waiting until ``deadline`` (``time.monotonic``) at most."""
        remaining = max(deadline - time.monotonic(), 0.0)
        if self._done.wait(remaining) and self._result is not None:
            return self._result
        return ComponentHealth(
            name=self.name,
            status=HealthStatus.UNHEALTHY,
            critical=self.critical,
            message=f"timed out after {self.timeout:g} s",
            checked_at=clock(),
            duration=self.timeout,
        )


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


@dataclass(slots=True)
class _Finding:
    rule: str
    severity: Severity
    labels: dict[str, str]
    value: float
    threshold: float
    message: str


def alert_id(rule: str, labels: dict[str, str]) -> str:
    """The stable id of the alert of ``rule`` for ``labels``."""
    payload = json.dumps([rule, sorted(labels.items())], separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


class HealthEvaluator:
    """Evaluates the rules and checks, keeps the alert lifecycle and the cached health.

    Args:
        rules: The thresholds.
        reader: Where the metrics are.
        tracker: Where running executions are (for ``StuckExecutions``).
        bus: Where ``alert.*`` and ``health.changed`` events go.
        clock: The Monitor's clock: the times health and alerts carry. How old
            an evaluation is (``max_age``) and how long a finding has held
            (``Rules.for_seconds``) are measured on a
            :class:`~stepwatch._clock.SteadyClock` over it, so a wall clock
            stepped back never makes a stale evaluation look fresh.
        export_status: Results of configure()'s exporters, if any.
    """

    def __init__(
        self,
        rules: Rules,
        reader: Windows | None,
        tracker: ProgressTracker,
        bus: EventBus,
        clock: Callable[[], float],
        export_status: ExportStatus | None = None,
        queue_depth: Callable[[], float | None] | None = None,
        remote_running: Callable[[], list[tuple[str, str, float]]] | None = None,
    ) -> None:
        self.rules = rules
        self.reader = reader
        self.tracker = tracker
        self.bus = bus
        self.clock = clock
        self._steady = SteadyClock.of(clock)
        """Ages (staleness, ``for_seconds``) are measured on it: never by a clock stepped back."""
        self._evaluated_steady = -math.inf
        self.export_status = export_status
        self.queue_depth = queue_depth
        self.remote_running = remote_running
        """Other processes' running executions as (name, id, last_progress_at): the group."""
        self.scheduled: Callable[[], int] | None = None
        """Work enqueued for later and not due yet (left out of ``QueueBacklog``)."""
        self._lock = threading.Lock()
        self._checks: dict[str, _CheckRunner] = {}
        self._firing: dict[str, Alert] = {}
        self._pending_since: dict[str, float] = {}
        self._held: dict[str, int] = {}  # consecutive evaluations a pending condition held
        self._absent: dict[str, int] = {}  # consecutive evaluations a firing one was absent
        self._silences: dict[str, float] = {}  # rule -> silenced until (the steady clock)
        self._announced: set[str] = set()  # firing alerts whose alert.fired was published
        self._resolved: deque[Alert] = deque(maxlen=MAX_RESOLVED_ALERTS)
        self._health: SystemHealth | None = None
        self._dropped_seen = 0
        self._errors_seen = sum(internal_errors().values())
        self._checks_changed = False

    def after_fork_in_child(self) -> None:
        """Fresh locks; checks that were running in the parent are not running here."""
        self._lock = threading.Lock()
        if self.export_status is not None:
            self.export_status.after_fork_in_child()
        for runner in self._checks.values():
            runner.after_fork_in_child()

    # ------------------------------------------------------------------ checks
    def add_check(self, name: str, check: Check, *, critical: bool, timeout: float) -> None:
        checks.name(name, "name")
        checks.function(check, "check")
        timeout = checks.seconds(timeout, "timeout")
        with self._lock:
            self._checks[name] = _CheckRunner(name, check, bool(critical), timeout)
            self._checks_changed = True

    def _run_checks(self) -> list[ComponentHealth]:
        # Checks run in parallel; real time (not the Monitor's clock) bounds the wait.
        with self._lock:
            runners = list(self._checks.values())
            self._checks_changed = False
        for runner in runners:
            runner.start(self.clock)
        started = time.monotonic()
        return [runner.result(started + runner.timeout, self.clock) for runner in runners]

    # ------------------------------------------------------------------- rules
    def _rate_findings(self) -> list[_Finding]:
        rules = self.rules
        findings: list[_Finding] = []
        if self.reader is None:
            return findings
        for name, by_outcome in execution_outcomes(self.reader).items():
            # Final outcomes only: a retried attempt is neither a success nor a failure.
            total = sum(by_outcome.values()) - by_outcome.get(Outcome.RETRY.value, 0.0)
            if total < rules.min_executions:
                continue
            for rule, severity, outcome, threshold in (
                (
                    semconv.RULE_HIGH_FAILURE_RATE,
                    Severity.CRITICAL,
                    Outcome.FAILURE,
                    rules.failure_rate,
                ),
                (
                    semconv.RULE_HIGH_TIMEOUT_RATE,
                    Severity.WARNING,
                    Outcome.TIMEOUT,
                    rules.timeout_rate,
                ),
            ):
                rate = by_outcome.get(outcome.value, 0.0) / total
                if rate > threshold:
                    findings.append(
                        _Finding(
                            rule,
                            severity,
                            {"name": name},
                            rate,
                            threshold,
                            f"{outcome.value} rate of {name!r} is {rate:.1%} over the last "
                            f"{rules.window:g} s ({int(total)} executions), above {threshold:.1%}",
                        )
                    )
        return findings

    def _lost_findings(self) -> list[_Finding]:
        """``ExecutionsLost``: not gated by volume; one lost execution is news."""
        if self.reader is None:
            return []
        window = self.rules.window
        findings = []
        for name, by_outcome in execution_outcomes(self.reader).items():
            lost = by_outcome.get(Outcome.LOST.value, 0.0)
            if lost > 0:
                findings.append(
                    _Finding(
                        semconv.RULE_EXECUTIONS_LOST,
                        Severity.WARNING,
                        {"name": name},
                        lost,
                        0.0,
                        f"{int(lost)} executions of {name!r} were lost over the last "
                        f"{window:g} s: their process died while they ran",
                    )
                )
        return findings

    def _burn_findings(self) -> list[_Finding]:
        rules = self.rules
        reader = self.reader
        findings: list[_Finding] = []
        if reader is None:
            return findings
        budget = 1.0 - rules.sla_objective

        def violations_per_name(window: float) -> dict[str, float]:
            result: dict[str, float] = {}
            metric = semconv.SLA_VIOLATIONS.name
            for attributes, count in reader.counts(metric, window, long=True).items():
                name = str(dict(attributes).get(semconv.WORKFLOW_DEFINITION_NAME, ""))
                result[name] = result.get(name, 0.0) + count
            return result

        def totals(window: float) -> dict[str, float]:
            return {
                name: sum(by_outcome.values())
                for name, by_outcome in execution_outcomes(reader, window, long=True).items()
            }

        for label, severity, factor, long_window, short_window in BURN_RATES:
            long_violations = violations_per_name(long_window)
            if not long_violations:
                continue
            long_totals = totals(long_window)
            short_violations = violations_per_name(short_window)
            short_totals = totals(short_window)
            for name, violations in long_violations.items():
                total = long_totals.get(name, 0.0)
                if total < rules.min_executions:
                    continue
                long_burn = violations / total / budget
                short_total = short_totals.get(name, 0.0)
                short_burn = (
                    short_violations.get(name, 0.0) / short_total / budget if short_total else 0.0
                )
                if long_burn > factor and short_burn > factor:
                    findings.append(
                        _Finding(
                            semconv.RULE_SLA_BURN_RATE,
                            severity,
                            {"name": name, "burn": label},
                            long_burn,
                            factor,
                            f"{name!r} burns its SLA error budget {long_burn:.1f}x over "
                            f"{long_window / 3600:g} h and {short_burn:.1f}x over "
                            f"{short_window / 60:g} min (objective {rules.sla_objective:.2%})",
                        )
                    )
        return findings

    def _queue_findings(self) -> list[_Finding]:
        depth: float | None = self.queue_depth() if self.queue_depth is not None else None
        if depth is None and self.reader is not None:
            depth = sum(
                value
                for attributes, value in self.reader.levels(semconv.EXECUTION_ACTIVE.name).items()
                if dict(attributes).get(semconv.WORKFLOW_EXECUTION_STATE)
                == ExecutionState.PENDING.value
            )
            # Scheduled work (not due yet) is in the pending level, and is no backlog.
            depth -= self.scheduled() if self.scheduled is not None else 0
        if depth is None or depth <= self.rules.queue_depth:
            return []
        return [
            _Finding(
                semconv.RULE_QUEUE_BACKLOG,
                Severity.WARNING,
                {},
                depth,
                self.rules.queue_depth,
                f"{int(depth)} executions queued, above {self.rules.queue_depth}",
            )
        ]

    def _own_errors(self) -> ComponentHealth | None:
        """Component ``stepwatch``, degraded when stepwatch contained failures of its own
        since the last evaluation (each is logged once and counted: never raised)."""
        counts = internal_errors()
        total = sum(counts.values())
        new, self._errors_seen = total - self._errors_seen, total
        if new <= 0:
            return None
        worst = max(counts, key=counts.__getitem__)
        return ComponentHealth(
            name=OWN_COMPONENT,
            status=HealthStatus.DEGRADED,
            critical=False,
            message=f"{new} internal errors since the last check (most: {worst}); see the log",
            checked_at=self.clock(),
            duration=0.0,
        )

    def _announce_late(self, now: float) -> None:
        """``sla.violated`` for each running execution whose deadline has just passed."""
        try:
            for execution in self.tracker.newly_late(now):
                sla = execution.sla
                if sla is None:
                    continue
                data = semconv.SLAViolatedData(
                    name=execution.name, sla=sla, duration=max(now - execution.started_at, 0.0)
                )
                self.bus.publish(EventType.SLA_VIOLATED, execution.id, data, now)
        except Exception:
            report("health.sla", "stepwatch: announcing a late execution failed", exc_info=True)

    def _stuck_findings(self, now: float) -> list[_Finding]:
        running = [(e.name, e.id, e.updated_at) for e in self.tracker.running()]
        if self.remote_running is not None:
            running.extend(self.remote_running())
        stuck = [
            (name, execution_id)
            for name, execution_id, last_progress_at in running
            if now - last_progress_at > self.rules.stuck_after
        ]
        if not stuck:
            return []
        examples = ", ".join(sorted(f"{name}/{execution_id}" for name, execution_id in stuck)[:5])
        return [
            _Finding(
                semconv.RULE_STUCK_EXECUTIONS,
                Severity.WARNING,
                {},
                len(stuck),
                self.rules.stuck_after,
                f"{len(stuck)} executions with no progress for {self.rules.stuck_after:g} s "
                f"(e.g. {examples})",
            )
        ]

    def _component_findings(self, components: list[ComponentHealth]) -> list[_Finding]:
        return [
            _Finding(
                semconv.RULE_COMPONENT_DOWN,
                Severity.CRITICAL if component.critical else Severity.WARNING,
                {"component": component.name},
                0.0,
                1.0,
                f"component {component.name!r} is {component.status.value}"
                + (f": {component.message}" if component.message else ""),
            )
            for component in components
            if component.status is not HealthStatus.HEALTHY
        ]

    def _export_findings(self) -> list[_Finding]:
        status = self.export_status
        if status is None:
            return []
        with self._lock:
            dropped = status.dropped_spans - self._dropped_seen
            self._dropped_seen = status.dropped_spans
        findings = [
            _Finding(
                semconv.RULE_TELEMETRY_EXPORT_FAILING,
                Severity.WARNING,
                {"signal": signal, "problem": "failed"},
                float(failed.failures),
                1.0,
                f"{signal} export is failing ({failed.failures} failed exports"
                + (f"; last: {failed.last_error}" if failed.last_error else "")
                + ")",
            )
            for signal, failed in status.failing_signals().items()
        ]
        if dropped > 0:
            findings.append(
                _Finding(
                    semconv.RULE_TELEMETRY_EXPORT_FAILING,
                    Severity.WARNING,
                    {"signal": "traces", "problem": "dropped"},
                    float(dropped),
                    1.0,
                    f"traces export is falling behind ({dropped} spans dropped by a full "
                    "export queue since the last check)",
                )
            )
        return findings

    # -------------------------------------------------------------- evaluation
    def evaluate(self) -> SystemHealth:
        """Collect, evaluate every rule and check, update alerts; return the new health."""
        if self.reader is not None:
            self.reader.refresh()
        components = self._run_checks()
        own = self._own_errors()
        if own is not None:
            components.append(own)
        now = self.clock()
        steady = self._steady()
        self._announce_late(now)
        findings: list[_Finding] = []
        for produce in (
            self._rate_findings,
            self._lost_findings,
            self._burn_findings,
            self._queue_findings,
            lambda: self._stuck_findings(now),
            lambda: self._component_findings(components),
            self._export_findings,
        ):
            try:
                findings.extend(produce())
            except Exception:
                report("health.rule", "stepwatch: evaluating a health rule failed", exc_info=True)
        with self._lock:
            self._apply(findings, now, steady)
            firing = self._reported(steady)
            status = _status(firing, components)
            previous = self._health
            self._health = SystemHealth(status, components, firing, now)
            self._evaluated_steady = steady
        # Before the first evaluation the process counts as healthy.
        previous_status = HealthStatus.HEALTHY if previous is None else previous.status
        if previous_status is not status:
            change = semconv.HealthChangedData(status=status.value, previous=previous_status.value)
            self.bus.publish(EventType.HEALTH_CHANGED, None, dict(change), now)
        return self._health

    def _apply(self, findings: list[_Finding], now: float, steady: float) -> None:
        rules = self.rules
        seen: set[str] = set()
        for finding in findings:
            identifier = alert_id(finding.rule, finding.labels)
            seen.add(identifier)
            firing = self._firing.get(identifier)
            if firing is not None:
                self._absent.pop(identifier, None)
                self._firing[identifier] = replace(
                    firing, value=finding.value, message=finding.message
                )
                continue
            since = self._pending_since.setdefault(identifier, steady)
            held = self._held[identifier] = self._held.get(identifier, 0) + 1
            if steady - since < rules.for_seconds or held < rules.fire_after:
                continue
            self._firing[identifier] = Alert(
                id=identifier,
                rule=finding.rule,
                severity=finding.severity,
                message=finding.message,
                labels=finding.labels,
                value=finding.value,
                threshold=finding.threshold,
                state=AlertState.FIRING,
                started_at=now,
            )
            self._pending_since.pop(identifier, None)
            self._held.pop(identifier, None)
        for identifier in [i for i in self._pending_since if i not in seen]:
            del self._pending_since[identifier]
            self._held.pop(identifier, None)
        for identifier in [i for i in self._firing if i not in seen]:
            absent = self._absent[identifier] = self._absent.get(identifier, 0) + 1
            if absent < rules.resolve_after:
                continue
            del self._absent[identifier]
            resolved = replace(
                self._firing.pop(identifier), state=AlertState.RESOLVED, resolved_at=now
            )
            self._resolved.append(resolved)
            if identifier in self._announced:
                self._announced.discard(identifier)
                self.bus.publish(EventType.ALERT_RESOLVED, None, resolved.to_dict(), now)
        for identifier, alert in self._firing.items():
            if identifier not in self._announced and not self._silenced(alert.rule, steady):
                self._announced.add(identifier)
                self.bus.publish(EventType.ALERT_FIRED, None, alert.to_dict(), now)

    def _silenced(self, rule: str, steady: float) -> bool:
        """Whether ``rule`` is silenced at ``steady`` (the steady clock, like ``for_seconds``)."""
        until = self._silences.get(rule)
        if until is None:
            return False
        if steady < until:
            return True
        del self._silences[rule]
        return False

    def silence(self, rule: str, for_seconds: float) -> float:
        """Silence ``rule`` for ``for_seconds`` (0 lifts a silence); returns when it ends.

        A silenced rule is still evaluated, but its alerts count neither in
        health nor in :meth:`alerts`, and no ``alert.fired`` is published for
        them; one still firing when the silence ends is announced then.

        Raises:
            ValueError: ``rule`` is not a built-in rule name, or ``for_seconds``
                is negative.
        """
        checks.choice(rule, "rule", semconv.RULE_NAMES)
        for_seconds = checks.seconds(for_seconds, "for_seconds", allow_zero=True)
        ends = self._steady() + for_seconds  # a wall clock stepped back never lengthens it
        with self._lock:
            if for_seconds > 0:
                self._silences[rule] = ends
            else:
                self._silences.pop(rule, None)
        return self.clock() + for_seconds

    def _reported(self, steady: float) -> list[Alert]:
        """Firing alerts not silenced, oldest first (under the lock)."""
        return sorted(
            (a for a in self._firing.values() if not self._silenced(a.rule, steady)),
            key=lambda a: (a.started_at, a.id),
        )

    # ----------------------------------------------------------------- queries
    def health(self, *, refresh: bool = False, max_age: float | None = None) -> SystemHealth:
        """The cached health; evaluates first when ``refresh``, never evaluated, or stale.

        Stale: older than ``max_age`` seconds, or evaluated before the latest
        :meth:`add_check` (when ``max_age`` is given).
        """
        cached = self._health
        if cached is None or refresh:
            return self.evaluate()
        if max_age is not None:
            age = self._steady() - self._evaluated_steady
            if age >= max_age or self._checks_changed:
                return self.evaluate()
        return cached

    def alerts(
        self,
        severity: Severity | str | None = None,
        limit: int = 100,
        *,
        active: bool | None = None,
    ) -> list[Alert]:
        """Firing alerts (oldest first), then resolved ones (newest first), filtered."""
        wanted = checks.member(severity, "severity", Severity, optional=True)
        checks.count(limit, "limit", minimum=0)
        with self._lock:
            firing = self._reported(self._steady())
            resolved = list(reversed(self._resolved))
        candidates = (
            firing if active is True else resolved if active is False else firing + resolved
        )
        return [a for a in candidates if wanted is None or a.severity is wanted][:limit]


_STATUS_ORDER = (HealthStatus.HEALTHY, HealthStatus.DEGRADED, HealthStatus.UNHEALTHY)


def worst_status(status: HealthStatus, alerts: list[Alert]) -> HealthStatus:
    """``status`` made worse by firing ``alerts`` (critical: unhealthy; warning: degraded)."""
    for alert in alerts:
        if alert.state is not AlertState.FIRING:
            continue
        implied = (
            HealthStatus.UNHEALTHY
            if alert.severity is Severity.CRITICAL
            else HealthStatus.DEGRADED
            if alert.severity is Severity.WARNING
            else HealthStatus.HEALTHY
        )
        if _STATUS_ORDER.index(implied) > _STATUS_ORDER.index(status):
            status = implied
    return status


def _status(firing: list[Alert], components: list[ComponentHealth]) -> HealthStatus:
    if any(a.severity is Severity.CRITICAL for a in firing) or any(
        c.critical and c.status is HealthStatus.UNHEALTHY for c in components
    ):
        return HealthStatus.UNHEALTHY
    if any(a.severity is Severity.WARNING for a in firing) or any(
        c.status is not HealthStatus.HEALTHY for c in components
    ):
        return HealthStatus.DEGRADED
    return HealthStatus.HEALTHY


class EvaluationLoop:
    """A daemon thread evaluating health every ``interval`` seconds; restarted after fork.

    Holds its evaluator weakly: when the Monitor that owns the evaluator is
    gone, the loop ends. Survives its own errors (reported, then the next
    tick).
    """

    def __init__(self, evaluator: HealthEvaluator, interval: float) -> None:
        self._evaluator = weakref.ref(evaluator)
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def alive(self) -> bool:
        """Whether the loop's thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._run, name="stepwatch-health", daemon=True)
        self._thread.start()

    def after_fork_in_child(self) -> None:
        """Threads do not survive fork: the child of a running loop starts its own."""
        if not self._stop.is_set():
            self._stop = threading.Event()
            self.start()

    def _run(self) -> None:
        stop = self._stop
        while not stop.is_set():
            evaluator = self._evaluator()
            if evaluator is None:
                return
            try:
                evaluator.health(refresh=True)
            except Exception:
                report("monitor.loop", "stepwatch: health evaluation failed", exc_info=True)
            del evaluator
            stop.wait(self.interval)

    def stop(self, timeout: float | None = 5.0) -> None:
        """Stop the loop; wait up to ``timeout`` seconds for a running evaluation to end."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=timeout)
