"""HealthMetricReader: quantile accuracy, windows, bounds, and summary()."""

from __future__ import annotations

import math
import random

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import stepwatch
from stepwatch import semconv
from stepwatch._histogram import ExpHistogram
from stepwatch.reader import HealthMetricReader
from stepwatch.testing import Harness, capture


def _nearest_rank(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def _distributions() -> dict[str, list[float]]:
    rng = random.Random(20261129)
    return {
        "uniform": [rng.uniform(0.001, 10.0) for _ in range(10_000)],
        "lognormal": [rng.lognormvariate(0.0, 1.5) for _ in range(10_000)],
        "bimodal": [
            rng.gauss(0.05, 0.005) if rng.random() < 0.7 else rng.gauss(30.0, 3.0)
            for _ in range(10_000)
        ],
    }


@pytest.mark.parametrize("kind", ["uniform", "lognormal", "bimodal"])
def test_quantiles_within_reported_relative_error(sw: Harness, kind: str) -> None:
    samples = [abs(v) for v in _distributions()[kind]]
    # The windows' direct feed, as the instrument layer uses it. Spread over ten
    # fine slots, so merging across slots and scales is part of what is checked.
    attributes = {"workflow.task.type": kind, "workflow.task.outcome": "success"}
    for chunk in range(10):
        for value in samples[chunk * 1_000 : (chunk + 1) * 1_000]:
            sw.monitor.reader.observe(semconv.TASK_DURATION.name, value, attributes)
        sw.clock.advance(10)
    stats = sw.monitor.summary().steps[kind].duration
    assert stats.count == 10_000
    assert stats.avg == pytest.approx(sum(samples) / len(samples))
    assert stats.min == pytest.approx(min(samples))
    assert stats.max == pytest.approx(max(samples))
    assert 0 < stats.relative_error < 0.05
    for label, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        estimate = getattr(stats, label)
        exact = _nearest_rank(samples, q)
        assert estimate is not None
        assert abs(estimate - exact) <= stats.relative_error * exact + 1e-12, (
            label,
            estimate,
            exact,
        )


def test_quantiles_withheld_below_minimum_samples(sw: Harness) -> None:
    for _ in range(19):
        with stepwatch.execution("few"):
            sw.clock.advance(1)
    stats = sw.monitor.summary().duration
    assert stats.count == 19
    assert stats.p50 == pytest.approx(1.0, rel=stats.relative_error)
    assert stats.p95 is None
    assert stats.p99 is None


def test_merge_is_exact_across_scales() -> None:
    fine = ExpHistogram(count=3, sum=6.0, min=1.0, max=3.0, scale=4, offset=0, counts=(1, 0, 2))
    coarse = ExpHistogram(count=1, sum=5.0, min=5.0, max=5.0, scale=2, offset=9, counts=(1,))
    merged = ExpHistogram()
    merged.merge(fine)
    merged.merge(coarse)
    assert (merged.scale, merged.count, merged.sum) == (2, 4, 11.0)
    # Indexes 0 and 2 at scale 4 both map to index 0 at scale 2.
    assert merged.offset == 0
    assert merged.counts[0] == 3
    assert merged.counts[9] == 1
    assert sum(merged.counts) == 4


def test_merge_keeps_bucket_count_bounded() -> None:
    wide = ExpHistogram()
    for offset in (-5_000, 0, 5_000):
        wide.merge(
            ExpHistogram(count=1, sum=1.0, min=1.0, max=1.0, scale=20, offset=offset, counts=(1,))
        )
    assert len(wide.counts) <= 160
    assert sum(wide.counts) == 3


def test_failures_fall_out_of_the_window(sw: Harness) -> None:
    for i in range(10):
        with pytest.raises(ValueError, match="x"), stepwatch.execution("w", execution_id=f"w{i}"):
            raise ValueError("x")
    assert sw.monitor.summary().outcomes["failure"] == 10
    sw.clock.advance(120)
    for i in range(5):
        with stepwatch.execution("w", execution_id=f"ok{i}"):
            pass
    summary = sw.monitor.summary()
    assert (summary.total, summary.outcomes["failure"]) == (15, 10)
    assert sw.monitor.summary(60).outcomes["failure"] == 0
    sw.clock.advance(250)
    summary = sw.monitor.summary()
    assert (summary.total, summary.outcomes["failure"], summary.outcomes["success"]) == (5, 0, 5)
    sw.clock.advance(301)
    assert sw.monitor.summary().total == 0
    assert sw.monitor.summary().success_rate is None


def test_summary_contents(sw: Harness) -> None:
    carrier = stepwatch.enqueue("job", execution_id="q1")
    sw.clock.advance(2)
    with stepwatch.execution("job", carrier=carrier, sla=1.0) as ex:
        with ex.step("fetch", step_type="http"):
            sw.clock.advance(1.5)
        with pytest.raises(TimeoutError), ex.step("slow", step_type="http"):
            raise TimeoutError
        with ex.step("plain"):
            pass
    with stepwatch.execution("other"), stepwatch.step("x", step_type="db"):
        pass
    stepwatch.enqueue("job", execution_id="q2")
    summary = sw.monitor.summary()
    assert summary.total == 2
    assert summary.outcomes == {
        "success": 2,
        "failure": 0,
        "timeout": 0,
        "cancellation": 0,
        "skip": 0,
        "retry": 0,
        "lost": 0,
    }
    assert summary.success_rate == 1.0
    assert summary.queue_wait.count == 1
    assert summary.queue_wait.avg == pytest.approx(2.0)
    assert set(summary.steps) == {"http", "db", "unspecified"}
    assert summary.steps["http"].outcomes == {"success": 1, "timeout": 1}
    assert summary.steps["http"].failure_rate == 0.5
    assert summary.sla.violations == 1
    assert summary.sla.compliance == 0.5
    assert summary.queue_depth == 1
    assert summary.active_executions == 0
    only_job = sw.monitor.summary(name="job")
    assert only_job.total == 1
    assert set(only_job.steps) == {"http", "unspecified"}
    encoded = summary.to_dict()
    assert encoded["steps"]["http"]["duration"]["count"] == 2


def test_active_executions_and_observed_queue_depth(sw: Harness) -> None:
    sw.monitor.observe_queue_depth(lambda: 42, queue="broker")
    with stepwatch.execution("running"):
        summary = sw.monitor.summary()
        assert summary.active_executions == 1
        assert summary.queue_depth == 42
    points = sw.metric_points("workflow.execution.queue.depth")
    assert [(p.attributes, p.value) for p in points] == [
        ({"workflow.execution.queue": "broker"}, 42)
    ]


def test_summary_validates_window(sw: Harness) -> None:
    with pytest.raises(ValueError, match="window"):
        sw.monitor.summary(0)
    assert sw.monitor.summary(10_000).window == 10_000  # beyond the rules window: day slots
    with pytest.raises(ValueError, match="window"):
        sw.monitor.summary(86_401)
    with pytest.raises(TypeError, match="window"):
        sw.monitor.summary("60")  # type: ignore[arg-type]


def test_ten_thousand_names_stay_within_the_series_cap(sw: Harness) -> None:
    reader = sw.monitor.reader
    for n in range(10_000):
        with stepwatch.execution(f"name-{n}"):
            pass
        if n % 1_000 == 999:
            reader.refresh()
    sizes = reader.sizes()
    assert sizes["series"] <= reader.max_series
    assert sizes["groups"] <= reader.max_series + 4
    assert reader.overflowed > 0
    assert sw.monitor.summary().total == 10_000  # nothing lost, just folded


def test_reader_keeps_only_stepwatch_scope() -> None:
    reader = HealthMetricReader(window=60)
    provider = MeterProvider(metric_readers=[reader, InMemoryMetricReader()])
    provider.get_meter("someone-else").create_counter("other.count").add(5)
    reader.refresh()
    assert reader.sizes()["series"] == 0
    provider.shutdown()


def test_reader_does_not_change_other_readers_aggregation() -> None:
    with capture() as sw:
        with stepwatch.step("s"):
            sw.clock.advance(1)
        (point,) = sw.metric_points("workflow.task.duration")
        assert hasattr(
            point.point, "explicit_bounds"
        )  # the in-memory reader keeps explicit buckets
        assert sw.monitor.summary().steps["unspecified"].duration.count == 1


def test_reader_validates_arguments() -> None:
    with pytest.raises(ValueError, match="window"):
        HealthMetricReader(window=0)
    with pytest.raises(ValueError, match="fine_slot"):
        HealthMetricReader(window=5)
    with pytest.raises(ValueError, match="max_series"):
        HealthMetricReader(max_series=0)
