"""Live progress of executions: the models, the ETA, and the in-process ProgressTracker.

Usage::

    monitor.progress("n-42")          # ExecutionProgress | None
    monitor.active_executions()       # list[ExecutionProgress]

This module owns every answer about progress: the snapshot of an execution
(:func:`snapshot`), which steps it lists (:func:`keep_steps`) and its ETA
(:func:`profile_eta` when the workflow's steps have been learned, else
:func:`blend_eta`). It reads executions through the read-only
:class:`ExecutionView` protocol and never imports or calls the instrument
layer: handles record, the Monitor's observer tells the tracker what
happened, and this module answers. Following a step costs the tracker
nothing; an execution's end stores one frozen :class:`ExecutionProgress`.
"""

from __future__ import annotations

import math
import statistics
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, NamedTuple, Protocol, TypeVar

from stepwatch._models import json_ready
from stepwatch.limits import Limits
from stepwatch.semconv import ExecutionState, Outcome

__all__ = [
    "DurationHistory",
    "ExecutionProgress",
    "ExecutionQuery",
    "ExecutionView",
    "ProgressTracker",
    "StepProfile",
    "StepProgress",
    "StepState",
    "StepView",
    "blend_eta",
    "keep_steps",
    "order_executions",
    "pace_eta",
    "profile_eta",
    "snapshot",
    "step_progress",
]

_S = TypeVar("_S")

RUNNING_PERCENT_CAP = 99.9
"""The highest ``percent`` while a step runs: 100 only ever means done."""

PROFILE_WEIGHT = 0.5
"""The weight of the newest successful run in a workflow's step profile (the
rest is what earlier runs taught): recent runs count most, one odd run is
halved by the next."""

_RUNNING_STEP_CAP = 0.9
"""A running step that reported no fraction counts at most this share of its
typical duration as done: past its typical time it is late, not finished."""

_PACE_BOUNDS = (0.2, 5.0)
"""How much slower or faster than its typical runs a run may be taken to go."""


class StepView(Protocol):
    """What progress reads of a step (a :class:`~stepwatch.Step` is one)."""

    @property
    def name(self) -> str: ...
    @property
    def step_type(self) -> str | None: ...
    @property
    def attempt(self) -> int: ...
    @property
    def outcome(self) -> Outcome | None: ...
    @property
    def started_at(self) -> float: ...
    @property
    def ended_at(self) -> float | None: ...
    @property
    def fraction(self) -> float | None: ...
    @property
    def message(self) -> str | None: ...
    @property
    def reason(self) -> str | None: ...


class StepState(NamedTuple):
    """An execution's steps, read at one instant (under the execution's lock)."""

    completed: int
    failed: int
    running: int
    steps: Sequence[StepView]
    """The most recent steps (bounded by ``Limits.steps_kept``), oldest first; read with
    ``keep`` and no step running, at most ``keep`` of them as :func:`keep_steps` chooses."""
    current: str | None
    """The name of the most recently started step still running."""


class StepProfile(NamedTuple):
    """What a workflow's successful runs typically spend on one step name.

    Both figures are per run and cover every occurrence of the name (a step
    run in a loop, or run again after a failure), so ``seconds / count`` is
    the typical duration of one occurrence.
    """

    seconds: float
    occurrences: float


