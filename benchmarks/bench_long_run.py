"""Long run: 1,000,000 steps in one process, memory flat after warm-up.

Run with ``python benchmarks/bench_long_run.py [--steps N] [--json]`` (a
benchmark, not a default test: about a minute here).

The engine runs executions of 10 steps each with the Monitor's evaluation
loop on (so the HealthMetricReader collects every second) and no exporter.
RSS is read from /proc after a warm-up of 20% of the steps (every bounded
structure full, the allocator settled) and at the end. Target: growth
<= 1 MiB; the event history, tracker and reader stay within their bounds.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import stepwatch

STEPS_PER_EXECUTION = 10


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def run(executions: int, offset: int) -> None:
    for n in range(offset, offset + executions):
        with stepwatch.execution(
            "long-run", execution_id=f"l-{n}", total_steps=STEPS_PER_EXECUTION
        ):
            for _ in range(STEPS_PER_EXECUTION):
                with stepwatch.step("s", step_type="unit"):
                    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    executions = args.steps // STEPS_PER_EXECUTION
    warmup = executions // 5
    monitor = stepwatch.configure(service_name="long-run", exporter="none")
    monitor.start(interval=1.0)
    started = time.perf_counter()
    run(warmup, 0)
    gc.collect()
    warm = rss_bytes()
    run(executions - warmup, warmup)
    gc.collect()
    end = rss_bytes()
    elapsed = time.perf_counter() - started
    summary = monitor.summary()
    result = {
        "steps": executions * STEPS_PER_EXECUTION,
        "seconds": round(elapsed, 1),
        "steps_per_second": round(executions * STEPS_PER_EXECUTION / elapsed),
        "rss_after_warmup_mib": round(warm / 2**20, 2),
        "rss_end_mib": round(end / 2**20, 2),
        "rss_growth_kib": round((end - warm) / 1024),
        "tracker": monitor.tracker.sizes(),
        "tracker_max_finished": monitor.limits.max_finished,
        "event_history": len(monitor.bus),
        "event_history_max": monitor.bus.max_history,
        "reader": monitor.reader.sizes(),
        "reader_max_series": monitor.reader.max_series,
        "summary_steps_in_window": summary.steps["unit"].total if "unit" in summary.steps else 0,
        "target_met": end - warm <= 2**20,
    }
    monitor.shutdown()
    if args.json:
        print(json.dumps(result))
        return
    for key, value in result.items():
        print(f"{key:<28}{value}")


if __name__ == "__main__":
    main()
