"""The instrument layer: ``execution`` and ``step`` decorators, context managers and handles.

Usage::

    @stepwatch.execution("deploy", total_steps=3, sla=30.0,
                         execution_id=lambda plan: plan.id)
    def deploy(plan): ...

    @stepwatch.step("fetch", step_type="http")
    async def fetch(url): ...

    with stepwatch.execution("nightly", execution_id="n-42") as ex:
        with ex.step("validate", step_type="check") as st:
            st.progress(done=3, total=10)

Each call opens a span (``execution {name}`` or ``step {name}``), records the
duration histograms and keeps the in-process Monitor informed. The kind of
wrapper (function, coroutine, generator, async generator) is chosen once, at
decoration time. The host's return values and exceptions pass through
unchanged; stepwatch's own failures are logged once, counted and dropped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime
import functools
import inspect
import itertools
import math
import os
import threading
import uuid
from collections import OrderedDict, deque
from collections.abc import (
    AsyncGenerator,
    Callable,
    Generator,
    Mapping,
    MutableMapping,
    Sequence,
)
from contextvars import ContextVar, Token
from threading import Lock
from types import TracebackType
from typing import Any, Final, Generic, TypeVar, cast, overload

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.trace import INVALID_SPAN, Link, Span, SpanKind, Status, StatusCode

from stepwatch import _attributes as attrs
from stepwatch import _checks as checks
from stepwatch import _fork, _otel_internals, _pickling, _telemetry, semconv
from stepwatch._safety import near_recursion_limit, report
from stepwatch.progress import ExecutionProgress, StepState, snapshot
from stepwatch.semconv import ExecutionState, Outcome
from stepwatch.windows import SeriesAttributes

__all__ = [
    "Execution",
    "ExecutionScope",
    "Step",
    "StepScope",
    "classify",
    "current_execution",
    "current_step",
    "enqueue",
    "execution",
    "register_outcome",
    "remember_dead_run",
    "step",
    "unregister_outcome",
]

_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Any])
_H = TypeVar("_H", "Execution", "Step")

_EXECUTION_KEY: Final = otel_context.create_key("stepwatch-execution")
_STEP_KEY: Final = otel_context.create_key("stepwatch-step")

_CANCELLATIONS: Final = (
    asyncio.CancelledError,
    concurrent.futures.CancelledError,
    KeyboardInterrupt,
    SystemExit,
    GeneratorExit,
)

PROGRESS_EVENT_INTERVAL: Final = 1.0
"""Minimum seconds between two ``step.progress`` span events of one step."""
_MAX_CACHED_ATTRIBUTE_SETS: Final = 4096
MAX_STARTED_CARRIERS: Final = 10_000
"""Enqueues remembered per process, so a carrier started again is known as the next attempt."""
MAX_QUEUE_WAIT: Final = 7 * 24 * 3600.0
"""Seconds of queue wait believed at most: a carrier's enqueue time further in the past
is ignored (no queue wait recorded); one in the future is a wait of 0."""
_MAX_ENQUEUE_ID_LENGTH: Final = 64
"""Characters of a carrier's enqueue id remembered (stepwatch writes 32)."""
_GENERATOR_CLOSED: Final = "generator closed by its consumer"


# ------------------------------------------------------------------ classification
def classify(exc: BaseException | None) -> Outcome:
    """Map how a call ended to an :class:`~stepwatch.Outcome`.

    Args:
        exc: The exception the call raised, or ``None`` for a return.

    Returns:
        ``SUCCESS`` for ``None``; ``TIMEOUT`` for ``TimeoutError`` (asyncio's
        and concurrent.futures' are the same class since Python 3.11);
        ``CANCELLATION`` for asyncio and concurrent.futures cancellations,
        ``KeyboardInterrupt``, ``SystemExit`` and ``GeneratorExit``;
        ``FAILURE`` for anything else. An exception type given to
        :func:`register_outcome` (or a subclass of one) maps to its outcome
        first: an engine's time limit is a timeout.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.2.0 Registered exception types.
    """
    if exc is None:
        return Outcome.SUCCESS
    if _REGISTERED_OUTCOMES:
        registered = _registered(type(exc))
        if registered is not None:
            return registered
    if isinstance(exc, TimeoutError):
        return Outcome.TIMEOUT
    if isinstance(exc, _CANCELLATIONS):
        return Outcome.CANCELLATION
    return Outcome.FAILURE


def _registered(exc_type: type[BaseException]) -> Outcome | None:
    """The registered outcome nearest in ``exc_type``'s MRO, or ``None``.

    Compared by identity, never by the classes' own ``__hash__``/``__eq__``
    (a metaclass may make those raise): a host's exception class cannot make
    classifying fail.
    """
    registered = _REGISTERED_OUTCOMES
    for cls in type.__getattribute__(exc_type, "__mro__"):
        found = registered.get(id(cls))
        if found is not None and found[0] is cls:
            return found[1]
    return None


_REGISTERED_OUTCOMES: dict[int, tuple[type[BaseException], Outcome]] = {}
"""Registered exception classes by ``id(class)``: ``(class, outcome)`` (the class kept alive)."""
_REGISTRABLE: Final = (Outcome.FAILURE, Outcome.TIMEOUT, Outcome.CANCELLATION, Outcome.RETRY)


def register_outcome(exception_type: type[BaseException], outcome: Outcome | str) -> None:
    """Make executions and steps that raise ``exception_type`` end with ``outcome``.

    For exceptions an engine raises into the work it runs: Celery's
    ``SoftTimeLimitExceeded`` is a timeout, huey's ``CancelExecution`` a
    cancellation. The engine integrations register their engine's types when
    instrumented; an engine without one registers its own::

        stepwatch.instrument.register_outcome(MyEngineDeadline, Outcome.TIMEOUT)

    Subclasses match too; the nearest registered class in the MRO wins.

    Raises:
        TypeError: ``exception_type`` is not an exception class, or
            ``outcome`` not an :class:`Outcome`.
        ValueError: ``outcome`` is ``success`` or ``skip`` (an exception is
            never either).

    .. versionadded:: 0.2.0
    """
    if not (isinstance(exception_type, type) and issubclass(exception_type, BaseException)):
        raise TypeError(
            f"exception_type must be an exception class, got {type(exception_type).__name__}"
        )
    resolved: Outcome = checks.member(outcome, "outcome", Outcome)
    if resolved not in _REGISTRABLE:
        allowed = ", ".join(o.value for o in _REGISTRABLE)
        raise ValueError(f"outcome must be one of {allowed}, got {resolved.value!r}")
    _REGISTERED_OUTCOMES[id(exception_type)] = (exception_type, resolved)


def unregister_outcome(exception_type: type[BaseException]) -> None:
    """Undo :func:`register_outcome` for ``exception_type`` (no error when absent).

    .. versionadded:: 0.2.0
    """
    found = _REGISTERED_OUTCOMES.get(id(exception_type))
    if found is not None and found[0] is exception_type:
        del _REGISTERED_OUTCOMES[id(exception_type)]


def _error_type(exc: BaseException) -> str:
    """``error.type`` of ``exc``: its class's qualified name, after its module unless builtin.

    Read through ``type``'s own slots: a class whose ``__module__`` is no
    plain string (or has a raising ``__eq__``) is named without its module.
    """
    cls = type(exc)
    qualname = type.__getattribute__(cls, "__qualname__")
    try:
        module = type.__getattribute__(cls, "__module__")
    except Exception:
        module = None
    if type(module) is not str or module in ("builtins", "__main__"):
        return str.__str__(qualname)
    return f"{module}.{qualname}"


class _AttributeSets:
    """Interned metric attribute dicts for one fixed key list (values ``None`` are left out).

    Metric attribute values come from bounded sets (names, types, outcomes),
    so reusing one dict per combination saves building it (and the health
    windows' sorted series key, :class:`~stepwatch.windows.SeriesAttributes`)
    on every record.
    Past ``_MAX_CACHED_ATTRIBUTE_SETS`` combinations, dicts are built fresh.
    """

    __slots__ = ("_cache", "_keys")

    def __init__(self, *keys: str) -> None:
        self._keys = keys
        self._cache: dict[tuple[str | None, ...], SeriesAttributes] = {}

    def get(self, *values: str | None) -> SeriesAttributes:
        cached = self._cache.get(values)
        if cached is None:
            cached = SeriesAttributes(
                {k: v for k, v in zip(self._keys, values, strict=True) if v is not None}
            )
            if len(self._cache) < _MAX_CACHED_ATTRIBUTE_SETS:
                self._cache[values] = cached
        return cached


_TASK_ATTRIBUTES: Final = _AttributeSets(
    semconv.WORKFLOW_DEFINITION_NAME,
    semconv.WORKFLOW_TASK_TYPE,
    semconv.WORKFLOW_TASK_OUTCOME,
    semconv.ERROR_TYPE,
)
_EXECUTION_ATTRIBUTES: Final = _AttributeSets(
    semconv.WORKFLOW_DEFINITION_NAME,
    semconv.WORKFLOW_EXECUTION_STATE,
    semconv.WORKFLOW_EXECUTION_OUTCOME,
    semconv.ERROR_TYPE,
)
_ACTIVE_ATTRIBUTES: Final = _AttributeSets(
    semconv.WORKFLOW_DEFINITION_NAME, semconv.WORKFLOW_EXECUTION_STATE
)
_SLA_ATTRIBUTES: Final = _AttributeSets(semconv.WORKFLOW_DEFINITION_NAME)
_APPROVAL_ATTRIBUTES: Final = _AttributeSets(
    semconv.WORKFLOW_DEFINITION_NAME, semconv.WORKFLOW_APPROVAL_OUTCOME
)
_PENDING: Final = ExecutionState.PENDING.value
_EXECUTING: Final = ExecutionState.EXECUTING.value


