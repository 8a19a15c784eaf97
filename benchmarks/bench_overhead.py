"""Step overhead: stepwatch versus hand-written OpenTelemetry, measured in one process.

Run: ``make bench`` or ``python benchmarks/bench_overhead.py [--batches N] [--calls N] [--json]``.

Every setup is timed as the median over batches of ns per call; batches of all
setups are interleaved so that drift in machine speed hits every setup alike.

- ``bare``: the undecorated function.
- ``handwritten``: ``start_as_current_span`` + one histogram record + one counter
  add; BatchSpanProcessor over an exporter that drops everything; one
  InMemoryMetricReader. **The baseline of every ratio.**
- ``handwritten_two_readers``: the same plus a HealthMetricReader on the provider.
- ``stepwatch``: ``@stepwatch.step`` inside an execution, Monitor installed
  (tracker, event bus and HealthMetricReader on), same kind of providers.
- ``stepwatch_no_health_reader``: the same with the Monitor's reader detached.
- ``stepwatch_sampled_out`` / ``..._no_health_reader``: under ``ParentBased(ALWAYS_OFF)``.
- ``api_only_handwritten`` / ``api_only_stepwatch``: no SDK at all (the API's
  no-op providers; for stepwatch, no Monitor installed).
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
from collections.abc import Callable, Sequence

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler

import stepwatch
from stepwatch.reader import HealthMetricReader


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


def make_handwritten(
    tracer_provider: trace.TracerProvider, meter_provider: metrics.MeterProvider
) -> Callable[[], int]:
    tracer = tracer_provider.get_tracer("bench")
    # Named like stepwatch's scope so that a HealthMetricReader, when present, keeps it.
    meter = meter_provider.get_meter("stepwatch")
    histogram = meter.create_histogram("workflow.task.duration", unit="s")
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


class Setup:
    """A function to time, and the Monitor to install while timing it (if any)."""

    def __init__(
        self,
        function: Callable[[], int],
        monitor: stepwatch.Monitor | None = None,
        detached: MeterProvider | None = None,
    ) -> None:
        self.function = function
        self.monitor = monitor
        self.detached = detached

    def close(self) -> None:
        if self.monitor is None:
            return
        if self.detached is not None:  # re-attach so shutdown finds it where it left it
            self.detached.add_metric_reader(self.monitor.reader)
        self.monitor.shutdown()

    def time(self, calls: int) -> float:
        if self.monitor is None:
            return time_batch(self.function, calls)
        self.monitor.install()
        try:
            with stepwatch.execution("bench"):
                return time_batch(self.function, calls)
        finally:
            self.monitor.uninstall()


def make_stepwatch(sampler: Sampler | None = None, *, health_reader: bool = True) -> Setup:
    tracer_provider, meter_provider = providers(sampler)
    monitor = stepwatch.Monitor(tracer_provider=tracer_provider, meter_provider=meter_provider)
    if not health_reader:
        meter_provider.remove_metric_reader(monitor.reader)
    return Setup(
        stepwatch.step("work", step_type="bench")(work),
        monitor,
        None if health_reader else meter_provider,
    )


def make_api_only_stepwatch() -> Setup:
    # No Monitor installed and no global SDK: stepwatch emits through the API's no-ops.
    return Setup(stepwatch.step("work", step_type="bench")(work))


def time_batch(function: Callable[[], int], calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        function()
    return (time.perf_counter_ns() - start) / calls


def build_setups() -> dict[str, Setup]:
    two_tracer, two_meter = providers()
    two_meter.add_metric_reader(HealthMetricReader())
    return {
        "bare": Setup(work),
        "handwritten": Setup(make_handwritten(*providers())),
        "handwritten_two_readers": Setup(make_handwritten(two_tracer, two_meter)),
        "stepwatch": make_stepwatch(),
        "stepwatch_no_health_reader": make_stepwatch(health_reader=False),
        "stepwatch_sampled_out": make_stepwatch(ParentBased(ALWAYS_OFF)),
        "stepwatch_sampled_out_no_health_reader": make_stepwatch(
            ParentBased(ALWAYS_OFF), health_reader=False
        ),
        "api_only_handwritten": Setup(
            make_handwritten(trace.NoOpTracerProvider(), metrics.NoOpMeterProvider())
        ),
        "api_only_stepwatch": make_api_only_stepwatch(),
    }


def measure(batches: int, calls: int) -> dict[str, float]:
    setups = build_setups()
    samples: dict[str, list[float]] = {key: [] for key in setups}
    gc.collect()
    for _ in range(batches):
        for key, setup in setups.items():
            samples[key].append(setup.time(calls))
    for setup in setups.values():
        setup.close()
    return {key: statistics.median(values) for key, values in samples.items()}


TARGETS = {
    "stepwatch": 1.15,
    "stepwatch_no_health_reader": 1.15,
    "stepwatch_sampled_out": 0.55,
    "stepwatch_sampled_out_no_health_reader": 0.55,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--calls", type=int, default=2_000)
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    medians = measure(args.batches, args.calls)
    base = medians["handwritten"]
    ratios = {key: value / base for key, value in medians.items()}
    if args.json:
        print(
            json.dumps(
                {
                    "median_ns": {k: round(v) for k, v in medians.items()},
                    "ratio_to_handwritten": {k: round(v, 3) for k, v in ratios.items()},
                }
            )
        )
        return
    print(f"{'setup':<42}{'median ns/call':>16}{'x handwritten':>15}{'target':>9}")
    for key, value in medians.items():
        target = TARGETS.get(key)
        print(
            f"{key:<42}{value:>16.0f}{ratios[key]:>15.3f}"
            f"{'' if target is None else f'<= {target}':>9}"
        )


if __name__ == "__main__":
    main()
