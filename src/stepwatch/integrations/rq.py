"""RQ: every enqueued job an enqueue, every job run an execution, in RQ's fork-per-job horse.

Usage::

    pip install 'stepwatch[rq]'
    opentelemetry-instrument rq worker --burst      # no code in the app

    RQInstrumentor().instrument()                   # or in code, producer and worker

RQ has no signals or middleware, so this wraps three of its public methods
(``Queue.enqueue_job``, ``Queue.schedule_job``, ``Job.perform``) and
``Job.cancel``:

- Enqueueing or scheduling a job: :func:`stepwatch.enqueue` (name = the job's
  function name, id = the job id, queue = the queue's name); the carrier goes
  into ``job.meta`` under :data:`~stepwatch.semconv.CARRIER_HEADER`
  (:data:`~stepwatch.semconv.CARRIER_HEADER_FALLBACK` when the job's own
  metadata uses that key: a carrier is known by its enqueue id, and the job's
  own values are never read as one, replaced or removed), never into the
  job's arguments. A job that already carries an unstarted carrier
  is being moved (the scheduler moving a due job, a deferred job released):
  no new enqueue.
  A scheduled job (``enqueue_at``/``enqueue_in``) is enqueued with its
  scheduled time as ``eta``: ``scheduled``, not backlog, until due.
- ``Job.perform`` in the work horse: the execution (attempt from the
  carrier; a job run again without a new carrier, as RQ retries a job whose
  horse was killed, is the next attempt: the job's own record, ``job.meta``,
  counts its starts), attached to the context, so ``stepwatch.step`` works inside.
  ``JobTimeoutException`` ends it as ``timeout``; a failure RQ will retry
  (``Retry(max=...)`` with retries left), or a returned ``Retry``, as
  ``retry``, with the next attempt's carrier saved in ``job.meta``.
- ``Job.cancel`` of a job that never started: a ``cancellation``.

The horse leaves with ``os._exit``; what it recorded is flushed as the
execution ends (stepwatch does that in every forked child).
"""

from __future__ import annotations

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
from stepwatch.package import _instruments_rq
from stepwatch.semconv import (
    CARRIER_ENQUEUE_ID,
    CARRIER_HEADER,
    CARRIER_HEADER_FALLBACK,
    Outcome,
)

__all__ = ["RQInstrumentor"]

_CANCELLED: Final = "cancelled before it ran"
_RETRIES: Final = f"{CARRIER_HEADER}-retries"
"""The ``job.meta`` key holding the job's retries when it was first enqueued."""
_runs = TaskRuns()


def _meta(job: Any) -> dict[str, Any] | None:
    meta = getattr(job, "meta", None)
    return meta if isinstance(meta, dict) else None


_KEYS: Final = (CARRIER_HEADER, CARRIER_HEADER_FALLBACK)


def _ours(value: object) -> dict[str, str] | None:
    """A carrier :func:`stepwatch.enqueue` wrote (it has an enqueue id), else ``None``."""
    carrier = carrier_of(value)
    return carrier if carrier is not None and carrier.get(CARRIER_ENQUEUE_ID) else None


def _find(meta: dict[str, Any]) -> tuple[str | None, dict[str, str] | None]:
    """Where in ``meta`` stepwatch's carrier is, and the carrier (``None, None``: nowhere)."""
    for key in _KEYS:
        carrier = _ours(meta.get(key))
        if carrier is not None:
            return key, carrier
    return None, None


def _stamp(job: Any, queue_name: object, attempt: int = 1, eta: Any = None) -> None:
    """Record an enqueue of ``job`` and put its carrier in ``job.meta`` (unless one waits there).

    The carrier goes under ``"stepwatch"``, or ``"stepwatch-carrier"`` when the
    job's own metadata uses ``"stepwatch"`` for something else: a user's value
    is never taken for a carrier, overwritten or removed.
    """
    try:
        meta = _meta(job)
        if meta is None:
            return
        key, waiting = _find(meta)
        if attempt == 1 and waiting is not None:
            return  # a move of an enqueue already recorded
        if key is None:
            key = next((k for k in _KEYS if k not in meta), None)
        carrier = stepwatch.enqueue(
            str(job.func_name),
            execution_id=str(job.id),
            queue=str(queue_name or "default"),
            attempt=attempt,
            eta=eta,
        )
        if key is None:
            report(
                "rq.meta",
                "stepwatch: job.meta holds values of its own under both %s and %s; "
                "the job runs without a carrier",
                *_KEYS,
            )
            return
        meta[key] = carrier
        retries = _count(getattr(job, "retries_left", None))
        if retries is not None:
            meta.setdefault(_RETRIES, retries)
    except Exception:
        report("rq.enqueue", "stepwatch: recording an RQ enqueue failed", exc_info=True)


