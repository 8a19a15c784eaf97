"""The OpenTelemetry private details stepwatch reads, checked against the installed SDK.

``stepwatch._otel_internals`` is the one module allowed to read them; each
function degrades to a neutral answer if upstream moves a detail. These
tests fail on such an upgrade, so the move is noticed rather than silently
costing a feature (delta temporality, drop counting, the global provider).
"""

from __future__ import annotations

import subprocess
import sys

from opentelemetry import context, trace
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import Counter, MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExporter,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from stepwatch._otel_internals import (
    batch_emit,
    batch_queue,
    global_meter_provider_unset,
    metric_exporter_preferences,
    run_context,
    wrap_metric_exporters,
    wrap_span_exporters,
)


def test_metric_exporter_preferences_are_found() -> None:
    exporter = OTLPMetricExporter(
        endpoint="http://127.0.0.1:9/v1/metrics",
        preferred_temporality={Counter: AggregationTemporality.DELTA},
    )
    temporality, aggregation = metric_exporter_preferences(exporter)
    assert temporality is not None and temporality[Counter] is AggregationTemporality.DELTA
    assert aggregation is not None


def test_batch_queue_is_found_and_tracks_its_length() -> None:
    processor = BatchSpanProcessor(
        InMemorySpanExporter(), max_queue_size=7, max_export_batch_size=7
    )
    queue, limit = batch_queue(processor)
    assert queue is not None and limit == 7
    assert len(queue) == 0
    processor.shutdown()  # type: ignore[no-untyped-call]


def test_batch_queue_degrades_when_the_detail_moved() -> None:
    assert batch_queue(object()) == (None, None)  # type: ignore[arg-type]


def test_batch_emit_is_found_and_queues_a_span() -> None:
    exporter = InMemorySpanExporter()
    processor = BatchSpanProcessor(exporter)
    emit = batch_emit(processor)
    assert emit is not None
    span = TracerProvider().get_tracer("t").start_span("s")
    span.end()
    emit(span)
    processor.force_flush()
    assert [s.name for s in exporter.get_finished_spans()] == ["s"]
    processor.shutdown()  # type: ignore[no-untyped-call]


def test_batch_emit_degrades_when_the_detail_moved() -> None:
    assert batch_emit(object()) is None  # type: ignore[arg-type]


def test_global_meter_provider_unset_until_set() -> None:
    program = (
        "from opentelemetry import metrics\n"
        "from opentelemetry.sdk.metrics import MeterProvider\n"
        "from stepwatch._otel_internals import global_meter_provider_unset as unset\n"
        "before = unset()\n"
        "metrics.set_meter_provider(MeterProvider())\n"
        "print(before, unset())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.split() == ["True", "False"]
    assert isinstance(global_meter_provider_unset(), bool)


def test_run_context_is_what_set_span_in_context_and_set_value_make() -> None:
    parent = context.set_value("engine-key", "kept")
    span = TracerProvider().get_tracer("t").start_span("s")
    key = context.create_key("stepwatch-test")
    built = run_context(parent, span, key, "run")
    expected = context.set_value(key, "run", trace.set_span_in_context(span, parent))
    assert built == expected and type(built) is type(expected)
    assert trace.get_current_span(built) is span and context.get_value(key, built) == "run"
    assert parent == context.set_value("engine-key", "kept")  # the parent is not changed


def test_the_exporters_of_providers_built_elsewhere_are_found_and_replaced() -> None:
    span_exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(span_exporter))
    metric_exporter = OTLPMetricExporter(endpoint="http://127.0.0.1:9/v1/metrics")
    meter_provider = MeterProvider(
        metric_readers=[
            PeriodicExportingMetricReader(metric_exporter, export_interval_millis=600_000),
            InMemoryMetricReader(),  # a pull reader has no exporter: left alone
        ]
    )
    seen: list[object] = []

    def wrap(exporter: object) -> object:
        seen.append(exporter)
        return InMemorySpanExporter() if exporter is span_exporter else exporter

    assert wrap_span_exporters(tracer_provider, wrap) == 1
    assert wrap_metric_exporters(meter_provider, wrap) == 0  # wrap kept it: nothing replaced
    assert seen == [span_exporter, metric_exporter]
    assert isinstance(seen[1], MetricExporter)
    tracer_provider.shutdown()
    meter_provider.shutdown()


def test_wrapping_exporters_degrades_when_the_detail_moved() -> None:
    assert wrap_span_exporters(object(), lambda e: e) == 0
    assert wrap_metric_exporters(object(), lambda e: e) == 0