def _suppression_keys() -> tuple[str, str]:
    """The context keys ``suppress_instrumentation()`` sets, found through that public API.

    ``is_instrumentation_enabled()`` reads the current context once per key;
    the instrument layer already holds that context (it parents the span on
    it) and reads the same keys from it: one context read per run, not three.
    """
    before = otel_context.get_current()
    with suppress_instrumentation():
        during = otel_context.get_current()
    keys = [key for key, value in during.items() if value is True and before.get(key) is not True]
    if not keys:  # pragma: no cover - the API moved; an unset key never suppresses
        keys = [otel_context.create_key("stepwatch-unused")]
    return keys[0], keys[-1]


_SUPPRESS_KEY, _SUPPRESS_KEY_OTHER = _suppression_keys()


def _suppressed(ctx: Context) -> bool:
    """Whether ``ctx`` suppresses instrumentation (what ``is_instrumentation_enabled()`` reads)."""
    return bool(ctx.get(_SUPPRESS_KEY) or ctx.get(_SUPPRESS_KEY_OTHER))


def _run_context(parent: Context, span: Span, key: str, run: _Run) -> Context:
    """``parent`` with ``span`` current and ``run`` under ``key``: what a run attaches."""
    ctx = _otel_internals.run_context(parent, span, key, run)
    if ctx is None:
        ctx = otel_context.set_value(key, run, trace.set_span_in_context(span, parent))
    return ctx


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _end(span: Span, end_ns: int) -> None:
    """End a span; a failing span processor is reported, and the rest of the ending goes on."""
    try:
        span.end(end_time=end_ns)
    except Exception:
        report("span.end", "stepwatch: ending a span failed", exc_info=True)


def _span_event(
    span: Span, event_type: semconv.EventType, data: Mapping[str, Any], at: float
) -> None:
    """Add the span event of a lifecycle event, its attributes built from the event's payload."""
    if span.is_recording():
        try:
            span.add_event(
                event_type.value,
                semconv.span_event_attributes(event_type, data),
                timestamp=_ns(at),
            )
        except Exception:
            report("span.event", "stepwatch: adding a span event failed", exc_info=True)


# ------------------------------------------------------------------------ handles
class _Run:
    """State shared by execution and step handles: span, context, outcome."""

    __slots__ = (
        "_ctx",
        "_ended",
        "_explicit",
        "_generation",
        "_reason",
        "_recording",
        "_started_at",
        "_started_mono",
        "_tel",
        "_updated_at",
        "ended_at",
        "outcome",
        "span",
    )

    span: Span
    _tel: _telemetry.Telemetry
    _ctx: Context
    _started_at: float
    _started_mono: float
    _updated_at: float
    _recording: bool
    _ended: bool
    _generation: int
    _explicit: Outcome | None
    _reason: str | None
    outcome: Outcome | None
    ended_at: float | None

    def _init_run(self, tel: _telemetry.Telemetry, now: float, recording: bool) -> None:
        self._tel = tel
        self._started_at = now
        self._started_mono = tel.monotonic() if recording else 0.0
        self._updated_at = now
        self._recording = recording
        self._ended = False
        self._generation = _fork.current
        self._explicit = None
        self._reason = None
        self.outcome = None
        self.ended_at = None
        self.span = INVALID_SPAN

    @property
    def started_at(self) -> float:
        """When it started running (epoch seconds, Monitor clock)."""
        return self._started_at

    @property
    def updated_at(self) -> float:
        """When anything about it last changed (epoch seconds, Monitor clock)."""
        return self._updated_at

    @property
    def reason(self) -> str | None:
        """The reason given with an explicit outcome (``fail``, ``skip``, ``retry``...) or ``None``.

        Also "generator closed by its consumer" for a generator step closed early.

        .. versionadded:: 0.2.0
        """
        return self._reason

    def _elapsed(self) -> tuple[float, float]:
        """``(duration, end timestamp)`` now: the duration from the monotonic clock."""
        duration = max(self._tel.monotonic() - self._started_mono, 0.0)
        return duration, self._started_at + duration

    # Context: attached only while the host's code runs under this handle.
    def _activate(self) -> Token[Context] | None:
        if not self._recording:
            return None
        try:
            return otel_context.attach(self._ctx)
        except Exception:
            report("context.attach", "stepwatch: could not attach context", exc_info=True)
            return None

    def _deactivate(self, token: Token[Context] | None) -> None:
        if token is not None:
            try:
                otel_context.detach(token)
            except Exception:
                report("context.detach", "stepwatch: could not detach context", exc_info=True)

    def _close(self, token: Token[Context] | None, exc: BaseException | None) -> None:
        self._deactivate(token)
        if self._recording and not self._ended:
            if self._generation != _fork.current:
                # Started before this process was forked: the parent ends it, not us.
                self._ended = True
                return
            try:
                self._finish(exc)
            except Exception:
                report(f"{self._kind}.finish", "stepwatch: failed to end %s", self, exc_info=True)

    def _close_by_consumer(self, token: Token[Context] | None) -> None:
        """End a generator its consumer closed after a normal yield: ``skip``, not an error."""
        if self._explicit is None:
            self._explicit = Outcome.SKIP
            self._reason = _GENERATOR_CLOSED
        self._close(token, None)

    _kind = "run"

    def _finish(self, exc: BaseException | None) -> None:
        raise NotImplementedError

    def _usable(self, method: str) -> bool:
        """Whether a runtime method may act now; reports calls after the end."""
        if not self._recording:
            return False
        if self._ended:
            report(
                f"{self._kind}.{method}.ended",
                "stepwatch: %s.%s() called after it ended; ignored",
                self._kind,
                method,
            )
            return False
        return True

    def _resolve_outcome(self, exc: BaseException | None) -> tuple[Outcome, str | None]:
        if self._explicit is Outcome.RETRY:
            # A retry declared by the engine wins over the exception that carries it.
            return Outcome.RETRY, None if exc is None else _error_type(exc)
        if exc is not None:
            outcome = classify(exc)
            if outcome in (Outcome.FAILURE, Outcome.TIMEOUT):
                return outcome, _error_type(exc)
            return outcome, None
        if self._explicit is None:
            return Outcome.SUCCESS, None
        if self._explicit in (Outcome.FAILURE, Outcome.TIMEOUT):
            return self._explicit, semconv.ERROR_TYPE_OTHER
        return self._explicit, None

    def _set_explicit(self, outcome: Outcome, reason: object, method: str) -> None:
        if not self._usable(method):
            return
        try:
            self._explicit = outcome
            self._reason = None if reason is None else attrs.text(reason)
        except Exception:
            report(f"{self._kind}.{method}", "stepwatch: %s() failed", method, exc_info=True)

    def _end_span(
        self,
        exc: BaseException | None,
        outcome: Outcome,
        error_type: str | None,
        end_ns: int,
        reason_key: str,
    ) -> None:
        span = self.span
        if not span.is_recording():
            return
        if error_type is not None:
            span.set_attribute(semconv.ERROR_TYPE, error_type)
        if self._reason is not None:
            span.set_attribute(reason_key, self._reason)
        if exc is not None and outcome in (Outcome.FAILURE, Outcome.TIMEOUT):
            _record_exception(span, exc, end_ns)
            span.set_status(
                Status(StatusCode.ERROR, f"{type(exc).__name__}: {attrs.describe(exc)}")
            )
        elif exc is not None and outcome is Outcome.RETRY:
            _record_exception(span, exc, end_ns)  # the attempt's cause; not an error
        elif outcome in (Outcome.FAILURE, Outcome.TIMEOUT):
            span.set_status(Status(StatusCode.ERROR, self._reason or outcome.value))


def _record_exception(span: Span, exc: BaseException, end_ns: int) -> None:
    """``span.record_exception``, falling back to a plain ``exception`` event if it fails."""
    try:
        span.record_exception(exc, timestamp=end_ns)
    except Exception:
        span.add_event(
            semconv.EXCEPTION_EVENT,
            {
                semconv.EXCEPTION_TYPE: _error_type(exc),
                semconv.EXCEPTION_MESSAGE: attrs.describe(exc),
            },
            timestamp=end_ns,
        )


class _StepRecord:
    """What an execution keeps of one of its steps, and what the Monitor is told of every step.

    A few fields, no span, no context: the observer reads these plain slots
    (a :class:`~stepwatch.progress.StepView`), not the handle's properties.

    About 190 bytes with its own floats and start number (the strings are
    shared with the scope), so an execution keeping ``Limits.steps_kept`` of
    them stays small.
    """

    __slots__ = (
        "attempt",
        "ended_at",
        "fraction",
        "message",
        "name",
        "number",
        "outcome",
        "reason",
        "started_at",
        "step_type",
    )

    def __init__(self, name: str, step_type: str | None, started_at: float) -> None:
        self.name = name
        self.step_type = step_type
        self.started_at = started_at
        self.number = 0
        """The step's place in its execution's start order (1 for the first)."""
        self.attempt = 1
        self.outcome: Outcome | None = None
        self.ended_at: float | None = None
        self.fraction: float | None = None
        self.message: str | None = None
        self.reason: str | None = None


def _step_number(step: _StepRecord) -> int:
    return step.number


