"""HealthMetricReader: stepwatch's own metrics, kept in sliding windows inside the process.

Usage::

    reader = monitor.reader                       # attached by the Monitor
    provider = MeterProvider(metric_readers=[reader, otlp_reader])  # or by hand

The reader is a real :class:`~opentelemetry.sdk.metrics.export.MetricReader`.
Its *own* preferences ask for DELTA temporality for counters and histograms,
CUMULATIVE for up-down counters (a level), and exponential-bucket
aggregation for histograms; other readers of the same provider (the OTLP
exporter's) keep their own aggregation. It keeps only the ``stepwatch``
instrumentation scope.

Every collection is folded into time slots read from the Monitor's clock:

- *fine* slots (10 s) spanning the rules window (default 300 s), holding
  per-series counts and exponential histograms pre-merged per group
  (metric, execution name, state or step type), with subtract-on-evict
  running totals of the counts;
- *coarse* slots (60 s) spanning 6 hours, holding counts only, for the
  long SLO burn-rate windows.

Data is attributed to the slot of the collection that picked it up; the
Monitor collects before every query and on every evaluation tick, so the
attribution error is at most one evaluation interval.

Memory bound: ``fine_slots x (series + groups) x (~100 B + 8 B x 160 buckets)``
plus ``coarse_slots x series x ~100 B``, with series and groups each capped
at ``max_series`` (default 1,000; beyond it, new series lose their execution
name and fold into overflow series marked ``otel.metric.overflow=true``, which
keep the bounded attributes: state, outcome, step type, error type). With the defaults: 30 x 2,000 x
1.4 KB ~= 84 MB in the worst case, a few hundred KB for a typical engine.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

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

from stepwatch import _checks as checks
from stepwatch import semconv
from stepwatch._histogram import ExpHistogram
from stepwatch._safety import report

__all__ = ["HealthMetricReader", "SeriesKey", "Windows"]


Attributes = tuple[tuple[str, Any], ...]
SeriesKey = tuple[str, Attributes]
GroupKey = tuple[str, str | None, str | None]
"""(metric, execution name or None for all, state or step type or None for all)."""


class Windows(Protocol):
    """What ``summary()`` and the rules read: the reader, or a process group's merged view."""

    @property
    def window(self) -> float: ...

    def refresh(self) -> None: ...

    def counts(
        self, metric: str, window: float | None = None, *, long: bool = False
    ) -> dict[Attributes, float]: ...

    def histogram(
        self,
        metric: str,
        window: float | None = None,
        *,
        name: str | None = None,
        detail: str | None = None,
    ) -> ExpHistogram: ...

    def levels(self, metric: str) -> dict[Attributes, float]: ...


OVERFLOW: Attributes = (("otel.metric.overflow", True),)
FINE_SLOT = 10.0
COARSE_SLOT = 60.0
LONG_WINDOW = 6 * 3600.0
DEFAULT_MAX_SERIES = 1_000

_LEVEL_METRICS = frozenset({semconv.EXECUTION_ACTIVE.name, semconv.QUEUE_DEPTH.name})


@dataclass(slots=True)
class _Slot:
    start: float
    counts: dict[SeriesKey, float] = field(default_factory=dict)
    groups: dict[GroupKey, ExpHistogram] = field(default_factory=dict)


class _Ring:
    """Slots of one width covering a span; running totals of the counts held."""

    def __init__(self, width: float, span: float) -> None:
        self.width = width
        self.span = span
        self.slots: deque[_Slot] = deque()
        self.totals: dict[SeriesKey, float] = {}

    def slot(self, now: float) -> _Slot:
        start = math.floor(now / self.width) * self.width
        self.evict(now)
        if not self.slots or self.slots[-1].start < start:
            self.slots.append(_Slot(start))
        return self.slots[-1]

    def evict(self, now: float) -> None:
        horizon = now - self.span
        slots = self.slots
        totals = self.totals
        while slots and slots[0].start + self.width <= horizon:
            for key, value in slots.popleft().counts.items():
                remaining = totals.get(key, 0.0) - value
                if abs(remaining) < 1e-9:
                    totals.pop(key, None)
                else:
                    totals[key] = remaining

    def add(self, slot: _Slot, key: SeriesKey, value: float) -> None:
        slot.counts[key] = slot.counts.get(key, 0.0) + value
        self.totals[key] = self.totals.get(key, 0.0) + value

    def since(self, start: float) -> list[_Slot]:
        return [slot for slot in self.slots if slot.start + self.width > start]


