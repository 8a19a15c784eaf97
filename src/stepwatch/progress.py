"""Live progress of executions: the public models and the in-process ProgressTracker.

Usage::

    monitor.progress("n-42")          # ExecutionProgress | None
    monitor.active_executions()       # list[ExecutionProgress]

The tracker is fed directly by the instrument layer (no span scanning): an
execution handle keeps its own counters, and the tracker only indexes the
handles, so a step start or end costs O(1).
"""

from __future__ import annotations

import statistics
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from stepwatch._models import json_ready
from stepwatch.semconv import ExecutionState, Outcome

if TYPE_CHECKING:
    from stepwatch.instrument import Execution

__all__ = ["ExecutionProgress", "ProgressTracker", "StepProgress", "keep_steps", "pace_eta"]

_S = TypeVar("_S")

DEFAULT_RETENTION = 3600.0
DEFAULT_MAX_FINISHED = 10_000
DEFAULT_MAX_PENDING = 10_000
HISTORY_NAMES = 1_000
"""Execution names whose recent durations are kept for ETAs (least recently used evicted)."""
HISTORY_RUNS = 50
"""Successful run durations kept per name for ETAs."""
FINISHED_STEPS_KEPT = 8
"""Steps a finished execution's retained progress lists: its failed steps first
(up to this many), then its most recent ones. Counts stay exact."""


@dataclass(frozen=True, slots=True)
class StepProgress:
    """One step of an execution, as last seen.

    Attributes:
        name: The step name.
        step_type: The step type, or ``None``.
        state: ``"running"`` or the step's outcome value.
        started_at: Epoch seconds (Monitor clock).
        ended_at: Epoch seconds, ``None`` while running.
        duration: Seconds, ``None`` while running.
        fraction: Last reported progress in [0, 1], or ``None``.
        message: Last reported progress message, or ``None``.
        attempt: 1, or the attempt of a step name run again after it failed.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``attempt``.
    """

    name: str
    step_type: str | None
    state: str
    started_at: float
    ended_at: float | None = None
    duration: float | None = None
    fraction: float | None = None
    message: str | None = None
    attempt: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready values (ISO 8601 timestamps)."""
        result: dict[str, Any] = json_ready(self)
        return result


@dataclass(frozen=True, slots=True)
class ExecutionProgress:
    """How far along one execution is.

    Attributes:
        execution_id: The execution id.
        name: The execution (definition) name.
        state: ``"pending"``, ``"executing"`` or the final outcome value.
        total_steps: Declared total (raised to the steps seen when more
            ran), or ``None`` when unknown. When known,
            ``completed + failed + running + pending == total``.
        completed_steps: Steps that ended in success or skip.
        failed_steps: Steps that ended in failure, timeout or cancellation
            (a step name run again after failing counts once: its latest attempt).
        running_steps: Steps running now.
        pending_steps: Steps not started yet (``None`` when the total is unknown).
        percent: 0-100 (finished steps plus running steps' reported
            fractions, over the total), ``None`` when the total is unknown;
            below 100 while a step runs, 100 after a successful end.
        current_step: Name of the most recently started running step.
        started_at: When it started running (``None`` while pending).
        updated_at: Last change.
        eta_seconds: Estimated seconds to completion, ``None`` when unknown.
        steps: The most recent steps (bounded; see ``docs/progress.md``).
        attempt: The execution's attempt number (1 for a first run).

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``attempt``.
    """

    execution_id: str
    name: str
    state: str
    total_steps: int | None
    completed_steps: int
    failed_steps: int
    running_steps: int
    pending_steps: int | None
    percent: float | None
    current_step: str | None
    started_at: float | None
    updated_at: float
    eta_seconds: float | None
    steps: list[StepProgress] = field(default_factory=list)
    attempt: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready values (ISO 8601 timestamps, enum values as strings)."""
        result: dict[str, Any] = json_ready(self)
        return result