class Step(_Run):
    """Handle of one running step: progress, skip, and its span.

    Attributes:
        name: The step name.
        step_type: The step type, or ``None``.
        span: The step's span (a non-recording span when sampled out).
        execution: The enclosing :class:`Execution`, or ``None`` for a
            step outside any execution.

    Obtained by entering :func:`stepwatch.step` or :meth:`Execution.step`,
    or from :func:`stepwatch.current_step`. Every method is safe to call at
    any time: bad values and calls after the step ended are logged once and
    ignored, never raised.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "_emitted",
        "_last_emit",
        "_record",
        "attempt",
        "done",
        "execution",
        "fraction",
        "message",
        "name",
        "step_type",
        "total",
    )
    _kind = "step"

    name: str
    step_type: str | None
    attempt: int
    execution: Execution | None
    fraction: float | None
    done: int | None
    total: int | None
    message: str | None
    _last_emit: float | None
    _emitted: int
    _record: _StepRecord | None

    @classmethod
    def _start(
        cls,
        spec: StepScope,
        tel: _telemetry.Telemetry,
        parent_ctx: Context,
        execution: Execution | None,
    ) -> Step:
        now = tel.clock()
        self = cls.__new__(cls)
        self._init_run(tel, now, recording=True)
        self.name = spec.name or "step"
        self.step_type = spec.step_type
        self.execution = execution
        self.fraction = None
        self.done = None
        self.total = None
        self.message = None
        self._last_emit = None
        self._emitted = 0
        record = self._record = _StepRecord(self.name, self.step_type, now)
        if execution is not None:
            execution._step_started(record)  # a step name run again: attempt > 1
        self.attempt = record.attempt
        attributes = spec.span_attributes
        if self.attempt != 1:
            attributes = {**attributes, semconv.WORKFLOW_TASK_ATTEMPT: self.attempt}
        span = tel.tracer.start_span(
            spec.span_name, context=parent_ctx, attributes=attributes, start_time=_ns(now)
        )
        self.span = span
        self._ctx = _run_context(parent_ctx, span, _STEP_KEY, self)
        observer = tel.observer
        if observer is not None:
            observer.step_started(record, None if execution is None else execution.id)
        return self

    @classmethod
    def _disabled(cls, name: str | None, step_type: str | None) -> Step:
        self = cls.__new__(cls)
        self._init_run(_telemetry.current(), 0.0, recording=False)
        self.name = name or "step"
        self.step_type = step_type
        self.execution = None
        self.attempt = 1
        self.fraction = self.done = self.total = None
        self.message = None
        self._record = None
        self._last_emit = None
        self._emitted = 0
        return self

    def _finish(self, exc: BaseException | None) -> None:
        self._ended = True
        tel = self._tel
        duration, now = self._elapsed()
        outcome, error_type = self._resolve_outcome(exc)
        value = semconv.OUTCOME_VALUES[outcome]
        self.outcome = outcome
        self.ended_at = now
        self._updated_at = now
        end_ns = _ns(now)
        span = self.span
        if span.is_recording():
            try:
                span.set_attribute(semconv.WORKFLOW_TASK_OUTCOME, value)
                self._end_span(
                    exc, outcome, error_type, end_ns, semconv.WORKFLOW_TASK_OUTCOME_REASON
                )
            except Exception:
                report("step.describe", "stepwatch: describing a step's end failed", exc_info=True)
        _end(span, end_ns)
        execution = self.execution
        tel.task_duration.record(
            duration,
            _TASK_ATTRIBUTES.get(
                execution.name if execution else None, self.step_type, value, error_type
            ),
        )
        record = self._record
        if record is None:  # pragma: no cover - every recording step has its record
            return
        record.outcome, record.ended_at, record.reason = outcome, now, self._reason
        if execution is not None:
            execution._step_ended(record)
        observer = tel.observer
        if observer is not None:
            observer.step_ended(record, None if execution is None else execution.id)

    def progress(
        self,
        fraction: float | None = None,
        *,
        done: int | None = None,
        total: int | None = None,
        message: str | None = None,
    ) -> None:
        """Report how far along this step is.

        Args:
            fraction: Progress in [0, 1].
            done: Units done (an int >= 0); with ``total``, sets the fraction.
            total: Units in all (an int >= ``done``).
            message: A short free-form status (cut at 1,024 characters).

        The latest value is always visible in the Monitor's progress; the
        ``step.progress`` span event is throttled to one per
        :data:`PROGRESS_EVENT_INTERVAL` seconds (and at most
        :data:`MAX_PROGRESS_EVENTS` per span), always keeping completion.
        Invalid values are logged once and dropped; never raises.
        """
        if not self._usable("progress"):
            return
        try:
            value = _progress_fraction(fraction, done, total)
            if value is _INVALID:
                report(
                    "step.progress.invalid",
                    "stepwatch: invalid step progress (fraction=%r, done=%r, total=%r); "
                    "fraction must be in [0, 1], done and total ints with 0 <= done <= total",
                    fraction,
                    done,
                    total,
                )
                return
            tel = self._tel
            now = tel.clock()
            record = self._record
            if value is not None:
                self.fraction = value  # type: ignore[assignment]
                if record is not None:
                    record.fraction = self.fraction
            if done is not None:
                self.done = done
            if total is not None:
                self.total = total
            if message is not None:
                self.message = attrs.text(message)
                if record is not None:
                    record.message = self.message
            self._updated_at = now
            emit = (
                self._last_emit is None
                or now - self._last_emit >= PROGRESS_EVENT_INTERVAL
                or self.fraction == 1.0
            ) and self._emitted < tel.limits.progress_events
            execution = self.execution
            if execution is not None:
                execution._touch(now)
            if emit:
                self._last_emit = now
                self._emitted += 1
                data = semconv.StepProgressData(
                    step=self.name,
                    fraction=self.fraction,
                    done=self.done,
                    total=self.total,
                    message=self.message,
                )
                _span_event(self.span, semconv.EventType.STEP_PROGRESS, data, now)
                observer = tel.observer
                if observer is not None:
                    observer.step_progressed(None if execution is None else execution.id, data, now)
        except Exception:
            report("step.progress", "stepwatch: step progress failed", exc_info=True)

    def skip(self, reason: str | None = None) -> None:
        """End this step as skipped (outcome ``skip``) when it returns normally.

        An exception raised afterwards still wins and sets its own outcome.
        """
        self._set_explicit(Outcome.SKIP, reason, "skip")

    def __repr__(self) -> str:
        return f"<stepwatch.Step {self.name!r} type={self.step_type!r}>"


_INVALID: Final = object()


def _progress_fraction(fraction: object, done: object, total: object) -> object:
    """Validate a progress report; return the fraction, ``None`` or ``_INVALID``."""
    for count in (done, total):
        if count is not None and (isinstance(count, bool) or not isinstance(count, int)):
            return _INVALID
        if isinstance(count, int) and count < 0:
            return _INVALID
    value: float | None = None
    if fraction is not None:
        if isinstance(fraction, bool) or not isinstance(fraction, int | float):
            return _INVALID
        if not 0.0 <= fraction <= 1.0:  # also rejects NaN
            return _INVALID
        value = float(fraction)
    if isinstance(done, int) and isinstance(total, int):
        if done > total:
            return _INVALID
        if value is None:
            value = done / total if total else 1.0
    return value


class Execution(_Run):
    """Handle of one running execution: steps, progress, approvals, explicit outcomes.

    Attributes:
        id: The execution id.
        name: The execution (definition) name.
        span: The execution's span (non-recording when sampled out).

    Obtained by entering :func:`stepwatch.execution` or from
    :func:`stepwatch.current_execution`. Every method is safe to call at any
    time: bad values and calls after the execution ended are logged once
    and ignored, never raised.

    .. versionadded:: 0.1.0
    """

    __slots__ = (
        "__weakref__",
        "_approval_at",
        "_completed",
        "_current",
        "_failed",
        "_failed_steps",
        "_lock",
        "_lock_generation",
        "_retriable",
        "_running",
        "_started",
        "_steps",
        "attempt",
        "id",
        "name",
        "queue_wait",
        "sla",
        "sla_violated",
        "total_steps",
    )
    _kind = "execution"

    id: str
    name: str
    attempt: int
    total_steps: int | None
    sla: float | None
    sla_violated: bool
    queue_wait: float | None
    _lock: Lock
    _lock_generation: int
    _completed: int
    _failed: int
    _running: int
    _started: int
    _steps: deque[_StepRecord]
    _failed_steps: deque[_StepRecord]
    _retriable: OrderedDict[str, tuple[int, bool]]
    _current: _StepRecord | None
    _approval_at: float | None

    def _init_execution(
        self,
        tel: _telemetry.Telemetry,
        now: float,
        recording: bool,
        name: str,
        execution_id: str,
    ) -> None:
        self._init_run(tel, now, recording)
        self.id = execution_id
        self.name = name
        self.attempt = 1
        self.total_steps = None
        self.sla = None
        self.sla_violated = False
        self.queue_wait = None
        self._lock = Lock()
        self._lock_generation = _fork.current
        self._completed = 0
        self._failed = 0
        self._running = 0
        self._started = 0
        self._steps = deque(maxlen=tel.limits.steps_kept)
        self._failed_steps = deque(maxlen=tel.limits.steps_kept)
        self._retriable = OrderedDict()
        self._current = None
        self._approval_at = None

    @classmethod
    def _start(
        cls,
        spec: ExecutionScope,
        tel: _telemetry.Telemetry,
        parent_ctx: Context,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Execution:
        name = spec.name or "execution"
        carrier = _resolve(spec.carrier, args, kwargs, "carrier")
        if carrier is not None and not isinstance(carrier, Mapping):
            report("execution.carrier", "stepwatch: carrier is not a mapping; ignored")
            carrier = None
        execution_id = _id_text(
            _resolve(spec.execution_id, args, kwargs, "execution_id"), "execution_id", by_str=True
        )
        if execution_id is None and carrier is not None:
            execution_id = _id_text(carrier.get(semconv.CARRIER_EXECUTION_ID), "carrier")
        self = cls.__new__(cls)
        now = tel.clock()
        self._init_execution(
            tel, now, True, name, tel.limits.bounded_id(execution_id or uuid.uuid4().hex)
        )
        total = _count_or_none(_resolve(spec.total_steps, args, kwargs, "total_steps"))
        if total is _INVALID:
            report("execution.total_steps", "stepwatch: total_steps is not an int >= 0; ignored")
            total = None
        self.total_steps = total
        self.sla = spec.sla if spec.sla is not None else tel.default_sla

        told = _resolve(spec.attempt, args, kwargs, "attempt")
        attempt = attrs.valid_attempt(told)
        if told is not None and attempt is None:
            report("execution.attempt", "stepwatch: attempt %r is not an int >= 1", told)

        parent = parent_ctx
        enqueued_at: float | None = None
        consumes_enqueue = False
        links: list[Link] | None = None
        if carrier is not None:
            parent, links, enqueued_at = _extract(carrier, parent_ctx)
            attempt, consumes_enqueue = _carrier_attempt(carrier, attempt)
            if not consumes_enqueue:
                enqueued_at = None  # a wait across earlier attempts is not this attempt's
        self.attempt = attempt or 1
        span_attributes: dict[str, Any] = {
            **spec.attributes,
            semconv.WORKFLOW_DEFINITION_NAME: name,
            semconv.WORKFLOW_EXECUTION_ID: self.id,
            semconv.WORKFLOW_EXECUTION_ATTEMPT: self.attempt,
        }
        if total is not None:
            span_attributes[semconv.WORKFLOW_EXECUTION_STEPS_TOTAL] = total
        if self.sla is not None:
            span_attributes[semconv.WORKFLOW_EXECUTION_SLA] = self.sla
        span = tel.tracer.start_span(
            spec.span_name,
            context=parent,
            attributes=span_attributes,
            links=links,
            start_time=_ns(now),
        )
        self.span = span
        self._ctx = _run_context(parent, span, _EXECUTION_KEY, self)
        data = semconv.ExecutionStartedData(name=name, attempt=self.attempt)
        if total is not None:
            data["total_steps"] = total
        if consumes_enqueue:
            # Each enqueue leaves ``pending`` once: on the first start of its carrier.
            pending = _ACTIVE_ATTRIBUTES.get(name, _PENDING)
            tel.execution_active.add(-1, pending)
            wait = _queue_wait(now, enqueued_at)
            if wait is not None:
                self.queue_wait = wait
                data["queue_wait"] = wait
                tel.execution_duration.record(wait, pending)
        _span_event(span, semconv.EventType.EXECUTION_STARTED, data, now)
        tel.execution_active.add(1, self._executing_attributes())
        observer = tel.observer
        if observer is not None:
            observer.execution_started(self, data)
        return self

    @classmethod
    def _disabled(cls, name: str | None, execution_id: str | None) -> Execution:
        self = cls.__new__(cls)
        tel = _telemetry.current()
        self._init_execution(
            tel,
            0.0,
            False,
            name or "execution",
            tel.limits.bounded_id(execution_id or uuid.uuid4().hex),
        )
        return self

    def _executing_attributes(self) -> dict[str, str]:
        return _ACTIVE_ATTRIBUTES.get(self.name, _EXECUTING)

    def _locked(self) -> Lock:
        """The step counts' lock; a new one in a forked child (a parent thread may hold it)."""
        if self._lock_generation != _fork.current:
            self._lock = Lock()
            self._lock_generation = _fork.current
        return self._lock

    # Step bookkeeping (called by Step, under the execution's lock). A step name
    # whose latest attempt failed (or, for a generator, was closed by its
    # consumer) may run again: that run is the same step's next attempt, so it
    # takes the earlier attempt out of the finished counts.
    def _step_started(self, step: _StepRecord) -> None:
        """Count a step in; set its attempt (above 1 for a step name run again)."""
        with self._locked():
            earlier = self._retriable.pop(step.name, None)
            if earlier is not None:
                attempts, failed = earlier
                step.attempt = attempts + 1
                if failed:
                    self._failed -= 1
                else:
                    self._completed -= 1
            self._running += 1
            self._started += 1
            step.number = self._started
            self._steps.append(step)
            self._current = step
            self._updated_at = step.started_at

    def _step_ended(self, step: _StepRecord) -> None:
        with self._locked():
            self._running -= 1
            completed = step.outcome in (Outcome.SUCCESS, Outcome.SKIP)
            if completed:
                self._completed += 1
            else:
                self._failed += 1
                self._failed_steps.append(step)
            if not completed or step.reason is _GENERATOR_CLOSED:
                retriable = self._retriable
                retriable[step.name] = (step.attempt, not completed)
                if len(retriable) > self._tel.limits.retried_step_names:
                    retriable.popitem(last=False)
            if self._current is step:
                self._current = self._latest_running() if self._running else None
            if step.ended_at is not None:
                self._updated_at = step.ended_at

    def _latest_running(self) -> _StepRecord | None:
        """The most recently started step still running (under the lock): parallel steps."""
        for step in reversed(self._steps):
            if step.outcome is None:
                return step
        return None

    def _touch(self, now: float) -> None:
        self._updated_at = now

    def step_state(self, keep: int | None = None) -> StepState:
        """The step counts, the kept steps and the current step, read at one instant.

        The read-only view :mod:`stepwatch.progress` builds snapshots from.
        With ``keep`` and no step running, at most ``keep`` steps are listed,
        the ones :func:`~stepwatch.progress.keep_steps` would choose (the
        failed ones first, then the latest), found without reading every
        kept step: an execution's end costs what it lists.

        .. versionadded:: 0.2.0
        """
        with self._locked():
            current = self._current
            steps = self._steps
            listed: Sequence[_StepRecord] = (
                tuple(steps)
                if keep is None or self._running or len(steps) <= keep
                else self._chosen(keep)
            )
            return StepState(
                self._completed,
                self._failed,
                self._running,
                listed,
                None if current is None else current.name,
            )

    def _chosen(self, keep: int) -> list[_StepRecord]:
        """What ``keep_steps(kept, failed, keep)`` lists, in O(failed + keep) (locked)."""
        if keep <= 0:
            return []
        first_kept = self._started - len(self._steps)  # numbers above it are still kept
        failed = [step for step in self._failed_steps if step.number > first_kept]
        failed.sort(key=_step_number)
        chosen = {step.number: step for step in failed[-keep:]}
        for step in itertools.islice(reversed(self._steps), keep - len(chosen)):
            chosen.setdefault(step.number, step)
        return [chosen[number] for number in sorted(chosen)]

    def _finish(self, exc: BaseException | None) -> None:
        self._ended = True
        tel = self._tel
        duration, now = self._elapsed()
        outcome, error_type = self._resolve_outcome(exc)
        value = semconv.OUTCOME_VALUES[outcome]
        self.outcome = outcome
        self.ended_at = now
        self._updated_at = now
        end_ns = _ns(now)
        with self._locked():  # the counts only: the kept steps are the tracker's to read
            completed, failed = self._completed, self._failed
        span = self.span
        sla = self.sla
        self.sla_violated = sla is not None and duration > sla
        if span.is_recording():
            try:
                span.set_attributes(
                    {
                        semconv.WORKFLOW_EXECUTION_OUTCOME: value,
                        semconv.WORKFLOW_EXECUTION_STEPS_COMPLETED: completed,
                        semconv.WORKFLOW_EXECUTION_STEPS_FAILED: failed,
                    }
                )
                if self.total_steps is not None:
                    span.set_attribute(semconv.WORKFLOW_EXECUTION_STEPS_TOTAL, self.total_steps)
                self._end_span(
                    exc, outcome, error_type, end_ns, semconv.WORKFLOW_EXECUTION_OUTCOME_REASON
                )
            except Exception:
                report(
                    "execution.describe",
                    "stepwatch: describing an execution's end failed",
                    exc_info=True,
                )
        event_type = semconv.EXECUTION_END_EVENTS[outcome]
        data = semconv.ExecutionEndedData(
            name=self.name,
            outcome=value,
            duration=duration,
            completed_steps=completed,
            failed_steps=failed,
            attempt=self.attempt,
        )
        if self._reason is not None:
            data["reason"] = self._reason
        _span_event(span, event_type, data, now)
        violation: semconv.SLAViolatedData | None = None
        if sla is not None and self.sla_violated:
            violation = semconv.SLAViolatedData(name=self.name, sla=sla, duration=duration)
            _span_event(span, semconv.EventType.SLA_VIOLATED, violation, now)
        _end(span, end_ns)
        tel.execution_duration.record(
            duration,
            _EXECUTION_ATTRIBUTES.get(self.name, _EXECUTING, value, error_type),
        )
        tel.execution_active.add(-1, self._executing_attributes())
        if self.sla_violated:
            tel.sla_violations.add(1, _SLA_ATTRIBUTES.get(self.name))
        observer = tel.observer
        if observer is not None:
            observer.execution_ended(self, event_type, data, violation)
        flush = tel.flush
        if flush is not None:
            # Set only in forked children: a fork-per-job worker may leave with
            # os._exit right after, so what ended goes out now.
            flush()

    # ---------------------------------------------------------------- public API
    def step(self, name: str, *, step_type: str | None = None) -> StepScope:
        """Return a step scope whose steps belong to this execution.

        Usable as a sync or async context manager (and decorator). The step's
        span is a child of this execution's span even when entered in a
        thread that did not inherit the execution's context.

        Raises:
            TypeError, ValueError: ``name`` or ``step_type`` is not a non-empty string.
        """
        scope = StepScope(name, step_type=step_type)
        scope._execution = self
        return scope

    def heartbeat(self) -> None:
        """Say the execution is alive and moving, with no step starting or ending.

        Sets ``last_progress_at``: ``StuckExecutions`` counts an execution as
        stuck after ``Rules.stuck_after`` seconds with no heartbeat, step start
        or end, ``progress()`` or other recorded change. For long waits inside
        one step, ``Step.progress()`` says the same with a fraction. Never raises.

        .. versionadded:: 0.3.0
        """
        if self._usable("heartbeat"):
            self._updated_at = self._tel.clock()

    def set_total_steps(self, total: int) -> None:
        """Declare (or correct) how many steps this execution has. Never raises."""
        if not self._usable("set_total_steps"):
            return
        if isinstance(total, bool) or not isinstance(total, int) or total < 0:
            report(
                "execution.set_total_steps.invalid",
                "stepwatch: set_total_steps(%r) ignored: must be an int >= 0",
                total,
            )
            return
        self.total_steps = total
        self._updated_at = self._tel.clock()
        try:
            self.span.set_attribute(semconv.WORKFLOW_EXECUTION_STEPS_TOTAL, total)
        except Exception:
            report("execution.set_total_steps", "stepwatch: set_total_steps failed", exc_info=True)

    def progress(self) -> ExecutionProgress:
        """Return this execution's progress now (what ``monitor.progress(id)`` answers).

        Built by :func:`stepwatch.progress.snapshot` from this handle's own
        state and the installed Monitor's duration history. Never raises.
        """
        tel = self._tel
        now = tel.clock() if self._recording else self._started_at
        return snapshot(self, now, tel.history)

    def event(self, name: str, **attributes: Any) -> None:
        """Record an engine's own event: on the span, in the history and to subscribers.

        The span event is called ``name`` with the valid ``attributes``; the
        Monitor's history and subscribers get an :attr:`EventType.CUSTOM
        <stepwatch.EventType.CUSTOM>` event whose data is
        ``{"name": <execution name>, "event": name, "attributes": {...}}``.
        A name that is not a non-empty string is refused, and attributes that
        are not valid OpenTelemetry values are dropped (each logged once).
        Never raises.

        .. versionchanged:: 0.2.0 Also reaches the event history and subscribers.
        """
        if not self._usable("event"):
            return
        if not isinstance(name, str) or not name.strip():
            report(
                "execution.event.name", "stepwatch: event name %r is not a non-empty string", name
            )
            return
        try:
            event_name = attrs.text(name)
            clean = attrs.clean_attributes(attributes, "execution.event")
            tel = self._tel
            now = tel.clock()
            self._updated_at = now
            span = self.span
            if span.is_recording():
                span.add_event(event_name, clean, timestamp=_ns(now))
            observer = tel.observer
            if observer is not None:
                data = semconv.CustomEventData(name=self.name, event=event_name, attributes=clean)
                observer.lifecycle(semconv.EventType.CUSTOM, self.id, data, now)
        except Exception:
            report("execution.event", "stepwatch: event() failed", exc_info=True)

    def request_approval(self, *, approver: str | None = None, **attributes: Any) -> None:
        """Record that the execution now waits for a human approval. Never raises."""
        if not self._usable("request_approval"):
            return
        try:
            now = self._tel.clock()
            self._approval_at = self._tel.monotonic()
            data: dict[str, Any] = attrs.clean_attributes(attributes, "execution.request_approval")
            data["name"] = self.name
            if approver is not None:
                data["approver"] = attrs.text(approver)
            self._approval_event(semconv.EventType.APPROVAL_REQUESTED, data, now)
        except Exception:
            report(
                "execution.request_approval", "stepwatch: request_approval failed", exc_info=True
            )

    def approve(self, *, by: str | None = None) -> None:
        """Record the approval of the pending request and its wait. Never raises."""
        self._resolve_approval(semconv.ApprovalOutcome.APPROVED, by, None, "approve")

    def reject(self, *, by: str | None = None, reason: str | None = None) -> None:
        """Record the rejection of the pending request and its wait. Never raises.

        The execution's outcome is the engine's decision: call :meth:`fail`
        or raise if a rejection ends the run.
        """
        self._resolve_approval(semconv.ApprovalOutcome.REJECTED, by, reason, "reject")

    def _resolve_approval(
        self, outcome: semconv.ApprovalOutcome, by: object, reason: object, method: str
    ) -> None:
        if not self._usable(method):
            return
        try:
            requested_at = self._approval_at
            if requested_at is None:
                report(
                    f"execution.{method}.unrequested",
                    "stepwatch: %s() without a pending request_approval(); ignored",
                    method,
                )
                return
            self._approval_at = None
            tel = self._tel
            now = tel.clock()
            tel.approval_duration.record(
                max(tel.monotonic() - requested_at, 0.0),
                _APPROVAL_ATTRIBUTES.get(self.name, outcome.value),
            )
            data = semconv.ApprovalResolvedData(name=self.name, outcome=outcome.value)
            if by is not None:
                data["by"] = attrs.text(by)
            if reason is not None:
                data["reason"] = attrs.text(reason)
            event_type = (
                semconv.EventType.APPROVAL_APPROVED
                if outcome is semconv.ApprovalOutcome.APPROVED
                else semconv.EventType.APPROVAL_REJECTED
            )
            self._approval_event(event_type, data, now)
        except Exception:
            report(f"execution.{method}", "stepwatch: %s() failed", method, exc_info=True)

    def _approval_event(
        self, event_type: semconv.EventType, data: Mapping[str, Any], now: float
    ) -> None:
        self._updated_at = now
        _span_event(self.span, event_type, data, now)
        observer = self._tel.observer
        if observer is not None:
            observer.lifecycle(event_type, self.id, data, now)

    def retry(self, reason: str | None = None) -> None:
        """End this attempt as ``retry``: the engine schedules the execution again.

        Wins over an exception the attempt then raises (an engine's retry is
        often raised): the exception is recorded on the span, its type goes to
        ``error.type``, and the outcome stays ``retry``. A retried attempt is
        neither a success nor a failure; the next attempt decides.

        .. versionadded:: 0.2.0
        """
        self._set_explicit(Outcome.RETRY, reason, "retry")

    def fail(self, reason: str) -> None:
        """End as ``failure`` when the execution returns normally (no raise needed)."""
        self._set_explicit(Outcome.FAILURE, reason, "fail")

    def cancel(self, reason: str) -> None:
        """End as ``cancellation`` when the execution returns normally."""
        self._set_explicit(Outcome.CANCELLATION, reason, "cancel")

    def timeout(self, reason: str) -> None:
        """End as ``timeout`` when the execution returns normally."""
        self._set_explicit(Outcome.TIMEOUT, reason, "timeout")

    def __repr__(self) -> str:
        return f"<stepwatch.Execution {self.name!r} id={self.id!r}>"


