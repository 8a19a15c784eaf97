"""The SDK providers :func:`stepwatch.configure` builds and owns, and their rebuild after fork.

A process forked from one where the pipeline runs inherits its providers
with the parent's metric state (cumulative sums and histograms), the parent's
``service.instance.id``, exporter connections shared with the parent, and
locks other threads may have held at the fork. Exporting through them from
the child double counts the parent's data under the parent's identity, and
recording through them can deadlock. So, in a forked child,
:meth:`Pipeline.respawn`:

- builds new providers and exporters from the same recipe, with a new
  ``service.instance.id``: the child is a new telemetry source that exports
  only what it records;
- retires the inherited meter provider (shut down without exporting: its
  exporter wrappers know they belong to the parent), so none of the parent's
  metric points is exported again;
- keeps the inherited tracer provider alive for other code that holds it
  (the SDK clears its span queue at fork), its exporter rebuilt for the child.

See ``docs/processes.md``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence

from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.semconv.attributes.service_attributes import SERVICE_INSTANCE_ID

from stepwatch._exporters import (
    DropCountingBatchSpanProcessor,
    ObservedMetricExporter,
    ObservedSpanExporter,
)
from stepwatch._safety import report
from stepwatch.health import ExportStatus

__all__ = ["Pipeline", "new_instance_id"]


def new_instance_id() -> str:
    """A fresh ``service.instance.id`` (a random UUID, as the resource conventions advise)."""
    return str(uuid.uuid4())


class Pipeline:
    """Providers and exporters built by ``configure()``; owned by the Monitor it returns.

    Args:
        resource: The resource of the providers built here.
        status: Where the exporters report each export's result.
        span_exporters: Build the span exporters, one batch processor each.
        metric_exporters: Build the metric exporters, one periodic reader each.
        metric_readers: Build pull metric readers (Prometheus); one that
            returns ``None`` (it could not start) is left out.
        build_tracer: Build a tracer provider (``False`` when the caller gave one).
        build_meter: Build a meter provider (``False`` when the caller gave one).
        export_timeout: Seconds an export or flush may take.
    """

    def __init__(
        self,
        *,
        resource: Resource,
        status: ExportStatus,
        span_exporters: Sequence[Callable[[], SpanExporter]] = (),
        metric_exporters: Sequence[Callable[[], MetricExporter]] = (),
        metric_readers: Sequence[Callable[[], MetricReader | None]] = (),
        build_tracer: bool,
        build_meter: bool,
        export_timeout: float,
    ) -> None:
        self.resource = resource
        self.status = status
        self.export_timeout = export_timeout
        self._span_exporters = tuple(span_exporters)
        self._metric_exporters = tuple(metric_exporters)
        self._metric_readers = tuple(metric_readers)
        self._build_tracer = build_tracer
        self._build_meter = build_meter
        self.tracer_provider: SdkTracerProvider | None = None
        self.meter_provider: SdkMeterProvider | None = None
        self.exporters: tuple[SpanExporter | MetricExporter, ...] = ()
        self._build()

    @property
    def owned(self) -> tuple[SdkTracerProvider | SdkMeterProvider, ...]:
        """The providers built here (shut down with the Monitor)."""
        return tuple(p for p in (self.tracer_provider, self.meter_provider) if p is not None)

    def _build(self) -> None:
        exporters: list[SpanExporter | MetricExporter] = []
        if self._build_tracer:
            # No SDK atexit hook: the Monitor's own one shuts down within the
            # export timeout (the SDK's waits on an export stuck on a dead backend).
            tracer_provider = SdkTracerProvider(resource=self.resource, shutdown_on_exit=False)
            for factory in self._span_exporters:
                observed = ObservedSpanExporter(factory(), self.status, factory)
                exporters.append(observed.exporter)
                tracer_provider.add_span_processor(
                    DropCountingBatchSpanProcessor(observed, self.status)
                )
            self.tracer_provider = tracer_provider
        if self._build_meter:
            # Readers are given at construction: MeterProvider.force_flush() and
            # shutdown() only reach those.
            readers: list[MetricReader] = []
            for metric_factory in self._metric_exporters:
                exporter = metric_factory()
                exporters.append(exporter)
                readers.append(
                    PeriodicExportingMetricReader(ObservedMetricExporter(exporter, self.status))
                )
            for reader_factory in self._metric_readers:
                reader = reader_factory()
                if reader is not None:
                    readers.append(reader)
            self.meter_provider = SdkMeterProvider(
                resource=self.resource, metric_readers=readers, shutdown_on_exit=False
            )
        self.exporters = tuple(exporters)

    def respawn(self) -> bool:
        """In a forked child: build fresh providers, retire the inherited meter provider.

        Returns:
            Whether anything was rebuilt (``False`` when nothing is owned here).
        """
        if not self.owned:
            return False
        retired = self.meter_provider
        self.resource = self.resource.merge(Resource({SERVICE_INSTANCE_ID: new_instance_id()}))
        # A pull reader (Prometheus) serves from the parent's port: a child would
        # only collide with it, so a forked child's metrics are not served there.
        self._metric_readers = ()
        self._build()
        if retired is not None:
            try:
                # Its exporters belong to the parent: shutting down exports nothing
                # and unregisters its exit hook.
                retired.shutdown()
            except Exception:
                report(
                    "pipeline.retire",
                    "stepwatch: retiring the inherited meter provider failed",
                    exc_info=True,
                )
        return True
