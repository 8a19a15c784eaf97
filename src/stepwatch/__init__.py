"""stepwatch: OpenTelemetry instrumentation for workflow and job execution engines.

Decorate an engine's execution and step functions; stepwatch turns every run
into spans (with live progress), metrics (durations, outcomes, queue wait,
SLA violations) and lifecycle span events, and keeps an in-process Monitor
that answers "how far along is execution X" without any backend.

Usage::

    import stepwatch

    monitor = stepwatch.configure(service_name="billing-engine")

    @stepwatch.execution("deploy", total_steps=2)
    def deploy(plan):
        fetch(plan)
        apply(plan)

    @stepwatch.step(step_type="http")
    def fetch(plan): ...

    monitor.progress(execution_id)

Configuration: :func:`configure` reads the standard ``OTEL_*`` variables; see
``docs/configuration.md``.

Importing stepwatch loads nothing but its version: every public name loads
its module on first use (PEP 562), so an installed stepwatch costs nothing to
a process that does not use it (the pytest plugin, ``stepwatch --help``).
Decorating loads only the OpenTelemetry API: the names bound to the SDK
(``configure``, ``Monitor``, the health and summary types) load when used.
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING, Any

from stepwatch.version import __version__

if TYPE_CHECKING:
    from stepwatch.configuration import configure
    from stepwatch.events import ExecutionEvent, Subscription
    from stepwatch.health import Alert, ComponentHealth, Rules, SystemHealth
    from stepwatch.instrument import (
        Execution,
        ExecutionScope,
        Step,
        StepScope,
        current_execution,
        current_step,
        enqueue,
        execution,
        step,
    )
    from stepwatch.limits import Limits
    from stepwatch.monitor import Monitor
    from stepwatch.progress import ExecutionProgress, StepProgress
    from stepwatch.reader import HealthMetricReader
    from stepwatch.semconv import EventType, HealthStatus, Outcome, Severity
    from stepwatch.summary import DurationStats, MetricsSummary, SLAStats, StepStats

__all__ = [
    "Alert",
    "ComponentHealth",
    "DurationStats",
    "EventType",
    "Execution",
    "ExecutionEvent",
    "ExecutionProgress",
    "ExecutionScope",
    "HealthMetricReader",
    "HealthStatus",
    "Limits",
    "MetricsSummary",
    "Monitor",
    "Outcome",
    "Rules",
    "SLAStats",
    "Severity",
    "Step",
    "StepProgress",
    "StepScope",
    "StepStats",
    "Subscription",
    "SystemHealth",
    "__version__",
    "configure",
    "current_execution",
    "current_step",
    "enqueue",
    "execution",
    "step",
]

_LAZY = {
    "Execution": "stepwatch.instrument",
    "ExecutionScope": "stepwatch.instrument",
    "Step": "stepwatch.instrument",
    "StepScope": "stepwatch.instrument",
    "current_execution": "stepwatch.instrument",
    "current_step": "stepwatch.instrument",
    "enqueue": "stepwatch.instrument",
    "execution": "stepwatch.instrument",
    "step": "stepwatch.instrument",
    "Limits": "stepwatch.limits",
    "ExecutionProgress": "stepwatch.progress",
    "StepProgress": "stepwatch.progress",
    "EventType": "stepwatch.semconv",
    "HealthStatus": "stepwatch.semconv",
    "Outcome": "stepwatch.semconv",
    "Severity": "stepwatch.semconv",
    "configure": "stepwatch.configuration",
    "ExecutionEvent": "stepwatch.events",
    "Subscription": "stepwatch.events",
    "Alert": "stepwatch.health",
    "ComponentHealth": "stepwatch.health",
    "Rules": "stepwatch.health",
    "SystemHealth": "stepwatch.health",
    "Monitor": "stepwatch.monitor",
    "HealthMetricReader": "stepwatch.reader",
    "DurationStats": "stepwatch.summary",
    "MetricsSummary": "stepwatch.summary",
    "SLAStats": "stepwatch.summary",
    "StepStats": "stepwatch.summary",
}
_DEPRECATED = {"HealthReader": "HealthMetricReader"}


def __getattr__(name: str) -> Any:
    """Load the public names on first use (PEP 562)."""
    if name in _DEPRECATED:
        warnings.warn(
            f"stepwatch.{name} is deprecated since 0.2.0 (removed in 0.3.0): "
            f"use stepwatch.{_DEPRECATED[name]}",
            DeprecationWarning,
            stacklevel=2,
        )
        name = _DEPRECATED[name]
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'stepwatch' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