def _id_text(value: object, source: str, *, by_str: bool = False) -> str | None:
    """An execution id as a plain ``str``, or ``None`` (rejected, reported). Never raises.

    A ``str`` is kept (a subclass copied to a plain ``str``), an ``int`` is
    written in decimal, ``bytes`` are decoded as UTF-8. Anything else is
    rejected, unless ``by_str`` (a host's ``execution_id`` callable): then its
    ``str()`` is used when that returns a string. A blank id is rejected.
    ``None`` is no id (nothing reported).
    """
    if value is None:
        return None
    text: object = None
    try:
        if isinstance(value, str):
            text = str.__str__(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            text = int.__repr__(value)
        elif isinstance(value, bytes | bytearray):
            text = bytes(value).decode("utf-8")
        elif by_str:
            text = str(value)
    except Exception:
        text = None
    if type(text) is str and text.strip():
        return text
    report(
        f"execution.id.{source}",
        "stepwatch: an execution id from the %s is not usable text (%s); ignored",
        source,
        _type_name(value),
    )
    return None


def _type_name(value: object) -> str:
    """The name of ``value``'s type, for a log line (never a hostile ``__repr__``)."""
    name = type(value).__qualname__
    return name if type(name) is str else "?"


def _count_or_none(value: object) -> Any:
    """A step count as a plain ``int >= 0``, ``None`` for none, or ``_INVALID``. Never raises.

    An ``int`` subclass is read through ``int``'s own slot, so its overridden
    comparisons or ``__index__`` are never called.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        return _INVALID
    try:
        count = int.__index__(value)
    except Exception:  # pragma: no cover - int's own slot
        return _INVALID
    return count if count >= 0 else _INVALID


def _resolve(value: object, args: tuple[Any, ...], kwargs: dict[str, Any], argument: str) -> Any:
    """Call a per-call argument callable with the host's arguments; guarded."""
    if not callable(value):
        return value
    try:
        return value(*args, **kwargs)
    except Exception:
        report(
            f"execution.{argument}",
            "stepwatch: the %s callable raised; ignored",
            argument,
            exc_info=True,
        )
        return None


_started_carriers: OrderedDict[str, int] = OrderedDict()
_started_lock = threading.Lock()


def _reset_started_lock() -> None:
    global _started_lock  # noqa: PLW0603 - a parent thread may have held it at fork time
    _started_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_started_lock)


