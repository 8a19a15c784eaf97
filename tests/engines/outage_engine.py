"""An engine whose OTLP endpoint is down: it must not notice, beyond its health.

Usage: python -m tests.engines.outage_engine WARMUP MEASURED
(OTEL_* variables point at a closed port)

Runs WARMUP executions, measures RSS, runs MEASURED more, measures again,
prints a JSON line, then obeys one command on stdin:

- ``recover``: the test has brought a receiver up; run 10 more executions,
  flush, print the health, shut down;
- ``shutdown``: run 3,000 more executions (a full span queue) and shut down
  while the endpoint is still down.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import stepwatch


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def run(count: int, offset: int = 0) -> int:
    errors = 0
    for n in range(offset, offset + count):
        try:
            with (
                stepwatch.execution("outage-job", execution_id=f"o-{n}") as ex,
                ex.step("work", step_type="compute"),
            ):
                pass
        except Exception:
            errors += 1
    return errors


def flush(monitor: stepwatch.Monitor) -> None:
    flusher = getattr(monitor.tracer_provider, "force_flush", None)
    if flusher is not None:
        flusher()


def firing(monitor: stepwatch.Monitor) -> list[str]:
    return sorted(a.rule for a in monitor.health(refresh=True).alerts)


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def main() -> None:
    warmup, measured = int(sys.argv[1]), int(sys.argv[2])
    monitor = stepwatch.configure(service_name="outage-engine")
    # The warm-up fills every bounded structure (the span queue of 2,048, the
    # 10,000 retained finished executions, the 10,000-event history) and lets
    # the allocator settle; the measured executions must not grow the process.
    errors = run(warmup)
    warm = rss_bytes()
    errors += run(measured, offset=warmup)
    end = rss_bytes()
    flush(monitor)  # an export attempt against the closed port fails
    emit(
        phase="outage",
        errors=errors,
        rss_warm=warm,
        rss_end=end,
        failed_exports=monitor.export_status.failures,
        firing=firing(monitor),
        finished=monitor.summary().outcomes["success"],
        shutdown_timeout=monitor.shutdown_timeout,
    )
    command = sys.stdin.readline().strip()
    if command == "recover":
        run(10, offset=warmup + measured)
        flush(monitor)
        emit(phase="recovered", firing=firing(monitor), last=f"o-{warmup + measured + 9}")
    else:
        run(3_000, offset=warmup + measured)
    started = time.monotonic()
    completed = monitor.shutdown()
    emit(phase="shutdown", completed=completed, seconds=round(time.monotonic() - started, 3))


if __name__ == "__main__":
    main()
