"""Exporter wrappers that report each export's result to the Monitor (TelemetryExportFailing).

Both know which fork of the process built them (see :mod:`stepwatch._pipeline`):
in a forked child the span exporter wrapper builds a fresh exporter (the
inherited one shares the parent's connections), and the metric exporter
wrapper exports nothing (its provider holds the parent's metric state).
:func:`observe_exporters` wraps the exporters of providers built elsewhere (the
distro's, under ``opentelemetry-instrument``) so their results reach health too.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from stepwatch import _fork
from stepwatch._attributes import describe
from stepwatch._otel_internals import (
    batch_emit,
    batch_queue,
    metric_exporter_preferences,
    wrap_metric_exporters,
    wrap_span_exporters,
)
from stepwatch._safety import report
from stepwatch.health import ExportStatus

__all__ = [
    "DropCountingBatchSpanProcessor",
    "ObservedMetricExporter",
    "ObservedSpanExporter",
    "observe_exporters",
]


class ObservedSpanExporter(SpanExporter):
    """Delegates to ``exporter`` and records whether each export succeeded.

    Args:
        exporter: The exporter to delegate to.
        status: Where results are recorded.
        factory: Builds a replacement for ``exporter`` in a forked child
            (without one, the child keeps using ``exporter``).
    """

    def __init__(
        self,
        exporter: SpanExporter,
        status: ExportStatus,
        factory: Callable[[], SpanExporter] | None = None,
    ) -> None:
        self.exporter = exporter
        self._status = status
        self._factory = factory
        self._generation = _fork.current

    def _current(self) -> SpanExporter:
        if self._generation != _fork.current:
            self._generation = _fork.current
            if self._factory is not None:
                self.exporter = self._factory()
        return self.exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        exporter = self._current()
        try:
            result = exporter.export(spans)
        except Exception as exc:
            self._status.record(False, f"{type(exc).__name__}: {describe(exc)}", "traces")
            raise
        self._status.record(result is SpanExportResult.SUCCESS, "span export failed", "traces")
        return result

    def shutdown(self, timeout_millis: float | None = None) -> None:
        """Shut the exporter down, passing ``timeout_millis`` on when it takes one.

        The SDK's batch processor hands its remaining shutdown time to an
        exporter whose ``shutdown`` names ``timeout_millis`` (the gRPC one
        does); this wrapper keeps that deadline reaching the exporter.
        """
        exporter = self._current()
        if timeout_millis is not None and _takes_timeout(exporter.shutdown):
            exporter.shutdown(timeout_millis=timeout_millis)  # type: ignore[call-arg]
        else:
            exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._current().force_flush(timeout_millis)


def _takes_timeout(method: Callable[..., Any]) -> bool:
    try:
        return "timeout_millis" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False


class ObservedMetricExporter(MetricExporter):
    """Delegates to ``exporter`` (keeping its temporality and aggregation) and records results.

    Args:
        exporter: The exporter to delegate to.
        status: Where results are recorded.
        fork_aware: In a forked child, export nothing (the provider that
            holds this exporter is the parent's and is rebuilt by
            :mod:`stepwatch._pipeline`). ``False`` for a provider stepwatch
            does not own: the exporter then behaves in a child as it would
            unwrapped.
    """

    def __init__(
        self, exporter: MetricExporter, status: ExportStatus, *, fork_aware: bool = True
    ) -> None:
        temporality, aggregation = metric_exporter_preferences(exporter)
        super().__init__(preferred_temporality=temporality, preferred_aggregation=aggregation)
        self.exporter = exporter
        self._status = status
        self._fork_aware = fork_aware
        self._generation = _fork.current

    def _inherited(self) -> bool:
        """Whether this process is a fork of the one that built it (then it exports nothing)."""
        return self._fork_aware and self._generation != _fork.current

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if self._inherited():
            return MetricExportResult.SUCCESS  # the parent's state: never exported again
        try:
            result = self.exporter.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception as exc:
            self._status.record(False, f"{type(exc).__name__}: {describe(exc)}", "metrics")
            raise
        self._status.record(result is MetricExportResult.SUCCESS, "metric export failed", "metrics")
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        if self._inherited():
            return True
        return self.exporter.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self._inherited():
            return  # the parent's exporter and connections: not the child's to close
        self.exporter.shutdown(timeout_millis=timeout_millis, **kwargs)


class DropCountingBatchSpanProcessor(BatchSpanProcessor):
    """A ``BatchSpanProcessor`` that reports the spans it drops when its queue is full.

    The SDK only logs those drops (or counts them when its internal metrics
    are switched on by environment). This reads the queue's length before
    handing the span on, an O(1) check (the queue comes from
    :mod:`stepwatch._otel_internals`; should a future SDK move it, the count
    stays at zero and the processor works as before).
    """

    def __init__(self, exporter: SpanExporter, status: ExportStatus) -> None:
        super().__init__(exporter)
        self._status = status
        self._queue, self._limit = batch_queue(self)
        self._emit = batch_emit(self)

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return
        queue, limit = self._queue, self._limit
        if queue is not None and limit is not None and len(queue) >= limit:
            self._status.record_drop()
        emit = self._emit
        if emit is not None:
            emit(span)  # what BatchSpanProcessor.on_end does after the same check
        else:
            super().on_end(span)


def observe_exporters(tracer_provider: object, meter_provider: object, status: ExportStatus) -> int:
    """Wrap the push exporters of SDK providers built elsewhere so ``status`` sees their results.

    Under ``opentelemetry-instrument`` the distro builds the providers and
    their exporters; ``configure()`` adopts those providers and calls this, so
    a dead endpoint fires ``TelemetryExportFailing`` as it does with the
    exporters ``configure()`` builds. Exporters already observed are left
    alone (idempotent); the wrappers change nothing else (same exporter, same
    temporality, same fork behaviour). Never raises.

    Returns:
        How many exporters are newly observed.
    """

    def span(exporter: Any) -> Any:
        if isinstance(exporter, ObservedSpanExporter) or not isinstance(exporter, SpanExporter):
            return exporter
        return ObservedSpanExporter(exporter, status)

    def metric(exporter: Any) -> Any:
        if isinstance(exporter, ObservedMetricExporter) or not isinstance(exporter, MetricExporter):
            return exporter
        return ObservedMetricExporter(exporter, status, fork_aware=False)

    count = 0
    try:
        if tracer_provider is not None:
            count += wrap_span_exporters(tracer_provider, span)
        if meter_provider is not None:
            count += wrap_metric_exporters(meter_provider, metric)
    except Exception:
        report(
            "exporters.observe",
            "stepwatch: cannot observe the providers' exporters; their failures stay invisible",
            exc_info=True,
        )
    return count