_dead_runs: OrderedDict[str, int] = OrderedDict()
"""Execution id -> the latest attempt a dead process of the group ran (newest last)."""


def remember_dead_run(execution_id: str, attempt: int) -> None:
    """Attempt ``attempt`` of ``execution_id`` ran in a process of the group that died.

    A later start of that execution from a carrier (the engine redelivering
    it) is then the next attempt and never takes its enqueue out of
    ``pending`` again, in this process and in children forked after. Bounded
    like the carriers this process started (:data:`MAX_STARTED_CARRIERS`).
    Called by the process group (see :mod:`stepwatch.group`); never raises.

    .. versionadded:: 0.3.0
    """
    if not isinstance(execution_id, str) or attrs.valid_attempt(attempt) is None:
        return
    with _started_lock:
        _dead_runs[execution_id] = max(attempt, _dead_runs.get(execution_id, 0))
        _dead_runs.move_to_end(execution_id)
        if len(_dead_runs) > MAX_STARTED_CARRIERS:
            _dead_runs.popitem(last=False)


def _carrier_attempt(carrier: Mapping[str, Any], told: int | None) -> tuple[int, bool]:
    """Which attempt a start from ``carrier`` is, and whether it takes the enqueue out of pending.

    The carrier names the attempt it was enqueued for (1 unless the engine
    re-enqueued with ``enqueue(..., attempt=n)``) and a unique enqueue id. A
    start the engine did not number is that attempt the first time this
    process starts the carrier, and the next one after each earlier start
    here. Only the first start of an enqueue leaves ``pending``: a later
    attempt from the same carrier (a redelivery, an in-place retry) never
    does again, so ``pending`` cannot go below zero.
    """
    enqueued_for = attrs.valid_attempt(carrier.get(semconv.CARRIER_ATTEMPT)) or 1
    enqueue_id = carrier.get(semconv.CARRIER_ENQUEUE_ID)
    earlier: int | None = None
    if type(enqueue_id) is str and enqueue_id:
        enqueue_id = enqueue_id[:_MAX_ENQUEUE_ID_LENGTH]  # ours are 32 hex digits
        with _started_lock:
            earlier = _started_carriers.get(enqueue_id)
            if earlier is None and _dead_runs:
                # This enqueue's attempt ran in a process of the group that died: a redelivery.
                dead = _dead_runs.get(str(carrier.get(semconv.CARRIER_EXECUTION_ID)))
                earlier = dead if dead is not None and dead >= enqueued_for else None
            attempt = told or (enqueued_for if earlier is None else earlier + 1)
            _started_carriers[enqueue_id] = max(attempt, earlier or 0)
            _started_carriers.move_to_end(enqueue_id)
            if len(_started_carriers) > MAX_STARTED_CARRIERS:
                _started_carriers.popitem(last=False)
    else:
        attempt = told or enqueued_for
    return attempt, earlier is None and attempt <= enqueued_for


