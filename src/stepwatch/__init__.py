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
"""

from stepwatch.configure import configure
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
from stepwatch.monitor import Monitor
from stepwatch.progress import ExecutionProgress, StepProgress
from stepwatch.reader import HealthMetricReader, HealthReader
from stepwatch.semconv import EventType, HealthStatus, Outcome, Severity
from stepwatch.summary import DurationStats, MetricsSummary, SLAStats, StepStats
from stepwatch.version import __version__

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
    "HealthReader",
    "HealthStatus",
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
