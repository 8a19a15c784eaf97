"""ExpHistogram.merge: exact across scales, and never builds more buckets than it keeps."""

from __future__ import annotations

import tracemalloc

from hypothesis import given
from hypothesis import strategies as st

from stepwatch._histogram import MAX_BUCKETS, ExpHistogram


def _reference_merge(a: ExpHistogram, b: ExpHistogram) -> tuple[int, int, tuple[int, ...]]:
    """0.1's algorithm: both at the lower scale, combined, then halved until it fits."""
    scale = min(a.scale, b.scale)
    buckets: dict[int, int] = {}
    for histogram in (a, b):
        shift = histogram.scale - scale
        for position, count in enumerate(histogram.counts):
            index = (histogram.offset + position) >> shift
            buckets[index] = buckets.get(index, 0) + count
    buckets = {k: v for k, v in buckets.items() if v} or buckets
    while buckets and max(buckets) - min(buckets) + 1 > MAX_BUCKETS:
        halved: dict[int, int] = {}
        for index, count in buckets.items():
            halved[index >> 1] = halved.get(index >> 1, 0) + count
        buckets, scale = halved, scale - 1
    if not buckets:
        return scale, 0, ()
    low = min(buckets)
    return scale, low, tuple(buckets.get(i, 0) for i in range(low, max(buckets) + 1))


_HISTOGRAMS = st.builds(
    lambda scale, offset, counts: ExpHistogram(
        count=sum(counts),
        sum=float(sum(counts)),
        min=1.0,
        max=2.0,
        scale=scale,
        offset=offset,
        counts=tuple(counts),
    ),
    st.integers(0, 20),
    st.integers(-5_000, 5_000),
    st.lists(st.integers(0, 5), min_size=1, max_size=40).filter(lambda c: c[0] and c[-1]),
)


@given(a=_HISTOGRAMS, b=_HISTOGRAMS)
def test_merge_matches_the_reference_merge(a: ExpHistogram, b: ExpHistogram) -> None:
    expected = _reference_merge(a, b)
    merged = a.copy()
    merged.merge(b)
    assert (merged.scale, merged.offset, merged.counts) == expected
    assert merged.count == a.count + b.count
    assert len(merged.counts) <= MAX_BUCKETS


def test_merging_far_apart_fine_points_builds_no_huge_bucket_list() -> None:
    """Two single observations 12 decades apart at scale 20 (what one observation per
    collection gives): 0.1 built ~40 million buckets first (hundreds of MB)."""
    tiny = ExpHistogram(
        count=1, sum=1e-6, min=1e-6, max=1e-6, scale=20, offset=-20_903_000, counts=(1,)
    )
    huge = ExpHistogram(
        count=1, sum=1e6, min=1e6, max=1e6, scale=20, offset=20_903_000, counts=(1,)
    )
    tracemalloc.start()
    try:
        merged = tiny.copy()
        merged.merge(huge)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert merged.count == 2
    assert len(merged.counts) <= MAX_BUCKETS
    assert peak < 256 * 1024, f"merging allocated {peak} bytes at its peak"