def _queue_wait(now: float, enqueued_at: float | None) -> float | None:
    """The queue wait from an enqueue time (wall clock, the one both sides share), or ``None``.

    An enqueue time after ``now`` (the producer's clock ahead of this one) is
    a wait of 0; one more than :data:`MAX_QUEUE_WAIT` before ``now`` (forged,
    or a clock far off) is no wait at all: reported and left out, never a
    decades-long maximum in the queue-wait figures.
    """
    if enqueued_at is None:
        return None
    wait = now - enqueued_at
    if wait > MAX_QUEUE_WAIT:
        report(
            "carrier.enqueued_at.too_old",
            "stepwatch: a carrier's enqueue time is more than %s s ago; no queue wait recorded",
            MAX_QUEUE_WAIT,
        )
        return None
    return max(wait, 0.0)


def _carrier_time(carrier: Mapping[str, Any], key: str, what: str) -> float | None:
    """A time a carrier holds under ``key`` (epoch seconds), ``None`` when absent or invalid.

    Only plain strings and numbers are read (a hostile object's ``__float__`` never runs);
    an invalid value is reported by its type, never by its ``repr``.
    """
    raw = carrier.get(key)
    if raw is None:
        return None
    try:
        value = float(raw) if type(raw) in (str, int, float) else None
    except ValueError:
        value = None
    if value is None or not math.isfinite(value):
        report(
            f"carrier.{what}_at",
            f"stepwatch: carrier has an invalid {what} time (%s); ignored",
            _type_name(raw),
        )
        return None
    return value


def _extract(
    carrier: Mapping[str, Any], parent: Context
) -> tuple[Context, list[Link], float | None]:
    """The parent, the link and the enqueue time of a start from an :func:`enqueue` carrier.

    As the messaging conventions ask of a consumer: the span the work runs
    under (the ambient span, e.g. an engine's own ``run`` span) stays the
    parent and the enqueue is linked; only with no ambient span does the
    enqueue context become the parent (and the trace is continued).
    """
    links: list[Link] = []
    ctx = parent
    try:
        extracted = propagate.extract(carrier, context=parent)
        created = trace.get_current_span(extracted).get_span_context()
        if created.is_valid:
            links.append(Link(created))
            if not trace.get_current_span(parent).get_span_context().is_valid:
                ctx = extracted
    except Exception:
        report("carrier.extract", "stepwatch: could not extract trace context", exc_info=True)
    enqueued_at = _carrier_time(carrier, semconv.CARRIER_ENQUEUED_AT, "enqueue")
    due_at = _carrier_time(carrier, semconv.CARRIER_DUE_AT, "due")
    if enqueued_at is not None and due_at is not None:
        # Scheduled work waits in the queue from when it is due, not from its enqueue.
        enqueued_at = max(enqueued_at, due_at)
    return ctx, links, enqueued_at


# ------------------------------------------------------------------------- scopes
# The handles entered through ``with`` and not exited yet, innermost last, per
# context. One module-level variable: a ContextVar per scope object would stay
# referenced by every context that ever set it.
_Entry = tuple["_Scope[Any]", Any, Token[Context] | None]
_OPEN: ContextVar[tuple[_Entry, ...]] = ContextVar("stepwatch.open_scopes", default=())


def _entrant() -> object:
    """The asyncio task running now, else the current thread: who entered a ``with``."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no event loop running in this thread
        task = None
    return task if task is not None else threading.current_thread()


def _gone(entrant: object) -> bool:
    """Whether the thread or task that entered a ``with`` has ended (so cannot exit it)."""
    if isinstance(entrant, threading.Thread):
        return not entrant.is_alive()
    return isinstance(entrant, asyncio.Future) and entrant.done()


class _Scope(Generic[_H]):
    """Decorator and (async) context manager; per-call state lives in the handle."""

    name: str | None
    span_name: str
    _inflight: dict[int, tuple[_H, object]]
    """Handles entered and not exited yet, with the thread or task that entered each,
    oldest first: to end the right one when it is exited in another context."""

    _kind: str
    """``"execution"`` or ``"step"``: names the internal-error kind of a failed start."""

    def _begin(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> _H | None:
        """Start a run for one call or entry; ``None``: the call goes unobserved. Never raises."""
        try:
            ctx = otel_context.get_current()
            if _suppressed(ctx) or near_recursion_limit():
                return None
            return self._start(_telemetry.current(), ctx, args, kwargs)
        except RecursionError:
            return None  # the headroom check itself hit the limit: nothing was started
        except Exception:
            report(
                f"{self._kind}.start",
                "stepwatch: failed to start %s %r",
                self._kind,
                self.name,
                exc_info=True,
            )
            return None

    def _start(
        self,
        tel: _telemetry.Telemetry,
        ctx: Context,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> _H:
        raise NotImplementedError

    def _disabled(self) -> _H:
        raise NotImplementedError

    def _named(self, name: str) -> _Scope[_H]:
        raise NotImplementedError

    # ---------------------------------------------------------------- decorator
    def _takes_arguments(self) -> bool:
        """Whether a call's arguments feed a per-call callable (``execution_id=lambda ...``)."""
        return False

    def __call__(self, wrapped: _T) -> _T:
        func: Any = wrapped
        if isinstance(wrapped, classmethod | staticmethod):
            func = wrapped.__func__
        if not callable(func):
            raise TypeError(f"stepwatch decorators wrap functions, got {type(wrapped).__name__}")
        scope = (
            self
            if self.name is not None
            else self._named(
                getattr(func, "__qualname__", None) or getattr(func, "__name__", None) or repr(func)
            )
        )
        begin: _Begin = scope._begin
        if scope._takes_arguments():
            if isinstance(wrapped, classmethod):
                begin = _after_class(begin)
            elif _in_class_body(func):
                begin = _after_instance(begin, func)
        wrapper: Callable[..., Any]
        if inspect.isasyncgenfunction(func):
            wrapper = _async_generator_wrapper(func, begin)
        elif inspect.iscoroutinefunction(func):
            wrapper = _coroutine_wrapper(func, begin)
        elif inspect.isgeneratorfunction(func):
            wrapper = _generator_wrapper(func, begin)
        else:
            wrapper = _function_wrapper(func, begin)
        functools.update_wrapper(wrapper, func)
        _pickling.register(wrapper, func, scope)
        if isinstance(wrapped, classmethod):
            return cast(_T, classmethod(wrapper))
        if isinstance(wrapped, staticmethod):
            return cast(_T, staticmethod(wrapper))
        return cast(_T, wrapper)

    # ---------------------------------------------------------- context manager
    def _enter(self) -> _H:
        handle = self._begin((), {})
        if handle is None:
            handle, token = self._disabled(), None
        else:
            token = handle._activate()
        _OPEN.set((*_OPEN.get(), (self, handle, token)))
        self._inflight[id(handle)] = (handle, _entrant())
        return handle

    def _exit(self, exc: BaseException | None) -> None:
        entries = _OPEN.get()
        for position in range(len(entries) - 1, -1, -1):
            if entries[position][0] is self:
                _, handle, token = entries[position]
                _OPEN.set(entries[:position] + entries[position + 1 :])
                self._inflight.pop(id(handle), None)
                handle._close(token, exc)
                return
        # Entered in another thread or task (an exit stack handed over, say): that
        # context's attachment is not ours to undo, but the run still ends here.
        handle = self._handed_over()
        if handle is None:
            report("scope.exit", "stepwatch: scope exited more often than entered")
            return
        handle._close(None, exc)

    def _handed_over(self) -> _H | None:
        """Take the handle a ``with`` exited outside its entering context most likely opened.

        One scope may be entered by many threads and tasks at once; each of
        them still inside its ``with`` exits in its own context. So a handle
        whose entering thread has ended (or task is done) is taken first, then
        one entered by another thread or task, oldest first: never, while
        another candidate exists, the run of one still inside its ``with``.
        """
        me = _entrant()
        inflight = list(self._inflight.values())  # oldest first
        ranked = (
            [handle for handle, entrant in inflight if _gone(entrant)]
            + [handle for handle, entrant in inflight if entrant is not me]
            + [handle for handle, _ in inflight]
        )
        for handle in ranked:
            if self._inflight.pop(id(handle), None) is not None:
                return handle
        return None

    def __enter__(self) -> _H:
        return self._enter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(exc)

    async def __aenter__(self) -> _H:
        return self._enter()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._exit(exc)


