"""One view of a process group: the Monitors of one machine that share a directory.

Usage::

    monitor = stepwatch.configure(multiprocess_dir="/run/engine/stepwatch")
    # or STEPWATCH_MULTIPROCESS_DIR=/run/engine/stepwatch in every process

    monitor.active_executions()   # every process's running executions
    monitor.summary()             # rates and durations over the whole group

Each process of the group publishes, every ``publish_interval`` seconds (1 by
default), after each execution in a forked child, and at shutdown, one file:
its live executions, its recently finished ones, its health windows (the
counts and exponential histograms ``summary()`` and the rules are computed
from, so they merge exactly) and its firing alerts. Files are written to a
temporary name and renamed, so a reader never sees half a file. Any Monitor
of the group answers ``progress``, ``active_executions``, ``summary``,
``health`` and ``alerts`` for the whole group: its own data fresh, the
others' as of their last publish.

Configuration: ``multiprocess_dir`` and ``publish_interval`` on
:class:`~stepwatch.Monitor` and :func:`~stepwatch.configure`; the environment
variable ``STEPWATCH_MULTIPROCESS_DIR``. Bounds and formats:
``docs/process-group.md``.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import json
import logging
import math
import operator
import os
import stat
import sys
import tempfile
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stepwatch import _checks as checks
from stepwatch import semconv
from stepwatch._histogram import ExpHistogram
from stepwatch._safety import report
from stepwatch.health import Alert, ComponentHealth
from stepwatch.limits import LONGEST_ID_LENGTH
from stepwatch.progress import ExecutionProgress, StepProgress, keep_steps
from stepwatch.semconv import AlertState, ExecutionState, HealthStatus, Outcome, Severity
from stepwatch.version import __version__
from stepwatch.windows import DAY_SLOT, Attributes, Windows, add_counts, merge_groups

__all__ = [
    "COMPONENT",
    "DEFAULT_PUBLISH_INTERVAL",
    "ENVIRONMENT_VARIABLE",
    "FORMAT_VERSION",
    "MAX_FILE_BYTES",
    "MAX_ID_LENGTH",
    "MAX_PEERS",
    "MAX_PUBLISHED_EXECUTIONS",
    "MAX_READ_BYTES",
    "GroupWindows",
    "Peer",
    "ProcessGroup",
    "merge_progress",
]

_logger = logging.getLogger(__name__)

ENVIRONMENT_VARIABLE = "STEPWATCH_MULTIPROCESS_DIR"
FORMAT = "stepwatch-process-group"
FORMAT_VERSION = 1
SUFFIX = ".stepwatch.json"
DEFAULT_PUBLISH_INTERVAL = 1.0
MAX_FILE_BYTES = 8 * 1024 * 1024
"""A file larger than this is never written (the writer trims) nor read (skipped)."""
MAX_PUBLISHED_EXECUTIONS = 1_000
"""Live executions, and separately finished ones, a process publishes at most (newest kept)."""
PUBLISHED_STEPS = 8
"""Steps per published execution (failed first, then the latest); counts stay exact."""
MIN_STALE_AFTER = 10.0
"""A file not republished for max(this, 10 x publish_interval) seconds: its writer is gone."""
MAX_PEERS = 128
"""Peer files a reader reads at most (the most recently written first; the rest skipped)."""
MAX_READ_BYTES = 32 * 1024 * 1024
"""Bytes of peer files a reader holds at most (the most recently written first)."""
MAX_ID_LENGTH = LONGEST_ID_LENGTH
"""Characters of an execution id a reader accepts from a peer (a longer record is skipped)."""
MAX_LEVEL = float(2**53)
"""Largest magnitude of a level (an up-down counter) read from a peer."""
COMPONENT = "stepwatch.process_group"
"""The health component of a publishing member: degraded while it cannot publish."""
_MAX_WARNED_FILES = 256
_MAX_SCHEDULED_NAMES = 1_000


def _rank(progress: ExecutionProgress) -> tuple[int, int, float]:
    """How advanced a record is: later attempt, then pending < executing < ended, then newer."""
    state = progress.state
    if state == ExecutionState.PENDING.value:
        stage = 0
    elif state == ExecutionState.EXECUTING.value:
        stage = 1
    else:
        stage = 2
    return progress.attempt, stage, progress.updated_at


def merge_progress(records: Iterable[ExecutionProgress]) -> dict[str, ExecutionProgress]:
    """The most advanced record of each execution id (see :func:`_rank`).

    A producer's ``pending`` gives way to the worker's ``executing``, then to
    its outcome; a later attempt wins over an earlier one's outcome.
    """
    best: dict[str, ExecutionProgress] = {}
    for record in records:
        current = best.get(record.execution_id)
        if current is None or _rank(record) > _rank(current):
            best[record.execution_id] = record
    return best


# ------------------------------------------------------------------ wire format
# Execution and step records travel as lists in the field order the file's
# header names (no key repeated per record: half the size, a third of the
# time); a reader maps the header's names to the fields it knows, so fields
# added later are ignored by older readers and defaulted by newer ones.
_STEP_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(StepProgress))
_EXECUTION_FIELDS: tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(ExecutionProgress) if f.name != "steps"
)
_step_values = operator.attrgetter(*_STEP_FIELDS)
_execution_values = operator.attrgetter(*_EXECUTION_FIELDS)


def _step_failed(step: StepProgress) -> bool:
    return step.state not in ("running", Outcome.SUCCESS.value, Outcome.SKIP.value)


def _progress_to_wire(progress: ExecutionProgress) -> list[Any]:
    steps = keep_steps(progress.steps, _step_failed, PUBLISHED_STEPS)
    return [*_execution_values(progress), [list(_step_values(s)) for s in steps]]


class _Decoder:
    """Turns one file's record lists back into models, by the names its header gives."""

    def __init__(self, execution_fields: Any, step_fields: Any) -> None:
        if not isinstance(execution_fields, list) or not isinstance(step_fields, list):
            raise TypeError("the header must list the record fields")
        self._same = (
            tuple(execution_fields) == _EXECUTION_FIELDS and tuple(step_fields) == _STEP_FIELDS
        )
        known_execution = set(_EXECUTION_FIELDS)
        known_step = set(_STEP_FIELDS)
        self._execution = [(i, n) for i, n in enumerate(execution_fields) if n in known_execution]
        self._step = [(i, n) for i, n in enumerate(step_fields) if n in known_step]
        self._steps_at = len(execution_fields)

    def progress(self, wire: Any) -> ExecutionProgress:
        if not isinstance(wire, list) or len(wire) != self._steps_at + 1:
            raise TypeError("an execution record must be a list of the header's length")
        raw_steps = wire[-1]
        if not isinstance(raw_steps, list):
            raise TypeError("steps must be a list")
        if self._same:
            step_values = [dict(zip(_STEP_FIELDS, step, strict=True)) for step in raw_steps]
            values = dict(zip(_EXECUTION_FIELDS, wire[:-1], strict=True))
        else:
            step_values = [{n: step[i] for i, n in self._step} for step in raw_steps]
            values = {n: wire[i] for i, n in self._execution}
        # Names and states repeat across records and peers: one string object each.
        for record, keys in (
            (values, _SHARED_TEXT),
            *((v, _SHARED_STEP_TEXT) for v in step_values),
        ):
            for key in keys:
                value = record.get(key)
                if type(value) is str:
                    record[key] = sys.intern(value)
        steps = [StepProgress(**v) for v in step_values]
        progress = ExecutionProgress(**values, steps=steps)
        _check_record(progress)
        for step in steps:
            _check_fields(step, _STEP_TEXT, _STEP_NUMBERS)
        return progress