class ExecutionView(Protocol):
    """What progress reads of an execution (an :class:`~stepwatch.Execution` is one).

    Like the read-only span the OpenTelemetry SDK hands its span processors:
    attributes to read, and :meth:`step_state` for the counts read consistently.
    """

    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def attempt(self) -> int: ...
    @property
    def total_steps(self) -> int | None: ...
    @property
    def outcome(self) -> Outcome | None: ...
    @property
    def started_at(self) -> float: ...
    @property
    def updated_at(self) -> float: ...
    @property
    def ended_at(self) -> float | None: ...
    @property
    def sla(self) -> float | None: ...

    def step_state(self, keep: int | None = None) -> StepState: ...


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
        attempts: How many attempts this step has had: an execution lists one
            entry per step, its latest attempt (a name run again after it
            *succeeded* is a new step, as in a loop).

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``attempt``.
    .. versionchanged:: 0.3.0 ``attempts``; one entry per step, not per attempt.
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
    attempts: int = 1

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
        last_progress_at: The last time the engine showed this execution
            moving (a step started or ended, ``progress()``, ``heartbeat()``,
            a new total, an approval or an event): what ``StuckExecutions``
            reads. ``None`` while pending.
        sla_deadline: ``started_at + sla`` (epoch seconds), ``None`` without an SLA.
        late: Past its SLA: while running, once the deadline has passed; after
            the end, when it ran longer than its SLA.
        at_risk: Running, not late yet, and its ETA ends past the deadline.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``attempt``.
    .. versionchanged:: 0.3.0 ``last_progress_at``, ``sla_deadline``, ``late``, ``at_risk``.
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
    last_progress_at: float | None = None
    sla_deadline: float | None = None
    late: bool = False
    at_risk: bool = False

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
    if keep <= 0:
        return []
    if len(steps) <= keep:
        return list(steps)
    chosen = [s for s in steps if failed(s)][-keep:]
    room = keep - len(chosen)
    if room:
        chosen.extend(steps[len(steps) - room :])
    kept = {id(s) for s in chosen}
    return [s for s in steps if id(s) in kept]


def _failed(step: StepView) -> bool:
    outcome = step.outcome
    return outcome is not None and outcome not in (Outcome.SUCCESS, Outcome.SKIP)


def _running_fraction(steps: Sequence[StepView]) -> float:
    """Sum of the fractions running steps reported (a step with none counts 0)."""
    return sum(s.fraction for s in steps if s.outcome is None and s.fraction is not None)


def step_progress(step: StepView) -> StepProgress:
    """A step's progress as of now."""
    ended = step.ended_at
    outcome = step.outcome
    return StepProgress(
        name=step.name,
        step_type=step.step_type,
        state=outcome.value if outcome is not None else "running",
        started_at=step.started_at,
        ended_at=ended,
        duration=None if ended is None else max(ended - step.started_at, 0.0),
        fraction=step.fraction,
        message=step.message,
        attempt=step.attempt,
        attempts=step.attempt,
    )


class DurationHistory:
    """What successful runs of each execution name took: the ETA's memory.

    Per name it keeps the durations of the recent successful runs (their
    median is the *typical* run) and a step profile: per step name, the
    seconds and occurrences a run typically spends on it (an exponentially
    weighted mean over runs, the newest weighing :data:`PROFILE_WEIGHT`).

    Bounded: ``history_names`` names (least recently used evicted, with their
    profiles) times ``history_runs`` durations and ``history_steps`` step
    names each. Thread-safe; a profile is replaced on learning, never changed,
    so readers take it without a lock.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        limits = limits or Limits()
        self._names = limits.history_names
        self._runs = limits.history_runs
        self._steps = limits.history_steps
        self._lock = threading.Lock()
        self._history: OrderedDict[str, deque[float]] = OrderedDict()
        self._profiles: dict[str, dict[str, StepProfile]] = {}

    def learn(self, name: str, duration: float, steps: Sequence[StepView] | None = None) -> None:
        """Remember a successful run's duration and, given all its ``steps``, its profile.

        ``steps`` must be every step the run held, all ended; pass ``None`` when
        some were not kept (the profile then stays as it was).
        """
        run = _run_profile(steps) if steps else None
        with self._lock:
            runs = self._history.get(name)
            if runs is None:
                runs = self._history[name] = deque(maxlen=self._runs)
                if len(self._history) > self._names:
                    evicted, _ = self._history.popitem(last=False)
                    self._profiles.pop(evicted, None)
            else:
                self._history.move_to_end(name)
            runs.append(duration)
            if run is not None:
                self._profiles[name] = _blend_profile(self._profiles.get(name), run, self._steps)

    def typical(self, name: str) -> float | None:
        """Median duration of recent successful runs of ``name``, or ``None``."""
        with self._lock:
            runs = self._history.get(name)
            samples = list(runs) if runs else None
        return statistics.median(samples) if samples else None

    def profile(self, name: str) -> Mapping[str, StepProfile] | None:
        """The step profile learned for ``name`` (read-only), or ``None``."""
        return self._profiles.get(name)

    def __len__(self) -> int:
        return len(self._history)

    def after_fork_in_child(self) -> None:
        """A fresh lock (a parent thread may have held this one at fork time)."""
        self._lock = threading.Lock()


def _run_profile(steps: Sequence[StepView]) -> dict[str, StepProfile] | None:
    """One run's seconds and occurrences per step name; ``None`` if a step had not ended."""
    seconds: dict[str, float] = {}
    counts: dict[str, int] = {}
    for step in steps:
        ended = step.ended_at
        if ended is None:
            return None
        name = step.name
        seconds[name] = seconds.get(name, 0.0) + max(ended - step.started_at, 0.0)
        counts[name] = counts.get(name, 0) + 1
    return {name: StepProfile(seconds[name], float(counts[name])) for name in seconds}


