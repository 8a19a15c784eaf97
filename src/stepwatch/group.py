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
from stepwatch.health import Alert
from stepwatch.progress import ExecutionProgress, StepProgress, keep_steps
from stepwatch.semconv import AlertState, ExecutionState, Outcome, Severity
from stepwatch.version import __version__
from stepwatch.windows import DAY_SLOT, Attributes, Windows, add_counts, merge_groups

__all__ = [
    "DEFAULT_PUBLISH_INTERVAL",
    "ENVIRONMENT_VARIABLE",
    "FORMAT_VERSION",
    "MAX_FILE_BYTES",
    "MAX_PUBLISHED_EXECUTIONS",
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
_MAX_WARNED_FILES = 256


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
            steps = [StepProgress(*step) for step in raw_steps]
            values = dict(zip(_EXECUTION_FIELDS, wire[:-1], strict=True))
            progress = ExecutionProgress(**values, steps=steps)
        else:
            steps = [StepProgress(**{n: step[i] for i, n in self._step}) for step in raw_steps]
            progress = ExecutionProgress(**{n: wire[i] for i, n in self._execution}, steps=steps)
        _check_record(progress)
        for step in steps:
            _check_fields(step, _STEP_TEXT, _STEP_NUMBERS)
        return progress


_TEXT = ("execution_id", "name", "state")
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
)
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
    for name in _OPTIONAL_TEXT:
        value = getattr(progress, name)
        if value is not None and not isinstance(value, str):
            raise TypeError(f"{name} must be a string or null")
    for name in _OPTIONAL_NUMBERS:
        value = getattr(progress, name)
        if value is not None and not _number(value):
            raise TypeError(f"{name} must be a finite number or null")
    if isinstance(progress.attempt, bool) or not isinstance(progress.attempt, int):
        raise TypeError("attempt must be an int")


def _attributes(wire: Any) -> Attributes:
    return tuple((str(key), value) for key, value in wire)


@dataclass(slots=True)
class _Slot:
    start: float
    counts: dict[tuple[str, Attributes], float]
    groups: dict[tuple[str, str | None, str | None], ExpHistogram]


def _slots(wire: Any, groups: bool) -> list[_Slot]:
    slots = []
    for slot in wire:
        counts = {
            (str(metric), _attributes(attributes)): float(value)
            for metric, attributes, value in slot["counts"]
        }
        histograms = (
            {
                (str(metric), name, detail): ExpHistogram.from_wire(histogram)
                for metric, name, detail, histogram in slot["groups"]
            }
            if groups
            else {}
        )
        slots.append(_Slot(float(slot["start"]), counts, histograms))
    return slots


@dataclass(slots=True)
class Peer:
    """Another process of the group, as of its last publish.

    Attributes:
        path: Its file.
        pid: Its process id.
        published_at: When it last published (epoch seconds).
        alive: Whether it is running and publishing (else its running
            executions are forgotten; its finished data stays until it ages out).
        executions: Its pending and running executions (empty when not alive).
        finished: Its recently finished executions.
        alerts: Its firing alerts.
    """

    path: Path
    pid: int
    published_at: float
    alive: bool
    records: _Records
    alerts: list[Alert]
    fine_width: float
    coarse_width: float
    fine: list[_Slot]
    coarse: list[_Slot]
    day_width: float
    day: list[_Slot]
    levels: dict[tuple[str, Attributes], float]

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
                try:
                    self._decoded = (
                        [self._decoder.progress(w) for w in raw[0]],
                        [self._decoder.progress(w) for w in raw[1]],
                    )
                except Exception:
                    report(
                        "group.records",
                        "stepwatch: a process group file has malformed executions; skipped",
                        exc_info=True,
                    )
                    self._decoded = ([], [])
            return self._decoded


