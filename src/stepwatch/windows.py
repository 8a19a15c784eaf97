"""HealthWindows: stepwatch's own measurements, kept in sliding windows inside the process.

Usage::

    monitor.reader                   # the Monitor's HealthWindows
    monitor.reader.counts("workflow.execution.duration", 60)

The instrument layer feeds the windows **directly**, with the same values it
records on its OpenTelemetry instruments (see ``docs/architecture.md``): no
second ``MetricReader`` sits on the host's ``MeterProvider``, so the host's
own instruments cost nothing extra, and the windows work with no SDK at all.
A value is timed by when it was recorded (the Monitor's clock).

Layout:

- *fine* slots (10 s) spanning the rules window (default 300 s), holding
  per-series counts and exponential histograms pre-merged per group
  (metric, execution name, state or step type), with subtract-on-evict
  running totals of the counts;
- *coarse* slots (60 s) spanning 6 hours, holding counts only, for the
  long SLO burn-rate windows;
- *day* slots (10 min) spanning 24 hours, holding counts and group
  histograms, for ``summary(window)`` longer than the rules window (a day
  window covers whole slots: up to one slot more of the past);
- *levels*: the current value per series of ``workflow.execution.active``.

The hot path (:meth:`HealthWindows.observe`) takes one lock and appends the
value to its series' pending list in the current fine slot; the values are
folded into histograms (bucket indices computed once per value, with the
OpenTelemetry SDK's own mapping, so the buckets match an SDK exponential
histogram of the same values) and into the group histograms when a query
or a refresh needs them, or when a series' pending list is full.

Memory bound: ``fine slots x (series + groups) x (~100 B + 8 B x 160 buckets)``
plus ``coarse slots x series x ~100 B`` plus ``day slots x (series + groups)``
of the same sizes as the fine ones (144 slots) plus at most :data:`PENDING_VALUES`
floats per series in the current slot, with series and groups each capped at
``Limits.max_series`` (beyond it, new series lose their execution name and
fold into overflow series marked ``otel.metric.overflow=true``, which keep
the bounded attributes: state, outcome, step type, error type).
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from stepwatch import _checks as checks
from stepwatch import semconv
from stepwatch._clock import SteadyClock
from stepwatch._histogram import MAX_BUCKETS, ExpHistogram

__all__ = [
    "COARSE_SLOT",
    "DEFAULT_MAX_SERIES",
    "FINE_SLOT",
    "LONG_WINDOW",
    "PENDING_VALUES",
    "Attributes",
    "HealthWindows",
    "SeriesAttributes",
    "SeriesKey",
    "SlotData",
    "Windows",
    "add_counts",
    "merge_groups",
    "series_key",
]

Attributes = tuple[tuple[str, Any], ...]
SeriesKey = tuple[str, Attributes]
GroupKey = tuple[str, str | None, str | None]
"""(metric, execution name or None for all, state or step type or None for all)."""

OVERFLOW: Final[Attributes] = (("otel.metric.overflow", True),)
OVERFLOW_VALUE: Final = "otel.metric.overflow"
"""The execution name, step type or group detail that overflowed series and groups carry."""
FINE_SLOT: Final = 10.0
COARSE_SLOT: Final = 60.0
LONG_WINDOW: Final = 6 * 3600.0
DAY_SLOT: Final = 600.0
DAY_WINDOW: Final = 24 * 3600.0
DEFAULT_MAX_SERIES: Final = 1_000
PENDING_VALUES: Final = 256
"""Values a series holds unfolded in the current slot before they are folded."""
_MAX_SCALE: Final = 20
_LEVEL_METRICS: Final = frozenset({semconv.EXECUTION_ACTIVE.name, semconv.QUEUE_DEPTH.name})


class Windows(Protocol):
    """What ``summary()`` and the rules read: the windows, or a process group's merged view."""

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


class SeriesAttributes(dict[str, str]):
    """Metric attributes that carry their sorted key, computed once (interned by the caller)."""

    __slots__ = ("key",)

    def __init__(self, items: Mapping[str, str]) -> None:
        super().__init__(items)
        self.key: Attributes = tuple(sorted(self.items()))


