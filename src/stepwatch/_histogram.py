"""Exponential-bucket histograms: exact merging across scales, quantiles with error bounds.

An exponential histogram at scale ``s`` has base ``b = 2 ** (2 ** -s)``;
bucket ``i`` holds values in ``(b ** i, b ** (i + 1)]``. Lowering the scale by
``k`` maps bucket ``i`` to ``i >> k`` exactly (each lower bucket is the union
of ``2 ** k`` higher ones), so histograms recorded at different scales merge
without error at the lower scale. Only positive values and zeros occur here
(durations); negative buckets are ignored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_BUCKETS", "ExpHistogram", "relative_error"]

MAX_BUCKETS = 160
"""Buckets kept per histogram (the SDK's default ``max_size``); merging lowers the
scale further when a wider range would need more."""


def relative_error(scale: int) -> float:
    """Worst relative error of a value estimated inside one bucket at ``scale``.

    The estimate for bucket ``(L, U]`` is ``2LU / (L + U)``, which is within
    ``(b - 1) / (b + 1)`` of any value in the bucket, ``b`` being the base.
    """
    base = math.pow(2.0, math.pow(2.0, -scale))
    return (base - 1.0) / (base + 1.0)


_MAX_EXPONENT = 1000
"""Largest power of two a bucket bound may reach (floats end near 2 ** 1024)."""


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _downscale(offset: int, counts: tuple[int, ...], shift: int) -> tuple[int, tuple[int, ...]]:
    if shift <= 0 or not counts:
        return offset, counts
    new_offset = offset >> shift
    last = (offset + len(counts) - 1) >> shift
    merged = [0] * (last - new_offset + 1)
    for position, count in enumerate(counts):
        if count:
            merged[((offset + position) >> shift) - new_offset] += count
    return new_offset, tuple(merged)


@dataclass(slots=True)
class ExpHistogram:
    """A mergeable exponential histogram of non-negative values.

    Attributes:
        count: Observations.
        sum: Their sum.
        min: Smallest observation (``inf`` when empty).
        max: Largest observation (``-inf`` when empty).
        zero_count: Observations equal to zero.
        scale: The scale of ``counts``.
        offset: Bucket index of ``counts[0]``.
        counts: Positive bucket counts (a tuple: small ints are shared, so a
            histogram costs about 8 bytes per bucket).
    """

    count: int = 0
    sum: float = 0.0
    min: float = math.inf
    max: float = -math.inf
    zero_count: int = 0
    scale: int = 20
    offset: int = 0
    counts: tuple[int, ...] = ()

    @classmethod
    def from_point(cls, point: Any) -> ExpHistogram:
        """Build from an SDK ``ExponentialHistogramDataPoint`` (empty edge buckets trimmed)."""
        counts = list(point.positive.bucket_counts)
        offset = int(point.positive.offset)
        start = 0
        while start < len(counts) and counts[start] == 0:
            start += 1
        end = len(counts)
        while end > start and counts[end - 1] == 0:
            end -= 1
        return cls(
            count=int(point.count),
            sum=float(point.sum),
            min=float(point.min) if point.count else math.inf,
            max=float(point.max) if point.count else -math.inf,
            zero_count=int(point.zero_count),
            scale=int(point.scale),
            offset=offset + start,
            counts=tuple(counts[start:end]),
        )

    def to_wire(self) -> list[Any]:
        """A JSON-ready list (for the process group's files); see :meth:`from_wire`."""
        return [
            self.count,
            self.sum,
            self.min,
            self.max,
            self.zero_count,
            self.scale,
            self.offset,
            list(self.counts),
        ]

    @classmethod
    def from_wire(cls, wire: Any) -> ExpHistogram:
        """Rebuild from :meth:`to_wire`'s list.

        Raises:
            ValueError, TypeError: not such a list.
        """
        count, total, low, high, zero, scale, offset, counts = wire
        if not isinstance(counts, list) or not all(_whole(c) for c in counts):
            raise ValueError("bucket counts must be a list of ints >= 0")
        if not all(_whole(n) for n in (count, zero)) or count != zero + sum(counts):
            raise ValueError("count and zero_count must be ints >= 0 adding up with the buckets")
        if isinstance(scale, bool) or not isinstance(scale, int) or not -10 <= scale <= 20:
            raise ValueError("scale out of range")
        if isinstance(offset, bool) or not isinstance(offset, int) or len(counts) > MAX_BUCKETS:
            raise ValueError("offset or bucket count out of range")
        # Every bucket bound 2 ** (index * 2 ** -scale) must be a finite float.
        reach = _MAX_EXPONENT << scale if scale >= 0 else _MAX_EXPONENT >> -scale
        if not (-reach <= offset and offset + len(counts) <= reach):
            raise ValueError("offset out of range")
        values = (total, low, high)
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            raise ValueError("sum, min and max must be numbers")
        if count and not all(math.isfinite(v) and v >= 0 for v in values):
            raise ValueError("sum, min and max must be finite and non-negative")
        if not count and (total != 0 or low != math.inf or high != -math.inf):
            raise ValueError("an empty histogram has no sum, min or max")
        return cls(count, float(total), float(low), float(high), zero, scale, offset, tuple(counts))

    def copy(self) -> ExpHistogram:
        """Return an independent copy."""
        return ExpHistogram(
            self.count,
            self.sum,
            self.min,
            self.max,
            self.zero_count,
            self.scale,
            self.offset,
            self.counts,
        )

    def merge(self, other: ExpHistogram) -> None:
        """Add ``other`` into this histogram, exactly, at the lower of the two scales."""
        if other.count == 0:
            return
        if self.count == 0:
            self.count, self.sum, self.min, self.max = other.count, other.sum, other.min, other.max
            self.zero_count, self.scale = other.zero_count, other.scale
            self.offset, self.counts = other.offset, other.counts
            self._fit()
            return
        # Choose the final scale from the two index ranges before building any
        # bucket list: at the common scale, two far-apart single buckets of a
        # fine scale would otherwise span millions of buckets first.
        scale = min(self.scale, other.scale)
        ends = [
            (offset + side) >> (own_scale - scale)
            for offset, counts, own_scale in (
                (self.offset, self.counts, self.scale),
                (other.offset, other.counts, other.scale),
            )
            if counts
            for side in (0, len(counts) - 1)
        ]
        if ends:
            low, high = min(ends), max(ends)
            while high - low + 1 > MAX_BUCKETS:
                low, high, scale = low >> 1, high >> 1, scale - 1
        own_offset, own = _downscale(self.offset, self.counts, self.scale - scale)
        their_offset, theirs = _downscale(other.offset, other.counts, other.scale - scale)
        if not own:
            offset, counts = their_offset, theirs
        elif not theirs:
            offset, counts = own_offset, own
        else:
            offset = min(own_offset, their_offset)
            end = max(own_offset + len(own), their_offset + len(theirs))
            combined = [0] * (end - offset)
            for start, values in ((own_offset, own), (their_offset, theirs)):
                for position, value in enumerate(values):
                    combined[start - offset + position] += value
            counts = tuple(combined)
        self.count += other.count
        self.sum += other.sum
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        self.zero_count += other.zero_count
        self.scale, self.offset, self.counts = scale, offset, counts
        self._fit()

    def _fit(self) -> None:
        """Lower the scale until the buckets fit in :data:`MAX_BUCKETS`."""
        while len(self.counts) > MAX_BUCKETS:
            self.offset, self.counts = _downscale(self.offset, self.counts, 1)
            self.scale -= 1

    @property
    def relative_error(self) -> float:
        """Worst relative error of :meth:`quantile` estimates (0 when only zeros)."""
        if self.count == self.zero_count:
            return 0.0
        return relative_error(self.scale)

    def quantile(self, q: float) -> float | None:
        """Estimate the nearest-rank ``q``-quantile (the value at rank ``ceil(q * count)``).

        Returns ``None`` when empty. The estimate is within
        :attr:`relative_error` of the true value at that rank, and is clamped
        to ``[min, max]``.
        """
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q * self.count))
        if rank <= self.zero_count:
            return 0.0
        seen = self.zero_count
        index = self.offset
        for position, bucket in enumerate(self.counts):
            seen += bucket
            if seen >= rank:
                index = self.offset + position
                break
        else:
            return self.max
        factor = math.pow(2.0, -self.scale)
        lower = math.pow(2.0, index * factor)
        upper = math.pow(2.0, (index + 1) * factor)
        estimate = 2.0 * lower * upper / (lower + upper)
        return min(max(estimate, self.min), self.max)