_TEXT = ("execution_id", "name", "state")
_SHARED_TEXT = ("name", "state", "current_step")
_SHARED_STEP_TEXT = ("name", "state")
_OPTIONAL_TEXT = ("current_step",)
_NUMBERS = ("updated_at",)
_OPTIONAL_NUMBERS = (
    "total_steps",
    "completed_steps",
    "failed_steps",
    "running_steps",
    "pending_steps",
    "percent",
    "started_at",
    "eta_seconds",
    "last_progress_at",
    "sla_deadline",
)
_OPTIONAL_FLAGS = ("late", "at_risk")
_TIMES = ("started_at", "last_progress_at", "sla_deadline")
_STEP_TEXT = ("name", "state")
_STEP_NUMBERS = ("started_at",)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_fields(record: object, text: tuple[str, ...], numbers: tuple[str, ...]) -> None:
    for name in text:
        if not isinstance(getattr(record, name), str):
            raise TypeError(f"{name} must be a string")
    for name in numbers:
        if not _number(getattr(record, name)):
            raise TypeError(f"{name} must be a finite number")


def _check_record(progress: ExecutionProgress) -> None:
    """Types a query relies on (sorting, arithmetic); a file is data, never trusted."""
    _check_fields(progress, _TEXT, _NUMBERS)
    if len(progress.execution_id) > MAX_ID_LENGTH:
        raise ValueError(f"execution_id longer than {MAX_ID_LENGTH} characters")
    for name in _OPTIONAL_TEXT:
        value = getattr(progress, name)
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name} must be a string or null")
    for name in _OPTIONAL_NUMBERS:
        value = getattr(progress, name)
        if value is not None and not _number(value):
            raise TypeError(f"{name} must be a finite number or null")
        if name not in _TIMES and value is not None and value < 0:
            raise ValueError(f"{name} must not be negative")
    for name in _OPTIONAL_FLAGS:
        if not isinstance(getattr(progress, name, False), bool):
            raise TypeError(f"{name} must be a boolean")
    if isinstance(progress.attempt, bool) or not isinstance(progress.attempt, int):
        raise TypeError("attempt must be an int")
    if not 1 <= progress.attempt < 2**31:
        raise ValueError("attempt out of range")


