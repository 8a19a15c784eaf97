"""The per-execution flush of a forked child: bounded, and skipped while the backend fails.

A forked child (a Celery/billiard prefork child, RQ's or luigi's fork per
job, a ``multiprocessing`` fork worker) may leave with ``os._exit`` right
after an execution ends: no exit hook runs, and the SDK's batch processor
and periodic metric reader would export what it recorded seconds later, if
ever. So every execution that ends in a forked child is flushed at once.

That flush must never hold the engine up:

- it waits at most ``flush_timeout`` seconds (the export goes on in a
  daemon thread past the bound, and dies with the child);
- once a flush fails or overruns the bound, the process family knows its
  backend is failing: a :class:`FailureBoard` in memory shared by the parent
  and every child forked after it (an anonymous shared ``mmap``) records
  until when to skip flushing, so the next fork-per-job child does not pay
  the bound again. The skip lasts :data:`FIRST_BACKOFF` seconds, doubling on
  each failed retry up to :data:`MAX_BACKOFF`; one successful flush clears it.

What a skipped flush leaves behind stays in the SDK's queues: a long-lived
child (Celery prefork) exports it on the SDK's own schedule; a child that
leaves with ``os._exit`` loses it, as it would have with the backend down.
"""

from __future__ import annotations

import mmap
import struct
import threading
import time
from collections.abc import Callable

from stepwatch._safety import report

__all__ = ["DEFAULT_FLUSH_TIMEOUT", "FIRST_BACKOFF", "MAX_BACKOFF", "BoundedFlush", "FailureBoard"]

DEFAULT_FLUSH_TIMEOUT = 1.0
"""Seconds a forked child's per-execution flush may hold the engine up."""

FIRST_BACKOFF = 30.0
"""Seconds flushes are skipped after the first failed or overrunning flush."""

MAX_BACKOFF = 300.0
"""The longest skip: the backend is retried at least this often."""

_LAYOUT = struct.Struct("=dd")  # (skip flushes until, current back-off), time.monotonic seconds


class FailureBoard:
    """Whether the backend is known to fail, shared by a process and the children it forks.

    Backed by an anonymous shared mapping: the parent and every child forked
    after the board was made read and write the same bytes (a fork-per-job
    child's lesson reaches the next child). ``time.monotonic`` is one clock
    for all processes of a machine. Never raises.
    """

    def __init__(self) -> None:
        self._memory: mmap.mmap | None
        try:
            self._memory = mmap.mmap(-1, _LAYOUT.size)
        except (OSError, ValueError):  # no shared memory: each process learns on its own
            self._memory = None
        self._local = (0.0, 0.0)

    def _read(self) -> tuple[float, float]:
        memory = self._memory
        if memory is None:
            return self._local
        until, backoff = _LAYOUT.unpack_from(memory, 0)
        return float(until), float(backoff)

    def _write(self, until: float, backoff: float) -> None:
        memory = self._memory
        if memory is None:
            self._local = (until, backoff)
        else:
            _LAYOUT.pack_into(memory, 0, until, backoff)

    def failing(self, now: float | None = None) -> bool:
        """Whether flushes are being skipped now."""
        until, _backoff = self._read()
        return (time.monotonic() if now is None else now) < until

    def failed(self, now: float | None = None) -> float:
        """Record a failed or overrunning flush; returns the seconds flushes are now skipped."""
        now = time.monotonic() if now is None else now
        _until, backoff = self._read()
        backoff = FIRST_BACKOFF if backoff <= 0 else min(backoff * 2, MAX_BACKOFF)
        self._write(now + backoff, backoff)
        return backoff

    def succeeded(self) -> None:
        """Record a flush that went through in time: flush every execution again."""
        if self._read() != (0.0, 0.0):
            self._write(0.0, 0.0)


class BoundedFlush:
    """Flushes the given providers in a daemon thread, waiting at most ``timeout`` seconds.

    Args:
        providers: Returns the providers to flush (read at each call: a
            forked child rebuilds them).
        before: Called first, on the caller's thread (the group's publish).
        failures: Returns how many exports have failed so far (the
            exporters' :class:`~stepwatch.health.ExportStatus`); a flush
            during which it grows counts as failed.
        board: Where the family of processes records a failing backend.
        timeout: Seconds to wait.

    ``attempts`` and ``skipped`` count the flushes started and the ones the
    board skipped (tests and benchmarks read them).
    """

    def __init__(
        self,
        providers: Callable[[], tuple[object, ...]],
        *,
        before: Callable[[], object] | None,
        failures: Callable[[], int],
        board: FailureBoard,
        timeout: float,
    ) -> None:
        self._providers = providers
        self._before = before
        self._failures = failures
        self.board = board
        self.timeout = timeout
        self.attempts = 0
        self.skipped = 0

    def __call__(self) -> None:
        """Flush now, within the bound, unless the backend is known to fail. Never raises."""
        try:
            before = self._before
            if before is not None:
                before()
            if self.board.failing():
                self.skipped += 1
                return
            self.attempts += 1
            if not self._flush_within_bound():
                backoff = self.board.failed()
                report(
                    "flush.failing",
                    "stepwatch: flushing telemetry failed or took over %s s (is the backend "
                    "reachable?); skipping per-execution flushes for %s s",
                    self.timeout,
                    backoff,
                )
            else:
                self.board.succeeded()
        except Exception:
            report("monitor.flush", "stepwatch: flushing telemetry failed", exc_info=True)

    def _flush_within_bound(self) -> bool:
        providers = [p for p in self._providers() if p is not None]
        if not providers:
            return True
        failures_before = self._failures()
        timeout_millis = self.timeout * 1000
        outcome: list[bool] = []
        done = threading.Event()

        def flush() -> None:
            ok = True
            try:
                for provider in providers:
                    method = getattr(provider, "force_flush", None)
                    if method is not None and method(timeout_millis) is False:
                        ok = False
            except Exception:
                ok = False
                report("monitor.flush", "stepwatch: flushing telemetry failed", exc_info=True)
            finally:
                outcome.append(ok)
                done.set()

        threading.Thread(target=flush, name="stepwatch-flush", daemon=True).start()
        if not done.wait(self.timeout):
            return False
        return outcome[0] and self._failures() == failures_before
