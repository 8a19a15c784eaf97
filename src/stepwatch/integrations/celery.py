"""Celery: every task publish an enqueue, every task run an execution, through Celery's signals.

Usage::

    pip install 'stepwatch[celery]'
    opentelemetry-instrument celery -A app worker     # no code in the app

    CeleryInstrumentor().instrument()                 # or in code, producer and worker

What each Celery event becomes:

- ``before_task_publish``: :func:`stepwatch.enqueue` (name = the task name,
  id = the task id, queue = the routing key, attempt = the message's
  ``retries`` + 1, ``eta`` = the message's ``eta``, which ``countdown=`` and
  ``eta=`` set: such a task is ``scheduled``, not backlog, until due, and its
  queue wait starts then); the carrier goes into the message headers under
  :data:`~stepwatch.semconv.CARRIER_HEADER`, never into the task's arguments.
- ``task_prerun``: the execution starts (attempt = ``request.retries`` + 1,
  plus one when the broker redelivers the message,
  ``request.delivery_info["redelivered"]``: with ``acks_late``, after the
  worker that ran it died), attached to the context, so ``stepwatch.step``
  and ``current_execution()`` work inside the task.
- ``task_success`` / ``task_failure`` / ``task_retry``: the execution ends as
  ``success``, ``failure`` (``timeout`` for ``SoftTimeLimitExceeded`` and
  ``TimeLimitExceeded``), or ``retry``; ``self.retry()`` republishes the
  message, which is the next attempt's one enqueue.
- ``task_revoked`` for a task that never started: a ``cancellation``.
- ``worker_process_shutdown`` (a pool child about to leave with
  ``os._exit``: recycling, shutdown): the process's Monitor is shut down
  within its ``flush_timeout``, so spans that end after an execution (the
  Celery instrumentation's ``run`` span) leave with it.

With ``opentelemetry-instrumentation-celery`` also installed, its ``run``
span is the execution span's parent (this module's ``task_prerun`` receiver
is moved behind it when the worker starts) and the trace stays one. Works
under every pool: prefork children flush what they record as each
execution ends (see ``docs/processes.md``).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Collection
from typing import Any, Final

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)

import stepwatch
from stepwatch._safety import report
from stepwatch.instrument import register_outcome, unregister_outcome
from stepwatch.integrations._runs import TaskRuns, attempt_after, carrier_of
from stepwatch.package import _instruments_celery
from stepwatch.semconv import CARRIER_HEADER, Outcome

__all__ = ["CeleryInstrumentor"]

_DISPATCH_PREFIX: Final = "stepwatch.integrations.celery."
_REVOKED: Final = "revoked before it ran"
_EXPIRED: Final = "expired before it ran"
_runs = TaskRuns()


def _request_carrier(request: Any) -> dict[str, str] | None:
    headers = getattr(request, "headers", None)
    found = headers.get(CARRIER_HEADER) if isinstance(headers, dict) else None
    return carrier_of(found if found is not None else getattr(request, CARRIER_HEADER, None))


def _eta(value: object) -> datetime.datetime | None:
    """A message's ``eta`` header (ISO 8601 text in protocol 2; naive means UTC)."""
    try:
        if isinstance(value, str):
            value = datetime.datetime.fromisoformat(value)
        if not isinstance(value, datetime.datetime):
            return None
        return value if value.tzinfo is not None else value.replace(tzinfo=datetime.UTC)
    except Exception:
        report("celery.eta", "stepwatch: a Celery message's eta %r was not understood", value)
        return None


# ------------------------------------------------------------------------ receivers
def _on_publish(
    sender: Any = None,
    headers: dict[str, Any] | None = None,
    routing_key: str | None = None,
    **_: Any,
) -> None:
    try:
        if not isinstance(headers, dict) or not headers.get("id"):
            return  # protocol 1 or a foreign message: nothing to stamp
        name = headers.get("task") or sender
        headers[CARRIER_HEADER] = stepwatch.enqueue(
            str(name),
            execution_id=str(headers["id"]),
            queue=routing_key or "celery",
            attempt=attempt_after(headers.get("retries")),
            eta=_eta(headers.get("eta")),
        )
    except Exception:
        report("celery.publish", "stepwatch: recording a Celery publish failed", exc_info=True)


def _on_prerun(task_id: str | None = None, task: Any = None, **_: Any) -> None:
    try:
        if task_id is None or task is None:
            return
        request = task.request
        attempt = attempt_after(getattr(request, "retries", 0))
        delivery = getattr(request, "delivery_info", None)
        if isinstance(delivery, dict) and delivery.get("redelivered") is True:
            attempt += 1  # the broker gave it again: its earlier delivery's worker died
        _runs.start(task_id, task.name, carrier=_request_carrier(request), attempt=attempt)
    except Exception:
        report(
            "celery.prerun", "stepwatch: starting a Celery task's execution failed", exc_info=True
        )


def _on_success(sender: Any = None, **_: Any) -> None:
    task_id = getattr(getattr(sender, "request", None), "id", None)
    if task_id is not None:
        _runs.end(task_id)


def _on_failure(
    task_id: str | None = None, exception: BaseException | None = None, **_: Any
) -> None:
    if task_id is not None:
        _runs.end(task_id, exception, outcome=Outcome.FAILURE, reason="task failed")


