"""Dramatiq: a middleware that makes every send an enqueue and every message processed an execution.

Usage::

    pip install 'stepwatch[dramatiq]'
    opentelemetry-instrument dramatiq app             # no code in the app

    DramatiqInstrumentor().instrument()               # or in code, before the broker is made

Every broker made while instrumented gets :class:`StepwatchMiddleware`,
placed just before dramatiq's ``Retries`` (so it sees the retry decision);
a global broker that already exists gets it when ``instrument()`` runs.
What each dramatiq event becomes:

- ``before_enqueue`` of a new message: :func:`stepwatch.enqueue` (name = the
  actor name, id = the message id, queue = the queue name); the carrier goes
  into ``message.options`` under :data:`~stepwatch.semconv.CARRIER_HEADER`,
  never into the actor's arguments. A message moved from the delay queue
  (it already carries its carrier) is not a new enqueue.
- ``before_process_message``: the execution starts (attempt = the message's
  ``retries`` + 1), attached to the worker thread's context, so
  ``stepwatch.step`` works inside the actor.
- ``Retries`` enqueueing the message again while it runs: that attempt ends
  as ``retry`` and the re-enqueue is the next attempt's one enqueue.
- ``after_process_message``: the end; ``TimeLimitExceeded`` is ``timeout``.
- ``after_skip_message`` (a middleware skipped it): ``cancellation``.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection
from typing import Any, Final

import dramatiq.broker
import wrapt
from dramatiq.middleware import (
    Middleware,
    Retries,
    TimeLimitExceeded,
    default_middleware,
)
from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import unwrap

import stepwatch
from stepwatch._safety import report
from stepwatch.instrument import register_outcome, unregister_outcome
from stepwatch.integrations._runs import TaskRuns, attempt_after, carrier_of
from stepwatch.package import _instruments_dramatiq
from stepwatch.semconv import CARRIER_HEADER, Outcome

__all__ = ["DramatiqInstrumentor", "StepwatchMiddleware"]

_SKIPPED: Final = "skipped by a middleware"
_runs = TaskRuns()


class StepwatchMiddleware(Middleware):
    """The dramatiq middleware :class:`DramatiqInstrumentor` adds to every broker.

    One per broker. Add it by hand (``broker.add_middleware(StepwatchMiddleware(),
    before=Retries)``) only when not using the instrumentor.

    .. versionadded:: 0.2.0
    """

    def before_enqueue(self, broker: Any, message: Any, delay: int | None) -> None:
        try:
            options = message.options
            running = _runs.get(message.message_id)
            if running is not None:
                running.retry(f"retried by dramatiq (retries={options.get('retries')})")
            elif carrier_of(options.get(CARRIER_HEADER)) is not None:
                return  # moved from the delay queue: its enqueue is already counted
            options[CARRIER_HEADER] = stepwatch.enqueue(
                message.actor_name,
                execution_id=message.message_id,
                queue=message.queue_name,
                attempt=attempt_after(message.options.get("retries", 0)),
                countdown=delay / 1000 if isinstance(delay, int | float) and delay > 0 else None,
            )
        except Exception:
            report("dramatiq.enqueue", "stepwatch: recording an enqueue failed", exc_info=True)

    def before_process_message(self, broker: Any, message: Any) -> None:
        try:
            _runs.start(
                message.message_id,
                message.actor_name,
                carrier=carrier_of(message.options.get(CARRIER_HEADER)),
                attempt=attempt_after(message.options.get("retries", 0)),
            )
        except Exception:
            report("dramatiq.process", "stepwatch: starting a message failed", exc_info=True)

    def after_process_message(
        self,
        broker: Any,
        message: Any,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        _runs.end(message.message_id, exception)

    def after_skip_message(self, broker: Any, message: Any) -> None:
        try:
            if not _runs.end(message.message_id, outcome=Outcome.CANCELLATION, reason=_SKIPPED):
                _runs.cancelled(
                    message.message_id,
                    message.actor_name,
                    carrier=carrier_of(message.options.get(CARRIER_HEADER)),
                    reason=_SKIPPED,
                )
        except Exception:
            report("dramatiq.skip", "stepwatch: recording a skipped message failed", exc_info=True)


_added: weakref.WeakSet[Any] = weakref.WeakSet()


def _with_ours(middleware: list[Any]) -> list[Any]:
    """``middleware`` with one stepwatch middleware just before ``Retries`` (else at the end)."""
    if any(isinstance(m, StepwatchMiddleware) for m in middleware):
        return middleware
    position = next(
        (i for i, m in enumerate(middleware) if isinstance(m, Retries)), len(middleware)
    )
    return [*middleware[:position], StepwatchMiddleware(), *middleware[position:]]


def _broker_init(
    wrapped: Callable[..., Any], broker: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    try:
        given = args[0] if args else kwargs.get("middleware")
        middleware = [m() for m in default_middleware] if given is None else list(given)
        kwargs = {**kwargs, "middleware": _with_ours(middleware)}
        args = args[1:]
    except Exception:
        report("dramatiq.broker", "stepwatch: adding the middleware failed", exc_info=True)
    result = wrapped(*args, **kwargs)
    _added.add(broker)
    return result


class DramatiqInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Adds :class:`StepwatchMiddleware` to dramatiq brokers; ``uninstrument()`` takes it out.

    Idempotent, as every ``BaseInstrumentor``. Set up stepwatch first
    (``stepwatch.configure()``, or the ``stepwatch`` instrumentor under
    ``opentelemetry-instrument``); this only maps dramatiq's events.

    .. versionadded:: 0.2.0
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        """dramatiq 1.17 or newer."""
        return _instruments_dramatiq

    def _instrument(self, **kwargs: Any) -> None:
        register_outcome(TimeLimitExceeded, Outcome.TIMEOUT)
        wrapt.wrap_function_wrapper("dramatiq.broker", "Broker.__init__", _broker_init)
        existing = dramatiq.broker.global_broker
        if existing is not None and not any(
            isinstance(m, StepwatchMiddleware) for m in existing.middleware
        ):
            retries = any(isinstance(m, Retries) for m in existing.middleware)
            existing.add_middleware(StepwatchMiddleware(), before=Retries if retries else None)
            _added.add(existing)

    def _uninstrument(self, **kwargs: Any) -> None:
        unwrap(dramatiq.broker.Broker, "__init__")
        for broker in list(_added):
            kept = [m for m in broker.middleware if not isinstance(m, StepwatchMiddleware)]
            broker.middleware[:] = kept
        _added.clear()
        unregister_outcome(TimeLimitExceeded)