def _alert_from_wire(wire: Any) -> Alert:
    return Alert(
        id=str(wire["id"]),
        rule=str(wire["rule"]),
        severity=Severity(wire["severity"]),
        message=str(wire["message"]),
        labels={str(k): str(v) for k, v in dict(wire["labels"]).items()},
        value=float(wire["value"]),
        threshold=float(wire["threshold"]),
        state=AlertState(wire["state"]),
        started_at=float(wire["started_at"]),
        resolved_at=None if wire.get("resolved_at") is None else float(wire["resolved_at"]),
    )


def _alert_to_wire(alert: Alert) -> dict[str, Any]:
    wire = dataclasses.asdict(alert)
    wire["severity"] = alert.severity.value
    wire["state"] = alert.state.value
    return wire


def _pid_alive(pid: int) -> bool:
    if not 0 < pid < 2**31:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True  # someone else's process by that id: alive
    except (OSError, OverflowError, ValueError):
        return False  # no such process (ProcessLookupError), or no valid id
    return True


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
class ProcessGroup:
    """This process's membership of a group directory: publishes its file, reads the others'.

    Args:
        directory: The group's directory (created when missing).
        snapshot: Returns this process's document to publish (without the header).
        clock: Epoch seconds; processes of one machine share it.
        publish_interval: Seconds between publishes; ``None`` reads only
            (``stepwatch top --dir``).

    Raises:
        TypeError: ``directory`` is not a path.
        ValueError: ``publish_interval`` is not a positive number.
        OSError: the directory cannot be created.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        snapshot: Callable[[], dict[str, Any]],
        clock: Callable[[], float] = time.time,
        publish_interval: float | None = DEFAULT_PUBLISH_INTERVAL,
    ) -> None:
        checks.seconds(publish_interval, "publish_interval", optional=True, at_most=3600)
        checks.path(directory, "multiprocess_dir")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.publish_interval = publish_interval
        self.stale_after = max(MIN_STALE_AFTER, 10 * (publish_interval or 1.0))
        self._snapshot = snapshot
        self._clock = clock
        self._lock = threading.Lock()
        self._cache: dict[Path, tuple[tuple[int, int], Peer | None]] = {}
        self._warned: set[Path] = set()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.path = self._own_path()
        if publish_interval is not None:
            atexit.register(_publish_at_exit, weakref.ref(self))

    def _own_path(self) -> Path:
        return self.directory / f"{os.getpid()}-{uuid.uuid4().hex[:12]}{SUFFIX}"

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
        self.path = self._own_path()
        self._forked_at = time.monotonic()
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
        """Write this process's file now (atomically). Never raises; ``False`` on failure."""
        if self.publish_interval is None:
            return False
        try:
            document = {
                "format": FORMAT,
                "version": FORMAT_VERSION,
                "stepwatch": __version__,
                "pid": os.getpid(),
                "published_at": self._clock(),
                **self._snapshot(),
            }
            data = _encode(document)
            temporary = self.path.with_name(f".{self.path.name}.{threading.get_ident()}.tmp")
            temporary.write_bytes(data)
            os.replace(temporary, self.path)
            return True
        except Exception:
            report(
                "group.publish", "stepwatch: publishing to the process group failed", exc_info=True
            )
            return False

    # ------------------------------------------------------------------- reading
    def peers(self) -> list[Peer]:
        """The other processes' latest files, parsed (cached while unchanged). Never raises."""
        now = self._clock()
        found: list[Peer] = []
        try:
            paths = [p for p in self.directory.iterdir() if p.name.endswith(SUFFIX)]
        except OSError:
            report(
                "group.list", "stepwatch: cannot list the process group's directory", exc_info=True
            )
            return found
        with self._lock:
            seen = set()
            for path in paths:
                if path == self.path:
                    continue
                seen.add(path)
                peer = self._read(path)
                if peer is None:
                    continue
                peer.alive = _pid_alive(peer.pid) and now - peer.published_at <= self.stale_after
                if not peer.alive and now - peer.published_at > _RETIRE_AFTER:
                    with contextlib.suppress(OSError):
                        path.unlink()  # long dead: nothing of it is in any window
                    continue
                found.append(peer)
            for gone in set(self._cache) - seen:
                del self._cache[gone]
        return found

    def _read(self, path: Path) -> Peer | None:
        try:
            status = path.stat()
        except OSError:
            return None  # renamed or removed meanwhile
        signature = (status.st_mtime_ns, status.st_size)
        cached = self._cache.get(path)
        if cached is not None and cached[0] == signature:
            peer = cached[1]
            return None if peer is None else dataclasses.replace(peer)
        peer = None
        try:
            if status.st_size > MAX_FILE_BYTES:
                raise ValueError(f"{status.st_size} bytes, over the {MAX_FILE_BYTES} limit")
            peer = _decode(path, path.read_bytes())
        except Exception as exc:
            if path not in self._warned and len(self._warned) < _MAX_WARNED_FILES:
                self._warned.add(path)
                _logger.warning("stepwatch: skipping process group file %s: %s", path, exc)
            report("group.read", "stepwatch: unreadable process group file skipped")
        self._cache[path] = (signature, peer)
        return None if peer is None else dataclasses.replace(peer)

    def remove(self) -> None:
        """Remove this process's file (a reader-only member never wrote one)."""
        with contextlib.suppress(OSError):
            self.path.unlink()