def _blend_profile(
    old: Mapping[str, StepProfile] | None, run: Mapping[str, StepProfile], limit: int
) -> dict[str, StepProfile]:
    """``old`` moved towards ``run`` by :data:`PROFILE_WEIGHT`, at most ``limit`` names.

    A name absent from ``run`` moves towards zero (a step that ran only
    sometimes counts as its share); past ``limit`` the names with the least
    time are dropped.
    """
    if old is None:
        blended = dict(run)
    else:
        keep = 1.0 - PROFILE_WEIGHT
        absent = StepProfile(0.0, 0.0)
        blended = {}
        for name in old.keys() | run.keys():
            was, now = old.get(name, absent), run.get(name, absent)
            blended[name] = StepProfile(
                keep * was.seconds + PROFILE_WEIGHT * now.seconds,
                keep * was.occurrences + PROFILE_WEIGHT * now.occurrences,
            )
    if len(blended) > limit:
        kept = sorted(blended.items(), key=lambda item: item[1].seconds, reverse=True)[:limit]
        blended = dict(kept)
    return blended


def profile_eta(
    elapsed: float,
    now: float,
    steps: Sequence[StepView],
    finished: int,
    typical: float,
    profile: Mapping[str, StepProfile],
) -> float | None:
    """The ETA from what each step of this workflow typically takes (see ``docs/progress.md``).

    The run's position is the share of a typical run's step time already
    done: each ended step counts its name's typical duration (up to the
    occurrences a run typically has), a running step the fraction it
    reported, or else its time so far over its typical duration stretched
    by how much slower this run's ended steps were than theirs (at most
    :data:`_RUNNING_STEP_CAP`: past its time a step is late, not done). The
    typical run's time for the rest, ``typical x (1 - done)``, is then scaled
    by the run's own pace against the typical run (``elapsed / (typical x
    done)``), trusted as far as the run has got.

    Args:
        elapsed: Seconds since the run started.
        now: The current time (for running steps).
        steps: The steps the run holds (the most recent, oldest first).
        finished: Steps ended in the whole run (some may no longer be held).
        typical: The typical successful run's duration (seconds).
        profile: The workflow's step profile (:meth:`DurationHistory.profile`).

    ``None`` when the profile holds no time or none of it is done yet, so the
    caller falls back to :func:`blend_eta`.
    """
    expected = sum(entry.seconds for entry in profile.values())
    if expected <= 0.0 or typical <= 0.0:
        return None
    occurrences = sum(entry.occurrences for entry in profile.values())
    seen: dict[str, int] = {}
    work = 0.0  # typical seconds of the steps done, ended steps first
    spent = 0.0  # what those ended steps really took
    held_ended = 0
    running: list[tuple[StepView, float]] = []
    for step in steps:
        entry = profile.get(step.name)
        ended = step.ended_at
        if ended is not None:
            held_ended += 1
        if entry is None or entry.occurrences <= 0.0:
            continue
        each = entry.seconds / entry.occurrences
        if ended is None:
            running.append((step, each))
            continue
        seen[step.name] = count = seen.get(step.name, 0) + 1
        if count <= entry.occurrences + 0.5:
            work += each
            spent += max(ended - step.started_at, 0.0)
    low, high = _PACE_BOUNDS
    step_pace = min(max(spent / work, low), high) if work > 0.0 else 1.0
    for step, each in running:
        fraction = step.fraction
        if fraction is None:  # its time so far, at the pace this run's steps have gone
            fraction = (now - step.started_at) / (each * step_pace) if each > 0.0 else 0.0
            fraction = min(fraction, _RUNNING_STEP_CAP)
        work += each * min(max(fraction, 0.0), 1.0)
    if finished > held_ended and occurrences > 0.0:  # older steps no longer held
        work += (finished - held_ended) * expected / occurrences
    if work <= 0.0:
        return None  # nothing of the profile done yet: the typical run's time tells more
    done = min(work / expected, 0.99)
    pace = min(max(elapsed / (typical * done), low), high)
    return typical * (1.0 - done) * (1.0 + done * (pace - 1.0))


