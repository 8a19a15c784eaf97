"""What a process group costs: publishing with 1,000 live executions, queries over 8 processes.

Run: ``python benchmarks/bench_group.py [--repeats N]``.

- **publish**: one process with 1,000 running executions (5 steps declared,
  2 done, one running), a finished history and full health windows writes
  its group file (``ProcessGroup.publish``); the cost per second is this
  times the publishes per second (1 by default).
- **queries**: a Monitor reads a group of 8 processes (itself and 7 peer
  files, each like the one above) and answers ``active_executions()``,
  ``summary()`` and ``health(refresh=True)``, against the same Monitor
  answering without a group (the baseline: the same local data, no files).
  Peer files are parsed once and cached while unchanged, so the table shows
  both a query after every peer republished (cold) and one in between (warm).
- **reader memory**: how much the member's resident memory grows when it
  first reads the peers (``--peers N`` changes the group's size; the peers'
  own memory is allocated before the figure is taken).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import stepwatch
from stepwatch import Monitor

LIVE = 1_000
PEERS = 7


def _fill(monitor: Monitor) -> threading.Event:
    """1,000 executions held running (on one thread each would be heavy: use handles)."""
    release = threading.Event()
    scopes = []
    for number in range(LIVE):
        scope = stepwatch.execution("bench", execution_id=f"{id(monitor)}-{number}", total_steps=5)
        execution = scope.__enter__()
        for name in ("a", "b"):
            with execution.step(name, step_type="compute"):
                pass
        step_scope = execution.step("c", step_type="compute")
        step = step_scope.__enter__()
        step.progress(0.5)
        scopes.append((scope, step_scope))
    for number in range(200):
        try:
            with stepwatch.execution("done", execution_id=f"{id(monitor)}-done-{number}"):
                if number % 10 == 0:
                    raise RuntimeError("fails")
        except RuntimeError:
            pass
    _held.append(scopes)
    return release


_held: list[object] = []


def _median_ms(action: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _rss_mib() -> float:
    """This process's resident memory now (Linux ``/proc``), in MiB."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--peers", type=int, default=PEERS, help="peer members (default 7)")
    options = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="stepwatch-bench-group-"))
    try:
        peers = []
        for _ in range(options.peers):
            peer = Monitor(multiprocess_dir=directory, publish_interval=600.0).install()
            _fill(peer)
            peer.group.publish()  # type: ignore[union-attr]
            peers.append(peer)
        plain = Monitor().install()
        _fill(plain)
        member = Monitor(multiprocess_dir=directory, publish_interval=600.0).install()
        _fill(member)
        assert member.group is not None
        publish = _median_ms(member.group.publish, options.repeats)
        size = member.group.path.stat().st_size
        before = _rss_mib()
        first = time.perf_counter()
        member.active_executions()
        first_ms = (time.perf_counter() - first) * 1000
        grown = _rss_mib() - before

        def cold(query: Callable[[], object]) -> Callable[[], float]:
            def run() -> float:
                for peer in peers:
                    peer.group.publish()  # type: ignore[union-attr]
                start = time.perf_counter()
                query()
                return time.perf_counter() - start

            return run

        rows = []
        for label, grouped, alone in (
            ("active_executions()", member.active_executions, plain.active_executions),
            ("summary()", member.summary, plain.summary),
            (
                "health(refresh=True)",
                lambda: member.health(refresh=True),
                lambda: plain.health(refresh=True),
            ),
        ):
            base = _median_ms(alone, options.repeats)
            warm = _median_ms(grouped, options.repeats)
            cold_times = [cold(grouped)() * 1000 for _ in range(options.repeats)]
            rows.append((label, base, warm, statistics.median(cold_times)))
        print(
            f"publish, {LIVE} live executions: {publish:.1f} ms per publish, "
            f"{size / 1024:.0f} KiB file"
        )
        print(
            f"reader, {options.peers} peers: first active_executions() {first_ms:.0f} ms, "
            f"resident memory +{grown:.0f} MiB"
        )
        heading = f"query ({options.peers + 1} processes)"
        print(f"{heading:<24} {'alone ms':>9} {'warm ms':>9} {'cold ms':>9}")
        for label, base, warm, cold_ms in rows:
            print(f"{label:<24} {base:>9.1f} {warm:>9.1f} {cold_ms:>9.1f}")
        for monitor in (*peers, plain, member):
            monitor.shutdown()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
