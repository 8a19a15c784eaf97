"""Queries cost what they return: events(since, limit) and active_executions(limit).

Run: ``python benchmarks/bench_queries.py [--json]``.

Each figure compares the same query against a small and a large store
(100 against 10,000 events in the history; 100 against 10,000 running
executions). A query whose cost follows its answer shows a ratio near 1;
one that scans everything shows about 100.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
from collections.abc import Callable

import stepwatch
from stepwatch.testing import capture


def median_us(function: Callable[[], object], batches: int = 9, calls: int = 200) -> float:
    samples = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        for _ in range(calls):
            function()
        samples.append((time.perf_counter_ns() - start) / calls / 1_000)
    return statistics.median(samples)


def events_us(history: int) -> float:
    with capture() as sw:
        for index in range(history // 2):
            with stepwatch.execution("e", execution_id=f"e-{index}"):
                pass
        newest = sw.monitor.events(limit=1)[0].seq
        return median_us(lambda: sw.monitor.events(since=newest - 10, limit=10))


def active_us(running: int) -> float:
    with capture() as sw, contextlib.ExitStack() as stack:
        for index in range(running):
            stack.enter_context(stepwatch.execution("r", execution_id=f"r-{index}"))
        return median_us(lambda: sw.monitor.active_executions(limit=100), calls=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    small_events, large_events = events_us(100), events_us(10_000)
    small_active, large_active = active_us(100), active_us(10_000)
    result = {
        "events_since_limit_10_us_100": round(small_events, 1),
        "events_since_limit_10_us_10000": round(large_events, 1),
        "events_ratio": round(large_events / small_events, 2),
        "active_limit_100_us_100": round(small_active, 1),
        "active_limit_100_us_10000": round(large_active, 1),
        "active_ratio": round(large_active / small_active, 2),
    }
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:<34}{value:>12}")


if __name__ == "__main__":
    main()