def snapshot(
    execution: ExecutionView,
    now: float,
    history: DurationHistory | None = None,
    *,
    keep: int | None = None,
) -> ExecutionProgress:
    """An execution's progress at ``now``: counts, percent, ETA and steps.

    Args:
        execution: The execution, read once through :meth:`ExecutionView.step_state`.
        now: The time the ETA is computed for (the Monitor's clock).
        history: Typical durations per name (the ETA's history estimate);
            ``None``: the run's own pace only.
        keep: At most this many steps listed (failed first, then the latest);
            ``None``: every step the execution holds. Counts stay exact.

    ``total_steps`` is raised to the steps seen when more ran than declared,
    so ``completed + failed + running + pending == total`` whenever it is
    known; ``percent`` is below 100 while a step runs; the ETA is 0 after a
    success, ``None`` after any other end (see :func:`blend_eta`).
    """
    state = execution.step_state(keep)
    completed, failed, running = state.completed, state.failed, state.running
    finished = completed + failed
    total = execution.total_steps
    if total is not None:
        total = max(total, finished + running)  # more steps ran than were declared
    outcome = execution.outcome
    fraction = _running_fraction(state.steps) if running else 0.0
    percent: float | None = None
    if outcome is Outcome.SUCCESS:
        percent = 100.0
    elif total:
        percent = min(100.0, 100.0 * (finished + fraction) / total)
        if running and percent >= RUNNING_PERCENT_CAP:
            percent = RUNNING_PERCENT_CAP  # never 100 while a step runs
    elif total == 0:
        percent = 100.0 if outcome is not None else 0.0
    eta: float | None
    if outcome is not None:
        eta = 0.0 if outcome is Outcome.SUCCESS else None
    else:
        eta = _running_eta(execution, now, state, history, finished + fraction, total)
    steps = state.steps if keep is None else keep_steps(state.steps, _failed, keep)
    sla = execution.sla
    deadline = None if sla is None else execution.started_at + sla
    late = at_risk = False
    if deadline is not None:
        ended = execution.ended_at
        late = (ended if ended is not None else now) > deadline
        at_risk = outcome is None and not late and eta is not None and now + eta > deadline
    return ExecutionProgress(
        execution_id=execution.id,
        name=execution.name,
        state=outcome.value if outcome is not None else ExecutionState.EXECUTING.value,
        total_steps=total,
        completed_steps=completed,
        failed_steps=failed,
        running_steps=running,
        pending_steps=None if total is None else total - finished - running,
        percent=percent,
        current_step=state.current,
        started_at=execution.started_at,
        updated_at=execution.updated_at,
        eta_seconds=eta,
        steps=[step_progress(s) for s in _one_per_step(steps)],
        attempt=execution.attempt,
        last_progress_at=execution.updated_at,
        sla_deadline=deadline,
        late=late,
        at_risk=at_risk,
    )


@dataclass(frozen=True, slots=True)
class ExecutionQuery:
    """Which executions :meth:`~stepwatch.Monitor.executions` lists (every field optional).

    Attributes:
        states: Only these ``state`` values (``pending``, ``executing`` or an outcome).
        workflow: Only executions of this name.
        since: Only executions active at or after this time (epoch seconds):
            still pending or running, or ended at or after it.
        until: Only executions that started (or were enqueued) before this time.
        limit: At most this many.
    """

    states: frozenset[str] | None = None
    workflow: str | None = None
    since: float | None = None
    until: float | None = None
    limit: int = 100

    def matches(self, progress: ExecutionProgress) -> bool:
        """Whether ``progress`` passes every filter."""
        if self.states is not None and progress.state not in self.states:
            return False
        if self.workflow is not None and progress.name != self.workflow:
            return False
        began = progress.started_at if progress.started_at is not None else progress.updated_at
        if self.until is not None and began >= self.until:
            return False
        live = progress.state in _LIVE_STATES
        return self.since is None or live or progress.updated_at >= self.since


