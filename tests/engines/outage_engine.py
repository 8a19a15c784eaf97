"""An engine whose OTLP endpoint is down: it must not notice, beyond its health.

Usage: python -m tests.engines.outage_engine WARMUP MEASURED
(OTEL_* variables point at a closed port)

Runs WARMUP executions, then measures RSS growth over MEASURED more, after a
``gc.collect()`` at both ends; while the growth reads above 3 MiB it measures
again over MEASURED more, up to three windows in all (a busy machine's
allocator noise does not repeat; a leak does). Prints a JSON line, then obeys
one command on stdin:

- ``recover``: the test has brought a receiver up; run 10 more executions,
  flush, print the health, shut down;
- ``shutdown``: run 3,000 more executions (a full span queue) and shut down
  while the endpoint is still down.
"""

from __future__ import annotations

import gc
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


GROWTH_BOUND = 3 * 1024 * 1024
"""RSS growth over one measured window of 20,000 executions that still reads as flat."""


def flush(monitor: stepwatch.Monitor) -> None:
    flusher = getattr(monitor.tracer_provider, "force_flush", None)
    if flusher is not None:
        flusher()


def firing(monitor: stepwatch.Monitor) -> list[str]:
    """The firing alerts as ``rule`` or ``rule:signal`` (export alerts are per signal)."""
    return sorted(
        f"{a.rule}:{a.labels['signal']}" if "signal" in a.labels else a.rule
        for a in monitor.health(refresh=True).alerts
    )


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def main() -> None:
    warmup, measured = int(sys.argv[1]), int(sys.argv[2])
    monitor = stepwatch.configure(service_name="outage-engine")
    # The warm-up fills every bounded structure (the span queue of 2,048, the
    # 10,000 retained finished executions, the 10,000-event history) and lets
    # the allocator settle; the measured executions must not grow the process.
    errors = run(warmup)
    done = warmup
    growths: list[int] = []
    for _ in range(3 if measured else 0):
        gc.collect()
        warm = rss_bytes()
        errors += run(measured, offset=done)
        done += measured
        gc.collect()
        end = rss_bytes()
        growths.append(end - warm)
        if growths[-1] <= GROWTH_BOUND:
            break
    flush(monitor)  # an export attempt against the closed port fails
    emit(
        phase="outage",
        errors=errors,
        rss_growths=growths,
        executions=done,
        failed_exports=monitor.export_status.failures,
        firing=firing(monitor),
        finished=monitor.summary().outcomes["success"],
        shutdown_timeout=monitor.shutdown_timeout,
    )
    command = sys.stdin.readline().strip()
    if command == "recover":
        run(10, offset=done)
        flush(monitor)
        emit(phase="recovered", firing=firing(monitor), last=f"o-{done + 9}")
    else:
        run(3_000, offset=done)
    started = time.monotonic()
    completed = monitor.shutdown()
    emit(phase="shutdown", completed=completed, seconds=round(time.monotonic() - started, 3))


if __name__ == "__main__":
    main()