def _enqueue_job(
    wrapped: Callable[..., Any], queue: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    job = args[0] if args else kwargs.get("job")
    _stamp(job, getattr(queue, "name", None))
    return wrapped(*args, **kwargs)


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _attempt(job: Any) -> int | None:
    """The attempt of this run from RQ's own job record: the retries used so far, plus one.

    RQ retries a job whose horse was killed from the worker's copy of the job
    (the horse's changes to ``job.meta`` are lost with it), so the count of
    retries left, which RQ keeps, is what tells a rerun; ``None`` when unknown.
    """
    meta = _meta(job)
    first = _count(meta.get(_RETRIES)) if meta is not None else None
    left = _count(getattr(job, "retries_left", None))
    if first is None or left is None or left > first:
        return None
    return first - left + 1


def _schedule_job(
    wrapped: Callable[..., Any], queue: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    job = args[0] if args else kwargs.get("job")
    when = args[1] if len(args) > 1 else kwargs.get("datetime")
    _stamp(job, getattr(queue, "name", None), eta=when)
    return wrapped(*args, **kwargs)


def _retry_next(job: Any, execution: stepwatch.Execution, why: str) -> None:
    """End this attempt as ``retry`` and save the next attempt's carrier with the job."""
    execution.retry(why)
    _stamp(job, getattr(job, "origin", None), attempt=execution.attempt + 1)
    try:
        job.save_meta()
    except Exception:
        report("rq.save_meta", "stepwatch: saving the retry's carrier failed", exc_info=True)


def _perform(
    wrapped: Callable[..., Any], job: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    try:
        meta = _meta(job)
        key, carrier = _find(meta) if meta is not None else (None, None)
        if meta is not None and key is not None:
            del meta[key]  # only stepwatch's own carrier: the job's metadata stays its own
            job.save_meta()  # started: a later requeue of this job is not a move of this enqueue
        scope = stepwatch.execution(
            str(job.func_name), execution_id=str(job.id), carrier=carrier, attempt=_attempt(job)
        )
    except Exception:
        report("rq.perform", "stepwatch: reading an RQ job failed", exc_info=True)
        return wrapped(*args, **kwargs)
    with scope as execution:
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            try:
                if getattr(job, "should_retry", False):
                    _retry_next(job, execution, type(exc).__name__)
            except Exception:
                report("rq.retry", "stepwatch: recording an RQ retry failed", exc_info=True)
            raise
        try:
            if _is_retry(result):
                _retry_next(job, execution, "the job returned Retry")
        except Exception:
            report("rq.retry", "stepwatch: recording an RQ retry failed", exc_info=True)
        return result


def _is_retry(result: object) -> bool:
    from rq.job import Retry  # noqa: PLC0415 - the extra is imported only when instrumented

    return isinstance(result, Retry)


def _cancel(
    wrapped: Callable[..., Any], job: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    result = wrapped(*args, **kwargs)
    try:
        meta = _meta(job)
        carrier = _find(meta)[1] if meta is not None else None
        if carrier is not None:  # never started: the carrier is taken when it runs
            _runs.cancelled(str(job.id), str(job.func_name), carrier=carrier, reason=_CANCELLED)
    except Exception:
        report("rq.cancel", "stepwatch: recording an RQ cancel failed", exc_info=True)
    return result


_WRAPPED: Final = (
    ("rq.queue", "Queue.enqueue_job", _enqueue_job),
    ("rq.queue", "Queue.schedule_job", _schedule_job),
    ("rq.job", "Job.perform", _perform),
    ("rq.job", "Job.cancel", _cancel),
)


class RQInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Wraps RQ's enqueue, perform and cancel; ``uninstrument()`` unwraps them.

    Idempotent, as every ``BaseInstrumentor``. Set up stepwatch first
    (``stepwatch.configure()``, or the ``stepwatch`` instrumentor under
    ``opentelemetry-instrument``); this only maps RQ's events.

    .. versionadded:: 0.2.0
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        """RQ 2.0 or newer."""
        return _instruments_rq

    def _instrument(self, **kwargs: Any) -> None:
        from rq.timeouts import JobTimeoutException  # noqa: PLC0415 - imported when instrumented

        register_outcome(JobTimeoutException, Outcome.TIMEOUT)
        for module, name, wrapper in _WRAPPED:
            wrapt.wrap_function_wrapper(module, name, wrapper)

    def _uninstrument(self, **kwargs: Any) -> None:
        from rq.job import Job  # noqa: PLC0415 - imported when instrumented
        from rq.queue import Queue  # noqa: PLC0415
        from rq.timeouts import JobTimeoutException  # noqa: PLC0415

        owners = {"Queue": Queue, "Job": Job}
        for _module, name, _wrapper in _WRAPPED:
            owner, method = name.split(".")
            unwrap(owners[owner], method)
        unregister_outcome(JobTimeoutException)
