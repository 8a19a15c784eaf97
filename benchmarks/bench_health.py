"""Cost of the in-process health: health(refresh=True), summary() and the cached health().

Run with ``make bench`` or ``python benchmarks/bench_health.py [--json]``.

Windows are filled through the direct feed (``monitor.reader.observe``, what
the instrument layer calls), every 10 s fine slot of the 300 s window:

- ``refresh_10_series``: ``health(refresh=True)`` with 10 series that each get
  one observation per slot, durations spread over 4 decades (the pattern that
  stalled 0.1 for seconds). Target <= 5 ms.
- ``refresh_at_cap`` / ``summary_at_cap``: 1,000 series (the cap: 200 names x
  5 outcomes), 20 observations each per slot, log-normal. Targets <= 50 ms
  and <= 20 ms.
- ``health_cached``: ``health()`` once evaluated. Target <= 1 ms.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from collections.abc import Callable

from stepwatch import semconv
from stepwatch.testing import FakeClock, Harness, capture

SLOTS = 30
TARGETS_MS = {
    "refresh_10_series_ms": 5.0,
    "refresh_at_cap_ms": 50.0,
    "summary_at_cap_ms": 20.0,
    "health_cached_ms": 1.0,
}


def median_ms(function: Callable[[], object], batches: int) -> float:
    samples = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        function()
        samples.append((time.perf_counter_ns() - start) / 1e6)
    return statistics.median(samples)


def fill(sw: Harness, clock: FakeClock, names: int, per_slot: int, spread: bool) -> None:
    rng = random.Random(7)
    outcomes = ("success", "failure", "timeout", "cancellation", "retry")
    observe = sw.monitor.reader.observe
    metric = semconv.EXECUTION_DURATION.name
    series = [
        {
            "workflow.definition.name": f"name-{n}",
            "workflow.execution.state": "executing",
            "workflow.execution.outcome": outcome,
        }
        for n in range(names)
        for outcome in (outcomes if names > 2 else outcomes[:1])
    ]
    for _slot in range(SLOTS):
        for attributes in series:
            for _ in range(per_slot):
                value = 10 ** rng.uniform(-2, 2) if spread else rng.lognormvariate(1.0, 1.2)
                observe(metric, value, attributes)
        clock.advance(10)


def bench_refresh_10_series(batches: int) -> float:
    clock = FakeClock()
    with capture(clock=clock) as sw:
        fill(sw, clock, names=10, per_slot=1, spread=True)
        return median_ms(lambda: sw.monitor.health(refresh=True), batches)


def bench_at_cap(batches: int) -> tuple[float, float]:
    clock = FakeClock()
    with capture(clock=clock) as sw:
        fill(sw, clock, names=200, per_slot=20, spread=False)
        assert sw.monitor.reader.sizes()["series"] == 1_000
        refresh = median_ms(lambda: sw.monitor.health(refresh=True), batches)
        summary = median_ms(sw.monitor.summary, batches)
        return refresh, summary


def bench_health_cached(batches: int) -> float:
    with capture() as sw:
        sw.monitor.health(refresh=True)
        return median_ms(lambda: [sw.monitor.health() for _ in range(1_000)], batches) / 1_000


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--batches", type=int, default=9)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    refresh_cap, summary_cap = bench_at_cap(args.batches)
    result = {
        "refresh_10_series_ms": round(bench_refresh_10_series(args.batches), 3),
        "refresh_at_cap_ms": round(refresh_cap, 3),
        "summary_at_cap_ms": round(summary_cap, 3),
        "health_cached_ms": round(bench_health_cached(args.batches), 5),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{'figure':<26}{'median':>12}{'target':>12}")
    for key, value in result.items():
        target = TARGETS_MS[key]
        verdict = "met" if value <= target else "missed"
        print(f"{key:<26}{value:>12}{'<= ' + str(target):>12}  {verdict}")


if __name__ == "__main__":
    main()
