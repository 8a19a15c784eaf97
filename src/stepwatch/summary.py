"""``monitor.summary()``: rates, durations and SLA compliance over a sliding window.

Usage::

    s = monitor.summary(60)                 # the last minute, every execution name
    s.failure_rate, s.duration.p95, s.steps["http"].duration.p99
    monitor.summary(name="deploy").to_dict()

Figures come from the :class:`~stepwatch.windows.HealthWindows`, i.e.
from stepwatch's own OpenTelemetry metrics. Quantiles are nearest-rank
estimates from exponential histograms, within ``relative_error`` of the true
value; they are withheld (``None``) below :data:`QUANTILE_MIN_SAMPLES`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from stepwatch import semconv
from stepwatch._histogram import ExpHistogram
from stepwatch._models import json_ready
from stepwatch.semconv import ExecutionState, Outcome
from stepwatch.windows import Attributes, Windows

__all__ = [
    "QUANTILE_MIN_SAMPLES",
    "DurationStats",
    "MetricsSummary",
    "SLAStats",
    "StepStats",
    "execution_outcomes",
    "summarize",
]

QUANTILE_MIN_SAMPLES = {"p50": 1, "p95": 20, "p99": 100}
"""Fewest observations for which each quantile is reported (below, ``None``)."""


@dataclass(frozen=True, slots=True)
class DurationStats:
    """Duration statistics in seconds.

    Attributes:
        count: Observations.
        avg: Mean (exact), ``None`` when empty.
        min: Smallest (exact), ``None`` when empty.
        max: Largest (exact), ``None`` when empty.
        p50: Median estimate, ``None`` below its minimum sample count.
        p95: 95th percentile estimate, ``None`` below 20 observations.
        p99: 99th percentile estimate, ``None`` below 100 observations.
        relative_error: Bound on the quantiles' relative error.

    .. versionadded:: 0.1.0
    """

    count: int = 0
    avg: float | None = None
    min: float | None = None
    max: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    relative_error: float = 0.0

    @classmethod
    def from_histogram(cls, histogram: ExpHistogram) -> DurationStats:
        """Summarize a merged exponential histogram."""
        count = histogram.count
        if count == 0:
            return cls()

        def quantile(label: str, q: float) -> float | None:
            return histogram.quantile(q) if count >= QUANTILE_MIN_SAMPLES[label] else None

        return cls(
            count=count,
            avg=histogram.sum / count,
            min=histogram.min,
            max=histogram.max,
            p50=quantile("p50", 0.50),
            p95=quantile("p95", 0.95),
            p99=quantile("p99", 0.99),
            relative_error=histogram.relative_error,
        )

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready values."""
        result: dict[str, Any] = json_ready(self)
        return result


@dataclass(frozen=True, slots=True)
class StepStats:
    """Steps of one step type in the window.

    Attributes:
        total: Steps that ended.
        outcomes: Counts by outcome value.
        failure_rate: Share that did not succeed or skip (0-1), ``None`` when none ended.
        duration: Their durations.
    """

    total: int
    outcomes: dict[str, int]
    failure_rate: float | None
    duration: DurationStats

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready values."""
        result: dict[str, Any] = json_ready(self)
        return result


@dataclass(frozen=True, slots=True)
class SLAStats:
    """SLA violations in the window.

    Attributes:
        violations: Executions that outlasted their SLA.
        compliance: ``1 - violations / executions`` (0-1), ``None`` when none ended.
    """

    violations: int
    compliance: float | None

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready values."""
        result: dict[str, Any] = json_ready(self)
        return result