def _attributes(wire: Any) -> Attributes:
    pairs = tuple((str(key), value) for key, value in wire)
    if not all(isinstance(value, str | bool | int | float) for _, value in pairs):
        raise TypeError("attribute values must be scalars")
    return pairs


def _finite(
    value: Any, what: str, *, minimum: float = -math.inf, maximum: float = math.inf
) -> float:
    """A number read from a peer: finite and within bounds, else ``ValueError``."""
    if not _number(value):
        raise ValueError(f"{what} must be a finite number, got {type(value).__name__}")
    number = float(value)
    if not minimum <= number <= maximum:
        raise ValueError(f"{what} out of range")
    return number


@dataclass(slots=True)
class _Slot:
    start: float
    counts: dict[tuple[str, Attributes], float]
    groups: dict[tuple[str, str | None, str | None], ExpHistogram]


def _slots(wire: Any, groups: bool) -> list[_Slot]:
    slots = []
    for slot in wire:
        counts = {
            (str(metric), _attributes(attributes)): _finite(value, "a count", minimum=0.0)
            for metric, attributes, value in slot["counts"]
        }
        histograms = (
            {
                (str(metric), _optional_text(name), _optional_text(detail)): (
                    ExpHistogram.from_wire(histogram)
                )
                for metric, name, detail, histogram in slot["groups"]
            }
            if groups
            else {}
        )
        slots.append(_Slot(_finite(slot["start"], "a slot start", minimum=0.0), counts, histograms))
    return slots


def _optional_text(value: Any) -> str | None:
    if value is not None and not isinstance(value, str):
        raise TypeError("a histogram group's name must be a string or null")
    return value


@dataclass(slots=True)
class Peer:
    """Another process of the group, as of its last publish.

    Attributes:
        path: Its file.
        pid: Its process id.
        published_at: When it last published (epoch seconds; never later than
            its file's modification time, whatever the file says).
        alive: Whether it is running (by pid and start time) and publishing
            (else its running executions are not listed; its finished data
            stays until it ages out).
        scheduled: Per execution name, when the work it enqueued for later falls
            due (``{due second: count}``; a reader counts what is not due yet,
            while the peer is dead too: the work still waits).
        start_time: Its process's start time (``process_start``), if known.
        namespace: Where its pid is meaningful (boot and pid namespace).
        executions: Its pending and running executions (empty when not alive).
        finished: Its recently finished executions.
        alerts: Its firing alerts.
    """

    path: Path
    pid: int
    published_at: float
    alive: bool
    start_time: int | None
    namespace: str | None
    records: _Records
    alerts: list[Alert]
    fine_width: float
    coarse_width: float
    fine: list[_Slot]
    coarse: list[_Slot]
    day_width: float
    day: list[_Slot]
    levels: dict[tuple[str, Attributes], float]
    scheduled: dict[str, dict[int, int]] = dataclasses.field(default_factory=dict)

    @property
    def executions(self) -> list[ExecutionProgress]:
        return self.records.decoded()[0] if self.alive else []

    @property
    def finished(self) -> list[ExecutionProgress]:
        return self.records.decoded()[1]


class _Records:
    """A peer's execution records, decoded on first use: ``summary()`` and ``health()``
    read only the windows, so they never pay for them."""

    __slots__ = ("_decoded", "_decoder", "_lock", "_raw")

    def __init__(self, decoder: _Decoder, executions: list[Any], finished: list[Any]) -> None:
        self._decoder = decoder
        self._raw: tuple[list[Any], list[Any]] | None = (executions, finished)
        self._decoded: tuple[list[ExecutionProgress], list[ExecutionProgress]] | None = None
        self._lock = threading.Lock()

    def decoded(self) -> tuple[list[ExecutionProgress], list[ExecutionProgress]]:
        with self._lock:
            if self._decoded is None:
                raw, self._raw = self._raw or ([], []), None
                self._decoded = (self._decode(raw[0]), self._decode(raw[1]))
            return self._decoded

    def _decode(self, wires: list[Any]) -> list[ExecutionProgress]:
        """Each valid record; an invalid one (a non-string id, a NaN...) is skipped alone."""
        result = []
        skipped = 0
        for wire in wires[-MAX_PUBLISHED_EXECUTIONS:]:
            try:
                result.append(self._decoder.progress(wire))
            except Exception:
                skipped += 1
        if skipped:
            report(
                "group.records",
                "stepwatch: %d malformed execution records of a process group file skipped",
                skipped,
            )
        return result


def _alert_from_wire(wire: Any) -> Alert:
    resolved_at = wire.get("resolved_at")
    return Alert(
        id=str(wire["id"]),
        rule=str(wire["rule"]),
        severity=Severity(wire["severity"]),
        message=str(wire["message"]),
        labels={str(k): str(v) for k, v in dict(wire["labels"]).items()},
        value=_finite(wire["value"], "an alert's value"),
        threshold=_finite(wire["threshold"], "an alert's threshold"),
        state=AlertState(wire["state"]),
        started_at=_finite(wire["started_at"], "an alert's start", minimum=0.0),
        resolved_at=None if resolved_at is None else _finite(resolved_at, "an alert's end"),
    )


