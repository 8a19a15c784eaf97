"""Cost of the in-process health machinery: health(), summary() and the HealthMetricReader.

Run with ``make bench`` or ``python benchmarks/bench_health.py [--json]``.

- ``health()`` cached: median ns per call once evaluated (target <= 1 ms).
- ``summary()``: median ms over a full 300 s window holding 50 execution names
  x 3 outcomes and 5 step types, log-normal durations, every fine slot filled
  (target <= 20 ms).
- The second reader: median ns per ``Histogram.record`` on a provider with an
  InMemoryMetricReader alone versus the same plus the HealthMetricReader, and
  per ``@stepwatch.step`` call with the Monitor's reader attached versus detached,
  batches interleaved in one process.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

import stepwatch
from stepwatch.reader import HealthMetricReader
from stepwatch.testing import FakeClock, capture


def per_call_ns(function: Callable[[], object], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        function()
    return (time.perf_counter_ns() - start) / calls


def bench_health(batches: int) -> float:
    with capture() as sw:
        sw.monitor.health(refresh=True)
        return statistics.median(per_call_ns(sw.monitor.health, 10_000) for _ in range(batches))


def bench_summary(batches: int) -> float:
    clock = FakeClock()
    rng = random.Random(7)
    with capture(clock=clock) as sw:
        telemetry = sw.monitor._telemetry
        outcomes = ("success", "success", "success", "failure", "timeout")
        for _slot in range(30):  # fill every 10 s slot of the 300 s window
            for n in range(50):
                name = f"name-{n}"
                for i in range(20):
                    outcome = outcomes[i % len(outcomes)]
                    telemetry.execution_duration.record(
                        rng.lognormvariate(1.0, 1.2),
                        {
                            "workflow.definition.name": name,
                            "workflow.execution.state": "executing",
                            "workflow.execution.outcome": outcome,
                        },
                    )
                    telemetry.task_duration.record(
                        rng.lognormvariate(-1.0, 1.5),
                        {
                            "workflow.definition.name": name,
                            "workflow.task.type": f"type-{i % 5}",
                            "workflow.task.outcome": outcome,
                        },
                    )
            sw.monitor.reader.refresh()
            clock.advance(10)
        samples = []
        for _ in range(batches):
            start = time.perf_counter_ns()
            summary = sw.monitor.summary()
            samples.append((time.perf_counter_ns() - start) / 1e6)
        assert summary.total == 30 * 50 * 20, summary.total
        return statistics.median(samples)


def bench_second_reader(batches: int, calls: int) -> dict[str, float]:
    attributes = {"workflow.task.type": "bench", "workflow.task.outcome": "success"}
    one = MeterProvider(metric_readers=[InMemoryMetricReader()])
    two = MeterProvider(metric_readers=[InMemoryMetricReader(), HealthMetricReader()])
    # The HealthMetricReader keeps only the stepwatch scope, so record through it.
    record_one = one.get_meter("stepwatch").create_histogram("workflow.task.duration").record
    record_two = two.get_meter("stepwatch").create_histogram("workflow.task.duration").record

    tracer_provider = TracerProvider()
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    monitor = stepwatch.Monitor(tracer_provider=tracer_provider, meter_provider=meter_provider)
    step = stepwatch.step("work", step_type="bench")(lambda: 1)
    samples: dict[str, list[float]] = {
        k: [] for k in ("record_1", "record_2", "step_with", "step_without")
    }
    monitor.install()
    with stepwatch.execution("bench"):
        for _ in range(batches):
            samples["record_1"].append(per_call_ns(lambda: record_one(0.5, attributes), calls))
            samples["record_2"].append(per_call_ns(lambda: record_two(0.5, attributes), calls))
            samples["step_with"].append(per_call_ns(step, calls))
            meter_provider.remove_metric_reader(monitor.reader)
            samples["step_without"].append(per_call_ns(step, calls))
            meter_provider.add_metric_reader(monitor.reader)
    monitor.shutdown()
    return {key: statistics.median(values) for key, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=9)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    reader = bench_second_reader(args.batches, args.calls)
    result = {
        "health_cached_ns": round(bench_health(args.batches)),
        "summary_ms_50_names_full_window": round(bench_summary(args.batches), 2),
        "record_ns_one_reader": round(reader["record_1"]),
        "record_ns_with_health_reader": round(reader["record_2"]),
        "record_ratio": round(reader["record_2"] / reader["record_1"], 3),
        "step_ns_reader_attached": round(reader["step_with"]),
        "step_ns_reader_detached": round(reader["step_without"]),
        "step_ratio": round(reader["step_with"] / reader["step_without"], 3),
    }
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:<36}{value:>14}")
    print(
        f"\ntargets: health() cached <= 1 ms -> {result['health_cached_ns'] / 1e6:.4f} ms; "
        f"summary() <= 20 ms -> {result['summary_ms_50_names_full_window']} ms"
    )


if __name__ == "__main__":
    main()