class ExecutionScope(_Scope[Execution]):
    """What :func:`stepwatch.execution` returns: a decorator and a (sync or async) context manager.

    Entering yields an :class:`Execution`. Per-call state lives in that
    handle, so one scope may be used by many threads and tasks at once.

    .. versionadded:: 0.1.0
    """

    _kind = "execution"

    def __init__(
        self,
        name: str | None = None,
        *,
        execution_id: str | Callable[..., str] | None = None,
        total_steps: int | Callable[..., int] | None = None,
        sla: float | None = None,
        attributes: Mapping[str, Any] | None = None,
        carrier: Mapping[str, str] | Callable[..., Mapping[str, str]] | None = None,
        attempt: int | Callable[..., int] | None = None,
    ) -> None:
        self._inflight = {}
        self.name = checks.name(name, "name", optional=True)
        self.attempt = checks.count_or_callable(attempt, "attempt", minimum=1)
        if isinstance(execution_id, str):
            checks.name(execution_id, "execution_id")
        self.execution_id = checks.callable_or(
            execution_id, "execution_id", (str,), "a non-empty string"
        )
        self.total_steps = checks.count_or_callable(total_steps, "total_steps", minimum=0)
        self.sla = checks.seconds(sla, "sla", optional=True)
        self.attributes = checks.attributes(attributes)
        self.carrier = checks.callable_or(carrier, "carrier", (Mapping,), "a mapping")
        self.span_name = semconv.SPAN_EXECUTION.format(name=self.name or "execution")

    def _settings(self) -> dict[str, Any]:
        return {
            "execution_id": self.execution_id,
            "total_steps": self.total_steps,
            "sla": self.sla,
            "attributes": self.attributes,
            "carrier": self.carrier,
            "attempt": self.attempt,
        }

    def _named(self, name: str) -> ExecutionScope:
        return ExecutionScope(name, **self._settings())

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle what it was created with, never the runs open in it (threads' state)."""
        return (_rebuilt_scope, (ExecutionScope, self.name, self._settings()))

    def _takes_arguments(self) -> bool:
        return any(
            callable(value)
            for value in (self.execution_id, self.total_steps, self.carrier, self.attempt)
        )

    def _start(
        self,
        tel: _telemetry.Telemetry,
        ctx: Context,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Execution:
        return Execution._start(self, tel, ctx, args, kwargs)

    def _disabled(self) -> Execution:
        execution_id = self.execution_id if isinstance(self.execution_id, str) else None
        return Execution._disabled(self.name, execution_id)

    def __repr__(self) -> str:
        return f"<stepwatch.ExecutionScope {self.name!r}>"


class StepScope(_Scope[Step]):
    """What :func:`stepwatch.step` returns: a decorator and a (sync or async) context manager.

    Entering yields a :class:`Step`. The step's parent is the execution in
    the current context (or the one :meth:`Execution.step` was called on).

    .. versionadded:: 0.1.0
    """

    _kind = "step"

    def __init__(
        self,
        name: str | None = None,
        *,
        step_type: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        self._inflight = {}
        self.name = checks.name(name, "name", optional=True)
        self.step_type = checks.name(step_type, "step_type", optional=True)
        self.attributes = checks.attributes(attributes)
        self.span_name = semconv.SPAN_STEP.format(name=self.name or "step")
        self.span_attributes: dict[str, Any] = {
            **self.attributes,
            semconv.WORKFLOW_TASK_NAME: self.name or "step",
        }
        if self.step_type is not None:
            self.span_attributes[semconv.WORKFLOW_TASK_TYPE] = self.step_type
        self._execution: Execution | None = None

    def _named(self, name: str) -> StepScope:
        scope = StepScope(name, step_type=self.step_type, attributes=self.attributes)
        scope._execution = self._execution
        return scope

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle what it was created with, never the runs open in it nor the execution of
        :meth:`Execution.step` (a live handle of this process): unpickled, its steps
        belong to the execution in their context."""
        settings = {"step_type": self.step_type, "attributes": self.attributes}
        return (_rebuilt_scope, (StepScope, self.name, settings))

    def _start(
        self,
        tel: _telemetry.Telemetry,
        ctx: Context,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
    ) -> Step:
        execution = self._execution
        current: Any = ctx.get(_EXECUTION_KEY)
        if execution is None:
            execution = current
        elif current is not execution:
            ctx = execution._ctx if execution._recording else ctx
        return Step._start(self, tel, ctx, execution)

    def _disabled(self) -> Step:
        return Step._disabled(self.name, self.step_type)

    def __repr__(self) -> str:
        return f"<stepwatch.StepScope {self.name!r} type={self.step_type!r}>"


def _rebuilt_scope(
    cls: type[ExecutionScope | StepScope], name: str | None, settings: dict[str, Any]
) -> ExecutionScope | StepScope:
    """Unpickle a scope: a new one with the same settings (and nothing open in it)."""
    return cls(name, **settings)


# ----------------------------------------------------------------------- wrappers
# One per kind of callable, chosen at decoration time. Each is a plain Python
# function (a decorated call costs two frames, the least any wrapper can: its
# own and the host's) that calls ``func(*args, **kwargs)``; the host's
# exception is re-raised with a bare ``raise`` after stepwatch's guarded
# bookkeeping. Methods bind as the host's function would.
_Begin = Callable[[tuple[Any, ...], dict[str, Any]], "Execution | Step | None"]


def _in_class_body(func: Any) -> bool:
    """Whether ``func`` was defined in a class body (its qualified name goes through a class)."""
    qualname = getattr(func, "__qualname__", None)
    if not isinstance(qualname, str) or "." not in qualname:
        return False
    return not qualname.rpartition(".")[0].endswith("<locals>")


def _after_class(begin: _Begin) -> _Begin:
    """A classmethod's per-call callables take its arguments after ``cls``."""

    def begin_after_class(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Execution | Step | None:
        return begin(args[1:], kwargs)

    return begin_after_class


def _after_instance(begin: _Begin, func: Any) -> _Begin:
    """A method's per-call callables take its arguments after ``self`` (or ``cls``).

    Decided per call, as binding decides it: the first argument is the instance
    when its class (or itself, for a class) holds this function under its name,
    directly or under other decorators, and not as a staticmethod.
    """
    name = getattr(func, "__name__", None)

    def begin_after_instance(
        args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Execution | Step | None:
        if args and isinstance(name, str):
            try:
                bound = _bound_to(args[0], name, func)
            except Exception:  # a hostile first argument: not ours to fail on
                report(
                    "execution.bind",
                    "stepwatch: could not tell whether %s is bound; its first argument is "
                    "passed to the per-call callables",
                    name,
                    exc_info=True,
                )
                bound = False
            if bound:
                args = args[1:]
        return begin(args, kwargs)

    return begin_after_instance


def _bound_to(first: object, name: str, func: object) -> bool:
    """Whether ``first`` is what a bound call of ``func`` (found as ``name``) passes first.

    Reads ``first``'s real type through ``type``'s own slots (never
    ``first.__class__``, which the object may override to raise or lie).
    """
    kind = type(first)
    owner: type = first if issubclass(kind, type) else kind  # type: ignore[assignment]
    for klass in type.__getattribute__(owner, "__mro__"):
        found = type.__getattribute__(klass, "__dict__").get(name)
        if found is None:
            continue
        if isinstance(found, staticmethod):
            return False
        if isinstance(found, classmethod):
            found = found.__func__
        for _ in range(_MAX_UNWRAP):
            if found is func:
                return True
            found = getattr(found, "__wrapped__", None)
            if found is None:
                break
        return False
    return False


_MAX_UNWRAP: Final = 32
"""Decorators looked through (``__wrapped__``) to find a method's function."""


def _function_wrapper(func: Callable[..., Any], begin: _Begin) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        run = begin(args, kwargs)
        if run is None:
            return func(*args, **kwargs)
        token = run._activate()
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            run._close(token, exc)
            raise
        run._close(token, None)
        return result

    return wrapper


def _coroutine_wrapper(func: Callable[..., Any], begin: _Begin) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        run = begin(args, kwargs)
        if run is None:
            return await func(*args, **kwargs)
        token = run._activate()
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            run._close(token, exc)
            raise
        run._close(token, None)
        return result

    return wrapper


def _generator_wrapper(func: Callable[..., Any], begin: _Begin) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        generator = func(*args, **kwargs)
        run = begin(args, kwargs)
        if run is None:
            return (yield from generator)
        # Drive the generator by hand so the context is attached only while
        # its body runs: a suspended or abandoned generator leaks nothing.
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            token = run._activate()
            try:
                item = generator.send(to_send) if to_throw is None else generator.throw(to_throw)
            except StopIteration as stop:
                run._close(token, None)
                return stop.value
            except BaseException as exc:
                run._close(token, exc)
                raise
            run._deactivate(token)
            try:
                to_send = yield item
                to_throw = None
            except GeneratorExit:
                token = run._activate()
                try:
                    generator.close()
                except BaseException as exc:
                    run._close(token, exc)
                    raise
                run._close_by_consumer(token)
                raise
            except BaseException as exc:
                to_send, to_throw = None, exc

    return wrapper


def _async_generator_wrapper(func: Callable[..., Any], begin: _Begin) -> Callable[..., Any]:
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        generator = func(*args, **kwargs)
        run = begin(args, kwargs)
        if run is None:
            # Unobserved: still a faithful delegate, ``asend`` and ``athrow``
            # included (what ``yield from`` gives a sync generator).
            sent: Any = None
            thrown: BaseException | None = None
            while True:
                try:
                    if thrown is None:
                        item = await generator.asend(sent)
                    else:
                        item = await generator.athrow(thrown)
                except StopAsyncIteration:
                    return
                try:
                    sent = yield item
                    thrown = None
                except GeneratorExit:
                    await generator.aclose()
                    raise
                except BaseException as exc:
                    sent, thrown = None, exc
        to_send: Any = None
        to_throw: BaseException | None = None
        while True:
            token = run._activate()
            try:
                if to_throw is None:
                    item = await generator.asend(to_send)
                else:
                    item = await generator.athrow(to_throw)
            except StopAsyncIteration:
                run._close(token, None)
                return
            except BaseException as exc:
                run._close(token, exc)
                raise
            run._deactivate(token)
            try:
                to_send = yield item
                to_throw = None
            except GeneratorExit:
                token = run._activate()
                try:
                    await generator.aclose()
                except BaseException as exc:
                    run._close(token, exc)
                    raise
                run._close_by_consumer(token)
                raise
            except BaseException as exc:
                to_send, to_throw = None, exc

    return wrapper


# ----------------------------------------------------------------- public entry
@overload
def execution(name: _F, /) -> _F: ...
@overload
def execution(
    name: str | None = None,
    *,
    execution_id: str | Callable[..., str] | None = None,
    total_steps: int | Callable[..., int] | None = None,
    sla: float | None = None,
    attributes: Mapping[str, Any] | None = None,
    carrier: Mapping[str, str] | Callable[..., Mapping[str, str]] | None = None,
    attempt: int | Callable[..., int] | None = None,
) -> ExecutionScope: ...
def execution(
    name: Any = None,
    *,
    execution_id: str | Callable[..., str] | None = None,
    total_steps: int | Callable[..., int] | None = None,
    sla: float | None = None,
    attributes: Mapping[str, Any] | None = None,
    carrier: Mapping[str, str] | Callable[..., Mapping[str, str]] | None = None,
    attempt: int | Callable[..., int] | None = None,
) -> Any:
    """Instrument an execution: a decorator (bare or called) and a sync/async context manager.

    Args:
        name: The execution (definition) name; defaults to the decorated
            function's ``__qualname__``.
        execution_id: A string, or a callable taking the decorated function's
            arguments (without ``self``/``cls``) and returning the id. Default:
            the carrier's id, else a new unique id per call. An id becomes a
            ``str``: an ``int`` in decimal, ``bytes`` as UTF-8, a callable's
            other result through ``str()``; a carrier's id that is none of
            these (or blank) is ignored. One longer than
            ``Limits.max_id_length`` is shortened (:meth:`Limits.bounded_id`).
        total_steps: An int >= 0 or a callable like ``execution_id``; enables
            ``percent`` and ETA.
        sla: Seconds; an execution that runs longer counts as an SLA violation.
        attributes: Static attributes for the execution span (not metrics).
        carrier: The dict :func:`enqueue` returned (or a callable returning
            it): continues that trace and records the queue wait.
        attempt: The 1-based attempt number (an int >= 1 or a callable like
            ``execution_id``), on the span as ``workflow.execution.attempt``.
            Default: 1, or, for a carrier this process started before, the
            next attempt. See ``docs/processes.md``.

    Returns:
        An :class:`ExecutionScope`; entering it yields an :class:`Execution`.
        Used bare (``@stepwatch.execution``), the decorated function.

    Raises:
        TypeError, ValueError: a bad argument, named in the message, at set-up.

    .. versionadded:: 0.1.0
    """
    if callable(name) or isinstance(name, classmethod | staticmethod):
        return ExecutionScope()(name)
    return ExecutionScope(
        name,
        execution_id=execution_id,
        total_steps=total_steps,
        sla=sla,
        attributes=attributes,
        carrier=carrier,
        attempt=attempt,
    )


@overload
def step(name: _F, /) -> _F: ...
@overload
def step(
    name: str | None = None,
    *,
    step_type: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> StepScope: ...
def step(
    name: Any = None,
    *,
    step_type: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Any:
    """Instrument a step: a decorator (bare or called) and a sync/async context manager.

    Args:
        name: The step name; defaults to the decorated function's ``__qualname__``.
        step_type: A low-cardinality kind (``"http"``, ``"check"``...); the one
            step dimension on metrics.
        attributes: Static attributes for the step span (not metrics).

    Returns:
        A :class:`StepScope`; entering it yields a :class:`Step`. Used bare
        (``@stepwatch.step``), the decorated function.

    Raises:
        TypeError, ValueError: a bad argument, named in the message, at set-up.

    .. versionadded:: 0.1.0
    """
    if callable(name) or isinstance(name, classmethod | staticmethod):
        return StepScope()(name)
    return StepScope(name, step_type=step_type, attributes=attributes)


def current_execution() -> Execution | None:
    """Return the :class:`Execution` of the current context, or ``None``.

    .. versionadded:: 0.1.0
    """
    value = otel_context.get_value(_EXECUTION_KEY)
    return value if isinstance(value, Execution) else None


def current_step() -> Step | None:
    """Return the :class:`Step` of the current context, or ``None``.

    .. versionadded:: 0.1.0
    """
    value = otel_context.get_value(_STEP_KEY)
    return value if isinstance(value, Step) else None


def _due_at(
    now: float, eta: float | datetime.datetime | None, countdown: float | None
) -> float | None:
    """When scheduled work is due (epoch seconds), or ``None``: not scheduled, or invalid."""
    if eta is None and countdown is None:
        return None
    try:
        if eta is not None:
            due = eta.timestamp() if isinstance(eta, datetime.datetime) else float(eta)
        else:
            due = now + float(countdown)  # type: ignore[arg-type]
        if isinstance(eta, bool) or isinstance(countdown, bool) or not math.isfinite(due):
            raise ValueError(due)
    except Exception:
        report("enqueue.due", "stepwatch: enqueue eta=%r countdown=%r ignored", eta, countdown)
        return None
    return due if due > now else None


def enqueue(
    name: str,
    *,
    execution_id: str,
    carrier: MutableMapping[str, str] | None = None,
    queue: str = "default",
    attempt: int = 1,
    eta: float | datetime.datetime | None = None,
    countdown: float | None = None,
) -> dict[str, str]:
    """Record that an execution was queued and return a carrier to start it with.

    Records ``execution.created`` and ``execution.queued`` (on a short
    PRODUCER span ``enqueue {name}`` and in the Monitor), counts the
    execution as pending in ``workflow.execution.active``, and writes the W3C
    trace context, the enqueue time, the id, the name and the queue into the
    carrier. Pass the carrier to ``stepwatch.execution(..., carrier=...)`` in
    any process to continue the trace and record the queue wait.

    Args:
        name: The execution (definition) name.
        execution_id: The id the execution will run under (one longer than
            ``Limits.max_id_length`` is shortened as :meth:`Limits.bounded_id`
            says, in the carrier too).
        carrier: A dict to write into (e.g. message headers); default a new one.
        queue: The queue's name (span attribute only, not a metric dimension).
        attempt: The attempt this enqueue is for: an engine that re-enqueues a
            failed execution passes its next attempt number, so that attempt's
            queue wait starts here and it leaves ``pending`` once.
        eta: When the work becomes due (epoch seconds or an aware
            ``datetime``), for scheduled work (Celery ``eta``, delayed
            queues): until then it counts as ``scheduled``, not as queued
            (``summary().scheduled``; ``queue_depth`` and ``QueueBacklog``
            count ready work only), and its queue wait starts then.
        countdown: Seconds from now until it is due (instead of ``eta``).

    Returns:
        A plain ``dict[str, str]`` (the given carrier's contents plus stepwatch's
        entries). Never raises: invalid input is logged once and the carrier
        returned as far as it could be filled.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.3.0 ``eta`` and ``countdown``.
    """
    result: dict[str, str] = {}
    try:
        if carrier is not None:
            result.update(carrier)
    except Exception:
        report("enqueue.carrier", "stepwatch: enqueue carrier is not a mapping; ignored")
    if (
        not isinstance(name, str)
        or not name
        or not isinstance(execution_id, str)
        or not execution_id
    ):
        report(
            "enqueue.invalid",
            "stepwatch: enqueue(%r, execution_id=%r) ignored: both must be non-empty strings",
            name,
            execution_id,
        )
        return result
    queue_name = queue if isinstance(queue, str) and queue else "default"
    for_attempt = attrs.valid_attempt(attempt)
    if for_attempt is None:
        report("enqueue.attempt", "stepwatch: enqueue attempt %r is not an int >= 1", attempt)
        for_attempt = 1
    try:
        tel = _telemetry.current()
        execution_id = tel.limits.bounded_id(str.__str__(execution_id))
        now = tel.clock()
        result[semconv.CARRIER_ENQUEUED_AT] = repr(now)
        result[semconv.CARRIER_EXECUTION_ID] = execution_id
        result[semconv.CARRIER_NAME] = name
        result[semconv.CARRIER_QUEUE] = queue_name
        result[semconv.CARRIER_ATTEMPT] = str(for_attempt)
        result[semconv.CARRIER_ENQUEUE_ID] = uuid.uuid4().hex
        due_at = _due_at(now, eta, countdown)
        if due_at is not None:
            result[semconv.CARRIER_DUE_AT] = repr(due_at)
        if _suppressed(otel_context.get_current()):
            return result
        at = _ns(now)
        span = tel.tracer.start_span(
            semconv.SPAN_ENQUEUE.format(name=name),
            kind=SpanKind.PRODUCER,
            attributes={
                semconv.WORKFLOW_DEFINITION_NAME: name,
                semconv.WORKFLOW_EXECUTION_ID: execution_id,
                semconv.WORKFLOW_EXECUTION_QUEUE: queue_name,
                semconv.MESSAGING_DESTINATION_NAME: queue_name,
                semconv.WORKFLOW_EXECUTION_ATTEMPT: for_attempt,
            },
            start_time=at,
        )
        if span.is_recording():
            span.add_event(semconv.EventType.EXECUTION_CREATED.value, timestamp=at)
            span.add_event(semconv.EventType.EXECUTION_QUEUED.value, timestamp=at)
        propagate.inject(result, context=trace.set_span_in_context(span))
        span.end(end_time=at)
        tel.execution_active.add(
            1,
            _ACTIVE_ATTRIBUTES.get(name, _PENDING),
        )
        observer = tel.observer
        if observer is not None:
            data = semconv.ExecutionQueuedData(name=name, queue=queue_name, attempt=for_attempt)
            if due_at is not None:
                data["due_at"] = due_at
            observer.enqueued(execution_id, data, now)
    except Exception:
        report("enqueue", "stepwatch: enqueue failed", exc_info=True)
    if carrier is not None:
        try:
            carrier.update(result)
        except Exception:
            report("enqueue.carrier.update", "stepwatch: could not write into the given carrier")
    return result