def _alert_to_wire(alert: Alert) -> dict[str, Any]:
    wire = dataclasses.asdict(alert)
    wire["severity"] = alert.severity.value
    wire["state"] = alert.state.value
    return wire


def _stat(pid: int) -> tuple[bytes, int] | None:
    """``(state, start time)`` of process ``pid`` from ``/proc/<pid>/stat``, else ``None``."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            data = file.read(4096)
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    try:
        # Fields 3 and 22 of proc_pid_stat(5); the first two come before ")".
        return fields[0], int(fields[19])
    except (IndexError, ValueError):
        return None


def process_start(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks since boot (Linux ``/proc``), else ``None``.

    A pid is reused once its process is gone; the pair (pid, start time) is not.
    """
    found = _stat(pid)
    return None if found is None else found[1]


def _namespace() -> str:
    """Which pids this process's pids are comparable with: its boot and pid namespace."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        space = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return "unknown"
    return uuid.uuid5(uuid.NAMESPACE_OID, f"{boot}/{space}").hex[:12]


def _dead(pid: int, start: int | None) -> bool:
    """Whether process ``pid`` (started at ``start`` when known) has surely gone."""
    if not 0 < pid < 2**31:
        return True
    try:
        os.kill(pid, 0)
    except PermissionError:
        pass  # someone else's process by that id
    except (OSError, OverflowError, ValueError):
        return True  # no such process (ProcessLookupError)
    found = _stat(pid)
    if found is None:
        return False  # no /proc: the pid alone decides
    state, started = found
    if state in (b"Z", b"X"):
        return True  # a zombie not reaped yet: it runs nothing any more
    return start is not None and started != start  # the pid was reused: ours is gone


# ------------------------------------------------------------------ the windows
class GroupWindows:
    """This process's health windows plus the group's published ones (a :class:`Windows`).

    :meth:`refresh` collects this process's data and reads the group's files
    once; the queries that follow (a summary or an evaluation makes a dozen)
    read that one snapshot of the peers.
    """

    def __init__(self, local: Windows, peers: Callable[[], list[Peer]], clock: Callable[[], float]):
        self.local = local
        self._read_peers = peers
        self._clock = clock
        self._current: list[Peer] | None = None

    @property
    def window(self) -> float:
        return self.local.window

    def refresh(self) -> None:
        self.local.refresh()
        self._current = self._read_peers()

    def _peers(self) -> list[Peer]:
        current = self._current
        if current is None:
            current = self._current = self._read_peers()
        return current

    def _since(self, slots: list[_Slot], width: float, span: float) -> list[_Slot]:
        start = self._clock() - span
        return [slot for slot in slots if slot.start + width > start]

    def counts(
        self, metric: str, window: float | None = None, *, long: bool = False
    ) -> dict[Attributes, float]:
        result = dict(self.local.counts(metric, window, long=long))
        # Fine slots span at most the rules window; coarse ones whatever their
        # writer keeps (its long window).
        day = not long and window is not None and window > self.local.window
        if long or day:
            span = math.inf if window is None else window
        else:
            span = self.local.window if window is None else min(window, self.local.window)
        for peer in self._peers():
            slots, width = (
                (peer.coarse, peer.coarse_width)
                if long
                else (peer.day, peer.day_width)
                if day
                else (peer.fine, peer.fine_width)
            )
            add_counts(result, self._since(slots, width, span), metric)
        return result

    def histogram(
        self,
        metric: str,
        window: float | None = None,
        *,
        name: str | None = None,
        detail: str | None = None,
    ) -> ExpHistogram:
        merged = self.local.histogram(metric, window, name=name, detail=detail)
        day = window is not None and window > self.local.window
        span = self.local.window if window is None else window
        for peer in self._peers():
            slots, width = (peer.day, peer.day_width) if day else (peer.fine, peer.fine_width)
            merge_groups(merged, self._since(slots, width, span), (metric, name, detail))
        return merged

    def levels(self, metric: str) -> dict[Attributes, float]:
        """Levels summed over the group. A dead process keeps its ``pending`` (the work
        it queued still waits) but none of its ``executing``."""
        result = dict(self.local.levels(metric))
        for peer in self._peers():
            for (name, attributes), value in peer.levels.items():
                if name != metric:
                    continue
                state = dict(attributes).get(semconv.WORKFLOW_EXECUTION_STATE)
                if not peer.alive and state != ExecutionState.PENDING.value:
                    continue
                result[attributes] = result.get(attributes, 0.0) + value
        return result


# ------------------------------------------------------------------ the group
LostCallback = Callable[[list[ExecutionProgress], float], None]
"""Called with a dead member's running executions and when it was last seen alive."""
DeadCallback = Callable[[list[ExecutionProgress]], None]
"""Called, in every publishing member, with the running executions of a member found dead."""
AdoptCallback = Callable[[dict[tuple[str, Attributes], float]], None]
"""Called with the ``pending`` levels of a dead member whose file is being retired."""