def series_key(attributes: Mapping[str, Any] | None) -> Attributes:
    """The sorted, hashable form of a series' attributes."""
    if isinstance(attributes, SeriesAttributes):
        return attributes.key
    return tuple(sorted((attributes or {}).items()))


# ------------------------------------------------------------------ histograms
def _index(value: float, scale: int, factor: float) -> int:
    """The SDK's exponential bucket index of a positive normal ``value`` at ``scale``.

    Mirrors ``opentelemetry.sdk.metrics._internal.exponential_histogram.mapping``:
    an exact power of two maps to the bucket it closes; anything else by its
    logarithm.
    """
    mantissa, exponent = math.frexp(value)
    if mantissa == 0.5:
        return ((exponent - 1) << scale) - 1
    return math.floor(math.log(value) * factor)


_FACTOR: Final = math.ldexp(1.0 / math.log(2.0), _MAX_SCALE)


def histogram_of(values: list[float]) -> ExpHistogram:
    """An exponential histogram of ``values`` (non-negative), as the SDK would build it.

    Indices are computed once per value at scale 20 and lowered (exactly)
    until they fit :data:`~stepwatch._histogram.MAX_BUCKETS`.
    """
    result = ExpHistogram()
    indices: list[int] = []
    for value in values:
        if value > 0.0:
            indices.append(_index(value, _MAX_SCALE, _FACTOR))
        else:
            result.zero_count += 1
    result.count = len(values)
    result.sum = math.fsum(values)
    result.min = min(values) if values else math.inf
    result.max = max(values) if values else -math.inf
    if indices:
        low, high = min(indices), max(indices)
        shift = 0
        while (high >> shift) - (low >> shift) + 1 > MAX_BUCKETS:
            shift += 1
        offset = low >> shift
        counts = [0] * ((high >> shift) - offset + 1)
        for index in indices:
            counts[(index >> shift) - offset] += 1
        result.scale = _MAX_SCALE - shift
        result.offset = offset
        result.counts = tuple(counts)
    return result


# ---------------------------------------------------------------------- slots
class SlotData(Protocol):
    """What a query reads of a slot: this process's, or one decoded from a group file."""

    @property
    def counts(self) -> Mapping[SeriesKey, float]: ...
    @property
    def groups(self) -> Mapping[GroupKey, ExpHistogram]: ...


def add_counts(into: dict[Attributes, float], slots: Iterable[SlotData], metric: str) -> None:
    """Add the counts of ``metric`` in ``slots`` into ``into``, per series."""
    for slot in slots:
        for (name, attributes), value in slot.counts.items():
            if name == metric:
                into[attributes] = into.get(attributes, 0.0) + value


def merge_groups(into: ExpHistogram, slots: Iterable[SlotData], key: GroupKey) -> None:
    """Merge the pre-merged histogram of group ``key`` of each of ``slots`` into ``into``."""
    for slot in slots:
        histogram = slot.groups.get(key)
        if histogram is not None:
            into.merge(histogram)


@dataclass(slots=True)
class _Slot:
    start: float
    counts: dict[SeriesKey, float] = field(default_factory=dict)
    groups: dict[GroupKey, ExpHistogram] = field(default_factory=dict)
    pending: dict[SeriesKey, list[float]] = field(default_factory=dict)


