"""The bundle of tracer, instruments and clock the instrument layer emits through.

A :class:`Telemetry` is built once per Monitor (from its providers) and once,
lazily, for the global OpenTelemetry API. The instrument layer resolves
:func:`current` at call time, so decorating before ``configure()`` is fine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import metrics, trace
from opentelemetry.metrics import Counter, Histogram, Meter, MeterProvider, UpDownCounter
from opentelemetry.trace import Tracer, TracerProvider

from stepwatch import semconv
from stepwatch.version import __version__

if TYPE_CHECKING:
    from stepwatch.instrument import Execution, Step

__all__ = ["Observer", "Telemetry", "build", "current", "install", "installed", "uninstall"]

Clock = Callable[[], float]


class Observer(Protocol):
    """What the instrument layer tells the Monitor (tracker and event bus).

    Every method is called on the host's thread, must be O(1) and must not
    raise; the instrument layer guards the calls anyway.
    """

    def execution_started(self, execution: Execution) -> None: ...

    def execution_ended(self, execution: Execution) -> None: ...

    def step_started(self, step: Step) -> None: ...

    def step_ended(self, step: Step) -> None: ...

    def step_progressed(self, step: Step, emit: bool) -> None: ...

    def enqueued(
        self, name: str, execution_id: str, queue: str, at: float, attempt: int = 1
    ) -> None: ...

    def eta(self, execution: Execution, now: float) -> float | None: ...

    def lifecycle(
        self, event_type: semconv.EventType, execution_id: str | None, data: dict[str, Any]
    ) -> None: ...


@dataclass(frozen=True, slots=True)
class Telemetry:
    """Everything one emission needs, resolved once per provider pair."""

    tracer: Tracer
    execution_duration: Histogram
    execution_active: UpDownCounter
    task_duration: Histogram
    sla_violations: Counter
    approval_duration: Histogram
    clock: Clock
    observer: Observer | None
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
    flush: Callable[[], None] | None = None,
) -> Telemetry:
    """Create the tracer and instruments stepwatch emits through.

    ``None`` providers mean the global OpenTelemetry API (proxies that start
    delegating once an SDK is installed globally).
    """
    tracer = trace.get_tracer(
        semconv.INSTRUMENTATION_SCOPE, __version__, tracer_provider=tracer_provider
    )
    meter = metrics.get_meter(
        semconv.INSTRUMENTATION_SCOPE, __version__, meter_provider=meter_provider
    )
    return Telemetry(
        tracer=tracer,
        execution_duration=_histogram(meter, semconv.EXECUTION_DURATION),
        execution_active=meter.create_up_down_counter(
            semconv.EXECUTION_ACTIVE.name,
            unit=semconv.EXECUTION_ACTIVE.unit,
            description=semconv.EXECUTION_ACTIVE.description,
        ),
        task_duration=_histogram(meter, semconv.TASK_DURATION),
        sla_violations=meter.create_counter(
            semconv.SLA_VIOLATIONS.name,
            unit=semconv.SLA_VIOLATIONS.unit,
            description=semconv.SLA_VIOLATIONS.description,
        ),
        approval_duration=_histogram(meter, semconv.APPROVAL_DURATION),
        clock=clock or time.time,
        observer=observer,
        default_sla=default_sla,
        flush=flush,
    )


_installed: Telemetry | None = None
_global: Telemetry | None = None


def current() -> Telemetry:
    """The installed Monitor's telemetry, else the global API's (built on first use)."""
    global _global  # noqa: PLW0603 - a lazily built module singleton
    installed_now = _installed
    if installed_now is not None:
        return installed_now
    if _global is None:
        _global = build(None, None)
    return _global


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
