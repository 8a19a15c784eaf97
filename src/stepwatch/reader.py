"""HealthMetricReader: the 0.1 way to feed the health windows, through a second SDK reader.

Usage::

    reader = HealthMetricReader(clock)
    provider = MeterProvider(metric_readers=[reader, otlp_reader])
    summarize(reader, 60, None, None)

Since 0.2 the Monitor feeds its :class:`~stepwatch.windows.HealthWindows`
directly from the instrument layer and attaches no reader anywhere. This
reader remains for pipelines that want the windows filled from an SDK
collection instead (another process's metrics replayed through a provider,
say), and as the reference the direct feed is tested against. It is a real
:class:`~opentelemetry.sdk.metrics.export.MetricReader`: its *own*
preferences ask for DELTA temporality for counters and histograms,
CUMULATIVE for up-down counters (a level), and exponential-bucket
aggregation for histograms; other readers of the same provider keep their
own. It keeps only the ``stepwatch`` instrumentation scope, and times data
by the collection that picked it up.

Attaching it costs the host: the SDK processes every instrument once per
reader (see ``docs/benchmarks.md``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    ExponentialHistogramDataPoint,
    HistogramDataPoint,
    MetricReader,
    MetricsData,
    NumberDataPoint,
)
from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation

from stepwatch import semconv
from stepwatch._histogram import ExpHistogram
from stepwatch._safety import report
from stepwatch.windows import (
    COARSE_SLOT,
    DEFAULT_MAX_SERIES,
    FINE_SLOT,
    LONG_WINDOW,
    Attributes,
    HealthWindows,
    SeriesKey,
    Windows,
)

__all__ = ["HealthMetricReader", "SeriesKey", "Windows"]

_LEVEL_METRICS = frozenset({semconv.EXECUTION_ACTIVE.name, semconv.QUEUE_DEPTH.name})


class HealthMetricReader(MetricReader):
    """A pull ``MetricReader`` that fills :class:`~stepwatch.windows.HealthWindows`.

    Args:
        clock: Zero-argument callable returning epoch seconds.
        window, fine_slot, coarse_slot, long_window, max_series: As for
            :class:`~stepwatch.windows.HealthWindows`.

    Raises:
        TypeError, ValueError: a bad argument, named in the message.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 No longer what the Monitor uses (see the module docs).
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        *,
        window: float = 300.0,
        fine_slot: float = FINE_SLOT,
        coarse_slot: float = COARSE_SLOT,
        long_window: float = LONG_WINDOW,
        max_series: int = DEFAULT_MAX_SERIES,
    ) -> None:
        self.windows = HealthWindows(
            clock,
            window=window,
            fine_slot=fine_slot,
            coarse_slot=coarse_slot,
            long_window=long_window,
            max_series=max_series,
        )
        """The windows this reader fills."""
        super().__init__(
            preferred_temporality={
                Counter: AggregationTemporality.DELTA,
                Histogram: AggregationTemporality.DELTA,
                ObservableCounter: AggregationTemporality.DELTA,
                UpDownCounter: AggregationTemporality.CUMULATIVE,
                ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
                ObservableGauge: AggregationTemporality.CUMULATIVE,
            },
            preferred_aggregation={Histogram: ExponentialBucketHistogramAggregation()},
        )
        self.window = self.windows.window

    # ------------------------------------------------------------- collecting
    def refresh(self) -> None:
        """Collect now (pull) so queries include everything recorded so far. Never raises."""
        try:
            self.collect()
        except Exception:
            report("reader.collect", "stepwatch: health reader collection failed", exc_info=True)

    def _receive_metrics(
        self, metrics_data: MetricsData | None, timeout_millis: float = 10_000, **kwargs: Any
    ) -> None:
        if metrics_data is None:
            return
        try:
            for resource_metrics in metrics_data.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    if scope_metrics.scope.name != semconv.INSTRUMENTATION_SCOPE:
                        continue
                    for metric in scope_metrics.metrics:
                        self._fold(metric.name, metric.data.data_points)
        except Exception:
            report("reader.fold", "stepwatch: health reader could not fold metrics", exc_info=True)

    def _fold(self, name: str, points: Iterable[Any]) -> None:
        windows = self.windows
        for point in points:
            attributes = point.attributes or {}
            if name in _LEVEL_METRICS:
                windows.set_level(name, point.value, attributes)
            elif isinstance(point, ExponentialHistogramDataPoint):
                windows.merge_histogram(name, ExpHistogram.from_point(point), attributes)
            elif isinstance(point, HistogramDataPoint):  # a View forced explicit buckets
                windows.merge_histogram(name, _counted(point), attributes)
            elif isinstance(point, NumberDataPoint) and point.value:
                windows.add(name, point.value, attributes)

    # ---------------------------------------------------------------- queries
    def counts(
        self, metric: str, window: float | None = None, *, long: bool = False
    ) -> dict[Attributes, float]:
        """See :meth:`HealthWindows.counts <stepwatch.windows.HealthWindows.counts>`."""
        return self.windows.counts(metric, window, long=long)

    def histogram(
        self,
        metric: str,
        window: float | None = None,
        *,
        name: str | None = None,
        detail: str | None = None,
    ) -> ExpHistogram:
        """See :meth:`HealthWindows.histogram <stepwatch.windows.HealthWindows.histogram>`."""
        return self.windows.histogram(metric, window, name=name, detail=detail)

    def levels(self, metric: str) -> dict[Attributes, float]:
        """See :meth:`HealthWindows.levels <stepwatch.windows.HealthWindows.levels>`."""
        return self.windows.levels(metric)

    def sizes(self) -> dict[str, int]:
        """See :meth:`HealthWindows.sizes <stepwatch.windows.HealthWindows.sizes>`."""
        return self.windows.sizes()

    @property
    def overflowed(self) -> int:
        """Data points folded into the overflow series because of the cap."""
        return self.windows.overflowed

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Nothing to flush or stop: the reader is pulled, never pushes."""


def _counted(point: HistogramDataPoint) -> ExpHistogram:
    """An explicit-bucket point as a histogram of counts only (no usable buckets)."""
    return ExpHistogram(
        count=int(point.count),
        sum=float(point.sum),
        min=float(point.min) if point.count else float("inf"),
        max=float(point.max) if point.count else float("-inf"),
    )