class HealthMetricReader(MetricReader):
    """A pull ``MetricReader`` that keeps stepwatch's metrics in sliding windows.

    Args:
        clock: Zero-argument callable returning epoch seconds (the Monitor's).
        window: Seconds the fine slots span (the rules window; the longest
            ``summary`` window).
        fine_slot: Width of a fine slot in seconds.
        coarse_slot: Width of a coarse slot in seconds.
        long_window: Seconds the coarse slots span (the longest burn-rate window).
        max_series: Cap on distinct series and on pre-merged groups.

    Raises:
        ValueError: a non-positive duration, or ``window`` shorter than ``fine_slot``.

    .. versionadded:: 0.1.0
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
        fine_slot = checks.seconds(fine_slot, "fine_slot")
        if checks.seconds(window, "window") < fine_slot:
            raise ValueError(
                f"window must be at least fine_slot ({fine_slot:g} s), got {checks.show(window)}"
            )
        checks.seconds(coarse_slot, "coarse_slot")
        checks.seconds(long_window, "long_window")
        checks.count(max_series, "max_series")
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
        self._clock = clock
        self.window = float(window)
        self.long_window = float(long_window)
        self.max_series = max_series
        self._lock = threading.Lock()
        self._fine = _Ring(fine_slot, self.window)
        self._coarse = _Ring(coarse_slot, self.long_window)
        self._series: set[SeriesKey] = set()
        self._group_keys: set[GroupKey] = set()
        self._levels: dict[SeriesKey, float] = {}
        self.overflowed = 0
        """Data points folded into the overflow series because of the cap."""

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
            now = self._clock()
            with self._lock:
                fine = self._fine.slot(now)
                coarse = self._coarse.slot(now)
                for resource_metrics in metrics_data.resource_metrics:
                    for scope_metrics in resource_metrics.scope_metrics:
                        if scope_metrics.scope.name != semconv.INSTRUMENTATION_SCOPE:
                            continue
                        for metric in scope_metrics.metrics:
                            self._fold(metric.name, metric.data.data_points, fine, coarse)
        except Exception:
            report("reader.fold", "stepwatch: health reader could not fold metrics", exc_info=True)

    def _key(self, name: str, attributes: Any) -> SeriesKey:
        key: SeriesKey = (name, tuple(sorted((attributes or {}).items())))
        if key in self._series:
            return key
        if len(self._series) < self.max_series:
            self._series.add(key)
            return key
        # Over the cap: keep the bounded attributes (state, outcome, type, error),
        # fold the unbounded one (the execution name) into the overflow marker.
        self.overflowed += 1
        folded = tuple(
            sorted(
                (*((k, v) for k, v in key[1] if k != semconv.WORKFLOW_DEFINITION_NAME), *OVERFLOW)
            )
        )
        return (name, folded)

    def _group(self, slot: _Slot, key: GroupKey, histogram: ExpHistogram) -> None:
        if key not in self._group_keys:
            if len(self._group_keys) >= self.max_series:
                key = (key[0], "otel.metric.overflow", key[2])
            self._group_keys.add(key)
        merged = slot.groups.get(key)
        if merged is None:
            slot.groups[key] = histogram.copy()
        else:
            merged.merge(histogram)

    def _fold(self, name: str, points: Iterable[Any], fine: _Slot, coarse: _Slot) -> None:
        for point in points:
            key = self._key(name, point.attributes)
            if name in _LEVEL_METRICS:
                self._levels[key] = float(point.value)
            elif isinstance(point, ExponentialHistogramDataPoint):
                if point.count == 0:
                    continue
                self._fine.add(fine, key, point.count)
                self._coarse.add(coarse, key, point.count)
                histogram = ExpHistogram.from_point(point)
                attributes = dict(point.attributes or {})
                raw_name = attributes.get(semconv.WORKFLOW_DEFINITION_NAME)
                definition = None if raw_name is None else str(raw_name)
                detail = str(
                    attributes.get(semconv.WORKFLOW_EXECUTION_STATE)
                    or attributes.get(semconv.WORKFLOW_TASK_TYPE, semconv.STEP_TYPE_UNSPECIFIED)
                )
                groups: set[GroupKey] = {(name, None, detail), (name, None, None)}
                if definition is not None:
                    groups |= {(name, definition, detail), (name, definition, None)}
                for group in groups:
                    self._group(fine, group, histogram)
            elif isinstance(point, HistogramDataPoint):  # a View forced explicit buckets
                self._fine.add(fine, key, point.count)
                self._coarse.add(coarse, key, point.count)
            elif isinstance(point, NumberDataPoint) and point.value:
                self._fine.add(fine, key, point.value)
                self._coarse.add(coarse, key, point.value)

    # ---------------------------------------------------------------- queries
    def counts(
        self, metric: str, window: float | None = None, *, long: bool = False
    ) -> dict[Attributes, float]:
        """Counts per series of ``metric`` over the last ``window`` seconds.

        Counters give their sum; histograms their observation count. ``long``
        reads the coarse slots (up to ``long_window``); otherwise the fine
        ones (up to ``window``).
        """
        ring = self._coarse if long else self._fine
        now = self._clock()
        span = ring.span if window is None else min(window, ring.span)
        result: dict[Attributes, float] = {}
        with self._lock:
            ring.evict(now)
            if span >= ring.span:
                for (name, attributes), value in ring.totals.items():
                    if name == metric:
                        result[attributes] = value
                return result
            for slot in ring.since(now - span):
                for (name, attributes), value in slot.counts.items():
                    if name == metric:
                        result[attributes] = result.get(attributes, 0.0) + value
        return result

    def histogram(
        self,
        metric: str,
        window: float | None = None,
        *,
        name: str | None = None,
        detail: str | None = None,
    ) -> ExpHistogram:
        """The merged histogram of ``metric`` over the last ``window`` seconds.

        Args:
            metric: The histogram's name.
            window: Seconds, at most the reader's ``window`` (default all of it).
            name: Only this execution (definition) name.
            detail: Only this state (execution duration) or step type (task duration).
        """
        now = self._clock()
        span = self.window if window is None else min(window, self.window)
        merged = ExpHistogram()
        with self._lock:
            self._fine.evict(now)
            for slot in self._fine.since(now - span):
                histogram = slot.groups.get((metric, name, detail))
                if histogram is not None:
                    merged.merge(histogram)
        return merged

    def levels(self, metric: str) -> dict[Attributes, float]:
        """The latest value per series of an up-down counter or gauge."""
        with self._lock:
            return {
                attributes: value
                for (name, attributes), value in self._levels.items()
                if name == metric
            }

    def sizes(self) -> dict[str, int]:
        """How much is held: series, groups, fine and coarse slots."""
        with self._lock:
            return {
                "series": len(self._series),
                "groups": len(self._group_keys),
                "fine_slots": len(self._fine.slots),
                "coarse_slots": len(self._coarse.slots),
            }

    def export_windows(self) -> dict[str, Any]:
        """A JSON-ready copy of the windows and levels, for the process group's file.

        Bounded as the reader is: at most ``max_series`` series and groups per slot.
        """
        now = self._clock()

        def counts(slot: _Slot) -> list[Any]:
            return [
                [metric, [list(pair) for pair in attributes], value]
                for (metric, attributes), value in slot.counts.items()
            ]

        with self._lock:
            self._fine.evict(now)
            self._coarse.evict(now)
            return {
                "fine_slot": self._fine.width,
                "coarse_slot": self._coarse.width,
                "fine": [
                    {
                        "start": slot.start,
                        "counts": counts(slot),
                        "groups": [
                            [metric, name, detail, histogram.to_wire()]
                            for (metric, name, detail), histogram in slot.groups.items()
                        ],
                    }
                    for slot in self._fine.slots
                ],
                "coarse": [
                    {"start": slot.start, "counts": counts(slot)} for slot in self._coarse.slots
                ],
                "levels": [
                    [metric, [list(pair) for pair in attributes], value]
                    for (metric, attributes), value in self._levels.items()
                ],
            }

    def after_fork_in_child(self) -> None:
        """Start the child clean: a fresh lock (a parent thread may have held the old
        one at fork time) and empty windows (the parent's data is the parent's: in a
        process group it would count twice)."""
        self._lock = threading.Lock()
        self._fine = _Ring(self._fine.width, self.window)
        self._coarse = _Ring(self._coarse.width, self.long_window)
        self._series = set()
        self._group_keys = set()
        self._levels = {}

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Nothing to flush or stop: the reader is pulled, never pushes."""
