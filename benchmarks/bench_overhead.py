"""Overhead: stepwatch against hand-written OpenTelemetry emitting exactly the same, one process.

Run: ``make bench`` or ``python benchmarks/bench_overhead.py [--batches N] [--json]``.

The baseline is **like for like**: hand-written code producing the same spans
(names, attributes, parentage, the same span events with the same
attributes), the same up-down counter adds and the same histogram records
as stepwatch, and nothing more. Every case is timed as the median over
batches of ns per unit; batches of all cases are interleaved so drift in
machine speed hits every case alike. Both sides use the same kind of
providers: a ``BatchSpanProcessor`` over an exporter that drops everything,
one ``InMemoryMetricReader``.

Each goal's ratio is the median over batches of the ratio *within* a batch
(the case and its baseline timed back to back), so drift in machine speed
between batches cancels out. Time is the thread's CPU time, so a core
taken by another process does not count against either side. Span
processors queue every span of a timed run (no drops, no export during
it) and are flushed between runs, outside the timing.

Cases (each printed with its target from issue #12):

- ``execution_of_5``: one execution of 5 steps, per execution.
- ``long_execution``: one step of an execution of 1,000 steps, per step.
- ``sampled_out``: ``execution_of_5`` under ``ParentBased(ALWAYS_OFF)``,
  against the *sampled-in* baseline; printed beside it, without a target,
  against the hand-written code sampled out, and that code's own ratio
  (what sampling saves when the metrics are recorded either way).
- ``--other``: a foreign ``Histogram.record`` on the same ``MeterProvider``,
  with a stepwatch Monitor installed on it against without: what the host
  pays for stepwatch's in-process health.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from typing import cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.metrics import MeterProvider as ApiMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, Sampler

import stepwatch
from stepwatch import semconv

STEPS = 5
LONG_STEPS = 1_000


class DropExporter(SpanExporter):
    """Accepts every batch and keeps nothing."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


QUEUE = 1 << 16
"""Spans a batch processor holds: more than any timed run ends, so none is dropped."""


def providers(sampler: Sampler | None = None) -> tuple[TracerProvider, MeterProvider]:
    tracer_provider = TracerProvider(sampler=sampler) if sampler else TracerProvider()
    tracer_provider.add_span_processor(
        BatchSpanProcessor(
            DropExporter(),
            max_queue_size=QUEUE,
            max_export_batch_size=QUEUE,
            schedule_delay_millis=3_600_000,  # exports happen in the flush between runs
        )
    )
    meter_provider = MeterProvider(metric_readers=[InMemoryMetricReader()])
    return tracer_provider, meter_provider


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class Handwritten:
    """What a careful engine author writes to emit what stepwatch emits, and no more."""

    def __init__(self, tracer_provider: TracerProvider, meter_provider: ApiMeterProvider) -> None:
        self.tracer_provider = tracer_provider
        self.tracer = tracer_provider.get_tracer("bench")
        meter = meter_provider.get_meter("bench")
        buckets = semconv.DURATION_BUCKETS
        self.execution_duration = meter.create_histogram(
            semconv.EXECUTION_DURATION.name, unit="s", explicit_bucket_boundaries_advisory=buckets
        )
        self.task_duration = meter.create_histogram(
            semconv.TASK_DURATION.name, unit="s", explicit_bucket_boundaries_advisory=buckets
        )
        self.active = meter.create_up_down_counter(semconv.EXECUTION_ACTIVE.name)
        self.executing = {
            "workflow.definition.name": "bench",
            "workflow.execution.state": "executing",
        }
        self.ended = {**self.executing, "workflow.execution.outcome": "success"}
        self.step_metric = {
            "workflow.definition.name": "bench",
            "workflow.task.type": "bench",
            "workflow.task.outcome": "success",
        }
        self.step_span = {"workflow.task.name": "work", "workflow.task.type": "bench"}

    def step(self, parent: otel_context.Context) -> int:
        start = time.time()
        span = self.tracer.start_span(
            "step work", parent, attributes=self.step_span, start_time=_ns(start)
        )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            result = 1
        finally:
            otel_context.detach(token)
        end = time.time()
        span.set_attribute("workflow.task.outcome", "success")
        span.end(end_time=_ns(end))
        self.task_duration.record(end - start, self.step_metric)
        return result

    def execution(self, steps: int) -> None:
        start = time.time()
        execution_id = uuid.uuid4().hex
        span = self.tracer.start_span(
            "execution bench",
            attributes={
                "workflow.definition.name": "bench",
                "workflow.execution.id": execution_id,
                "workflow.execution.attempt": 1,
                "workflow.execution.steps.total": steps,
            },
            start_time=_ns(start),
        )
        ctx = trace.set_span_in_context(span)
        token = otel_context.attach(ctx)
        if span.is_recording():
            span.add_event("execution.started", {}, timestamp=_ns(start))
        self.active.add(1, self.executing)
        try:
            for _ in range(steps):
                self.step(ctx)
        finally:
            otel_context.detach(token)
        end = time.time()
        if span.is_recording():
            span.set_attributes(
                {
                    "workflow.execution.outcome": "success",
                    "workflow.execution.steps.completed": steps,
                    "workflow.execution.steps.failed": 0,
                    "workflow.execution.steps.total": steps,
                }
            )
            span.add_event(
                "execution.completed", {"workflow.execution.outcome": "success"}, timestamp=_ns(end)
            )
        span.end(end_time=_ns(end))
        self.execution_duration.record(end - start, self.ended)
        self.active.add(-1, self.executing)