def _on_retry(request: Any = None, reason: Any = None, **_: Any) -> None:
    task_id = getattr(request, "id", None)
    if task_id is None:
        return
    cause = getattr(reason, "exc", None)
    why = getattr(reason, "message", None) or (None if cause is None else type(cause).__name__)
    _runs.end(
        task_id,
        cause if isinstance(cause, BaseException) else None,
        outcome=Outcome.RETRY,
        reason=str(why) if why else "retry",
    )


_POSTRUN_STATES: Final = {
    "REVOKED": Outcome.CANCELLATION,
    "REJECTED": Outcome.CANCELLATION,
    "FAILURE": Outcome.FAILURE,
}


def _on_postrun(task_id: str | None = None, state: str | None = None, **_: Any) -> None:
    # The end signals above come first; this closes a run none of them reported
    # (Ignore, Reject, a receiver that failed), so nothing stays running.
    if task_id is not None:
        _runs.end(task_id, outcome=_POSTRUN_STATES.get(state or ""), reason=state)


def _on_revoked(
    request: Any = None, terminated: bool = False, expired: bool = False, **_: Any
) -> None:
    try:
        task_id = getattr(request, "id", None)
        name = getattr(request, "task", None) or getattr(request, "name", None)
        if terminated or not task_id or not name:
            return  # a running task killed in its pool process: that process is gone
        if _runs.end(task_id, outcome=Outcome.CANCELLATION, reason=_REVOKED):
            return
        _runs.cancelled(
            task_id,
            str(name),
            carrier=_request_carrier(request),
            reason=_EXPIRED if expired else _REVOKED,
        )
    except Exception:
        report("celery.revoked", "stepwatch: recording a revoked task failed", exc_info=True)


def _on_worker_init(**_: Any) -> None:
    # Run task_prerun after every other receiver (the Celery OpenTelemetry
    # instrumentation's attaches its ``run`` span there), so the execution
    # span is that span's child whatever order the instrumentors loaded in.
    from celery import signals  # noqa: PLC0415 - the extra is imported only when instrumented

    signals.task_prerun.disconnect(dispatch_uid=_DISPATCH_PREFIX + "task_prerun")
    signals.task_prerun.connect(
        _on_prerun, weak=False, dispatch_uid=_DISPATCH_PREFIX + "task_prerun"
    )


def _on_process_shutdown(**_: Any) -> None:
    # A pool child (billiard) leaves with os._exit right after this signal. Each
    # execution was flushed as it ended, but spans that end after it (the Celery
    # OpenTelemetry instrumentation's ``run`` span, at task_postrun) were not:
    # shut the process's Monitor down now, within its flush bound.
    try:
        from stepwatch.monitor import get_monitor  # noqa: PLC0415 - loaded when it is used

        monitor = get_monitor()
        if monitor is not None:
            monitor.shutdown(timeout=monitor.flush_timeout)
    except Exception:
        report(
            "celery.shutdown", "stepwatch: flushing a leaving pool process failed", exc_info=True
        )


def _receivers() -> list[tuple[Any, Callable[..., None], str]]:
    from celery import signals  # noqa: PLC0415 - the extra is imported only when instrumented

    return [
        (signals.before_task_publish, _on_publish, "before_task_publish"),
        (signals.task_prerun, _on_prerun, "task_prerun"),
        (signals.task_success, _on_success, "task_success"),
        (signals.task_failure, _on_failure, "task_failure"),
        (signals.task_retry, _on_retry, "task_retry"),
        (signals.task_postrun, _on_postrun, "task_postrun"),
        (signals.task_revoked, _on_revoked, "task_revoked"),
        (signals.worker_init, _on_worker_init, "worker_init"),
        (signals.worker_process_shutdown, _on_process_shutdown, "worker_process_shutdown"),
    ]


def _time_limits() -> list[type[BaseException]]:
    from billiard.exceptions import (  # noqa: PLC0415 - the extra is imported only when instrumented
        SoftTimeLimitExceeded,
        TimeLimitExceeded,
    )

    return [SoftTimeLimitExceeded, TimeLimitExceeded]


class CeleryInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Connects stepwatch to Celery's signals; ``uninstrument()`` disconnects them.

    Idempotent, as every ``BaseInstrumentor``. Set up stepwatch first
    (``stepwatch.configure()``, or the ``stepwatch`` instrumentor under
    ``opentelemetry-instrument``); this only maps Celery's events.

    .. versionadded:: 0.2.0
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        """Celery 5.3 or newer (custom headers reach ``task.request.headers``)."""
        return _instruments_celery

    def _instrument(self, **kwargs: Any) -> None:
        for exception_type in _time_limits():
            register_outcome(exception_type, Outcome.TIMEOUT)
        for signal, receiver, name in _receivers():
            signal.connect(receiver, weak=False, dispatch_uid=_DISPATCH_PREFIX + name)

    def _uninstrument(self, **kwargs: Any) -> None:
        for signal, _receiver, name in _receivers():
            signal.disconnect(dispatch_uid=_DISPATCH_PREFIX + name)
        for exception_type in _time_limits():
            unregister_outcome(exception_type)
