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
from stepwatch.semconv import EventType, HealthStatus, Outcome, Severity
from stepwatch.version import __version__

__all__ = [
    "EventType",
    "Execution",
    "ExecutionEvent",
    "ExecutionProgress",
    "ExecutionScope",
    "HealthStatus",
    "Monitor",
    "Outcome",
    "Severity",
    "Step",
    "StepProgress",
    "StepScope",
    "Subscription",
    "__version__",
    "configure",
    "current_execution",
    "current_step",
    "enqueue",
    "execution",
    "step",
]