def pace_eta(elapsed: float, done: float, total: int) -> float | None:
    """Estimate the seconds left from the run's own pace.

    ``elapsed / done`` seconds per step times the steps left, where ``done``
    counts finished steps plus the fractions running steps reported. ``None``
    before any work is done (nothing to extrapolate from) and when no work is
    left while the execution still runs (the end is not known yet: an ETA of
    0 is only ever given once it has succeeded).
    """
    remaining = total - done
    if done <= 0 or elapsed < 0 or remaining <= 0:
        return None
    return elapsed / done * remaining


def blend_eta(
    elapsed: float,
    finished: float,
    total: int | None,
    typical: float | None,
) -> float | None:
    """The ETA estimator (see ``docs/progress.md``).

    Two estimates, each ``None`` when it has nothing to go on:

    - *history*: the typical (median) duration of recent successful runs of
      the same name, minus the time elapsed; unknown once the run has
      outlasted the typical duration.
    - *pace*: the run's own seconds per finished step times the steps left.

    With both, they are weighted by the share of steps finished: early on
    history knows more, late in the run the run's own pace does.
    """
    history = typical - elapsed if typical is not None and typical > elapsed else None
    pace = pace_eta(elapsed, finished, total) if total else None
    if pace is None:
        return history
    if history is None or not total:
        return pace
    weight = min(finished / total, 1.0)
    return weight * pace + (1.0 - weight) * history


def keep_steps(steps: Sequence[_S], failed: Callable[[_S], bool], keep: int) -> list[_S]:
    """At most ``keep`` of ``steps``, in their order: failed ones first, then the latest."""
    if len(steps) <= keep:
        return list(steps)
    chosen = [s for s in steps if failed(s)][-keep:]
    room = keep - len(chosen)
    if room:
        chosen.extend(steps[len(steps) - room :])
    kept = {id(s) for s in chosen}
    return [s for s in steps if id(s) in kept]


@dataclass(slots=True)
class _Pending:
    execution_id: str
    name: str
    queue: str
    enqueued_at: float
    attempt: int = 1

    def progress(self) -> ExecutionProgress:
        return ExecutionProgress(
            execution_id=self.execution_id,
            name=self.name,
            state=ExecutionState.PENDING.value,
            total_steps=None,
            completed_steps=0,
            failed_steps=0,
            running_steps=0,
            pending_steps=None,
            percent=None,
            current_step=None,
            started_at=None,
            updated_at=self.enqueued_at,
            eta_seconds=None,
            attempt=self.attempt,
        )