class ProcessGroup:
    """This process's membership of a group directory: publishes its file, reads the others'.

    Args:
        directory: The group's directory (created when missing).
        snapshot: Returns this process's document to publish (without the header).
        clock: Epoch seconds; processes of one machine share it.
        publish_interval: Seconds between publishes; ``None`` reads only
            (``stepwatch top --dir``).
        on_lost: Called (on the publisher thread) with the running executions
            of a member found dead, once group-wide: this member won the claim.
        on_adopt: Called with the ``pending`` levels of a dead member whose
            file this member retires (once group-wide), to carry them on.
        on_dead: Called once per dead member in each publishing member with its
            running executions (a redelivery of one is its next attempt).

    Raises:
        TypeError: ``directory`` is not a path.
        ValueError: ``publish_interval`` is not a positive number.
        OSError: the directory cannot be created.

    .. versionadded:: 0.2.0
    .. versionchanged:: 0.3.0 ``on_lost`` and ``on_adopt``.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        snapshot: Callable[[], dict[str, Any]],
        clock: Callable[[], float] = time.time,
        publish_interval: float | None = DEFAULT_PUBLISH_INTERVAL,
        *,
        on_lost: LostCallback | None = None,
        on_adopt: AdoptCallback | None = None,
        on_dead: DeadCallback | None = None,
    ) -> None:
        checks.seconds(publish_interval, "publish_interval", optional=True, at_most=3600)
        checks.path(directory, "multiprocess_dir")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.publish_interval = publish_interval
        self.stale_after = max(MIN_STALE_AFTER, 10 * (publish_interval or 1.0))
        self._snapshot = snapshot
        self._clock = clock
        self._on_lost = on_lost
        self._on_adopt = on_adopt
        self._on_dead = on_dead
        self._learned: set[str] = set()
        self._limited = False
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[tuple[int, int, int], Peer | None]] = {}
        self._warned: set[str] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._namespace = _namespace()
        self._start = process_start(os.getpid())
        self.path = self._own_path()
        self.publish_error: str | None = None
        """Why the last publish failed (``None`` after a successful one)."""
        if publish_interval is not None:
            atexit.register(_publish_at_exit, weakref.ref(self))

    def _own_path(self) -> Path:
        # The name tells a sweeping member whose file it is without reading it.
        start = "x" if self._start is None else str(self._start)
        return (
            self.directory
            / f"{os.getpid()}-{start}-{self._namespace}-{uuid.uuid4().hex[:12]}{SUFFIX}"
        )

    # ---------------------------------------------------------------- publishing
    def start(self) -> None:
        """Publish now and then every ``publish_interval`` seconds on a daemon thread."""
        if self.publish_interval is None:
            return
        self.publish()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stepwatch-group", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        stop = self._stop
        interval = self.publish_interval or DEFAULT_PUBLISH_INTERVAL
        while not stop.wait(interval):
            self.publish()
            self.sweep()

    def stop(self, timeout: float | None = None) -> None:
        """Stop publishing (a last publish is the caller's)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def after_fork_in_child(self) -> None:
        """A forked child is a member of its own: a new file, its own publisher thread."""
        self._lock = threading.Lock()
        self._cache = {}
        self._start = process_start(os.getpid())
        self.path = self._own_path()
        self._forked_at = time.monotonic()
        self.publish_error = None
        if self._thread is not None and not self._stop.is_set():
            self.start()

    _forked_at: float | None = None

    def publish_if_fresh(self) -> bool:
        """Publish now if this process was forked less than one publish interval ago.

        A freshly forked member (RQ's fork per job) publishes when an
        execution starts, so the group sees jobs shorter than the interval;
        after one interval the publisher thread has taken over. Never raises.

        .. versionadded:: 0.3.0
        """
        forked_at = self._forked_at
        interval = self.publish_interval
        if forked_at is None or interval is None or time.monotonic() - forked_at >= interval:
            return False
        return self.publish()

    def publish(self) -> bool:
        """Write this process's file now (atomically). Never raises; ``False`` on failure.

        The file is written under a new unpredictable name created exclusively
        (``O_CREAT | O_EXCL``, never through a link) and renamed into place; a
        failed write removes it. A failure is kept in :attr:`publish_error`
        (the member's health component reads it).
        """
        if self.publish_interval is None:
            return False
        try:
            document = {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "stepwatch": __version__,
                "pid": os.getpid(),
                "start_time": self._start,
                "namespace": self._namespace,
                "published_at": self._clock(),
                **self._snapshot(),
            }
            _write_new(self.directory, self.path, _encode(document))
        except Exception as exc:
            self.publish_error = f"{type(exc).__name__}: {exc}"
            report(
                "group.publish", "stepwatch: publishing to the process group failed", exc_info=True
            )
            return False
        self.publish_error = None
        return True

    def health(self) -> ComponentHealth:
        """This member's publishing, as a health component (degraded while it cannot publish)."""
        error = self.publish_error
        return ComponentHealth(
            name=COMPONENT,
            status=HealthStatus.HEALTHY if error is None else HealthStatus.DEGRADED,
            critical=False,
            message=None if error is None else f"cannot publish to {self.directory}: {error}",
        )

    # --------------------------------------------------------------- dead members
    def sweep(self) -> None:
        """Find members that died: claim their running executions and retire old files.

        Reads names only (pid, start time and namespace are in each file's
        name); a dead member's file is read once, by the one member whose
        exclusive claim succeeds. Never raises.
        """
        if self.publish_interval is None:
            return
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            report("group.list", "stepwatch: cannot list the process group's directory")
            return
        now = self._clock()
        names = {entry.name for entry in entries}
        self._learned &= names  # forget the files that are gone
        for entry in entries:
            name = entry.name
            if not name.endswith(SUFFIX) or entry.path == str(self.path):
                continue
            identity = _identity_from_name(name)
            if identity is None or identity[2] != self._namespace:
                continue  # another machine's or another namespace's: its pid means nothing here
            if not _dead(identity[0], identity[1]):
                continue
            try:
                status = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if now - status.st_mtime > _RETIRE_AFTER:
                self._retire(Path(entry.path))
                continue
            if name not in self._learned:
                self._learned.add(name)
                self._learn(Path(entry.path), identity)
            if _lost_marker(name) not in names:
                self._claim_lost(Path(entry.path), identity)

    def _running_of(
        self, path: Path, identity: tuple[int, int | None, str]
    ) -> list[ExecutionProgress] | None:
        """A dead member's running executions (its file read once, cached), or ``None``."""
        with self._lock:
            peer = self._read(path)
        if peer is None or (peer.pid, peer.start_time) != identity[:2]:
            return None
        return [p for p in peer.records.decoded()[0] if p.state == ExecutionState.EXECUTING.value]

    def _learn(self, path: Path, identity: tuple[int, int | None, str]) -> None:
        running = self._running_of(path, identity)
        if running and self._on_dead is not None:
            try:
                self._on_dead(running)
            except Exception:
                report("group.dead", "stepwatch: learning a dead member's runs failed")

    def _claim_lost(self, path: Path, identity: tuple[int, int | None, str]) -> None:
        try:
            marker = os.open(
                path.with_name(_lost_marker(path.name)),
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )
        except OSError:
            return  # another member claimed it first (or the directory refuses: try again later)
        os.close(marker)
        running = self._running_of(path, identity)
        if running and self._on_lost is not None:
            try:
                self._on_lost(running, self._published_at(path))
            except Exception:
                report("group.lost", "stepwatch: recording lost executions failed", exc_info=True)

    def _published_at(self, path: Path) -> float:
        with self._lock:
            peer = self._read(path)
        return self._clock() if peer is None else peer.published_at

    def _retire(self, path: Path) -> None:
        """Remove a long-dead member's file; its ``pending`` levels are adopted (once)."""
        hidden = path.with_name(f".{path.name}.{uuid.uuid4().hex}.retired")
        try:
            os.rename(path, hidden)  # atomic: one member wins, the others see it gone
        except OSError:
            return
        try:
            peer = _decode(hidden, _read_regular(hidden), 0.0)
            pending = {
                key: value
                for key, value in peer.levels.items()
                if dict(key[1]).get(semconv.WORKFLOW_EXECUTION_STATE)
                == ExecutionState.PENDING.value
            }
            if pending and self._on_adopt is not None:
                self._on_adopt(pending)
        except Exception:
            report("group.retire", "stepwatch: a retired process group file was unreadable")
        finally:
            for gone in (hidden, path.with_name(_lost_marker(path.name))):
                with contextlib.suppress(OSError):
                    gone.unlink()

    # ------------------------------------------------------------------- reading
    def peers(self) -> list[Peer]:
        """The other processes' latest files, parsed (cached while unchanged). Never raises.

        At most :data:`MAX_PEERS` files and :data:`MAX_READ_BYTES` bytes, the
        most recently written first; only regular files owned by this
        process's user, never through a symbolic link.
        """
        now = self._clock()
        found: list[Peer] = []
        try:
            entries = [e for e in os.scandir(self.directory) if e.name.endswith(SUFFIX)]
        except OSError:
            report(
                "group.list", "stepwatch: cannot list the process group's directory", exc_info=True
            )
            return found
        listed: list[tuple[float, Path, os.stat_result]] = []
        for entry in entries:
            path = Path(entry.path)
            if path == self.path:
                continue
            try:
                status = entry.stat(follow_symlinks=False)
            except OSError:
                continue  # renamed or removed meanwhile
            if not stat.S_ISREG(status.st_mode):
                self._skip(path, "not a regular file (a link, a FIFO or a device)")
                continue
            listed.append((status.st_mtime, path, status))
        listed.sort(key=lambda item: item[0], reverse=True)
        budget = MAX_READ_BYTES
        over = 0
        with self._lock:
            seen = set()
            for position, (_, path, status) in enumerate(listed):
                if position >= MAX_PEERS or status.st_size > budget:
                    over += 1
                    continue
                budget -= status.st_size
                seen.add(path)
                peer = self._read(path, status)
                if peer is None:
                    continue
                peer.alive = self._alive(peer) and now - peer.published_at <= self.stale_after
                if not peer.alive and now - peer.published_at > _RETIRE_AFTER:
                    continue  # long dead: nothing of it is in any window (a sweep retires it)
                found.append(peer)
            for gone in set(self._cache) - seen:
                del self._cache[gone]
            if over:
                self._over_limits(over, len(listed))
        return found

    def _over_limits(self, skipped: int, listed: int) -> None:
        """One warning per reader (not per file) that the limits left peers out."""
        if not self._limited:
            self._limited = True
            _logger.warning(
                "stepwatch: %d of %d process group files skipped: a reader reads at most "
                "%d files and %d bytes (the most recently written first)",
                skipped,
                listed,
                MAX_PEERS,
                MAX_READ_BYTES,
            )
        report("group.limits", "stepwatch: process group files over the reader's limits skipped")

    def _alive(self, peer: Peer) -> bool:
        if peer.namespace is not None and peer.namespace != self._namespace:
            return True  # its pid means nothing here: its publishing tells
        return not _dead(peer.pid, peer.start_time)

    def _skip(self, path: Path, why: str) -> None:
        if path.name not in self._warned and len(self._warned) < _MAX_WARNED_FILES:
            self._warned.add(path.name)
            _logger.warning("stepwatch: skipping process group file %s: %s", path, why)
        report("group.read", "stepwatch: unreadable process group file skipped")

    def _read(self, path: Path, status: os.stat_result | None = None) -> Peer | None:
        if status is None:
            try:
                status = path.stat(follow_symlinks=False)
            except OSError:
                return None
        signature = (status.st_mtime_ns, status.st_size, status.st_ino)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == signature:
            peer = cached[1]
            return None if peer is None else dataclasses.replace(peer)
        peer = None
        try:
            peer = _decode(path, _read_regular(path), status.st_mtime)
        except FileNotFoundError:
            return None
        except Exception as exc:
            self._skip(path, str(exc))
        self._cache[path] = (signature, peer)
        return None if peer is None else dataclasses.replace(peer)

    def remove(self) -> None:
        """Remove this process's file (a reader-only member never wrote one)."""
        with contextlib.suppress(OSError):
            self.path.unlink()


def _write_new(directory: Path, target: Path, data: bytes) -> None:
    """Write ``data`` to ``target`` through a new exclusive temporary file, atomically."""
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        os.replace(temporary, target)  # replaces a link at target, never writes through one
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def _read_regular(path: Path) -> bytes:
    """The bytes of ``path`` if it is a regular file of ours of bounded size, else an error.

    Opened without following a link and without blocking (a FIFO), then
    checked on the descriptor read (``fstat``): no swap between check and read.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    descriptor = os.open(path, flags)
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise ValueError("not a regular file")
        if status.st_uid != os.getuid():
            raise ValueError(f"owned by uid {status.st_uid}, not this process's user")
        if status.st_size > MAX_FILE_BYTES:
            raise ValueError(f"{status.st_size} bytes, over the {MAX_FILE_BYTES} limit")
        chunks = []
        left = MAX_FILE_BYTES + 1
        while left > 0:
            chunk = os.read(descriptor, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        if left <= 0:
            raise ValueError(f"grew over the {MAX_FILE_BYTES} limit while read")
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def _lost_marker(name: str) -> str:
    return f".{name}.lost"


def _identity_from_name(name: str) -> tuple[int, int | None, str] | None:
    """``(pid, start time, namespace)`` from a file name this version writes, else ``None``."""
    parts = name[: -len(SUFFIX)].split("-")
    if len(parts) != 4:
        return None
    pid, start, namespace, _ = parts
    try:
        return int(pid), None if start == "x" else int(start), namespace
    except ValueError:
        return None


def _publish_at_exit(group: weakref.ref[ProcessGroup]) -> None:
    member = group()
    if member is not None and not member._stop.is_set():
        member.stop(1.0)
        member.publish()


_RETIRE_AFTER = 6 * 3600.0
"""A dead process's file is removed once this old (the longest window, the burn rate's)."""


def _encode(document: dict[str, Any]) -> bytes:
    """Serialize, trimming to stay under :data:`MAX_FILE_BYTES`: steps, then finished
    executions, then the oldest running ones (half at a time), then histograms, then
    the windows go first: records with long ids never cost the group its figures."""
    data = json.dumps(document, separators=(",", ":")).encode()
    if len(data) <= MAX_FILE_BYTES:
        return data
    trims: list[Callable[[dict[str, Any]], None]] = [_drop_steps, _drop_finished]
    trims += [_halve_executions] * (len(document["executions"]).bit_length() + 1)
    trims += [_drop_groups, _drop_windows]
    for trim in trims:
        trim(document)
        data = json.dumps(document, separators=(",", ":")).encode()
        if len(data) <= MAX_FILE_BYTES:
            break
    report("group.trimmed", "stepwatch: the process group file was trimmed to its size limit")
    return data


def _halve_executions(document: dict[str, Any]) -> None:
    executions = document["executions"]
    document["executions"] = executions[len(executions) // 2 + len(executions) % 2 :]


def _drop_steps(document: dict[str, Any]) -> None:
    for record in (*document["executions"], *document["finished"]):
        record[-1] = []


def _drop_finished(document: dict[str, Any]) -> None:
    document["finished"] = []


def _drop_groups(document: dict[str, Any]) -> None:
    for ring in ("day", "fine"):
        for slot in document["windows"].get(ring, []):
            slot["groups"] = []


def _drop_windows(document: dict[str, Any]) -> None:
    document["windows"] = {**document["windows"], "fine": [], "coarse": [], "day": []}


def _decode(path: Path, data: bytes, written_at: float) -> Peer:
    document = json.loads(data)
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError("not a stepwatch process group file")
    if document.get("version") != FORMAT_VERSION:
        raise ValueError(
            f"format version {document.get('version')!r} (stepwatch "
            f"{document.get('stepwatch')!r}); this reader knows {FORMAT_VERSION}"
        )
    windows = document["windows"]
    decoder = _Decoder(document["execution_fields"], document["step_fields"])
    executions, finished = document["executions"], document["finished"]
    if not isinstance(executions, list) or not isinstance(finished, list):
        raise TypeError("executions and finished must be lists")
    pid = document["pid"]
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < 2**31:
        raise ValueError(f"pid must be a process id, got {pid!r}")
    start_time = document.get("start_time")
    if start_time is not None and (isinstance(start_time, bool) or not isinstance(start_time, int)):
        raise ValueError("start_time must be an int or null")
    namespace = document.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise ValueError("namespace must be a string or null")
    published_at = _finite(document["published_at"], "published_at", minimum=0.0)
    if written_at:
        published_at = min(published_at, written_at)  # a claim from the future is not believed
    widths = [
        _finite(windows[key], key, minimum=1e-3, maximum=DAY_SLOT)
        for key in ("fine_slot", "coarse_slot")
    ]
    return Peer(
        path=path,
        pid=pid,
        published_at=published_at,
        alive=True,
        start_time=start_time,
        namespace=namespace,
        records=_Records(decoder, executions, finished),
        alerts=[_alert_from_wire(w) for w in document["alerts"][:MAX_PUBLISHED_EXECUTIONS]],
        fine_width=widths[0],
        coarse_width=widths[1],
        fine=_slots(windows["fine"], groups=True),
        coarse=_slots(windows["coarse"], groups=False),
        day_width=_finite(
            windows.get("day_slot", DAY_SLOT), "day_slot", minimum=1e-3, maximum=DAY_SLOT
        ),
        day=_slots(windows.get("day", []), groups=True),
        levels={
            (str(metric), _attributes(attributes)): _finite(
                value, "a level", minimum=-MAX_LEVEL, maximum=MAX_LEVEL
            )
            for metric, attributes, value in windows["levels"]
        },
        scheduled=_scheduled(document.get("scheduled", {})),
    )


def _scheduled(wire: Any) -> dict[str, dict[int, int]]:
    if not isinstance(wire, dict) or len(wire) > _MAX_SCHEDULED_NAMES:
        raise ValueError("scheduled must be a small mapping of names to due times")
    found: dict[str, dict[int, int]] = {}
    for name, pairs in wire.items():
        if not isinstance(pairs, list) or len(pairs) > MAX_PUBLISHED_EXECUTIONS:
            raise ValueError("scheduled due times must be a bounded list")
        by_due = found.setdefault(str(name), {})
        for due, count in pairs:
            if not all(isinstance(n, int) and not isinstance(n, bool) for n in (due, count)):
                raise ValueError("a scheduled due time and count must be ints")
            if not 0 <= due < 2**40 or not 0 <= count < 2**31:
                raise ValueError("a scheduled due time or count out of range")
            by_due[due] = by_due.get(due, 0) + count
    return found


def snapshot_document(
    active: list[ExecutionProgress],
    finished: list[ExecutionProgress],
    windows: dict[str, Any],
    alerts: list[Alert],
    scheduled: dict[str, dict[int, int]] | None = None,
) -> dict[str, Any]:
    """This process's part of a group file (the header is added when publishing)."""
    return {
        "scheduled": {
            name: [[due, count] for due, count in by_due.items()][:MAX_PUBLISHED_EXECUTIONS]
            for name, by_due in list((scheduled or {}).items())[:_MAX_SCHEDULED_NAMES]
        },
        "execution_fields": _EXECUTION_FIELDS,
        "step_fields": _STEP_FIELDS,
        "executions": [_progress_to_wire(p) for p in active[-MAX_PUBLISHED_EXECUTIONS:]],
        "finished": [_progress_to_wire(p) for p in finished[-MAX_PUBLISHED_EXECUTIONS:]],
        "windows": windows,
        "alerts": [_alert_to_wire(a) for a in alerts],
    }
