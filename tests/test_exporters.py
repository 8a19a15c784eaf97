"""The exporter wrappers that feed TelemetryExportFailing, over real SDK processors and readers."""

from __future__ import annotations

import io
from collections.abc import Sequence

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from stepwatch._exporters import ObservedSpanExporter, observe_exporters
from stepwatch.health import ExportStatus


class DeadlineExporter(SpanExporter):
    """Refuses every export and remembers the deadline its shutdown was given (as gRPC's)."""

    def __init__(self) -> None:
        self.shutdown_timeout: float | None = None

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.FAILURE

    def shutdown(self, timeout_millis: float | None = None) -> None:
        self.shutdown_timeout = timeout_millis


def test_the_processors_shutdown_deadline_reaches_the_observed_exporter() -> None:
    inner = DeadlineExporter()
    processor = BatchSpanProcessor(ObservedSpanExporter(inner, ExportStatus()))
    processor.shutdown()  # type: ignore[no-untyped-call]
    assert inner.shutdown_timeout is not None and inner.shutdown_timeout <= 30_000


def test_an_exporter_without_a_deadline_is_shut_down_plainly() -> None:
    inner = InMemorySpanExporter()
    ObservedSpanExporter(inner, ExportStatus()).shutdown(timeout_millis=5)
    assert inner.export([]) is SpanExportResult.FAILURE  # stopped


def test_the_exporters_of_adopted_providers_are_observed_once() -> None:
    failing = DeadlineExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(failing))
    meter_provider = MeterProvider(
        metric_readers=[
            PeriodicExportingMetricReader(
                ConsoleMetricExporter(out=io.StringIO()), export_interval_millis=600_000
            )
        ]
    )
    status = ExportStatus()
    assert observe_exporters(tracer_provider, meter_provider, status) == 2
    assert observe_exporters(tracer_provider, meter_provider, status) == 0  # already observed
    tracer_provider.get_tracer("t").start_span("s").end()
    meter_provider.get_meter("m").create_counter("c").add(1)
    assert tracer_provider.force_flush()
    assert meter_provider.force_flush()
    assert set(status.failing_signals()) == {"traces"}
    assert status.signals["metrics"].successes >= 1
    tracer_provider.shutdown()
    meter_provider.shutdown()