def work() -> int:
    return 1


stepwatch_step = stepwatch.step("work", step_type="bench")(work)


def stepwatch_execution(steps: int) -> None:
    with stepwatch.execution("bench", total_steps=steps):
        for _ in range(steps):
            stepwatch_step()


def time_units(function: Callable[[], object], repeat: int, units: int) -> float:
    """CPU ns per unit: ``function`` run ``repeat`` times, each doing ``units`` units."""
    start = time.thread_time_ns()
    for _ in range(repeat):
        function()
    return (time.thread_time_ns() - start) / (repeat * units)


class Case:
    """A timed function, the Monitor installed around it (if any), the providers to flush."""

    def __init__(self, function: Callable[[], object], units: int, repeat: int,
                 monitor: stepwatch.Monitor | None = None,
                 tracer_provider: TracerProvider | None = None) -> None:  # fmt: skip
        self.function, self.units, self.repeat, self.monitor = function, units, repeat, monitor
        self.tracer_provider = tracer_provider
        if monitor is not None:
            self.tracer_provider = cast(TracerProvider, monitor.tracer_provider)

    def time(self) -> float:
        if self.monitor is not None:
            self.monitor.install()
        try:
            return time_units(self.function, self.repeat, self.units)
        finally:
            if self.monitor is not None:
                self.monitor.uninstall()
            if self.tracer_provider is not None:
                self.tracer_provider.force_flush()  # outside the timing


