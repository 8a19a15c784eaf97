"""A steady epoch clock: reads like the wall clock, never steps back.

The Monitor's health windows and its health staleness must not follow a wall
clock stepped back (an NTP correction, a VM resumed, an operator's ``date``):
values would land in slots of the past, windows would count twice, a cached
evaluation would look fresh for as long as the step. :class:`SteadyClock`
advances by a monotonic clock and follows the wall clock only forward.

How an injected clock coexists with monotonic time: the steady clock reads
two clocks, a *wall* (epoch seconds) and a *monotonic* one (elapsed
seconds). By default these are ``time.time`` and ``time.monotonic``. With an
injected clock (a Monitor's ``clock=``), the wall is that clock, and the
monotonic one is its ``monotonic`` attribute when it has one
(:class:`stepwatch.testing.FakeClock` does: ``advance`` moves both, ``set``
moves the wall only, so a test can step the wall back while time goes on),
else the injected clock itself. Either way a test that only advances its
clock sees the steady clock equal to it.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable

__all__ = ["SteadyClock"]

_clocks: weakref.WeakSet[SteadyClock] = weakref.WeakSet()
"""Every steady clock, to give each a fresh lock in a forked child."""


def _after_fork_in_child() -> None:
    # A thread of the parent may have held a clock's lock at fork time: in the
    # child it would stay held forever, and every recording would hang on it.
    for clock in list(_clocks):
        clock._lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


class SteadyClock:
    """Epoch seconds that never step back.

    Each reading is the previous one plus the monotonic time elapsed since,
    or the wall clock when that is further ahead (so a wall clock stepped
    forward is followed, one stepped back is not: time goes on from where it
    was). Thread-safe (and fork-safe: a forked child gets a fresh lock); a
    reading costs two clock reads and a lock.

    Args:
        wall: Epoch seconds (``time.time`` by default).
        monotonic: Elapsed seconds; by default ``time.monotonic`` for the real
            wall clock, else ``wall.monotonic`` when present, else ``wall``.
    """

    __slots__ = ("__weakref__", "_last", "_last_mono", "_lock", "_mono", "_wall")

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        if monotonic is None:
            found = getattr(wall, "monotonic", None)
            if wall is time.time:
                monotonic = time.monotonic
            elif callable(found):
                monotonic = found
            else:
                monotonic = wall
        self._wall = wall
        self._mono = monotonic
        self._lock = threading.Lock()
        self._last = wall()
        self._last_mono = monotonic()
        _clocks.add(self)

    @classmethod
    def of(cls, clock: Callable[[], float]) -> SteadyClock:
        """``clock`` itself when already steady, else a steady clock over it."""
        return clock if isinstance(clock, SteadyClock) else cls(clock)

    def __call__(self) -> float:
        wall = self._wall()
        mono = self._mono()
        with self._lock:
            steady = self._last + max(mono - self._last_mono, 0.0)
            steady = max(steady, wall)
            self._last = steady
            self._last_mono = max(mono, self._last_mono)
            return steady
