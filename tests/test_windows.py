"""The health windows' direct feed: the same answers as the 0.1 SDK reader, and nothing on the host.

The instrument layer feeds ``monitor.reader`` (a ``HealthWindows``) with the
values it records on its OpenTelemetry instruments. These tests record one
workload through both paths (the direct feed, and the 0.1
``HealthMetricReader`` collecting the same instruments from the SDK) and
require identical ``summary()``, health and alerts; and they check the
histogram bucketing against the SDK's own exponential histogram.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import metrics
from opentelemetry.sdk.metrics import Histogram as SdkHistogram
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ExponentialHistogramDataPoint,
    InMemoryMetricReader,
    MetricReader,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation
from opentelemetry.sdk.trace import TracerProvider

import stepwatch
from stepwatch import semconv, testing
from stepwatch.events import EventBus
from stepwatch.health import HealthEvaluator, Rules
from stepwatch.progress import ProgressTracker
from stepwatch.reader import HealthMetricReader
from stepwatch.summary import summarize
from stepwatch.testing import FakeClock, Harness
from stepwatch.windows import HealthWindows, Windows, histogram_of


# ------------------------------------------------------------- same as the SDK
def _sdk_histogram(values: list[float]) -> ExponentialHistogramDataPoint:
    reader = InMemoryMetricReader(
        preferred_temporality={SdkHistogram: AggregationTemporality.DELTA},
        preferred_aggregation={SdkHistogram: ExponentialBucketHistogramAggregation()},
    )
    provider = MeterProvider(metric_readers=[reader])
    histogram = provider.get_meter("t").create_histogram("h")
    for value in values:
        histogram.record(value)
    data = reader.get_metrics_data()
    assert data is not None
    point = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]
    assert isinstance(point, ExponentialHistogramDataPoint)
    provider.shutdown()
    return point


_DURATIONS = st.one_of(
    st.floats(min_value=1e-6, max_value=1e5, allow_nan=False),
    st.sampled_from([0.0, 0.5, 1.0, 2.0, 4.0, 0.25, 1024.0, 3.0]),  # zeros, powers of two
)


@settings(max_examples=60, deadline=None)
@given(values=st.lists(_DURATIONS, min_size=1, max_size=300))
def test_buckets_match_the_sdks_exponential_histogram(values: list[float]) -> None:
    point = _sdk_histogram(values)
    mine = histogram_of(values)
    counts = list(point.positive.bucket_counts)
    offset = point.positive.offset
    while counts and counts[0] == 0:
        counts, offset = counts[1:], offset + 1
    while counts and counts[-1] == 0:
        counts.pop()
    assert (mine.count, mine.zero_count) == (point.count, point.zero_count)
    assert (mine.min, mine.max) == (point.min, point.max)
    if counts:
        assert (mine.scale, mine.offset, list(mine.counts)) == (point.scale, offset, counts)


# ---------------------------------------------------- one workload, two paths
OUTCOMES = ("success", "success", "failure", "timeout", "success", "cancellation")


def _workload(clock: FakeClock, collect: HealthMetricReader) -> None:
    """Executions of three names over 12 slots; values are multiples of 1/8 (exact sums).

    The 0.1 reader times a value by the collection that picks it up, the direct
    feed by when it was recorded: each slot's work stays inside its slot so
    both time it alike.
    """
    for slot in range(12):
        for index in range(9):
            name = f"flow-{index % 3}"
            outcome = OUTCOMES[(slot + index) % len(OUTCOMES)]
            with stepwatch.execution(name, sla=0.5) as ex:
                for step in range(2):
                    with ex.step(f"s{step}", step_type=("io", "cpu")[step]):
                        clock.advance(0.125 * (1 + (slot * index + step) % 4))
                if outcome != "success":
                    getattr(ex, {"failure": "fail", "timeout": "timeout"}.get(outcome, "cancel"))(
                        "scripted"
                    )
        with stepwatch.execution("never-ends-here"):
            pass
        # The 0.1 reader's collection, in the 10 s slot the values were recorded in
        # (the slot's work takes at most 9 s), then on to the next slot.
        collect.refresh()
        clock.advance(10 - clock() % 10)


@pytest.fixture
def two_paths() -> Iterator[tuple[stepwatch.Monitor, HealthMetricReader, FakeClock]]:
    clock = FakeClock()
    old = HealthMetricReader(clock)
    meter_provider = MeterProvider(metric_readers=[old])
    monitor = stepwatch.Monitor(
        tracer_provider=TracerProvider(), meter_provider=meter_provider, clock=clock
    )
    monitor.install()
    try:
        yield monitor, old, clock
    finally:
        monitor.shutdown()
        meter_provider.shutdown()


QUANTILES = ("p50", "p95", "p99", "relative_error")


def _exact(summary: dict[str, Any]) -> dict[str, Any]:
    """Everything but the quantile estimates (and their error bound)."""
    result = dict(summary)
    for key in ("duration", "queue_wait"):
        result[key] = {k: v for k, v in summary[key].items() if k not in QUANTILES}
    result["steps"] = {
        step_type: {
            **stats,
            "duration": {k: v for k, v in stats["duration"].items() if k not in QUANTILES},
        }
        for step_type, stats in summary["steps"].items()
    }
    return result


def _quantiles_agree(direct: dict[str, Any], reference: dict[str, Any]) -> None:
    """Both estimates lie within their own error bound of the same true value.

    The SDK keeps a series' scale from one delta collection to the next (it
    only ever lowers it), so the 0.1 reader's histograms are often coarser;
    the direct feed picks the finest scale that fits each slot. So estimates
    may differ, by at most the sum of the two bounds, and the direct feed's
    bound is never the wider one.
    """
    stats = [(direct["duration"], reference["duration"])] + [
        (direct["steps"][t]["duration"], reference["steps"][t]["duration"]) for t in direct["steps"]
    ]
    for mine, theirs in stats:
        if mine["count"] == 0:
            continue
        assert mine["relative_error"] <= theirs["relative_error"] + 1e-12
        bound = mine["relative_error"] + theirs["relative_error"]
        for q in ("p50", "p95", "p99"):
            if mine[q] is None or theirs[q] is None:
                assert mine[q] == theirs[q]
                continue
            assert abs(mine[q] - theirs[q]) <= bound * max(mine[q], theirs[q]) + 1e-12


def _health(windows: Windows, monitor: stepwatch.Monitor, clock: FakeClock) -> dict[str, object]:
    rules = Rules(min_executions=5, failure_rate=0.1, timeout_rate=0.1)
    evaluator = HealthEvaluator(rules, windows, ProgressTracker(clock), EventBus(clock), clock)
    health = evaluator.health(refresh=True)
    return {
        "status": health.status,
        "alerts": [
            (a.rule, a.labels, a.value, a.threshold, a.message, a.severity)
            for a in evaluator.alerts(limit=1_000)
        ],
    }


def test_summary_health_and_alerts_match_the_01_reader(
    two_paths: tuple[stepwatch.Monitor, HealthMetricReader, FakeClock],
) -> None:
    monitor, old, clock = two_paths
    _workload(clock, old)
    new = monitor.reader
    assert isinstance(new, HealthWindows)
    compared = 0
    for window in (10.0, 60.0, 300.0):
        for name in (None, "flow-0", "flow-2"):
            direct = summarize(new, window, name, None).to_dict()
            reference = summarize(old, window, name, None).to_dict()
            assert _exact(direct) == _exact(reference), (window, name)
            _quantiles_agree(direct, reference)
            compared += direct["total"]
    assert compared > 0
    assert _exact(monitor.summary(60).to_dict()) == _exact(summarize(old, 60, None, None).to_dict())
    direct_health = _health(new, monitor, clock)
    assert direct_health == _health(old, monitor, clock)
    assert direct_health["alerts"], "the workload is meant to fire the rate rules"


def test_values_are_timed_when_recorded_not_when_read() -> None:
    clock = FakeClock()
    windows = HealthWindows(clock)
    attributes = {
        "workflow.definition.name": "late",
        "workflow.execution.state": "executing",
        "workflow.execution.outcome": "success",
    }
    windows.observe(semconv.EXECUTION_DURATION.name, 1.0, attributes)
    clock.advance(1_000)  # nobody read in between
    windows.observe(semconv.EXECUTION_DURATION.name, 2.0, attributes)
    counts = windows.counts(semconv.EXECUTION_DURATION.name, 60)
    assert sum(counts.values()) == 1  # the first value left the window long ago
    assert windows.histogram(semconv.EXECUTION_DURATION.name).max == 2.0


def test_the_windows_need_no_meter_provider_and_attach_to_none() -> None:
    # Nothing of the Monitor's sits on a MeterProvider: the windows are no
    # MetricReader, and they fill with no SDK meter provider at all.
    monitor = stepwatch.Monitor(
        tracer_provider=TracerProvider(), meter_provider=metrics.NoOpMeterProvider()
    )
    assert not isinstance(monitor.reader, MetricReader)
    monitor.install()
    try:
        with stepwatch.execution("x"), stepwatch.step("s", step_type="io"):
            pass
        summary = monitor.summary()
        assert (summary.total, summary.steps["io"].total) == (1, 1)
    finally:
        monitor.shutdown()


def test_pending_values_fold_in_chunks_exactly() -> None:
    clock = FakeClock()
    windows = HealthWindows(clock)
    attributes = {"workflow.task.type": "io", "workflow.task.outcome": "success"}
    values = [0.001 * (1.07**i) for i in range(1_000)]  # many chunks of pending values
    for value in values:
        windows.observe(semconv.TASK_DURATION.name, value, attributes)
    merged = windows.histogram(semconv.TASK_DURATION.name, detail="io")
    whole = histogram_of(values)
    assert (merged.count, merged.scale, merged.offset, merged.counts) == (
        whole.count,
        whole.scale,
        whole.offset,
        whole.counts,
    )
    assert math.isclose(merged.sum, sum(values))


@pytest.mark.internal_errors
def test_a_failing_window_feed_never_stops_an_ending(sw: Harness) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("windows bug")

    sw.monitor.reader.observe = broken  # type: ignore[method-assign,assignment]
    with stepwatch.execution("e", execution_id="e-1") as ex, ex.step("s"):
        pass
    progress = sw.monitor.progress("e-1")
    assert progress is not None
    assert (progress.state, progress.completed_steps) == ("success", 1)
    assert testing.internal_errors()["windows.observe"] == 2  # the step and the execution


def test_a_wall_clock_stepped_back_neither_recounts_nor_misplaces_values() -> None:
    """Windows time values on a steady clock: after a 1 h step back, 60 s hold 60 s of runs."""
    import stepwatch
    from stepwatch.testing import capture

    with capture() as sw:
        for index in range(3_000):
            with stepwatch.execution("job", execution_id=f"before-{index}"):
                sw.clock.advance(0.01)
        sw.clock.advance(100.0)  # the first 3,000 leave the last minute
        sw.clock.set(sw.clock() - 3_600.0)  # the wall clock steps back an hour
        for index in range(3_000):
            with stepwatch.execution("job", execution_id=f"after-{index}"):
                sw.clock.advance(0.01)
        assert sw.monitor.summary(60).outcomes["success"] == 3_000
        assert sw.monitor.summary(300).outcomes["success"] == 6_000


def test_a_steady_clock_read_in_a_forked_child_never_waits_on_a_parents_lock() -> None:
    """A recording thread may hold the clock's lock at fork time: the child reads all the same."""
    import os
    import signal
    import time

    from stepwatch._clock import SteadyClock

    clock = SteadyClock()
    with clock._lock:  # held, as by a parent's thread in the middle of a reading
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            clock()
            os._exit(0)
    deadline = time.monotonic() + 30.0
    status = None
    while time.monotonic() < deadline:
        done, raw = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(raw)
            break
        time.sleep(0.01)  # polling a child's exit: no event to wait on across fork
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert status == 0
