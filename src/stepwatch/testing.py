"""Helpers for testing code instrumented with stepwatch, with no backend and no global state.

Usage::

    from stepwatch.testing import capture

    def test_deploy_records_a_span():
        with capture() as sw:
            deploy(plan)
            sw.clock.advance(5)
        assert sw.span("execution deploy").attributes["workflow.execution.outcome"] == "success"
        assert sw.metric_points("workflow.execution.duration")

A pytest fixture is three lines::

    @pytest.fixture
    def sw():
        with stepwatch.testing.capture() as harness:
            yield harness

:func:`capture` builds a ``TracerProvider`` with a ``SimpleSpanProcessor``
over an ``InMemorySpanExporter`` and a ``MeterProvider`` with an
``InMemoryMetricReader``, hands both to a fresh :class:`~stepwatch.Monitor`
driven by a :class:`FakeClock`, installs that Monitor for the decorators, and
uninstalls it (restoring the previous one) on exit. The global OpenTelemetry
providers are never touched.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, Metric, NumberDataPoint
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Sampler

from stepwatch import _safety, _telemetry
from stepwatch.events import ExecutionEvent
from stepwatch.monitor import Monitor
from stepwatch.semconv import EventType

__all__ = [
    "FakeClock",
    "Harness",
    "MetricPoint",
    "capture",
    "internal_errors",
    "reset_internal_errors",
]


class FakeClock:
    """A controllable clock: call it for the time, :meth:`advance` to move it.

    Args:
        start: Initial epoch seconds (default 1,700,000,000: a fixed, realistic date).

    Thread-safe. Use it as ``Monitor(clock=...)``.

    .. versionadded:: 0.1.0
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._elapsed = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        """Seconds elapsed (what ``time.monotonic`` is to ``time.time``): moved by
        :meth:`advance` only, never by :meth:`set`.

        The Monitor's steady clock (health windows, health staleness) reads it, so
        ``set()`` to an earlier time is a wall clock stepped back while time goes on.

        .. versionadded:: 0.3.0
        """
        with self._lock:
            return self._elapsed

    def advance(self, seconds: float) -> float:
        """Move forward by ``seconds`` (>= 0) and return the new time.

        Raises:
            ValueError: ``seconds`` is negative.
        """
        if seconds < 0:
            raise ValueError(f"a clock only moves forward, got {seconds}")
        with self._lock:
            self._now += seconds
            self._elapsed += seconds
            return self._now

    def set(self, now: float) -> None:
        """Jump to ``now`` (epoch seconds): the wall clock stepped; :meth:`monotonic` stays."""
        with self._lock:
            self._now = float(now)


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One data point of a metric, flattened for assertions.

    Attributes:
        name: Metric name.
        unit: Metric unit.
        attributes: The point's attributes.
        value: ``value`` for sums and gauges, ``sum`` for histograms.
        count: Observation count for histograms, ``None`` otherwise.
        point: The SDK's point object, for anything else.
    """

    name: str
    unit: str
    attributes: dict[str, Any]
    value: float
    count: int | None
    point: Any


class Harness:
    """What :func:`capture` yields: the Monitor, its sinks and accessors.

    Attributes:
        monitor: The installed :class:`~stepwatch.Monitor`.
        clock: The :class:`FakeClock` it reads.
        span_exporter: The ``InMemorySpanExporter`` spans end up in.
        metric_reader: The ``InMemoryMetricReader``.
        tracer_provider: The SDK ``TracerProvider``.
        meter_provider: The SDK ``MeterProvider``.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        *,
        monitor: Monitor,
        clock: FakeClock,
        span_exporter: InMemorySpanExporter,
        metric_reader: InMemoryMetricReader,
        tracer_provider: TracerProvider,
        meter_provider: MeterProvider,
    ) -> None:
        self.monitor = monitor
        self.clock = clock
        self.span_exporter = span_exporter
        self.metric_reader = metric_reader
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        """Finished spans, in end order; only those called ``name`` when given."""
        spans = self.span_exporter.get_finished_spans()
        return [s for s in spans if name is None or s.name == name]

    def span(self, name: str) -> ReadableSpan:
        """The one finished span called ``name``.

        Raises:
            AssertionError: there is not exactly one.
        """
        found = self.spans(name)
        assert len(found) == 1, f"expected one span {name!r}, found {len(found)}"
        return found[0]

    def attributes(self, name: str) -> dict[str, Any]:
        """The attributes of the one finished span called ``name``, as a plain dict."""
        return dict(self.span(name).attributes or {})

    def parent(self, span: ReadableSpan) -> ReadableSpan | None:
        """The finished span that is ``span``'s parent, or ``None`` (root or not finished)."""
        if span.parent is None:
            return None
        for candidate in self.spans():
            context = candidate.context
            if context is not None and context.span_id == span.parent.span_id:
                return candidate
        return None

    def metrics(self) -> list[Metric]:
        """Collect now and return every metric stepwatch produced."""
        data = self.metric_reader.get_metrics_data()
        if data is None:
            return []
        return [
            metric
            for resource_metrics in data.resource_metrics
            for scope_metrics in resource_metrics.scope_metrics
            for metric in scope_metrics.metrics
        ]

    def metric_points(
        self, name: str, attributes: Mapping[str, Any] | None = None
    ) -> list[MetricPoint]:
        """Collect now; the points of metric ``name`` whose attributes include ``attributes``."""
        wanted = dict(attributes or {})
        points: list[MetricPoint] = []
        for metric in self.metrics():
            if metric.name != name:
                continue
            for point in metric.data.data_points:
                point_attributes = dict(point.attributes or {})
                if any(point_attributes.get(k) != v for k, v in wanted.items()):
                    continue
                if isinstance(point, NumberDataPoint):
                    value, count = point.value, None
                else:
                    value, count = point.sum, point.count
                points.append(
                    MetricPoint(
                        name=metric.name,
                        unit=metric.unit or "",
                        attributes=point_attributes,
                        value=value,
                        count=count,
                        point=point,
                    )
                )
        return points

    def events(
        self, event_type: EventType | str | None = None, *, execution_id: str | None = None
    ) -> list[ExecutionEvent]:
        """Lifecycle events from the Monitor's history, oldest first."""
        return self.monitor.events(event_type=event_type, execution_id=execution_id)

    def clear(self) -> None:
        """Forget the spans finished so far."""
        self.span_exporter.clear()


