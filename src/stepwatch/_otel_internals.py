"""The one module that reads OpenTelemetry's private details; nothing else in stepwatch does.

Each function names the upstream detail it reads and why no public API
serves. Supported range: the ``opentelemetry-api`` / ``opentelemetry-sdk``
versions ``pyproject.toml`` allows (tested on 1.45); ``tests/test_otel_internals.py``
fails when an upgrade moves one of them, and every function here degrades
to a documented neutral answer instead of raising.
"""

from __future__ import annotations

from collections.abc import Callable, Sized
from typing import TYPE_CHECKING, Any

from opentelemetry import metrics
from opentelemetry.context import Context

if TYPE_CHECKING:  # the instrument layer imports this module: it must not load the SDK
    from opentelemetry.sdk.metrics.export import MetricExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

__all__ = [
    "batch_emit",
    "batch_queue",
    "global_meter_provider_unset",
    "metric_exporter_preferences",
    "run_context",
    "wrap_metric_exporters",
    "wrap_span_exporters",
]


def _span_key() -> str | None:
    try:
        from opentelemetry.trace.propagation import _SPAN_KEY  # noqa: PLC0415
    except ImportError:
        return None
    return _SPAN_KEY if isinstance(_SPAN_KEY, str) else None


_SPAN_KEY = _span_key()


def run_context(parent: Context, span: object, key: str, value: object) -> Context | None:
    """``parent`` with ``span`` as the current span and ``value`` under ``key``: one copy.

    Upstream: ``trace.set_span_in_context`` stores the span under
    ``opentelemetry.trace.propagation._SPAN_KEY`` with ``context.set_value``,
    which copies the context; setting stepwatch's own key after it copies it
    again. Building the one ``Context`` with both gives the same mapping for
    one copy per run. ``None`` if the key moved: the caller then uses
    ``set_span_in_context`` and ``set_value``.
    """
    if _SPAN_KEY is None:
        return None
    return Context({**parent, _SPAN_KEY: span, key: value})


def metric_exporter_preferences(exporter: MetricExporter) -> tuple[Any, Any]:
    """The temporality and aggregation preferences an exporter was built with.

    Upstream: ``opentelemetry.sdk.metrics._internal.export.MetricExporter.__init__``
    stores them as ``_preferred_temporality`` and ``_preferred_aggregation``
    with no public accessor. A wrapper exporter must hand the same ones to
    its own ``MetricExporter.__init__``, or an OTLP exporter configured for
    delta temporality would silently export cumulative. ``(None, None)``
    (the SDK's defaults) if they moved.
    """
    return (
        getattr(exporter, "_preferred_temporality", None),
        getattr(exporter, "_preferred_aggregation", None),
    )


def batch_queue(processor: BatchSpanProcessor) -> tuple[Sized | None, int | None]:
    """The span queue of a ``BatchSpanProcessor`` and its capacity.

    Upstream: ``BatchSpanProcessor._batch_processor`` (a
    ``opentelemetry.sdk._shared_internal.BatchProcessor``) keeps ``_queue``
    (a deque) and ``_max_queue_size``; the SDK only logs the spans it drops
    when the queue is full. ``(None, None)`` if they moved: then drops are
    not counted, and everything else works.
    """
    inner = getattr(processor, "_batch_processor", None)
    queue = getattr(inner, "_queue", None)
    limit = getattr(inner, "_max_queue_size", None)
    if not isinstance(queue, Sized) or not isinstance(limit, int):
        return None, None
    return queue, limit


def batch_emit(processor: BatchSpanProcessor) -> Callable[[Any], None] | None:
    """The function a ``BatchSpanProcessor`` hands each sampled span to.

    Upstream: ``BatchSpanProcessor.on_end`` checks the sampled flag and calls
    ``self._batch_processor.emit(span)``. A subclass that has checked the flag
    itself calls ``emit`` directly, one frame less per span. ``None`` if it
    moved: then the subclass calls ``on_end`` as before.
    """
    emit = getattr(getattr(processor, "_batch_processor", None), "emit", None)
    return emit if callable(emit) else None


def global_meter_provider_unset() -> bool:
    """Whether no global meter provider has been set yet.

    Upstream: before ``metrics.set_meter_provider`` the API hands out a
    private ``opentelemetry.metrics._internal._ProxyMeterProvider`` (the
    tracing API makes its proxy public as ``trace.ProxyTracerProvider``; the
    metrics API does not). ``False`` if it moved: ``configure()`` then leaves
    the global provider alone, the conservative choice.
    """
    try:
        from opentelemetry.metrics._internal import _ProxyMeterProvider  # noqa: PLC0415
    except ImportError:
        return False
    return isinstance(metrics.get_meter_provider(), _ProxyMeterProvider)


def wrap_span_exporters(provider: object, wrap: Callable[[Any], Any]) -> int:
    """Replace the exporter of each ``BatchSpanProcessor`` of ``provider`` by ``wrap(exporter)``.

    Upstream: ``TracerProvider._active_span_processor._span_processors`` lists
    the processors (the SDK has no public accessor), and a
    ``BatchSpanProcessor`` keeps its exporter as ``_batch_processor._exporter``
    (its public ``span_exporter`` property only reads it). The distro's
    configurator builds these from ``OTEL_TRACES_EXPORTER``; wrapping them lets
    the Monitor see each export's result. ``wrap`` returns the exporter itself
    to leave it alone. Returns how many were replaced; ``0`` if they moved (the
    exporters then work as before, unobserved).
    """
    processors = getattr(
        getattr(provider, "_active_span_processor", None), "_span_processors", None
    )
    if not isinstance(processors, tuple):
        return 0
    replaced = 0
    for processor in processors:
        inner = getattr(processor, "_batch_processor", None)
        exporter = getattr(inner, "_exporter", None)
        if exporter is None:
            continue
        wrapped = wrap(exporter)
        if wrapped is not exporter:
            inner._exporter = wrapped  # type: ignore[union-attr]
            replaced += 1
    return replaced


def wrap_metric_exporters(provider: object, wrap: Callable[[Any], Any]) -> int:
    """Replace the exporter of each push reader of ``provider`` by ``wrap(exporter)``.

    Upstream: ``MeterProvider._metric_readers`` lists the readers (SDK 1.45;
    earlier SDKs kept them as ``_sdk_config.metric_readers``; no public
    accessor), and ``PeriodicExportingMetricReader`` keeps its
    exporter as ``_exporter``; it reads the exporter's temporality and
    aggregation at construction only, so a wrapper that keeps them changes
    nothing else. Returns how many were replaced; ``0`` if they moved.
    """
    readers = getattr(provider, "_metric_readers", None)
    if readers is None:
        readers = getattr(getattr(provider, "_sdk_config", None), "metric_readers", None)
    if not isinstance(readers, tuple | list):
        return 0
    replaced = 0
    for reader in readers:
        exporter = getattr(reader, "_exporter", None)
        if exporter is None:
            continue
        wrapped = wrap(exporter)
        if wrapped is not exporter:
            reader._exporter = wrapped
            replaced += 1
    return replaced