class _Ring:
    """Slots of one width covering a span; running totals of the counts held."""

    def __init__(self, width: float, span: float) -> None:
        self.width = width
        self.span = span
        self.slots: deque[_Slot] = deque()
        self.totals: dict[SeriesKey, float] = {}

    def slot_at(self, when: float) -> _Slot:
        """The slot holding ``when`` (created when it is newer than the last one)."""
        start = math.floor(when / self.width) * self.width
        slots = self.slots
        if not slots or slots[-1].start < start:
            slots.append(_Slot(start))
            return slots[-1]
        for slot in reversed(slots):
            if slot.start <= start:
                return slot
        return slots[0]

    def evict(self, now: float) -> list[_Slot]:
        horizon = now - self.span
        slots = self.slots
        totals = self.totals
        evicted = []
        while slots and slots[0].start + self.width <= horizon:
            slot = slots.popleft()
            evicted.append(slot)
            for key, value in slot.counts.items():
                remaining = totals.get(key, 0.0) - value
                if abs(remaining) < 1e-9:
                    totals.pop(key, None)
                else:
                    totals[key] = remaining
        return evicted

    def add(self, slot: _Slot, key: SeriesKey, value: float) -> None:
        slot.counts[key] = slot.counts.get(key, 0.0) + value
        self.totals[key] = self.totals.get(key, 0.0) + value

    def since(self, start: float) -> list[_Slot]:
        return [slot for slot in self.slots if slot.start + self.width > start]