@contextmanager
def capture(
    *,
    clock: FakeClock | None = None,
    sampler: Sampler | None = None,
    install: bool = True,
    **monitor_options: Any,
) -> Iterator[Harness]:
    """Run the body with a Monitor wired to in-memory sinks and a fake clock.

    Args:
        clock: The clock to use (default a new :class:`FakeClock`).
        sampler: A sampler for the tracer provider (default always on).
        install: Install the Monitor for the decorators (restored on exit).
        **monitor_options: Passed on to :class:`~stepwatch.Monitor`.

    Yields:
        A :class:`Harness`.

    .. versionadded:: 0.1.0
    """
    fake = clock or FakeClock()
    span_exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider(sampler=sampler) if sampler is not None else TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
    metric_reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[metric_reader])
    monitor = Monitor(
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        clock=fake,
        **monitor_options,
    )
    previous = _telemetry.installed()
    if install:
        monitor.install()
    try:
        yield Harness(
            monitor=monitor,
            clock=fake,
            span_exporter=span_exporter,
            metric_reader=metric_reader,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )
    finally:
        monitor.shutdown()
        if previous is not None:
            _telemetry.install(previous)
        tracer_provider.shutdown()
        meter_provider.shutdown()


def internal_errors() -> dict[str, int]:
    """stepwatch's own failures so far, counted by kind (``"step.progress.invalid"``...).

    Every problem stepwatch contains instead of raising into the host is
    counted here; a test that provokes none can assert this stays empty.

    .. versionadded:: 0.2.0
    """
    return _safety.internal_errors()


def reset_internal_errors() -> None:
    """Forget the counts of :func:`internal_errors` (and the log-once memory).

    .. versionadded:: 0.2.0
    """
    _safety.reset_internal_errors()
