"""Where a step's overhead goes: stepwatch with parts switched off, against hand-written code.

Run: ``python benchmarks/bench_parts.py [--batches N] [--steps N] [--json]``.

The same like-for-like baseline as ``bench_overhead.py`` (its ``Handwritten``
and providers), executions of ``--steps`` steps, one process. Each variant
is stepwatch with some of its per-run work switched off, by swapping the
installed ``Telemetry`` (so the decorated code is unchanged):

- ``everything``: stepwatch as shipped;
- ``no headroom check``: no recursion-headroom probe at a run's start;
- ``... no observer``: and no Monitor observer (no event-bus records, no
  progress tracker);
- ``... no windows``: and the duration histogram not fed to the health
  windows (the OpenTelemetry instrument only).

What is left in the last is the instrument layer itself: the handles and
step records, the execution's step counts, context entry, span events. A
diagnostic, not a goal: it says what each part costs, so the table in
``docs/benchmarks.md`` can be kept current after each change. Ratios are
medians of ratios within a batch, in thread CPU time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from unittest import mock

import bench_overhead as overhead
import stepwatch
from stepwatch import _telemetry
from stepwatch import instrument as stepwatch_instrument

VARIANTS = ("everything", "no headroom check", "... no observer", "... no windows")


def _never() -> bool:
    """The headroom probe switched off (a plain function: a mock would cost more)."""
    return False


@contextmanager
def variant(telemetry: _telemetry.Telemetry, level: int) -> Iterator[None]:
    """Install ``telemetry`` with the first ``level`` parts switched off."""
    changes: dict[str, object] = {}
    if level >= 2:
        changes["observer"] = None
    if level >= 3:
        changes["task_duration"] = getattr(
            telemetry.task_duration, "_instrument", telemetry.task_duration
        )
    swapped = dataclasses.replace(telemetry, **changes)  # type: ignore[arg-type]
    with ExitStack() as stack:
        if level >= 1:
            stack.enter_context(
                mock.patch.object(stepwatch_instrument, "near_recursion_limit", _never)
            )
        _telemetry.install(swapped)
        stack.callback(_telemetry.uninstall, swapped)
        yield


def cpu_ns(function: Callable[[], object]) -> int:
    start = time.thread_time_ns()
    function()
    return time.thread_time_ns() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--batches", type=int, default=61)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args()
    hand = overhead.Handwritten(*overhead.providers())
    tracer_provider, meter_provider = overhead.providers()
    monitor = stepwatch.Monitor(tracer_provider=tracer_provider, meter_provider=meter_provider)
    monitor.install()
    telemetry = _telemetry.current()
    monitor.uninstall()
    steps = args.steps
    samples: dict[str, list[float]] = {name: [] for name in ("hand-written", *VARIANTS)}
    for _ in range(args.batches):
        samples["hand-written"].append(cpu_ns(lambda: hand.execution(steps)))
        hand.tracer_provider.force_flush()
        for level, name in enumerate(VARIANTS):
            with variant(telemetry, level):
                samples[name].append(cpu_ns(lambda: overhead.stepwatch_execution(steps)))
            tracer_provider.force_flush()
    monitor.shutdown()
    base = samples["hand-written"]
    ratios = {name: overhead.paired_ratio(samples[name], base) for name in VARIANTS}
    if args.json:
        print(json.dumps({"steps": steps, "ratios": {k: round(v, 3) for k, v in ratios.items()}}))
        return
    print(f"hand-written: {statistics.median(base) / steps:,.0f} CPU ns per step")
    for name, ratio in ratios.items():
        print(f"{name:<24}{ratio:>8.3f}")


if __name__ == "__main__":
    main()