class HealthWindows:
    """stepwatch's metrics in sliding windows, fed directly by the instrument layer.

    Args:
        clock: Zero-argument callable returning epoch seconds (the Monitor's).
            Read through a :class:`~stepwatch._clock.SteadyClock`: values are
            timed by a clock that never steps back, so a wall clock stepped
            back neither puts them in past slots nor counts them twice.
        window: Seconds the fine slots span (the rules window; the longest
            ``summary`` window).
        fine_slot: Width of a fine slot in seconds.
        coarse_slot: Width of a coarse slot in seconds (best a multiple of
            ``fine_slot``: a fine slot's values go to the coarse slot of its start).
        long_window: Seconds the coarse slots span (the longest burn-rate window).
        max_series: Cap on distinct series and on pre-merged groups.
        day_slot: Width of a day slot in seconds.
        day_window: Seconds the day slots span (the longest ``summary`` window).

    Raises:
        TypeError, ValueError: a bad argument, named in the message.

    Thread-safe. Every method but the constructor never raises into the
    caller's code path for data it is fed.

    .. versionadded:: 0.2.0
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
        day_slot: float = DAY_SLOT,
        day_window: float = DAY_WINDOW,
    ) -> None:
        fine_slot = checks.seconds(fine_slot, "fine_slot")
        day_slot = checks.seconds(day_slot, "day_slot")
        day_window = checks.seconds(day_window, "day_window")
        if checks.seconds(window, "window") < fine_slot:
            raise ValueError(
                f"window must be at least fine_slot ({fine_slot:g} s), got {checks.show(window)}"
            )
        checks.seconds(coarse_slot, "coarse_slot")
        checks.seconds(long_window, "long_window")
        checks.count(max_series, "max_series")
        self._clock: Callable[[], float] = SteadyClock.of(clock)
        self.window = float(window)
        self.long_window = float(long_window)
        self.max_series = max_series
        self._lock = threading.Lock()
        self._fine = _Ring(fine_slot, self.window)
        self._coarse = _Ring(float(coarse_slot), self.long_window)
        self.day_window = max(day_window, self.window)
        self._day = _Ring(day_slot, self.day_window)
        self._series: set[SeriesKey] = set()
        self._group_keys: set[GroupKey] = set()
        self._levels: dict[SeriesKey, float] = {}
        self._current: _Slot | None = None
        self._current_end = -math.inf
        self.overflowed = 0
        """Values folded into the overflow series because of the cap."""

    # ---------------------------------------------------------------- feeding
    def observe(self, metric: str, value: float, attributes: Mapping[str, Any]) -> None:
        """Record one histogram value (a duration) of ``metric``. The hot path."""
        now = self._clock()
        key = (metric, series_key(attributes))
        with self._lock:
            slot = self._current
            if slot is None or now >= self._current_end or now < slot.start:
                slot = self._slot_for(now)
            pending = slot.pending.get(key)
            if pending is None:
                # A series' first value in this slot (or since its last fold): admit
                # it under the cap once, not on every value.
                key = self._key(*key)
                pending = slot.pending.get(key)
                if pending is None:
                    slot.pending[key] = pending = []
            pending.append(value)
            if len(pending) >= PENDING_VALUES:
                self._fold_series(slot, key, pending)
                del slot.pending[key]

    def add(self, metric: str, value: float, attributes: Mapping[str, Any]) -> None:
        """Add to a counter (``value`` > 0) or an up-down counter's level."""
        if not value:
            return
        now = self._clock()
        with self._lock:
            key = self._key(metric, series_key(attributes))
            if metric in _LEVEL_METRICS:
                self._levels[key] = self._levels.get(key, 0.0) + value
                return
            slot = self._current
            if slot is None or now >= self._current_end or now < slot.start:
                slot = self._slot_for(now)
            self._fine.add(slot, key, value)
            self._coarse.add(self._coarse.slot_at(slot.start), key, value)
            self._day.add(self._day.slot_at(slot.start), key, value)

    def set_level(self, metric: str, value: float, attributes: Mapping[str, Any]) -> None:
        """Set a series' level (an up-down counter read whole, e.g. from another reader)."""
        with self._lock:
            self._levels[self._key(metric, series_key(attributes))] = float(value)

    def merge_histogram(
        self, metric: str, histogram: ExpHistogram, attributes: Mapping[str, Any]
    ) -> None:
        """Add an already aggregated histogram of ``metric`` at the current slot."""
        if histogram.count == 0:
            return
        now = self._clock()
        with self._lock:
            slot = self._fine.slot_at(now)
            self._fold_into(slot, self._key(metric, series_key(attributes)), histogram)

    def _slot_for(self, now: float) -> _Slot:
        """The fine slot for ``now`` (folding and evicting as slots close). Under the lock."""
        self._evict(now)
        slot = self._fine.slot_at(now)
        if slot is self._fine.slots[-1]:
            self._current = slot
            self._current_end = slot.start + self._fine.width
        return slot

    def _key(self, metric: str, attributes: Attributes) -> SeriesKey:
        key: SeriesKey = (metric, attributes)
        if key in self._series:
            return key
        if len(self._series) < self.max_series:
            self._series.add(key)
            return key
        # Over the cap: keep the attributes stepwatch bounds itself (state,
        # outcome, error type), fold the ones the engine names (the execution
        # name, the step type) into the overflow marker.
        self.overflowed += 1
        folded: list[tuple[str, Any]] = [
            (k, OVERFLOW_VALUE if k == semconv.WORKFLOW_TASK_TYPE else v)
            for k, v in attributes
            if k != semconv.WORKFLOW_DEFINITION_NAME
        ]
        return (metric, tuple(sorted((*folded, *OVERFLOW))))

    def _fold_series(self, slot: _Slot, key: SeriesKey, values: list[float]) -> None:
        self._fold_into(slot, key, histogram_of(values))

    def _fold_into(self, slot: _Slot, key: SeriesKey, histogram: ExpHistogram) -> None:
        self._fine.add(slot, key, histogram.count)
        self._coarse.add(self._coarse.slot_at(slot.start), key, histogram.count)
        day = self._day.slot_at(slot.start)
        self._day.add(day, key, histogram.count)
        metric, attributes = key
        values = dict(attributes)
        raw_name = values.get(semconv.WORKFLOW_DEFINITION_NAME)
        definition = None if raw_name is None else str(raw_name)
        detail = str(
            values.get(semconv.WORKFLOW_EXECUTION_STATE)
            or values.get(semconv.WORKFLOW_TASK_TYPE, semconv.STEP_TYPE_UNSPECIFIED)
        )
        groups: set[GroupKey] = {(metric, None, detail), (metric, None, None)}
        if definition is not None:
            groups |= {(metric, definition, detail), (metric, definition, None)}
        for group in groups:
            self._group(slot, group, histogram)
            self._group(day, group, histogram)

    def _group(self, slot: _Slot, key: GroupKey, histogram: ExpHistogram) -> None:
        if key not in self._group_keys:
            if len(self._group_keys) >= self.max_series:
                # At most four overflow groups per metric: name and detail folded.
                metric, name, detail = key
                key = (
                    metric,
                    None if name is None else OVERFLOW_VALUE,
                    None if detail is None else OVERFLOW_VALUE,
                )
            self._group_keys.add(key)
        merged = slot.groups.get(key)
        if merged is None:
            slot.groups[key] = histogram.copy()
        else:
            merged.merge(histogram)

    def _fold_pending(self) -> None:
        """Fold every pending value into its slot's histograms. Under the lock."""
        for slot in self._fine.slots:
            if slot.pending:
                for key, values in slot.pending.items():
                    self._fold_series(slot, key, values)
                slot.pending.clear()

    def _evict(self, now: float) -> None:
        self._fold_pending()
        self._fine.evict(now)
        self._coarse.evict(now)
        self._day.evict(now)
        current = self._current
        if current is not None and (not self._fine.slots or current is not self._fine.slots[-1]):
            self._current, self._current_end = None, -math.inf

    # ---------------------------------------------------------------- queries
    def refresh(self) -> None:
        """Fold what was recorded so far, so queries and exports see it. Never raises."""
        with self._lock:
            self._fold_pending()

    def counts(
        self, metric: str, window: float | None = None, *, long: bool = False
    ) -> dict[Attributes, float]:
        """Counts per series of ``metric`` over the last ``window`` seconds.

        Counters give their sum; histograms their observation count. ``long``
        reads the coarse slots (up to ``long_window``); a ``window`` longer
        than the fine slots span reads the day slots (up to ``day_window``);
        otherwise the fine ones.
        """
        now = self._clock()
        result: dict[Attributes, float] = {}
        with self._lock:
            self._evict(now)
            ring = self._ring(window, long)
            span = ring.span if window is None else min(window, ring.span)
            if span >= ring.span:
                for (name, attributes), value in ring.totals.items():
                    if name == metric:
                        result[attributes] = value
                return result
            add_counts(result, ring.since(now - span), metric)
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
            window: Seconds, at most the windows' ``window`` (default all of it).
            name: Only this execution (definition) name.
            detail: Only this state (execution duration) or step type (task duration).
        """
        now = self._clock()
        merged = ExpHistogram()
        with self._lock:
            self._evict(now)
            ring = self._ring(window, False)
            span = ring.span if window is None else min(window, ring.span)
            merge_groups(merged, ring.since(now - span), (metric, name, detail))
        return merged

    def _ring(self, window: float | None, long: bool) -> _Ring:
        if long:
            return self._coarse
        if window is not None and window > self._fine.span:
            return self._day
        return self._fine

    def levels(self, metric: str) -> dict[Attributes, float]:
        """The current value per series of an up-down counter."""
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
                "day_slots": len(self._day.slots),
            }

    def export_windows(self) -> dict[str, Any]:
        """A JSON-ready copy of the windows and levels, for the process group's file.

        Bounded as the windows are: at most ``max_series`` series and groups per slot.
        """
        now = self._clock()

        def counts(slot: _Slot) -> list[Any]:
            return [
                [metric, [list(pair) for pair in attributes], value]
                for (metric, attributes), value in slot.counts.items()
            ]

        def with_groups(slot: _Slot) -> dict[str, Any]:
            return {
                "start": slot.start,
                "counts": counts(slot),
                "groups": [
                    [metric, name, detail, histogram.to_wire()]
                    for (metric, name, detail), histogram in slot.groups.items()
                ],
            }

        with self._lock:
            self._evict(now)
            return {
                "fine_slot": self._fine.width,
                "coarse_slot": self._coarse.width,
                "day_slot": self._day.width,
                "fine": [with_groups(slot) for slot in self._fine.slots],
                "day": [with_groups(slot) for slot in self._day.slots],
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
        self._day = _Ring(self._day.width, self.day_window)
        self._series = set()
        self._group_keys = set()
        self._levels = {}
        self._current, self._current_end = None, -math.inf
