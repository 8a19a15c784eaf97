"""Step overhead: stepwatch versus hand-written OpenTelemetry, measured in one process.

Run with ``make bench`` or ``python benchmarks/bench_overhead.py [--batches N] [--calls N]``.

Setups, each timed as the median over batches of ns per call (batches interleaved
so that drift in machine speed hits every setup alike):

- ``bare``: the undecorated function.
- ``handwritten``: a span (``start_as_current_span``) plus one histogram
  record and one counter add; BatchSpanProcessor over an exporter that drops
  everything; one InMemoryMetricReader.
- ``stepwatch``: a ``@stepwatch.step`` called inside an execution, with the
  Monitor (progress tracker and event bus) installed, on the same kind of
  providers.
- ``stepwatch_sampled_out``: the same with ``ParentBased(ALWAYS_OFF)``.

Targets (issue 2/3): stepwatch / handwritten <= 1.15 and
stepwatch_sampled_out <= 0.55 x handwritten.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable, Sequence

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler

import stepwatch


class DropExporter(SpanExporter):
    """Accepts every batch and keeps nothing."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def providers(sampler: Sampler | None = None) -> tuple[TracerProvider, MeterProvider]:
    tracer_provider = TracerProvider(sampler=sampler) if sampler else TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return tracer_provider, meter_provider


def work() -> int:
    return 1


def make_handwritten() -> Callable[[], int]:
    tracer_provider, meter_provider = providers()
    tracer = tracer_provider.get_tracer("bench")
    meter = meter_provider.get_meter("bench")
    histogram = meter.create_histogram("bench.task.duration", unit="s")
    counter = meter.create_counter("bench.task.count", unit="{step}")
    span_attributes = {"workflow.task.name": "work", "workflow.task.type": "bench"}
    metric_attributes = {"workflow.task.type": "bench", "workflow.task.outcome": "success"}

    def handwritten() -> int:
        with tracer.start_as_current_span("step work", attributes=span_attributes):
            start = time.time()
            result = work()
            histogram.record(time.time() - start, metric_attributes)
            counter.add(1, metric_attributes)
        return result

    return handwritten


def make_stepwatch(sampler: Sampler | None = None) -> tuple[Callable[[], int], stepwatch.Monitor]:
    tracer_provider, meter_provider = providers(sampler)
    monitor = stepwatch.Monitor(tracer_provider=tracer_provider, meter_provider=meter_provider)
    step = stepwatch.step("work", step_type="bench")(work)
    return step, monitor


def time_batch(function: Callable[[], int], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        function()
    return (time.perf_counter_ns() - start) / calls


def measure(batches: int, calls: int) -> dict[str, float]:
    handwritten = make_handwritten()
    on, on_monitor = make_stepwatch()
    off, off_monitor = make_stepwatch(ParentBased(ALWAYS_OFF))
    samples: dict[str, list[float]] = {
        "bare": [],
        "handwritten": [],
        "stepwatch": [],
        "stepwatch_sampled_out": [],
    }
    gc.collect()
    for _ in range(batches):
        samples["bare"].append(time_batch(work, calls))
        samples["handwritten"].append(time_batch(handwritten, calls))
        for key, function, monitor in (
            ("stepwatch", on, on_monitor),
            ("stepwatch_sampled_out", off, off_monitor),
        ):
            monitor.install()
            with stepwatch.execution("bench"):
                samples[key].append(time_batch(function, calls))
            monitor.uninstall()
    on_monitor.shutdown()
    off_monitor.shutdown()
    return {key: statistics.median(values) for key, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    medians = measure(args.batches, args.calls)
    base = medians["handwritten"]
    result = {
        "median_ns": {k: round(v) for k, v in medians.items()},
        "ratio_stepwatch_to_handwritten": round(medians["stepwatch"] / base, 3),
        "ratio_sampled_out_to_handwritten": round(medians["stepwatch_sampled_out"] / base, 3),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'setup':<24}{'median ns/call':>16}{'x handwritten':>16}")
    for key, value in medians.items():
        print(f"{key:<24}{value:>16.0f}{value / base:>16.3f}")
    print(
        f"\ntargets: stepwatch/handwritten <= 1.15 -> {result['ratio_stepwatch_to_handwritten']}; "
        f"sampled out <= 0.55 -> {result['ratio_sampled_out_to_handwritten']}"
    )


if __name__ == "__main__":
    main()
