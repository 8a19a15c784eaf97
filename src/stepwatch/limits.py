"""Every bound on what stepwatch keeps in memory, in one object.

Usage::

    monitor = stepwatch.configure(limits=stepwatch.Limits(max_finished=50_000))
    monitor.limits.retention          # 3600.0

Pass a :class:`Limits` to :func:`stepwatch.configure` or
:class:`stepwatch.Monitor`; ``docs/configuration.md`` has the table of every
bound, its default and what it costs. Memory stays bounded whatever the
throughput: past a bound the oldest item is evicted (or, for series and SSE
clients, the new one refused and counted).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from typing import Any, Final

from stepwatch import _checks as checks
from stepwatch._models import json_ready

__all__ = ["DEFAULT_MAX_ID_LENGTH", "LONGEST_ID_LENGTH", "MIN_ID_LENGTH", "Limits"]

DEFAULT_MAX_ID_LENGTH: Final = 256
"""Characters an execution id keeps by default (:attr:`Limits.max_id_length`)."""
MIN_ID_LENGTH: Final = 32
"""The least :attr:`Limits.max_id_length` may be: room for a prefix and the hash suffix."""
LONGEST_ID_LENGTH: Final = 1024
"""The most :attr:`Limits.max_id_length` may be: what every process-group reader accepts."""
_SUFFIX_LENGTH: Final = 17
"""``~`` and 16 hex digits."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds of one Monitor (and of the executions recorded through it).

    Args:
        retention: Seconds a finished execution (and a pending one never
            started) stays queryable.
        max_finished: Finished executions kept at most (oldest evicted first).
        max_pending: Enqueued, not yet started executions kept at most.
        steps_kept: Steps a running execution's progress lists (its most
            recent; counts stay exact).
        finished_steps_kept: Steps a finished execution's progress lists: its
            failed steps first, then its most recent.
        retried_step_names: Step names per execution remembered as "may run
            again" (a later run of a forgotten one counts as a new step).
        progress_events: ``step.progress`` span events one step span carries at most.
        history_names: Execution names whose recent durations feed the ETA.
        history_runs: Successful durations kept per name for the ETA.
        max_events: Events kept in the history (``events()``, SSE resume).
        max_subscriber_queue: Undelivered events kept per subscriber (older
            ones are dropped and counted in ``Subscription.dropped``).
        max_series: Metric series the health windows keep (one overflow series
            takes the rest).
        max_sse_clients: Concurrent ``/events`` streams (503 past it).
        history_steps: Step names per execution name whose typical time the
            ETA learns (those with the most time kept).
        max_id_length: Characters an execution id keeps (32 to 1,024). A
            longer id (from the host, a carrier or :func:`stepwatch.enqueue`)
            is cut to its first ``max_id_length - 17`` characters plus ``~``
            and 16 hex digits of a BLAKE2b hash of the whole id
            (:meth:`bounded_id`): the same id always gives the same text, in
            every process, and distinct ids stay distinct.

    Raises:
        TypeError: a value of the wrong type, naming the field.
        ValueError: a value out of range, naming the field.

    .. versionadded:: 0.2.0
    .. versionchanged:: 0.3.0 ``max_id_length``.
    """

    retention: float = 3600.0
    max_finished: int = 10_000
    max_pending: int = 10_000
    steps_kept: int = 256
    finished_steps_kept: int = 8
    retried_step_names: int = 1_024
    progress_events: int = 64
    history_names: int = 1_000
    history_runs: int = 50
    max_events: int = 10_000
    max_subscriber_queue: int = 1_000
    max_series: int = 1_000
    max_sse_clients: int = 16
    history_steps: int = 64
    max_id_length: int = DEFAULT_MAX_ID_LENGTH

    def __post_init__(self) -> None:
        object.__setattr__(self, "retention", checks.seconds(self.retention, "retention"))
        for item in fields(self):
            if item.name != "retention":
                minimum = MIN_ID_LENGTH if item.name == "max_id_length" else 1
                checks.count(getattr(self, item.name), item.name, minimum=minimum)
        if self.max_id_length > LONGEST_ID_LENGTH:
            raise ValueError(
                f"max_id_length: at most {LONGEST_ID_LENGTH} (what process-group readers "
                f"accept), got {self.max_id_length}"
            )

    def bounded_id(self, execution_id: str) -> str:
        """``execution_id`` within ``max_id_length`` characters (unchanged when it fits).

        A longer id becomes its first ``max_id_length - 17`` characters, ``~``
        and 16 hex digits of a BLAKE2b hash of the whole id: deterministic
        across processes (a carrier's id and the started execution's agree)
        and distinct for distinct ids.

        .. versionadded:: 0.3.0
        """
        if len(execution_id) <= self.max_id_length:
            return execution_id
        digest = hashlib.blake2b(
            execution_id.encode("utf-8", "surrogatepass"), digest_size=8
        ).hexdigest()
        return f"{execution_id[: self.max_id_length - _SUFFIX_LENGTH]}~{digest}"

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready values."""
        result: dict[str, Any] = json_ready(self)
        return result
