"""Huey: every enqueue a stepwatch enqueue, every task run an execution, through Huey's hooks.

Usage::

    pip install 'stepwatch[huey]'
    opentelemetry-instrument huey_consumer app.huey   # no code in the app

    HueyInstrumentor().instrument()                   # or in code, before the Huey is made

Every ``Huey`` made while instrumented gets stepwatch's signal handlers and
its ``pre_execute`` / ``post_execute`` hooks (registered under the name
``stepwatch``); one that exists already gets them via ``instrument(huey=...)``.
What each Huey event becomes:

- ``SIGNAL_ENQUEUED`` of a new task: :func:`stepwatch.enqueue` (name = the
  task's name, id = the task id, queue = the Huey's name). Huey's message has
  no headers, so the carrier is stored beside it in Huey's own storage
  (``huey.put``, key ``stepwatch:<task id>``) and taken back by the worker:
  never in the task's arguments. A task moved from the schedule (its carrier
  is still waiting there) is not a new enqueue.
- ``pre_execute``: the execution starts (the carrier tells the attempt),
  attached to the context, so ``stepwatch.step`` works inside the task.
- ``post_execute``: the end; ``TaskTimeout`` is ``timeout``,
  ``CancelExecution`` ``cancellation``; a failure Huey will retry (retries
  left) is ``retry``, and the next attempt's carrier is stored then.
- ``SIGNAL_REVOKED`` / ``SIGNAL_EXPIRED`` (never ran): ``cancellation``;
  ``SIGNAL_CANCELED`` / ``SIGNAL_INTERRUPTED`` end a running one likewise.
"""

from __future__ import annotations

import datetime
import weakref
from collections.abc import Callable, Collection
from typing import Any, Final

import wrapt
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import unwrap

import stepwatch
from stepwatch._safety import report
from stepwatch.instrument import register_outcome, unregister_outcome
from stepwatch.integrations._runs import TaskRuns, carrier_of
from stepwatch.package import _instruments_huey
from stepwatch.semconv import CARRIER_HEADER, Outcome

__all__ = ["HueyInstrumentor"]

HOOK_NAME: Final = "stepwatch"
"""The name stepwatch's ``pre_execute`` / ``post_execute`` hooks are registered under."""
_runs = TaskRuns()
_hueys: weakref.WeakSet[Any] = weakref.WeakSet()


def _key(task: Any) -> str:
    return f"{CARRIER_HEADER}:{task.id}"


def _take_carrier(huey: Any, task: Any) -> dict[str, str] | None:
    return carrier_of(huey.get(_key(task)))


def _eta(huey: Any, task: Any) -> datetime.datetime | None:
    """A scheduled task's time (Huey keeps naive UTC datetimes unless ``utc=False``)."""
    eta = getattr(task, "eta", None)
    if not isinstance(eta, datetime.datetime):
        return None
    if eta.tzinfo is None and getattr(huey, "utc", True):
        return eta.replace(tzinfo=datetime.UTC)
    return eta  # aware, or naive local time (utc=False)


def _stamp(huey: Any, task: Any, attempt: int) -> None:
    huey.put(
        _key(task),
        stepwatch.enqueue(
            task.name,
            execution_id=task.id,
            queue=huey.name,
            attempt=attempt,
            eta=_eta(huey, task),
        ),
    )


def _signals() -> Any:
    from huey import signals  # noqa: PLC0415 - the extra is imported only when instrumented

    return signals


def _hooks_for(huey: Any) -> tuple[Callable[..., None], ...]:
    """The signal handler and the two hooks for one Huey instance."""
    signals = _signals()

    def on_signal(signal: str, task: Any, *args: Any) -> None:
        try:
            if signal == signals.SIGNAL_ENQUEUED:
                if huey.get(_key(task), peek=True) is None:  # else a move from the schedule
                    _stamp(huey, task, attempt=1)
            elif signal in (signals.SIGNAL_REVOKED, signals.SIGNAL_EXPIRED):
                _runs.cancelled(
                    task.id, task.name, carrier=_take_carrier(huey, task), reason=signal
                )
            elif signal in (signals.SIGNAL_CANCELED, signals.SIGNAL_INTERRUPTED):
                _runs.end(task.id, outcome=Outcome.CANCELLATION, reason=signal)
        except Exception:
            report("huey.signal", "stepwatch: handling a Huey signal failed", exc_info=True)

    def pre_execute(task: Any) -> None:
        try:
            _runs.start(task.id, task.name, carrier=_take_carrier(huey, task))
        except Exception:
            report("huey.pre_execute", "stepwatch: starting a Huey task failed", exc_info=True)

    def post_execute(task: Any, task_value: Any, exc: BaseException | None) -> None:
        try:
            execution = _runs.get(task.id)
            if exc is not None and task.retries and execution is not None:
                execution.retry(f"retried by Huey ({type(exc).__name__})")
                _stamp(huey, task, attempt=execution.attempt + 1)
            _runs.end(task.id, exc)
        except Exception:
            report("huey.post_execute", "stepwatch: ending a Huey task failed", exc_info=True)

    return on_signal, pre_execute, post_execute


def _attach(huey: Any) -> None:
    """Register stepwatch's handler and hooks on ``huey`` (once)."""
    if huey in _hueys:
        return
    on_signal, pre_execute, post_execute = _hooks_for(huey)
    huey.signal()(on_signal)  # every signal; the handler picks its own
    huey.pre_execute(HOOK_NAME)(pre_execute)
    huey.post_execute(HOOK_NAME)(post_execute)
    huey.stepwatch_signal_handler = on_signal
    _hueys.add(huey)


def _detach(huey: Any) -> None:
    handler = getattr(huey, "stepwatch_signal_handler", None)
    if handler is not None:
        huey.disconnect_signal(handler)
    huey.unregister_pre_execute(HOOK_NAME)
    huey.unregister_post_execute(HOOK_NAME)
    _hueys.discard(huey)


def _huey_init(
    wrapped: Callable[..., Any], huey: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    result = wrapped(*args, **kwargs)
    try:
        _attach(huey)
    except Exception:
        report("huey.attach", "stepwatch: attaching to a Huey failed", exc_info=True)
    return result


def _exceptions() -> dict[type[BaseException], Outcome]:
    from huey.exceptions import (  # noqa: PLC0415 - the extra is imported only when instrumented
        CancelExecution,
        TaskTimeout,
    )

    return {TaskTimeout: Outcome.TIMEOUT, CancelExecution: Outcome.CANCELLATION}


class HueyInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Hooks stepwatch into every ``Huey`` instance; ``uninstrument()`` unhooks them.

    ``instrument(huey=instance)`` also hooks an instance made before.
    Idempotent, as every ``BaseInstrumentor``. Set up stepwatch first
    (``stepwatch.configure()``, or the ``stepwatch`` instrumentor under
    ``opentelemetry-instrument``); this only maps Huey's events.

    .. versionadded:: 0.2.0
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        """Huey 2.5 or newer."""
        return _instruments_huey

    def _instrument(self, **kwargs: Any) -> None:
        for exception_type, outcome in _exceptions().items():
            register_outcome(exception_type, outcome)
        wrapt.wrap_function_wrapper("huey.api", "Huey.__init__", _huey_init)
        existing = kwargs.get("huey")
        if existing is not None:
            _attach(existing)

    def _uninstrument(self, **kwargs: Any) -> None:
        from huey.api import Huey  # noqa: PLC0415 - the extra is imported only when instrumented

        unwrap(Huey, "__init__")
        for huey in list(_hueys):
            _detach(huey)
        for exception_type in _exceptions():
            unregister_outcome(exception_type)
