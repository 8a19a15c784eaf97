"""The bundle of tracer, instruments and clock the instrument layer emits through.

A :class:`Telemetry` is built once per Monitor (from its providers) and once,
lazily, for the global OpenTelemetry API. The instrument layer resolves
:func:`current` at call time, so decorating before ``configure()`` is fine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import metrics, trace
from opentelemetry.metrics import Histogram, Meter, MeterProvider
from opentelemetry.trace import Tracer, TracerProvider

from stepwatch import semconv
from stepwatch._safety import report
from stepwatch.limits import Limits
from stepwatch.version import __version__

if TYPE_CHECKING:
    from stepwatch.instrument import Execution
    from stepwatch.progress import DurationHistory, StepView
    from stepwatch.windows import HealthWindows

__all__ = ["Observer", "Telemetry", "build", "current", "install", "installed", "uninstall"]

Clock = Callable[[], float]


class Observer(Protocol):
    """What the instrument layer tells the Monitor: what happened, never a question.

    Every method is called on the host's thread, must be cheap and must not
    raise (the Monitor's observer guards each one; the instrument layer does
    not guard them again). Handles are passed as read-only views: an
    observer reads them and never changes them.
    """

    def enqueued(self, execution_id: str, data: semconv.ExecutionQueuedData, at: float) -> None: ...

    def execution_started(
        self, execution: Execution, data: semconv.ExecutionStartedData
    ) -> None: ...

    def execution_ended(
        self,
        execution: Execution,
        event_type: semconv.EventType,
        data: semconv.ExecutionEndedData,
        sla: semconv.SLAViolatedData | None,
    ) -> None: ...

    def step_started(self, step: StepView, execution_id: str | None) -> None: ...

    def step_ended(self, step: StepView, execution_id: str | None) -> None: ...

    def step_progressed(
        self, execution_id: str | None, data: semconv.StepProgressData, at: float
    ) -> None: ...

    def lifecycle(
        self,
        event_type: semconv.EventType,
        execution_id: str | None,
        data: Mapping[str, Any],
        at: float,
    ) -> None: ...


class Recorder(Protocol):
    """A histogram as the instrument layer uses it."""

    def record(self, amount: float, attributes: Mapping[str, str] | None = None) -> None: ...


class Adder(Protocol):
    """A counter or up-down counter as the instrument layer uses it."""

    def add(self, amount: float, attributes: Mapping[str, str] | None = None) -> None: ...


class _FedHistogram:
    """Records on the OpenTelemetry histogram and into the Monitor's health windows."""

    __slots__ = ("_instrument", "_name", "_windows")

    def __init__(self, instrument: Recorder, name: str, windows: HealthWindows) -> None:
        self._instrument = instrument
        self._name = name
        self._windows = windows

    def record(self, amount: float, attributes: Mapping[str, str] | None = None) -> None:
        self._instrument.record(amount, attributes)
        try:
            self._windows.observe(self._name, amount, attributes or {})
        except Exception:
            report("windows.observe", "stepwatch: feeding the health windows failed", exc_info=True)


class _FedCounter:
    """Adds on the OpenTelemetry counter and into the Monitor's health windows."""

    __slots__ = ("_instrument", "_name", "_windows")

    def __init__(self, instrument: Adder, name: str, windows: HealthWindows) -> None:
        self._instrument = instrument
        self._name = name
        self._windows = windows

    def add(self, amount: float, attributes: Mapping[str, str] | None = None) -> None:
        self._instrument.add(amount, attributes)
        try:
            self._windows.add(self._name, amount, attributes or {})
        except Exception:
            report("windows.add", "stepwatch: feeding the health windows failed", exc_info=True)


@dataclass(frozen=True, slots=True)
class Telemetry:
    """Everything one emission needs, resolved once per provider pair."""

    tracer: Tracer
    execution_duration: Recorder
    execution_active: Adder
    task_duration: Recorder
    sla_violations: Adder
    approval_duration: Recorder
    clock: Clock
    """Wall-clock epoch seconds: timestamps (span start, ``started_at``, enqueue time)."""
    monotonic: Clock
    """Seconds for durations (``time.monotonic``; the injected test clock when one is given)."""
    observer: Observer | None
    limits: Limits
    history: DurationHistory | None = None
    """Typical durations per name for the ETA (the Monitor's), ``None`` without a Monitor."""
    default_sla: float | None = None
    flush: Callable[[], None] | None = None
    """Set in forked children only: pushes what ended out to the exporters at once."""