def _publish_at_exit(group: weakref.ref[ProcessGroup]) -> None:
    member = group()
    if member is not None and not member._stop.is_set():
        member.stop(1.0)
        member.publish()


_RETIRE_AFTER = 6 * 3600.0
"""A dead process's file is removed once this old (the longest window, the burn rate's)."""


def _encode(document: dict[str, Any]) -> bytes:
    """Serialize, trimming to stay under :data:`MAX_FILE_BYTES`: steps, then finished
    executions, then histograms, then the windows go first."""
    data = json.dumps(document, separators=(",", ":")).encode()
    for trim in (_drop_steps, _drop_finished, _drop_groups, _drop_windows):
        if len(data) <= MAX_FILE_BYTES:
            return data
        trim(document)
        data = json.dumps(document, separators=(",", ":")).encode()
    if len(data) > MAX_FILE_BYTES:
        document["executions"] = document["executions"][: MAX_PUBLISHED_EXECUTIONS // 10]
        data = json.dumps(document, separators=(",", ":")).encode()
    report("group.trimmed", "stepwatch: the process group file was trimmed to its size limit")
    return data


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


def _decode(path: Path, data: bytes) -> Peer:
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
    return Peer(
        path=path,
        pid=pid,
        published_at=float(document["published_at"]),
        alive=True,
        records=_Records(decoder, executions, finished),
        alerts=[_alert_from_wire(w) for w in document["alerts"]],
        fine_width=float(windows["fine_slot"]),
        coarse_width=float(windows["coarse_slot"]),
        fine=_slots(windows["fine"], groups=True),
        coarse=_slots(windows["coarse"], groups=False),
        day_width=float(windows.get("day_slot", DAY_SLOT)),
        day=_slots(windows.get("day", []), groups=True),
        levels={
            (str(metric), _attributes(attributes)): float(value)
            for metric, attributes, value in windows["levels"]
        },
    )


def snapshot_document(
    active: list[ExecutionProgress],
    finished: list[ExecutionProgress],
    windows: dict[str, Any],
    alerts: list[Alert],
) -> dict[str, Any]:
    """This process's part of a group file (the header is added when publishing)."""
    return {
        "execution_fields": _EXECUTION_FIELDS,
        "step_fields": _STEP_FIELDS,
        "executions": [_progress_to_wire(p) for p in active[-MAX_PUBLISHED_EXECUTIONS:]],
        "finished": [_progress_to_wire(p) for p in finished[-MAX_PUBLISHED_EXECUTIONS:]],
        "windows": windows,
        "alerts": [_alert_to_wire(a) for a in alerts],
    }