class ProgressTracker:
    """Indexes live executions and keeps finished ones for a bounded time and count.

    Running executions are the live handles themselves (they keep their own
    counters), so following a step costs nothing here; an execution's end
    stores one frozen :class:`ExecutionProgress`.

    Args:
        clock: Zero-argument callable returning epoch seconds.
        retention: Seconds a finished (or never started pending) execution
            stays queryable.
        max_finished: Finished executions kept at most (oldest evicted first).
        max_pending: Pending (enqueued, not started) executions kept at most.

    Memory: at most ``max_finished`` snapshots of up to
    ``instrument.MAX_STEPS_KEPT`` steps each, ``max_pending`` small records,
    ``HISTORY_NAMES x HISTORY_RUNS`` floats, plus the executions running now.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        retention: float = DEFAULT_RETENTION,
        max_finished: int = DEFAULT_MAX_FINISHED,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        if retention <= 0:
            raise ValueError(f"retention must be > 0 seconds, got {retention}")
        if max_finished < 1 or max_pending < 1:
            raise ValueError("max_finished and max_pending must be >= 1")
        self._clock = clock
        self.retention = retention
        self.max_finished = max_finished
        self.max_pending = max_pending
        self._lock = threading.Lock()
        self._running: dict[str, Execution] = {}
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._finished: OrderedDict[str, tuple[float, ExecutionProgress]] = OrderedDict()
        self._history: OrderedDict[str, deque[float]] = OrderedDict()

    # ------------------------------------------------------------------ feeding
    def enqueued(
        self, name: str, execution_id: str, queue: str, at: float, attempt: int = 1
    ) -> None:
        """An execution (its ``attempt``) was queued by :func:`stepwatch.enqueue`."""
        with self._lock:
            self._pending[execution_id] = _Pending(execution_id, name, queue, at, attempt)
            self._pending.move_to_end(execution_id)
            self._evict(at)

    def started(self, execution: Execution) -> None:
        """An execution started running."""
        with self._lock:
            self._pending.pop(execution.id, None)
            self._running[execution.id] = execution

    def ended(self, execution: Execution) -> None:
        """An execution ended: keep its final progress, learn its duration."""
        snapshot = execution.snapshot(keep_steps=FINISHED_STEPS_KEPT)
        now = execution.ended_at if execution.ended_at is not None else self._clock()
        with self._lock:
            if self._running.get(execution.id) is execution:
                del self._running[execution.id]
            self._finished[execution.id] = (now, snapshot)
            self._finished.move_to_end(execution.id)
            if execution.outcome is Outcome.SUCCESS:
                runs = self._history.get(execution.name)
                if runs is None:
                    runs = self._history[execution.name] = deque(maxlen=HISTORY_RUNS)
                    if len(self._history) > HISTORY_NAMES:
                        self._history.popitem(last=False)
                else:
                    self._history.move_to_end(execution.name)
                runs.append(now - execution.started_at)
            self._evict(now)

    def _evict(self, now: float) -> None:
        horizon = now - self.retention
        finished = self._finished
        while finished and (
            len(finished) > self.max_finished or next(iter(finished.values()))[0] < horizon
        ):
            finished.popitem(last=False)
        pending = self._pending
        while pending and (
            len(pending) > self.max_pending or next(iter(pending.values())).enqueued_at < horizon
        ):
            pending.popitem(last=False)

    def after_fork_in_child(self) -> None:
        """Forget the parent's running executions; fresh locks (a parent may have held one)."""
        self._lock = threading.Lock()
        for execution in self._running.values():
            execution._lock = threading.Lock()
        self._running.clear()

    # ----------------------------------------------------------------- queries
    def finished_records(self) -> list[ExecutionProgress]:
        """The retained finished executions, oldest first (bounded by ``max_finished``)."""
        with self._lock:
            return [record for _, record in self._finished.values()]

    def running(self) -> list[Execution]:
        """The executions running now (live handles)."""
        with self._lock:
            return list(self._running.values())

    def typical_duration(self, name: str) -> float | None:
        """Median duration of recent successful runs of ``name``, or ``None``."""
        with self._lock:
            runs = self._history.get(name)
            samples = list(runs) if runs else None
        return statistics.median(samples) if samples else None

    def eta(self, execution: Execution, now: float) -> float | None:
        """Seconds left for a running execution (see :func:`blend_eta`)."""
        done, total = execution.work_done()
        return blend_eta(
            now - execution.started_at, done, total, self.typical_duration(execution.name)
        )

    def get(self, execution_id: str) -> ExecutionProgress | None:
        """Progress of a running, pending or retained finished execution."""
        with self._lock:
            running = self._running.get(execution_id)
            pending = self._pending.get(execution_id)
            finished = self._finished.get(execution_id)
        if running is not None:
            return running.snapshot(self.eta(running, self._clock()))
        if pending is not None:
            return pending.progress()
        if finished is not None:
            return finished[1]
        return None

    def active(self) -> list[ExecutionProgress]:
        """Pending and running executions, oldest first."""
        now = self._clock()
        with self._lock:
            self._evict(now)
            pending = list(self._pending.values())
            running = list(self._running.values())
        result = [p.progress() for p in pending]
        result.extend(ex.snapshot(self.eta(ex, now)) for ex in running)
        result.sort(key=lambda p: p.started_at if p.started_at is not None else p.updated_at)
        return result

    def sizes(self) -> dict[str, int]:
        """How many executions are held: running, pending, finished, history names."""
        with self._lock:
            return {
                "running": len(self._running),
                "pending": len(self._pending),
                "finished": len(self._finished),
                "history_names": len(self._history),
            }

    @property
    def pending_count(self) -> int:
        """Executions enqueued in this process and not started yet."""
        return len(self._pending)