def build_cases(repeat: int) -> tuple[dict[str, Case], list[stepwatch.Monitor]]:
    monitors: list[stepwatch.Monitor] = []

    def monitor(sampler: Sampler | None = None) -> stepwatch.Monitor:
        tracer_provider, meter_provider = providers(sampler)
        made = stepwatch.Monitor(tracer_provider=tracer_provider, meter_provider=meter_provider)
        monitors.append(made)
        return made

    hand = Handwritten(*providers())
    hand_long = Handwritten(*providers())
    hand_out = Handwritten(*providers(ParentBased(ALWAYS_OFF)))
    long_repeat = max(1, repeat * STEPS // LONG_STEPS)
    cases = {
        "handwritten_execution_of_5": Case(
            lambda: hand.execution(STEPS), 1, repeat, tracer_provider=hand.tracer_provider
        ),
        "stepwatch_execution_of_5": Case(lambda: stepwatch_execution(STEPS), 1, repeat, monitor()),
        "handwritten_long_execution": Case(
            lambda: hand_long.execution(LONG_STEPS),
            LONG_STEPS,
            long_repeat,
            tracer_provider=hand_long.tracer_provider,
        ),
        "stepwatch_long_execution": Case(
            lambda: stepwatch_execution(LONG_STEPS), LONG_STEPS, long_repeat, monitor()
        ),
        "stepwatch_sampled_out": Case(
            lambda: stepwatch_execution(STEPS), 1, repeat, monitor(ParentBased(ALWAYS_OFF))
        ),
        "handwritten_sampled_out": Case(
            lambda: hand_out.execution(STEPS), 1, repeat, tracer_provider=hand_out.tracer_provider
        ),
    }
    return cases, monitors


def build_other(repeat: int) -> tuple[dict[str, Case], list[stepwatch.Monitor]]:
    """A foreign histogram, without and with a Monitor on its MeterProvider."""
    _, plain_mp = providers()
    with_tp, with_mp = providers()
    monitor = stepwatch.Monitor(tracer_provider=with_tp, meter_provider=with_mp)
    attributes: dict[str, str | int] = {"http.route": "/orders", "http.response.status_code": 200}
    plain = plain_mp.get_meter("host").create_histogram("http.server.request.duration")
    watched = with_mp.get_meter("host").create_histogram("http.server.request.duration")
    cases = {
        "other_without_stepwatch": Case(lambda: plain.record(0.1, attributes), 1, repeat * 20),
        "other_with_stepwatch": Case(
            lambda: watched.record(0.1, attributes), 1, repeat * 20, monitor
        ),
    }
    return cases, [monitor]


def measure(cases: dict[str, Case], batches: int) -> dict[str, list[float]]:
    """Every case timed once per batch, the cases of a batch back to back."""
    samples: dict[str, list[float]] = {key: [] for key in cases}
    gc.collect()
    for _ in range(batches):
        for key, case in cases.items():
            samples[key].append(case.time())
    return samples


def paired_ratio(case: list[float], base: list[float]) -> float:
    """The median over batches of the case's time over its baseline's in the same batch."""
    return statistics.median(c / b for c, b in zip(case, base, strict=True))


GOALS: dict[str, tuple[str, str, float | None]] = {
    "execution of 5 steps": ("stepwatch_execution_of_5", "handwritten_execution_of_5", 1.15),
    "long execution (per step)": ("stepwatch_long_execution", "handwritten_long_execution", 1.15),
    "sampled out vs sampled-in": ("stepwatch_sampled_out", "handwritten_execution_of_5", 0.6),
    "sampled out vs sampled out": ("stepwatch_sampled_out", "handwritten_sampled_out", None),
    "baseline sampled out vs in": ("handwritten_sampled_out", "handwritten_execution_of_5", None),
    "other instruments": ("other_with_stepwatch", "other_without_stepwatch", 1.05),
}
"""goal -> (case, its baseline, target ratio); no target: a figure that explains the others."""


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=200, help="executions of 5 steps per batch")
    parser.add_argument("--other", action="store_true", help="also time a foreign histogram")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    cases, monitors = build_cases(args.repeat)
    if args.other:
        other, extra = build_other(args.repeat)
        cases.update(other)
        monitors.extend(extra)
    samples = measure(cases, args.batches)
    for made in monitors:
        made.shutdown()
    medians = {key: statistics.median(values) for key, values in samples.items()}
    goals = {
        goal: (paired_ratio(samples[case], samples[base]), target)
        for goal, (case, base, target) in GOALS.items()
        if case in samples
    }
    if args.json:
        print(
            json.dumps(
                {
                    "median_ns": {k: round(v) for k, v in medians.items()},
                    "ratios": {k: round(v[0], 3) for k, v in goals.items()},
                }
            )
        )
        return
    print(f"{'case':<40}{'median CPU ns/unit':>20}")
    for key, value in medians.items():
        print(f"{key:<40}{value:>20.0f}")
    print()
    print(f"{'goal':<42}{'ratio':>8}{'target':>10}")
    for goal, (ratio, target) in goals.items():
        if target is None:
            print(f"{goal:<42}{ratio:>8.3f}")
            continue
        verdict = "met" if ratio <= target else "missed"
        print(f"{goal:<42}{ratio:>8.3f}{'<= ' + str(target):>10}  {verdict}")


if __name__ == "__main__":
    main()
