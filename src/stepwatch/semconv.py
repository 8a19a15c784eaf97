"""Every telemetry name stepwatch emits: span names, attributes, metrics, events, enums.

This module is the single home of stepwatch's names; no other module spells a
telemetry string. The names follow the draft OpenTelemetry workflow
conventions (semantic-conventions issue #1688, PR #2387) where those name a
thing, and extend the same ``workflow.*`` tree where they do not. Failures use
the standard ``error.type`` attribute from :mod:`opentelemetry.semconv`.

Cardinality rule: execution ids, step names, reasons and approvers appear on
spans and events only. Metric attributes are limited to the bounded sets
listed in :data:`EXECUTION_METRIC_ATTRIBUTES` and friends.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, NotRequired, TypedDict

from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.semconv.attributes.exception_attributes import (
    EXCEPTION_MESSAGE,
    EXCEPTION_TYPE,
)

__all__ = [
    "APPROVAL_METRIC_ATTRIBUTES",
    "CARRIER_ATTEMPT",
    "CARRIER_DUE_AT",
    "CARRIER_ENQUEUED_AT",
    "CARRIER_ENQUEUE_ID",
    "CARRIER_EXECUTION_ID",
    "CARRIER_HEADER",
    "CARRIER_HEADER_FALLBACK",
    "CARRIER_NAME",
    "CARRIER_QUEUE",
    "ERROR_TYPE",
    "ERROR_TYPE_OTHER",
    "EVENT_DATA",
    "EXCEPTION_EVENT",
    "EXCEPTION_MESSAGE",
    "EXCEPTION_TYPE",
    "EXECUTION_ENDED_TYPES",
    "EXECUTION_METRIC_ATTRIBUTES",
    "FINAL_OUTCOMES",
    "INSTRUMENTATION_SCOPE",
    "MESSAGING_DESTINATION_NAME",
    "SPAN_ENQUEUE",
    "SPAN_EVENT_KEYS",
    "SPAN_EXECUTION",
    "SPAN_STEP",
    "STEP_METRIC_ATTRIBUTES",
    "AlertData",
    "AlertState",
    "ApprovalOutcome",
    "ApprovalRequestedData",
    "ApprovalResolvedData",
    "CustomEventData",
    "EventType",
    "ExecutionEndedData",
    "ExecutionQueuedData",
    "ExecutionStartedData",
    "ExecutionState",
    "HealthChangedData",
    "HealthStatus",
    "MetricSpec",
    "Outcome",
    "SLAViolatedData",
    "Severity",
    "StepEndedData",
    "StepProgressData",
    "StepStartedData",
    "span_event_attributes",
]

INSTRUMENTATION_SCOPE: Final = "stepwatch"
"""The instrumentation scope name of every tracer and meter stepwatch gets."""

# --------------------------------------------------------------------------- spans
SPAN_EXECUTION: Final = "execution {name}"
"""Span name template of an execution (kind INTERNAL). Started from an
:func:`stepwatch.enqueue` carrier it links the enqueue span, and has it as
parent only when no span is current (otherwise the current span, e.g. an
engine's own consumer span, stays the parent), as the messaging conventions
ask of message processing."""
SPAN_STEP: Final = "step {name}"
"""Span name template of a step (kind INTERNAL)."""
SPAN_ENQUEUE: Final = "enqueue {name}"
"""Span name template of the short PRODUCER span :func:`stepwatch.enqueue` records.

The contract is silent on it; the producer span is what messaging conventions
do, and it is what lets an execution in another process join the producer's
trace even when nothing else was active when the work was queued."""

# ---------------------------------------------------------------------- attributes
WORKFLOW_DEFINITION_NAME: Final = "workflow.definition.name"
WORKFLOW_EXECUTION_ID: Final = "workflow.execution.id"
WORKFLOW_EXECUTION_OUTCOME: Final = "workflow.execution.outcome"
WORKFLOW_EXECUTION_STATE: Final = "workflow.execution.state"
WORKFLOW_EXECUTION_STEPS_TOTAL: Final = "workflow.execution.steps.total"
WORKFLOW_EXECUTION_STEPS_COMPLETED: Final = "workflow.execution.steps.completed"
WORKFLOW_EXECUTION_STEPS_FAILED: Final = "workflow.execution.steps.failed"
WORKFLOW_EXECUTION_QUEUE: Final = "workflow.execution.queue"
WORKFLOW_EXECUTION_SLA: Final = "workflow.execution.sla"
WORKFLOW_EXECUTION_DURATION: Final = "workflow.execution.duration"
WORKFLOW_EXECUTION_QUEUE_WAIT: Final = "workflow.execution.queue_wait"
WORKFLOW_EXECUTION_OUTCOME_REASON: Final = "workflow.execution.outcome.reason"
WORKFLOW_EXECUTION_ATTEMPT: Final = "workflow.execution.attempt"
"""1-based attempt number of an execution run (span attribute only, never on metrics)."""

WORKFLOW_TASK_NAME: Final = "workflow.task.name"
WORKFLOW_TASK_TYPE: Final = "workflow.task.type"
WORKFLOW_TASK_OUTCOME: Final = "workflow.task.outcome"
WORKFLOW_TASK_OUTCOME_REASON: Final = "workflow.task.outcome.reason"
WORKFLOW_TASK_ATTEMPT: Final = "workflow.task.attempt"
"""1-based attempt of a step name run again in one execution after it failed (span only)."""
WORKFLOW_TASK_PROGRESS: Final = "workflow.task.progress"
WORKFLOW_TASK_PROGRESS_DONE: Final = "workflow.task.progress.done"
WORKFLOW_TASK_PROGRESS_TOTAL: Final = "workflow.task.progress.total"
WORKFLOW_TASK_PROGRESS_MESSAGE: Final = "workflow.task.progress.message"

WORKFLOW_APPROVAL_OUTCOME: Final = "workflow.approval.outcome"
WORKFLOW_APPROVAL_APPROVER: Final = "workflow.approval.approver"
WORKFLOW_APPROVAL_BY: Final = "workflow.approval.by"
WORKFLOW_APPROVAL_REASON: Final = "workflow.approval.reason"

STEP_TYPE_UNSPECIFIED: Final = "unspecified"
"""Group of steps declared without a ``step_type`` in summaries (never on spans or metrics)."""

MESSAGING_DESTINATION_NAME: Final = "messaging.destination.name"
"""The queue an :func:`stepwatch.enqueue` span names, as messaging conventions spell it
(also as ``workflow.execution.queue``)."""
EXCEPTION_EVENT: Final = "exception"
"""The span event of a recorded exception (as ``Span.record_exception`` names it)."""
ERROR_TYPE_OTHER: Final = "_OTHER"
"""``error.type`` of an outcome set explicitly (``fail``/``timeout``) without an exception."""

# ---------------------------------------------------------------- carrier entries
# W3C ``traceparent``/``tracestate`` are written by the global propagator; these
# ride beside them so the consumer can measure the queue wait.
CARRIER_ENQUEUED_AT: Final = "stepwatch-enqueued-at"
CARRIER_EXECUTION_ID: Final = "stepwatch-execution-id"
CARRIER_NAME: Final = "stepwatch-definition-name"
CARRIER_QUEUE: Final = "stepwatch-queue"
CARRIER_ATTEMPT: Final = "stepwatch-attempt"
"""The attempt an enqueue was for (``enqueue(..., attempt=n)``; 1 when not given)."""
CARRIER_DUE_AT: Final = "stepwatch-due-at"
"""When scheduled work becomes due (epoch seconds; ``enqueue(..., eta=/countdown=)``):
its queue wait starts then, and until then it counts as ``scheduled``, not queued."""
CARRIER_ENQUEUE_ID: Final = "stepwatch-enqueue-id"
"""A unique id per :func:`stepwatch.enqueue` call: a process that starts the same
carrier again knows it is the next attempt of the same enqueue."""
CARRIER_HEADER: Final = "stepwatch"
"""The one message header (or metadata key) an engine integration stores the
carrier under: a nested mapping, so it never collides with the engine's own
OpenTelemetry instrumentation's ``traceparent`` in the same headers."""
CARRIER_HEADER_FALLBACK: Final = "stepwatch-carrier"
"""Where the RQ integration puts the carrier when the job's own ``meta`` uses
:data:`CARRIER_HEADER` for something else (a value without an enqueue id)."""


# ------------------------------------------------------------------------- enums
class Outcome(enum.StrEnum):
    """How an execution, step or approval-gated run ended: one taxonomy for all signals.

    A return is ``SUCCESS``; ``TimeoutError`` is ``TIMEOUT``; cancellations
    (``asyncio.CancelledError``, ``concurrent.futures.CancelledError``,
    ``KeyboardInterrupt``, ``SystemExit``, ``GeneratorExit``) are
    ``CANCELLATION``; any other exception is ``FAILURE``. ``SKIP`` is only ever
    set explicitly with :meth:`stepwatch.Step.skip`. ``RETRY`` marks an
    execution attempt that ends by being scheduled again
    (:meth:`stepwatch.Execution.retry`, or an engine's retry exception mapped
    by an integration): neither a success nor a failure, it is left out of the
    failure and timeout rates, which count final outcomes. ``LOST`` marks an
    execution whose process died while it ran (SIGKILL, the OOM killer): a
    member of its process group that outlives it ends it so, once group-wide
    (see :mod:`stepwatch.group`); it is a final outcome of that attempt.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``RETRY``.
    .. versionchanged:: 0.3.0 ``LOST``.
    """

    SUCCESS = "success"
    FAILURE = "failure"
    TIMEOUT = "timeout"
    CANCELLATION = "cancellation"
    SKIP = "skip"
    RETRY = "retry"
    LOST = "lost"


FINAL_OUTCOMES: Final = frozenset(o for o in Outcome if o is not Outcome.RETRY)
"""Outcomes that end an execution for good (every one but ``RETRY``)."""


class ExecutionState(enum.StrEnum):
    """``workflow.execution.state``: waiting in a queue, or running."""

    PENDING = "pending"
    EXECUTING = "executing"


class ApprovalOutcome(enum.StrEnum):
    """``workflow.approval.outcome`` of a finished approval wait."""

    APPROVED = "approved"
    REJECTED = "rejected"


class EventType(enum.StrEnum):
    """Lifecycle event types: in the in-process history, to subscribers, and on spans.

    .. versionadded:: 0.1.0
    """

    EXECUTION_CREATED = "execution.created"
    EXECUTION_QUEUED = "execution.queued"
    EXECUTION_STARTED = "execution.started"
    EXECUTION_COMPLETED = "execution.completed"
    EXECUTION_FAILED = "execution.failed"
    EXECUTION_CANCELLED = "execution.cancelled"
    EXECUTION_TIMEOUT = "execution.timeout"
    EXECUTION_RETRIED = "execution.retried"
    EXECUTION_LOST = "execution.lost"
    """Recorded by the process group member that found the execution's process dead.

    .. versionadded:: 0.3.0
    """
    STEP_STARTED = "step.started"
    STEP_COMPLETED = "step.completed"
    STEP_FAILED = "step.failed"
    STEP_PROGRESS = "step.progress"
    APPROVAL_REQUESTED = "approval.requested"
    APPROVAL_APPROVED = "approval.approved"
    APPROVAL_REJECTED = "approval.rejected"
    SLA_VIOLATED = "sla.violated"
    HEALTH_CHANGED = "health.changed"
    ALERT_FIRED = "alert.fired"
    ALERT_RESOLVED = "alert.resolved"
    CUSTOM = "custom"
    """An engine's own event, from :meth:`Execution.event <stepwatch.Execution.event>`.

    .. versionadded:: 0.2.0
    """


EXECUTION_END_EVENTS: Final[dict[Outcome, EventType]] = {
    Outcome.SUCCESS: EventType.EXECUTION_COMPLETED,
    Outcome.FAILURE: EventType.EXECUTION_FAILED,
    Outcome.TIMEOUT: EventType.EXECUTION_TIMEOUT,
    Outcome.CANCELLATION: EventType.EXECUTION_CANCELLED,
    Outcome.SKIP: EventType.EXECUTION_COMPLETED,
    Outcome.RETRY: EventType.EXECUTION_RETRIED,
    Outcome.LOST: EventType.EXECUTION_LOST,
}
"""The lifecycle event that ends an execution of each outcome."""

STEP_END_EVENTS: Final[dict[Outcome, EventType]] = {
    Outcome.SUCCESS: EventType.STEP_COMPLETED,
    Outcome.SKIP: EventType.STEP_COMPLETED,
    Outcome.FAILURE: EventType.STEP_FAILED,
    Outcome.TIMEOUT: EventType.STEP_FAILED,
    Outcome.CANCELLATION: EventType.STEP_FAILED,
    Outcome.RETRY: EventType.STEP_FAILED,
    Outcome.LOST: EventType.STEP_FAILED,
}
"""The lifecycle event that ends a step of each outcome (the outcome rides in its data)."""

OUTCOME_VALUES: Final[dict[Outcome, str]] = {outcome: outcome.value for outcome in Outcome}
"""Each outcome's string (``outcome.value`` without the enum property's cost, for hot paths)."""

EXECUTION_ENDED_TYPES: Final = frozenset(EXECUTION_END_EVENTS.values())
"""The event types that end an execution."""


# ------------------------------------------------------------- event payloads
# One schema per EventType: what ``ExecutionEvent.data`` holds (history, SSE,
# subscribers). Where a span event of the same type exists, its attributes are
# built from the same payload by :func:`span_event_attributes`.
class ExecutionQueuedData(TypedDict):
    """``execution.created`` and ``execution.queued``."""

    name: str
    queue: str
    attempt: int
    due_at: NotRequired[float]
    """When scheduled work becomes due (``enqueue(..., eta=/countdown=)``), epoch seconds."""


class ExecutionStartedData(TypedDict):
    """``execution.started``."""

    name: str
    attempt: int
    total_steps: NotRequired[int]
    queue_wait: NotRequired[float]
    """Seconds since its enqueue (first start of a carrier only)."""


class ExecutionEndedData(TypedDict):
    """``execution.completed``, ``.failed``, ``.timeout``, ``.cancelled``, ``.retried``, ``.lost``.

    ``.lost`` is recorded by the member of a process group that found the
    execution's process dead.
    """

    name: str
    outcome: str
    duration: float
    completed_steps: int
    failed_steps: int
    attempt: int
    reason: NotRequired[str]


class SLAViolatedData(TypedDict):
    """``sla.violated``."""

    name: str
    sla: float
    duration: float


class StepStartedData(TypedDict):
    """``step.started``."""

    step: str
    step_type: str | None
    attempt: int


class StepEndedData(TypedDict):
    """``step.completed`` and ``step.failed`` (the outcome tells which failure)."""

    step: str
    step_type: str | None
    outcome: str
    duration: float
    attempt: int
    reason: NotRequired[str]


class StepProgressData(TypedDict):
    """``step.progress``: the latest report (``None`` where never reported)."""

    step: str
    fraction: float | None
    done: int | None
    total: int | None
    message: str | None


class ApprovalRequestedData(TypedDict, total=False):
    """``approval.requested``: plus the custom attributes given, under their own keys."""

    name: str
    approver: str


class ApprovalResolvedData(TypedDict):
    """``approval.approved`` and ``approval.rejected``."""

    name: str
    outcome: str
    by: NotRequired[str]
    reason: NotRequired[str]


class CustomEventData(TypedDict):
    """``custom``: an engine's own event (``ex.event(name, **attributes)``)."""

    name: str | None
    """The execution (definition) name; ``None`` for ``monitor.emit()``."""
    event: str
    """The event's own name (also the span event's name)."""
    attributes: dict[str, Any]
    """The valid attributes given (also the span event's attributes)."""


class HealthChangedData(TypedDict):
    """``health.changed``."""

    status: str
    previous: str


class AlertData(TypedDict):
    """``alert.fired`` and ``alert.resolved``: ``Alert.to_dict()``."""

    id: str
    rule: str
    severity: str
    message: str
    labels: dict[str, str]
    value: float | None
    threshold: float | None
    state: str
    started_at: str
    resolved_at: str | None


EVENT_DATA: Final[dict[EventType, type]] = {
    EventType.EXECUTION_CREATED: ExecutionQueuedData,
    EventType.EXECUTION_QUEUED: ExecutionQueuedData,
    EventType.EXECUTION_STARTED: ExecutionStartedData,
    **dict.fromkeys(EXECUTION_ENDED_TYPES, ExecutionEndedData),
    EventType.STEP_STARTED: StepStartedData,
    EventType.STEP_COMPLETED: StepEndedData,
    EventType.STEP_FAILED: StepEndedData,
    EventType.STEP_PROGRESS: StepProgressData,
    EventType.APPROVAL_REQUESTED: ApprovalRequestedData,
    EventType.APPROVAL_APPROVED: ApprovalResolvedData,
    EventType.APPROVAL_REJECTED: ApprovalResolvedData,
    EventType.SLA_VIOLATED: SLAViolatedData,
    EventType.HEALTH_CHANGED: HealthChangedData,
    EventType.ALERT_FIRED: AlertData,
    EventType.ALERT_RESOLVED: AlertData,
    EventType.CUSTOM: CustomEventData,
}
"""The payload schema of every event type."""

_ON_SPAN_ELSEWHERE: Final = {"name": None, "attempt": None, "total_steps": None}
_EXECUTION_END_SPAN: Final = {
    **_ON_SPAN_ELSEWHERE,
    "outcome": WORKFLOW_EXECUTION_OUTCOME,
    "reason": WORKFLOW_EXECUTION_OUTCOME_REASON,
    "duration": None,
    "completed_steps": None,
    "failed_steps": None,
}
_APPROVAL_SPAN: Final = {
    "name": None,
    "outcome": WORKFLOW_APPROVAL_OUTCOME,
    "approver": WORKFLOW_APPROVAL_APPROVER,
    "by": WORKFLOW_APPROVAL_BY,
    "reason": WORKFLOW_APPROVAL_REASON,
}
SPAN_EVENT_KEYS: Final[dict[EventType, Mapping[str, str | None]]] = {
    EventType.EXECUTION_CREATED: {"name": None, "queue": None, "attempt": None, "due_at": None},
    EventType.EXECUTION_QUEUED: {"name": None, "queue": None, "attempt": None, "due_at": None},
    EventType.EXECUTION_STARTED: {
        **_ON_SPAN_ELSEWHERE,
        "queue_wait": WORKFLOW_EXECUTION_QUEUE_WAIT,
    },
    **dict.fromkeys(EXECUTION_ENDED_TYPES, _EXECUTION_END_SPAN),
    EventType.SLA_VIOLATED: {
        "name": None,
        "sla": WORKFLOW_EXECUTION_SLA,
        "duration": WORKFLOW_EXECUTION_DURATION,
    },
    EventType.STEP_PROGRESS: {
        "step": None,
        "fraction": WORKFLOW_TASK_PROGRESS,
        "done": WORKFLOW_TASK_PROGRESS_DONE,
        "total": WORKFLOW_TASK_PROGRESS_TOTAL,
        "message": WORKFLOW_TASK_PROGRESS_MESSAGE,
    },
    EventType.APPROVAL_REQUESTED: _APPROVAL_SPAN,
    EventType.APPROVAL_APPROVED: _APPROVAL_SPAN,
    EventType.APPROVAL_REJECTED: _APPROVAL_SPAN,
}
"""Payload key -> span event attribute for the events that are also span events
(``None``: on the span itself, not repeated on the event). Keys not listed (an
approval request's custom attributes) keep their own name."""


def span_event_attributes(event_type: EventType, data: Mapping[str, Any]) -> dict[str, Any]:
    """The attributes of the span event ``event_type`` built from its payload ``data``.

    ``None`` values are left out (OpenTelemetry attributes cannot be null).
    """
    names = SPAN_EVENT_KEYS.get(event_type, {})
    result: dict[str, Any] = {}
    for key, value in data.items():
        attribute = names.get(key, key)
        if attribute is not None and value is not None:
            result[attribute] = value
    return result


class HealthStatus(enum.StrEnum):
    """Overall or per-component health.

    ``UNHEALTHY`` when a critical alert fires or a critical component fails,
    ``DEGRADED`` on any warning, else ``HEALTHY``. Over HTTP: pass / warn / fail.

    .. versionadded:: 0.1.0
    """

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"


class Severity(enum.StrEnum):
    """Alert severity: ``CRITICAL`` makes the process unhealthy, ``WARNING`` degraded.

    .. versionadded:: 0.1.0
    """

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class AlertState(enum.StrEnum):
    """Alert lifecycle state: ``FIRING`` until the condition clears, then ``RESOLVED``."""

    FIRING = "firing"
    RESOLVED = "resolved"


# ----------------------------------------------------------------------- metrics
@dataclass(frozen=True, slots=True)
class MetricSpec:
    """Name, unit and description of one metric instrument."""

    name: str
    unit: str
    description: str


EXECUTION_DURATION: Final = MetricSpec(
    "workflow.execution.duration",
    "s",
    "Duration of workflow executions: queue wait (state=pending) and run (state=executing).",
)
EXECUTION_ACTIVE: Final = MetricSpec(
    "workflow.execution.active",
    "{execution}",
    "Executions currently queued (state=pending) or running (state=executing).",
)
TASK_DURATION: Final = MetricSpec(
    "workflow.task.duration",
    "s",
    "Duration of workflow steps (tasks).",
)
SLA_VIOLATIONS: Final = MetricSpec(
    "workflow.execution.sla.violations",
    "{violation}",
    "Executions that ran longer than their SLA.",
)
APPROVAL_DURATION: Final = MetricSpec(
    "workflow.approval.duration",
    "s",
    "Time from an approval request to its approval or rejection.",
)

QUEUE_DEPTH: Final = MetricSpec(
    "workflow.execution.queue.depth",
    "{execution}",
    "Executions waiting in a broker's queue, as read by monitor.observe_queue_depth callbacks.",
)

RULE_HIGH_FAILURE_RATE: Final = "HighFailureRate"
RULE_HIGH_TIMEOUT_RATE: Final = "HighTimeoutRate"
RULE_QUEUE_BACKLOG: Final = "QueueBacklog"
RULE_STUCK_EXECUTIONS: Final = "StuckExecutions"
RULE_SLA_BURN_RATE: Final = "SLABurnRate"
RULE_COMPONENT_DOWN: Final = "ComponentDown"
RULE_TELEMETRY_EXPORT_FAILING: Final = "TelemetryExportFailing"
RULE_EXECUTIONS_LOST: Final = "ExecutionsLost"
"""Warning: executions were lost (their process died while they ran) in the rules window."""
RULE_NAMES: Final = (
    RULE_HIGH_FAILURE_RATE,
    RULE_HIGH_TIMEOUT_RATE,
    RULE_QUEUE_BACKLOG,
    RULE_STUCK_EXECUTIONS,
    RULE_SLA_BURN_RATE,
    RULE_COMPONENT_DOWN,
    RULE_TELEMETRY_EXPORT_FAILING,
    RULE_EXECUTIONS_LOST,
)
"""The built-in alert rule names: stable, and the same in the Prometheus export."""

DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0,
)  # fmt: skip
"""Advisory explicit bucket boundaries (seconds) for the duration histograms.

Workflow steps range from milliseconds to an hour; the SDK's default
boundaries are tuned for milliseconds and would put every execution into
the last bucket."""

EXECUTION_METRIC_ATTRIBUTES: Final = frozenset(
    {WORKFLOW_DEFINITION_NAME, WORKFLOW_EXECUTION_STATE, WORKFLOW_EXECUTION_OUTCOME, ERROR_TYPE}
)
"""The only attribute keys ``workflow.execution.*`` metrics carry."""
STEP_METRIC_ATTRIBUTES: Final = frozenset(
    {WORKFLOW_DEFINITION_NAME, WORKFLOW_TASK_TYPE, WORKFLOW_TASK_OUTCOME, ERROR_TYPE}
)
"""The only attribute keys ``workflow.task.duration`` carries."""
APPROVAL_METRIC_ATTRIBUTES: Final = frozenset({WORKFLOW_DEFINITION_NAME, WORKFLOW_APPROVAL_OUTCOME})
"""The only attribute keys ``workflow.approval.duration`` carries."""
