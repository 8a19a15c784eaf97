"""Executions an engine starts at one hook and ends at another, held in between.

An engine reports a task's start and its end through separate callbacks
(Celery signals, dramatiq middleware methods, huey hooks). :class:`TaskRuns`
keeps each run's scope and handle from the first to the second, by the
engine's task id, within a bound. Everything here is guarded: a failure is
reported (:func:`stepwatch._safety.report`) and never reaches the engine.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Final

import stepwatch
from stepwatch._safety import report
from stepwatch.instrument import Execution, ExecutionScope
from stepwatch.semconv import Outcome

__all__ = ["MAX_OPEN_RUNS", "TaskRuns", "attempt_after", "carrier_of"]

MAX_OPEN_RUNS: Final = 10_000
"""Runs open at once in one process; beyond it the oldest is ended (its end never came)."""
_EVICTED: Final = "its end was never reported (more than MAX_OPEN_RUNS runs open)"
_RESTARTED: Final = "started again before its end was reported"


def carrier_of(value: object) -> dict[str, str] | None:
    """The carrier found in a message's headers or metadata, or ``None``.

    Accepts only a mapping of strings (a message could carry anything under
    the key); anything else is ignored.
    """
    if not isinstance(value, Mapping):
        return None
    return {k: v for k, v in value.items() if isinstance(k, str) and isinstance(v, str)} or None


def attempt_after(retries: object) -> int:
    """The attempt a run is, from the engine's count of retries before it (1 when not a count)."""
    return retries + 1 if isinstance(retries, int) and retries >= 0 else 1


class TaskRuns:
    """Executions started by an engine hook and not ended yet, keyed by task id (bounded).

    One instance per integration. Thread-safe; after a fork the child starts
    with none open (the parent's are the parent's to end).
    """

    def __init__(self, limit: int = MAX_OPEN_RUNS) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._open: OrderedDict[str, tuple[ExecutionScope, Execution]] = OrderedDict()
        os.register_at_fork(after_in_child=self._after_fork_in_child)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._open = OrderedDict()

    def start(
        self,
        key: str,
        name: str,
        *,
        carrier: Mapping[str, str] | None,
        attempt: int | None = None,
    ) -> Execution | None:
        """Start the execution of task ``key`` (its id) and attach it to the current context."""
        try:
            scope = stepwatch.execution(name, execution_id=key, carrier=carrier, attempt=attempt)
            execution = scope.__enter__()
        except Exception:
            report("integration.start", "stepwatch: could not start %r", name, exc_info=True)
            return None
        with self._lock:
            previous = self._open.pop(key, None)
            self._open[key] = (scope, execution)
            evicted = self._open.popitem(last=False) if len(self._open) > self._limit else None
        if previous is not None:
            self._close(previous, None, Outcome.CANCELLATION, _RESTARTED)
        if evicted is not None:
            self._close(evicted[1], None, Outcome.CANCELLATION, _EVICTED)
        return execution

    def get(self, key: str) -> Execution | None:
        """The open execution of task ``key``, if any."""
        entry = self._open.get(key)
        return None if entry is None else entry[1]

    def end(
        self,
        key: str,
        exc: BaseException | None = None,
        *,
        outcome: Outcome | None = None,
        reason: str | None = None,
    ) -> bool:
        """End task ``key``'s execution: by ``exc`` if given, else by ``outcome`` (else success).

        ``Outcome.RETRY`` wins over ``exc`` (the engine's retry rides on an
        exception); other outcomes apply when the task raised nothing.
        Returns whether a run was open.
        """
        with self._lock:
            entry = self._open.pop(key, None)
        if entry is None:
            return False
        self._close(entry, exc, outcome, reason)
        return True

    def cancelled(
        self, key: str, name: str, *, carrier: Mapping[str, str] | None, reason: str
    ) -> None:
        """Record a task the engine dropped before it ran (revoked, expired) as a cancellation.

        The execution starts and ends at once, so its enqueue leaves ``pending``.
        """
        if self.start(key, name, carrier=carrier) is not None:
            self.end(key, outcome=Outcome.CANCELLATION, reason=reason)

    @staticmethod
    def _close(
        entry: tuple[ExecutionScope, Execution],
        exc: BaseException | None,
        outcome: Outcome | None,
        reason: str | None,
    ) -> None:
        scope, execution = entry
        try:
            if outcome is Outcome.RETRY:
                execution.retry(reason)
            elif outcome is Outcome.CANCELLATION and exc is None:
                execution.cancel(reason or "cancelled")
            elif outcome is Outcome.FAILURE and exc is None:
                execution.fail(reason or "failed")
            scope.__exit__(
                None if exc is None else type(exc), exc, None if exc is None else exc.__traceback__
            )
        except Exception:
            report("integration.end", "stepwatch: could not end %r", execution, exc_info=True)