def _histogram(meter: Meter, spec: semconv.MetricSpec) -> Histogram:
    return meter.create_histogram(
        spec.name,
        unit=spec.unit,
        description=spec.description,
        explicit_bucket_boundaries_advisory=semconv.DURATION_BUCKETS,
    )


def build(
    tracer_provider: TracerProvider | None,
    meter_provider: MeterProvider | None,
    clock: Clock | None = None,
    observer: Observer | None = None,
    default_sla: float | None = None,
    *,
    limits: Limits | None = None,
    history: DurationHistory | None = None,
    flush: Callable[[], None] | None = None,
    windows: HealthWindows | None = None,
) -> Telemetry:
    """Create the tracer and instruments stepwatch emits through.

    ``None`` providers mean the global OpenTelemetry API (proxies that start
    delegating once an SDK is installed globally). With no ``clock``,
    timestamps come from ``time.time`` and durations from ``time.monotonic``;
    an injected clock drives both. With ``windows``, every value recorded on
    the instruments also feeds those health windows (the Monitor's direct feed).
    """
    tracer = trace.get_tracer(
        semconv.INSTRUMENTATION_SCOPE, __version__, tracer_provider=tracer_provider
    )
    meter = metrics.get_meter(
        semconv.INSTRUMENTATION_SCOPE, __version__, meter_provider=meter_provider
    )
    execution_duration: Recorder = _histogram(meter, semconv.EXECUTION_DURATION)
    task_duration: Recorder = _histogram(meter, semconv.TASK_DURATION)
    approval_duration: Recorder = _histogram(meter, semconv.APPROVAL_DURATION)
    execution_active: Adder = meter.create_up_down_counter(
        semconv.EXECUTION_ACTIVE.name,
        unit=semconv.EXECUTION_ACTIVE.unit,
        description=semconv.EXECUTION_ACTIVE.description,
    )
    sla_violations: Adder = meter.create_counter(
        semconv.SLA_VIOLATIONS.name,
        unit=semconv.SLA_VIOLATIONS.unit,
        description=semconv.SLA_VIOLATIONS.description,
    )
    if windows is not None:
        execution_duration = _FedHistogram(
            execution_duration, semconv.EXECUTION_DURATION.name, windows
        )
        task_duration = _FedHistogram(task_duration, semconv.TASK_DURATION.name, windows)
        approval_duration = _FedHistogram(
            approval_duration, semconv.APPROVAL_DURATION.name, windows
        )
        execution_active = _FedCounter(execution_active, semconv.EXECUTION_ACTIVE.name, windows)
        sla_violations = _FedCounter(sla_violations, semconv.SLA_VIOLATIONS.name, windows)
    return Telemetry(
        tracer=tracer,
        execution_duration=execution_duration,
        execution_active=execution_active,
        task_duration=task_duration,
        sla_violations=sla_violations,
        approval_duration=approval_duration,
        clock=clock or time.time,
        monotonic=clock or time.monotonic,
        observer=observer,
        limits=limits or Limits(),
        history=history,
        default_sla=default_sla,
        flush=flush,
    )


_installed: Telemetry | None = None
_global: Telemetry | None = None


def current() -> Telemetry:
    """The installed Monitor's telemetry, else the global API's (built on first use).

    With ``stepwatch`` in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``, the
    global fallback is the API's no-op providers: the decorators emit nothing.
    """
    global _global  # noqa: PLW0603 - a lazily built module singleton
    installed_now = _installed
    if installed_now is not None:
        return installed_now
    if _global is None:
        if disabled():
            _global = build(trace.NoOpTracerProvider(), metrics.NoOpMeterProvider())
        else:
            _global = build(None, None)
    return _global


DISABLED_VARIABLE = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"
INSTRUMENTOR_NAME = "stepwatch"


def disabled() -> bool:
    """Whether ``stepwatch`` is listed in ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS``."""
    listed = os.environ.get(DISABLED_VARIABLE, "")
    return INSTRUMENTOR_NAME in (name.strip() for name in listed.split(","))


def installed() -> Telemetry | None:
    """The installed Monitor's telemetry, if any."""
    return _installed


def install(telemetry: Telemetry) -> None:
    """Make ``telemetry`` the one decorators emit through."""
    global _installed  # noqa: PLW0603 - the process-wide installed Monitor
    _installed = telemetry


def uninstall(telemetry: Telemetry) -> None:
    """Remove ``telemetry`` if it is the installed one."""
    global _installed  # noqa: PLW0603 - the process-wide installed Monitor
    if _installed is telemetry:
        _installed = None