_LIVE_STATES = frozenset({ExecutionState.PENDING.value, ExecutionState.EXECUTING.value})


def order_executions(records: Iterable[ExecutionProgress]) -> list[ExecutionProgress]:
    """Running (oldest start first), then pending (oldest first), then ended (newest first)."""
    running: list[ExecutionProgress] = []
    pending: list[ExecutionProgress] = []
    ended: list[ExecutionProgress] = []
    for record in records:
        if record.state == ExecutionState.EXECUTING.value:
            running.append(record)
        elif record.state == ExecutionState.PENDING.value:
            pending.append(record)
        else:
            ended.append(record)
    running.sort(key=lambda p: (p.started_at or 0.0, p.execution_id))
    pending.sort(key=lambda p: (p.updated_at, p.execution_id))
    ended.sort(key=lambda p: (-p.updated_at, p.execution_id))
    return running + pending + ended


def _one_per_step(steps: Sequence[StepView]) -> Sequence[StepView]:
    """The steps as listed: each retried step once, its latest attempt in its place.

    An attempt ``k > 1`` replaces the entry of the same name whose attempt is
    ``k - 1``; a name that runs again after succeeding starts a new entry.
    """
    if all(step.attempt == 1 for step in steps):
        return steps
    listed: list[StepView] = []
    where: dict[str, int] = {}
    for step in steps:
        at = where.get(step.name)
        if at is not None and step.attempt > 1 and listed[at].attempt == step.attempt - 1:
            listed[at] = step
        else:
            where[step.name] = len(listed)
            listed.append(step)
    return listed


def _running_eta(
    execution: ExecutionView,
    now: float,
    state: StepState,
    history: DurationHistory | None,
    done: float,
    total: int | None,
) -> float | None:
    """A running execution's ETA: from its step profile when learned, else :func:`blend_eta`."""
    elapsed = now - execution.started_at
    if history is None:
        return blend_eta(elapsed, done, total, None)
    typical = history.typical(execution.name)
    profile = history.profile(execution.name)
    if typical is not None and profile:
        finished = state.completed + state.failed
        eta = profile_eta(elapsed, now, state.steps, finished, typical, profile)
        if eta is not None:
            return eta
    return blend_eta(elapsed, done, total, typical)


class _Ended:
    """An ended execution as the tracker keeps it: read once, at its end.

    Its :class:`ExecutionProgress` is built on the first query and kept, so
    an execution nobody asks about costs its end no snapshot. Holds at most
    ``keep`` step records (shared with the execution, which is let go).
    """

    __slots__ = (
        "_progress",
        "_state",
        "attempt",
        "ended_at",
        "id",
        "name",
        "outcome",
        "sla",
        "started_at",
        "total_steps",
        "updated_at",
    )

    def __init__(self, execution: ExecutionView, ended_at: float, keep: int) -> None:
        state = execution.step_state(keep)
        self._progress: ExecutionProgress | None = None
        if state.running:  # steps outlived it: their fractions count, read them now
            self._progress = snapshot(execution, ended_at, keep=keep)
            state = StepState(state.completed, state.failed, state.running, (), state.current)
        self._state = state
        self.id = execution.id
        self.name = execution.name
        self.attempt = execution.attempt
        self.total_steps = execution.total_steps
        self.outcome = execution.outcome
        self.started_at = execution.started_at
        self.updated_at = execution.updated_at
        self.sla = execution.sla
        self.ended_at = ended_at

    def step_state(self, keep: int | None = None) -> StepState:
        return self._state

    def progress(self) -> ExecutionProgress:
        progress = self._progress
        if progress is None:
            progress = self._progress = snapshot(self, self.ended_at)
        return progress