@dataclass(frozen=True, slots=True)
class MetricsSummary:
    """What happened over a sliding window.

    Attributes:
        window: The window in seconds.
        name: The execution name it is limited to, or ``None`` for all.
        total: Execution attempts that ended in the window (retried ones
            included): the same as ``attempts``, kept for 0.2 readers.
        outcomes: Counts by outcome value (every outcome present, zeros included).
        success_rate: Ratio 0-1 of final outcomes (attempts that were not
            retried), ``None`` when there is none (likewise the next three).
        failure_rate: Ratio 0-1 of final outcomes.
        timeout_rate: Ratio 0-1 of final outcomes.
        cancellation_rate: Ratio 0-1 of final outcomes.
        duration: Run durations of executions that ended.
        queue_wait: Queue waits of executions that started.
        steps: Per step type (steps without one under ``"unspecified"``).
        sla: SLA violations and compliance.
        active_executions: Executions running now.
        queue_depth: Executions queued and ready now (from ``observe_queue_depth``
            callbacks when any, else ``workflow.execution.active{state=pending}``
            less ``scheduled``).
        retry_rate: Ratio 0-1 of the attempts that ended by being scheduled
            again (``retry``), ``None`` when ``total`` is 0.
        executions: Executions that reached a final outcome in the window
            (attempts that were not retried): what the rates divide by.
        attempts: Attempts that ended in the window, retried ones included.
        lost_rate: Ratio 0-1 of final outcomes that are ``lost`` (the
            execution's process died while it ran; see :mod:`stepwatch.group`).
        scheduled: Executions enqueued for later (``enqueue(..., eta=/countdown=)``)
            and not due yet: not backlog, so not in ``queue_depth``.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``retry_rate``; the other rates count final outcomes only.
    .. versionchanged:: 0.3.0 ``executions``, ``attempts``, ``lost_rate``, ``scheduled``.
    """

    window: float
    name: str | None
    total: int
    outcomes: dict[str, int]
    success_rate: float | None
    failure_rate: float | None
    timeout_rate: float | None
    cancellation_rate: float | None
    duration: DurationStats
    queue_wait: DurationStats
    steps: dict[str, StepStats] = field(default_factory=dict)
    sla: SLAStats = field(default_factory=lambda: SLAStats(0, None))
    active_executions: int = 0
    queue_depth: int = 0
    retry_rate: float | None = None
    executions: int = 0
    attempts: int = 0
    lost_rate: float | None = None
    scheduled: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready values."""
        result: dict[str, Any] = json_ready(self)
        return result


def _matches(attributes: Attributes, name: str | None) -> dict[str, Any] | None:
    values = dict(attributes)
    if name is not None and values.get(semconv.WORKFLOW_DEFINITION_NAME) != name:
        return None
    return values


def execution_outcomes(
    reader: Windows, window: float | None = None, *, long: bool = False
) -> dict[str, dict[str, float]]:
    """Ended executions per name and outcome over the last ``window`` seconds.

    Read from ``workflow.execution.duration`` in state ``executing`` (the
    ``pending`` series are queue waits). ``long`` reads the coarse slots.
    The one place ``summary()`` and the rate and burn-rate rules count outcomes.
    """
    result: dict[str, dict[str, float]] = {}
    metric = semconv.EXECUTION_DURATION.name
    for attributes, count in reader.counts(metric, window, long=long).items():
        values = dict(attributes)
        if values.get(semconv.WORKFLOW_EXECUTION_STATE) != ExecutionState.EXECUTING.value:
            continue
        name = str(values.get(semconv.WORKFLOW_DEFINITION_NAME, ""))
        outcome = str(values.get(semconv.WORKFLOW_EXECUTION_OUTCOME, Outcome.FAILURE.value))
        by_outcome = result.setdefault(name, {})
        by_outcome[outcome] = by_outcome.get(outcome, 0.0) + count
    return result


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def summarize(
    reader: Windows,
    window: float,
    name: str | None,
    queue_depth: float | None,
    scheduled: int = 0,
) -> MetricsSummary:
    """Compute a :class:`MetricsSummary` from the reader (already refreshed by the caller).

    ``queue_depth`` is the brokers' (ready work) when observed; ``scheduled``
    the work enqueued for later and not due yet, which the pending level
    includes and ``queue_depth`` does not.
    """
    outcomes = {outcome.value: 0 for outcome in Outcome}
    for execution_name, counts in execution_outcomes(reader, window).items():
        if name is None or execution_name == name:
            for outcome, count in counts.items():
                outcomes[outcome] = outcomes.get(outcome, 0) + round(count)
    total = sum(outcomes.values())
    retries = outcomes[Outcome.RETRY.value]
    final = total - retries

    step_outcomes: dict[str, dict[str, int]] = {}
    for attributes, count in reader.counts(semconv.TASK_DURATION.name, window).items():
        values = _matches(attributes, name)
        if values is None:
            continue
        step_type = str(values.get(semconv.WORKFLOW_TASK_TYPE, semconv.STEP_TYPE_UNSPECIFIED))
        outcome = str(values.get(semconv.WORKFLOW_TASK_OUTCOME, Outcome.FAILURE.value))
        by_outcome = step_outcomes.setdefault(step_type, {})
        by_outcome[outcome] = by_outcome.get(outcome, 0) + round(count)
    steps: dict[str, StepStats] = {}
    for step_type, by_outcome in sorted(step_outcomes.items()):
        ended = sum(by_outcome.values())
        good = by_outcome.get(Outcome.SUCCESS.value, 0) + by_outcome.get(Outcome.SKIP.value, 0)
        steps[step_type] = StepStats(
            total=ended,
            outcomes=by_outcome,
            failure_rate=_ratio(ended - good, ended),
            duration=DurationStats.from_histogram(
                reader.histogram(semconv.TASK_DURATION.name, window, name=name, detail=step_type)
            ),
        )

    violations = 0
    for attributes, count in reader.counts(semconv.SLA_VIOLATIONS.name, window).items():
        if _matches(attributes, name) is not None:
            violations += round(count)

    active = 0.0
    pending = 0.0
    for attributes, value in reader.levels(semconv.EXECUTION_ACTIVE.name).items():
        values = _matches(attributes, name)
        if values is None:
            continue
        if values.get(semconv.WORKFLOW_EXECUTION_STATE) == ExecutionState.PENDING.value:
            pending += value
        else:
            active += value
    depth = queue_depth if queue_depth is not None else pending - scheduled

    return MetricsSummary(
        window=window,
        name=name,
        total=total,
        outcomes=outcomes,
        success_rate=_ratio(outcomes[Outcome.SUCCESS.value], final),
        failure_rate=_ratio(outcomes[Outcome.FAILURE.value], final),
        timeout_rate=_ratio(outcomes[Outcome.TIMEOUT.value], final),
        cancellation_rate=_ratio(outcomes[Outcome.CANCELLATION.value], final),
        duration=DurationStats.from_histogram(
            reader.histogram(
                semconv.EXECUTION_DURATION.name,
                window,
                name=name,
                detail=ExecutionState.EXECUTING.value,
            )
        ),
        queue_wait=DurationStats.from_histogram(
            reader.histogram(
                semconv.EXECUTION_DURATION.name,
                window,
                name=name,
                detail=ExecutionState.PENDING.value,
            )
        ),
        steps=steps,
        sla=SLAStats(violations, None if total == 0 else max(0.0, 1 - violations / total)),
        active_executions=max(0, round(active)),
        queue_depth=max(0, math.floor(depth)),
        retry_rate=_ratio(retries, total),
        executions=final,
        attempts=total,
        lost_rate=_ratio(outcomes[Outcome.LOST.value], final),
        scheduled=scheduled,
    )