@dataclass(slots=True)
class _Pending:
    execution_id: str
    name: str
    queue: str
    enqueued_at: float
    attempt: int = 1
    due_at: float | None = None

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

    Fed by the Monitor's observer: a running execution is held as its
    read-only :class:`ExecutionView` (it keeps its own counters, so following
    a step costs nothing here) and read only when asked; an execution's end
    keeps a compact record of it, whose frozen :class:`ExecutionProgress` is
    built on the first query and kept.

    Args:
        clock: Zero-argument callable returning epoch seconds.
        limits: ``retention``, ``max_finished``, ``max_pending`` and
            ``finished_steps_kept`` apply here.
        history: The durations the ETA learns from (shared with the
            instrument layer's ``Execution.progress()``); default a new one.

    Memory: at most ``max_finished`` snapshots of up to
    ``finished_steps_kept`` steps each, ``max_pending`` small records, the
    history's ``history_names x history_runs`` floats, plus the executions
    running now.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 ``limits`` and ``history`` replace ``retention``,
       ``max_finished`` and ``max_pending``.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        limits: Limits | None = None,
        history: DurationHistory | None = None,
    ) -> None:
        self._clock = clock
        self.limits = limits or Limits()
        self.history = history if history is not None else DurationHistory(self.limits)
        self._lock = threading.Lock()
        self._running: dict[str, ExecutionView] = {}
        self._pending: OrderedDict[str, _Pending] = OrderedDict()
        self._finished: OrderedDict[str, tuple[float, _Ended]] = OrderedDict()
        self._late: set[str] = set()  # running ids whose sla.violated was announced

    # ------------------------------------------------------------------ feeding
    def enqueued(
        self,
        name: str,
        execution_id: str,
        queue: str,
        at: float,
        attempt: int = 1,
        due_at: float | None = None,
    ) -> None:
        """An execution (its ``attempt``) was queued by :func:`stepwatch.enqueue`
        (scheduled for ``due_at`` when given)."""
        with self._lock:
            self._pending[execution_id] = _Pending(execution_id, name, queue, at, attempt, due_at)
            self._pending.move_to_end(execution_id)
            self._evict(at)

    def started(self, execution: ExecutionView) -> None:
        """An execution started running."""
        with self._lock:
            self._pending.pop(execution.id, None)
            self._running[execution.id] = execution

    def ended(self, execution: ExecutionView) -> bool:
        """An execution ended: keep what its final progress needs, learn its duration.

        Returns whether its ``sla.violated`` was already announced while it ran
        (:meth:`newly_late`), so its end does not announce it again. A pending
        record of the same id for this attempt or an earlier one is settled (an
        execution ended elsewhere, e.g. ``lost`` in a dead member of the group,
        is no longer queued here); a later attempt's stays.
        """
        ended_at = execution.ended_at
        now = ended_at if ended_at is not None else self._clock()
        record = _Ended(execution, now, self.limits.finished_steps_kept)
        with self._lock:
            if self._running.get(execution.id) is execution:
                del self._running[execution.id]
            pending = self._pending.get(execution.id)
            if pending is not None and pending.attempt <= execution.attempt:
                del self._pending[execution.id]
            self._finished[execution.id] = (now, record)
            self._finished.move_to_end(execution.id)
            self._evict(now)
            announced = bool(self._late) and execution.id in self._late
            if announced:
                self._late.discard(execution.id)
        if execution.outcome is Outcome.SUCCESS:
            held = execution.step_state()
            steps = held.steps if len(held.steps) == held.completed + held.failed else None
            self.history.learn(execution.name, now - execution.started_at, steps)
        return announced

    def newly_late(self, now: float) -> list[ExecutionView]:
        """Running executions whose SLA deadline passed by ``now``, each returned once.

        The Monitor announces each as ``sla.violated`` when it evaluates
        (:class:`~stepwatch.health.HealthEvaluator`), so a breach shows while
        the run goes on; its end then does not announce it again.
        """
        late: list[ExecutionView] = []
        with self._lock:
            for execution in self._running.values():
                sla = execution.sla
                if (
                    sla is not None
                    and now > execution.started_at + sla
                    and execution.id not in self._late
                ):
                    self._late.add(execution.id)
                    late.append(execution)
        return late

    def _evict(self, now: float) -> None:
        limits = self.limits
        horizon = now - limits.retention
        finished = self._finished
        while finished and (
            len(finished) > limits.max_finished or next(iter(finished.values()))[0] < horizon
        ):
            finished.popitem(last=False)
        pending = self._pending
        while pending and (
            len(pending) > limits.max_pending or next(iter(pending.values())).enqueued_at < horizon
        ):
            pending.popitem(last=False)

    def after_fork_in_child(self) -> None:
        """Forget the parent's running executions; fresh locks (a parent may have held one)."""
        self._lock = threading.Lock()
        self._running.clear()
        self._late.clear()
        self.history.after_fork_in_child()

    # ----------------------------------------------------------------- queries
    def finished_records(self) -> list[ExecutionProgress]:
        """The retained finished executions, oldest first (bounded by ``max_finished``)."""
        with self._lock:
            ended = [record for _, record in self._finished.values()]
        return [record.progress() for record in ended]

    def scheduled(self) -> dict[str, dict[int, int]]:
        """Per execution name, when the pending executions this process queued for later
        fall due: ``{due second (rounded up): how many}``, those not due yet only.

        .. versionadded:: 0.3.0
        """
        now = self._clock()
        found: dict[str, dict[int, int]] = {}
        with self._lock:
            for pending in self._pending.values():
                if pending.due_at is not None and pending.due_at > now:
                    by_due = found.setdefault(pending.name, {})
                    due = math.ceil(pending.due_at)
                    by_due[due] = by_due.get(due, 0) + 1
        return found

    def running(self) -> list[ExecutionView]:
        """The executions running now (read-only views)."""
        with self._lock:
            return list(self._running.values())

    def get(self, execution_id: str) -> ExecutionProgress | None:
        """Progress of a running, pending or retained finished execution.

        A finished execution (or a pending one never started) is gone once
        ``Limits.retention`` has passed, whatever else was asked meanwhile.
        """
        now = self._clock()
        with self._lock:
            self._evict(now)
            running = self._running.get(execution_id)
            pending = self._pending.get(execution_id)
            finished = self._finished.get(execution_id)
        if running is not None:
            return snapshot(running, now, self.history)
        if pending is not None:
            return pending.progress()
        if finished is not None:
            return finished[1].progress()
        return None

    def active(self, limit: int | None = None) -> list[ExecutionProgress]:
        """Running executions (oldest start first), then pending ones (oldest first).

        Running first, so a long queue never hides what runs. Both are held in
        that order already: only the first ``limit`` are read and snapshotted,
        and the cost follows the answer, not the number held.

        .. versionchanged:: 0.3.0 Running first (0.2: both by age together).
        """
        now = self._clock()
        with self._lock:
            self._evict(now)
            running = list(islice(self._running.values(), limit))
            room = None if limit is None else limit - len(running)
            pending = list(islice(self._pending.values(), room))
        return [snapshot(ex, now, self.history) for ex in running] + [p.progress() for p in pending]

    def select(self, query: ExecutionQuery) -> list[ExecutionProgress]:
        """Running, pending and retained finished executions passing ``query``, ordered by
        :func:`order_executions`, at most ``query.limit``.

        Filters on what is held before building any answer: an execution that
        does not match costs no snapshot.
        """
        now = self._clock()
        with self._lock:
            self._evict(now)
            running = list(self._running.values())
            pending = list(self._pending.values())
            finished = [record for _, record in self._finished.values()]
        workflow, until = query.workflow, query.until
        chosen: list[ExecutionProgress] = []
        states = query.states
        if states is None or ExecutionState.EXECUTING.value in states:
            chosen.extend(
                snapshot(ex, now, self.history)
                for ex in running
                if (workflow is None or ex.name == workflow)
                and (until is None or ex.started_at < until)
            )
        if states is None or ExecutionState.PENDING.value in states:
            chosen.extend(
                p.progress()
                for p in pending
                if (workflow is None or p.name == workflow)
                and (until is None or p.enqueued_at < until)
            )
        since = query.since
        chosen.extend(
            record.progress()
            for record in finished
            if (workflow is None or record.name == workflow)
            and (states is None or (record.outcome is not None and record.outcome.value in states))
            and (since is None or record.ended_at >= since)
            and (until is None or record.started_at < until)
        )
        return order_executions(p for p in chosen if query.matches(p))[: query.limit]

    def sizes(self) -> dict[str, int]:
        """How many executions are held: running, pending, finished, history names."""
        with self._lock:
            return {
                "running": len(self._running),
                "pending": len(self._pending),
                "finished": len(self._finished),
                "history_names": len(self.history),
            }
