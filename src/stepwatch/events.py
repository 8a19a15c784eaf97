"""The lifecycle event bus: a bounded history and subscribers that never block the engine.

Usage::

    monitor.events(execution_id="n-42")               # history, oldest first
    sub = monitor.subscribe(print, event_type="execution.failed")
    monitor.unsubscribe(sub)

Publishing is O(subscribers) on the engine's thread: the event is appended to
the history ring buffer and to each matching subscriber's bounded queue. Delivery
happens elsewhere: a sync callback gets a daemon thread of its own; an async
callback runs as a task on the event loop that was running when it subscribed
(or on a private loop thread when none was). A slow subscriber therefore
delays nobody but itself; when it falls behind by more than its queue's size
the oldest undelivered events are dropped and counted in
:attr:`Subscription.dropped`.

Limits (constructor arguments of :class:`EventBus`):

- ``max_history``: events kept for :meth:`EventBus.events` (default 10,000).
- ``max_queue``: undelivered events per subscriber (default 1,000).
"""

from __future__ import annotations

import asyncio
import datetime
import inspect
import logging
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, NamedTuple, cast

from stepwatch import _checks as checks
from stepwatch._models import iso, json_ready
from stepwatch.semconv import EventType

__all__ = ["EventBus", "ExecutionEvent", "Subscription"]

_logger = logging.getLogger(__name__)

_MAX_LOGGED_ERROR_TYPES = 16
"""Error types logged (with a traceback) per subscription; the rest are only counted."""


def _workflow(entry: ExecutionEvent | _Entry, names: Mapping[str, str]) -> object:
    """The workflow of a history slot: its data's ``name``, else its execution's, if known."""
    keys = None if isinstance(entry, ExecutionEvent) else entry[5]
    if keys is None:  # the data is the event's dict
        data: Mapping[str, object] = entry[4]
        if "name" in data:
            return data["name"]
    elif "name" in keys:  # recorded by value: data is the values for ``keys``
        values = cast("tuple[object, ...]", entry[4])
        return values[keys.index("name")]
    return names.get(entry[3] or "")


def _built(entry: _Entry) -> ExecutionEvent:
    """The event of a history entry recorded by value (its data dict built now)."""
    seq, event_type, timestamp, execution_id, values, keys = entry
    data = dict(zip(keys or (), values, strict=True))
    return ExecutionEvent(seq, event_type, timestamp, execution_id, data)


def _being_cancelled() -> bool:
    """Whether the running task was asked to cancel (not a callback raising ``CancelledError``)."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def _same_callback(candidate: object, wanted: object) -> bool:
    """``candidate == wanted``, as ``atexit.unregister`` compares; a raising ``__eq__`` is no."""
    if candidate is wanted:
        return True
    try:
        return bool(candidate == wanted)
    except Exception:
        return False


def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
    """The thread of one async subscriber's private loop."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.close()


DEFAULT_MAX_HISTORY = 10_000
DEFAULT_MAX_QUEUE = 1_000
INBOX_BATCH = 256
"""Events :meth:`EventBus.record` holds before numbering them into the history."""


class ExecutionEvent(NamedTuple):
    """One lifecycle event (immutable).

    Attributes:
        seq: Monotonic sequence number (unique per Monitor; for SSE resume).
        type: The :class:`~stepwatch.EventType`.
        timestamp: Epoch seconds from the Monitor's clock.
        execution_id: The execution it concerns, or ``None`` (health, alerts).
        data: JSON-ready details (names, outcome, durations...). Treat as read-only:
            the same dict reaches every subscriber.

    A named tuple rather than a dataclass: one is built per step start and
    end on the engine's thread, and a tuple is the cheapest immutable record.

    .. versionadded:: 0.1.0
    """

    seq: int
    type: EventType
    timestamp: float
    execution_id: str | None
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """Return JSON-ready values (ISO 8601 timestamp, the type as a string)."""
        return {
            "seq": self.seq,
            "type": self.type.value,
            "timestamp": iso(self.timestamp),
            "execution_id": self.execution_id,
            "data": json_ready(self.data),
        }


Callback = Callable[[ExecutionEvent], Any]


class Subscription:
    """A live subscription; pass it to ``unsubscribe`` to stop delivery at once.

    Attributes:
        name: The callback's qualified name (used in logs).
        execution_id: Filter, or ``None`` for all executions.
        event_type: Filter, or ``None`` for all types.
        dropped: Events dropped because the subscriber fell behind.
        failures: Calls of the callback that raised.
        delivered: Events handed to the callback.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        callback: Callback,
        execution_id: str | None,
        event_type: EventType | None,
        max_queue: int,
    ) -> None:
        self.callback = callback
        self.name = getattr(callback, "__qualname__", None) or repr(callback)
        self.execution_id = execution_id
        self.event_type = event_type
        self.dropped = 0
        self.failures = 0
        self.delivered = 0
        self.active = True
        self._queue: deque[ExecutionEvent] = deque()
        self._max_queue = max_queue
        self._cond = threading.Condition(threading.Lock())
        self._waiting = False
        self._busy = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._wake_pending = False
        self._logged: set[type[BaseException]] = set()
        self.task: asyncio.Task[None] | None = None
        """An async subscriber's delivery task (a reference keeps it alive)."""
        self.private_loop: asyncio.AbstractEventLoop | None = None
        """The loop thread of its own an async subscriber got (none running when it subscribed)."""
        self.is_async = inspect.iscoroutinefunction(callback) or inspect.iscoroutinefunction(
            getattr(callback, "__call__", None)  # noqa: B004 - async callable objects
        )

    def matches(self, event: ExecutionEvent) -> bool:
        """Whether this subscription wants ``event``."""
        return (self.execution_id is None or self.execution_id == event.execution_id) and (
            self.event_type is None or self.event_type is event.type
        )

    @property
    def pending(self) -> int:
        """Events queued but not delivered yet."""
        return len(self._queue)

    # ------------------------------------------------------------- producer side
    def offer(self, event: ExecutionEvent) -> None:
        """Queue ``event``; drop the oldest when full. Called on the engine's thread."""
        with self._cond:
            if not self.active:
                return
            if len(self._queue) >= self._max_queue:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(event)
            if self._loop is not None:
                if not self._wake_pending:
                    self._wake_pending = True
                    self._schedule_wake()
            elif self._waiting:
                self._cond.notify()

    def _schedule_wake(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        try:
            loop.call_soon_threadsafe(wake.set)
        except RuntimeError:  # the loop is closed: nothing will consume any more
            self.active = False

    def close(self) -> None:
        """Stop delivery now and discard what is queued."""
        with self._cond:
            self.active = False
            self._queue.clear()
            self._cond.notify_all()
        if self._loop is not None and self._wake is not None:
            try:
                self._loop.call_soon_threadsafe(self._wake.set)
            except RuntimeError:
                pass

    def drain(self, timeout: float | None = None) -> bool:
        """Block until every queued event has been handled (or the subscription closed).

        Returns:
            ``True`` if idle within ``timeout`` seconds, else ``False``. Meant
            for tests and orderly shutdowns; never call it from the engine's hot path.
        """
        with self._cond:
            return self._cond.wait_for(
                lambda: not self.active or (not self._queue and not self._busy), timeout
            )

    # ------------------------------------------------------------- consumer side
    def _take(self) -> ExecutionEvent | None:
        with self._cond:
            if self.active and self._queue:
                self._busy = True
                return self._queue.popleft()
            self._busy = False
            self._cond.notify_all()
            return None

    def _handled(self) -> None:
        with self._cond:
            self._busy = False
            self._cond.notify_all()

    def _failed(self, error: BaseException) -> None:
        """Count a raising callback; log once per error type (with its traceback)."""
        self.failures += 1
        kind = type(error)
        if kind in self._logged or len(self._logged) >= _MAX_LOGGED_ERROR_TYPES:
            return
        self._logged.add(kind)
        _logger.warning(
            "stepwatch: event subscriber %s raised %s (logged once per error type; "
            "Subscription.failures counts every one)",
            self.name,
            kind.__qualname__,
            exc_info=(kind, error, error.__traceback__),
        )

    def run_thread(self) -> None:
        """Deliver to a sync callback until closed (the subscriber's own thread)."""
        while True:
            with self._cond:
                while self.active and not self._queue:
                    self._waiting = True
                    self._cond.wait()
                    self._waiting = False
                if not self.active:
                    self._cond.notify_all()
                    return
                event = self._queue.popleft()
                self._busy = True
            try:
                self.callback(event)
                self.delivered += 1
            except BaseException as error:  # even SystemExit must not end delivery
                self._failed(error)
            self._handled()

    async def run_task(self) -> None:
        """Deliver to an async callback until closed (a task on the subscriber's loop)."""
        wake = self._wake
        assert wake is not None
        while self.active:
            await wake.wait()
            with self._cond:
                wake.clear()
                self._wake_pending = False
            while (event := self._take()) is not None:
                try:
                    result = self.callback(event)
                    if isinstance(result, Awaitable):
                        await result
                    self.delivered += 1
                except asyncio.CancelledError as error:
                    if _being_cancelled():
                        raise  # this task is being cancelled (unsubscribe, loop shutdown)
                    self._failed(error)  # the callback's own: a failure, delivery goes on
                except BaseException as error:  # even SystemExit must not end delivery
                    self._failed(error)
            self._handled()

    def __repr__(self) -> str:
        return (
            f"<stepwatch.Subscription {self.name} execution_id={self.execution_id!r} "
            f"event_type={self.event_type!r} dropped={self.dropped}>"
        )


_Entry = tuple[int, EventType, float, "str | None", Any, "tuple[str, ...] | None"]
"""A history slot: ``(seq, type, timestamp, execution_id, data, keys)``.

``keys`` is ``None`` when ``data`` is the event's dict; otherwise ``data``
is a tuple of values for those keys (:meth:`EventBus.record`), built into
the dict when somebody reads the event.
"""


def _types(
    event_type: EventType | str | Iterable[EventType | str] | None,
) -> EventType | frozenset[EventType] | None:
    """One event type, several (a frozenset), or ``None`` for any; validated."""
    if event_type is None or isinstance(event_type, EventType | str):
        member: EventType | None = checks.member(event_type, "event_type", EventType, optional=True)
        return member
    if not isinstance(event_type, Iterable):
        raise TypeError(f"event_type must be an EventType, a string or several, got {event_type!r}")
    return frozenset(checks.member(kind, "event_type", EventType) for kind in event_type)


class EventBus:
    """Bounded event history plus non-blocking fan-out to subscribers.

    Args:
        clock: Zero-argument callable returning epoch seconds.
        max_history: Events kept in the history ring buffer.
        max_queue: Undelivered events per subscriber.

    The history is a ring of ``max_history`` slots indexed by ``seq``: a
    publish stores one entry (evicting the one ``max_history`` events older),
    a reader finds an event by its ``seq`` without scanning. Events recorded
    by value (:meth:`record`, the per-step ones) keep a tuple of values and
    are built into an :class:`ExecutionEvent` once, by the first reader (or at
    once when someone subscribes): an engine nobody watches pays for no dict.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        max_history: int = DEFAULT_MAX_HISTORY,
        max_queue: int = DEFAULT_MAX_QUEUE,
    ) -> None:
        checks.count(max_history, "max_history")
        checks.count(max_queue, "max_queue")
        self._clock = clock
        self._lock = threading.Lock()
        self._size = max_history
        self._ring: list[ExecutionEvent | _Entry | None] = [None] * max_history
        self._last = 0
        self._inbox: deque[tuple[EventType, float, str | None, tuple[Any, ...], tuple[str, ...]]]
        self._inbox = deque()
        self._subscribers: tuple[Subscription, ...] = ()
        self._max_queue = max_queue
        self._closed = False
        self._names: OrderedDict[str, str] = OrderedDict()  # execution id -> workflow
        self.resume_base = time.time_ns() // 1_000
        """The wall-clock microsecond this history began: SSE ids are ``resume_base + seq``,
        so an id a client kept from before a restart is below any id of this history."""

    @property
    def max_history(self) -> int:
        """How many events the history keeps."""
        return self._size

    def __len__(self) -> int:
        return min(self._last + len(self._inbox), self._size)

    def publish(
        self,
        event_type: EventType,
        execution_id: str | None,
        data: Mapping[str, Any],
        timestamp: float | None = None,
    ) -> ExecutionEvent:
        """Record an event and queue it for matching subscribers. O(subscribers).

        Raises:
            TypeError: ``event_type`` is not an :class:`EventType`, or ``data``
                not a mapping (nothing is recorded: history and SSE stay sound).
        """
        if not isinstance(event_type, EventType):
            raise TypeError(
                f"event_type must be a stepwatch.EventType, got {type(event_type).__name__}"
            )
        if type(data) is not dict and not isinstance(data, Mapping):  # dicts skip the ABC check
            raise TypeError(f"data must be a mapping, got {type(data).__name__}")
        at = self._clock() if timestamp is None else timestamp
        payload = data if isinstance(data, dict) else dict(data)
        with self._lock:
            self._drain()
            seq = self._last + 1
            event = ExecutionEvent(seq, event_type, at, execution_id, payload)
            self._store(seq, event)
            if execution_id is not None and "name" in payload:
                self._learn_name(execution_id, payload)
        self._offer(event)
        return event

    def _learn_name(self, execution_id: str, payload: Mapping[str, Any]) -> None:
        """Remember ``execution_id``'s workflow (under the lock; at most ``max_history`` ids)."""
        name = payload.get("name")
        if not isinstance(name, str):
            return
        names = self._names
        if names.get(execution_id) != name:
            names[execution_id] = name
            names.move_to_end(execution_id)
            if len(names) > self._size:
                names.popitem(last=False)

    def record(
        self,
        event_type: EventType,
        execution_id: str | None,
        keys: tuple[str, ...],
        values: tuple[Any, ...],
        timestamp: float,
    ) -> None:
        """Record an event whose data is ``dict(zip(keys, values))``, built when first read.

        The engine-thread path for the frequent events (a step's start and
        end): one tuple appended to an inbox, no lock and no dict. The inbox
        is numbered into the history in order, under the lock, by the next
        reader or publish, or every :data:`INBOX_BATCH` records, so
        ``seq`` order stays publish order. With a subscriber, the event is
        built and delivered at once. ``keys`` is a shared constant;
        ``values`` are JSON-ready.

        .. versionadded:: 0.2.0
        """
        if self._subscribers:
            self.publish(event_type, execution_id, dict(zip(keys, values, strict=True)), timestamp)
            return
        inbox = self._inbox
        inbox.append((event_type, timestamp, execution_id, values, keys))
        if len(inbox) >= INBOX_BATCH:
            with self._lock:
                self._drain()

    def _drain(self) -> None:
        """Number the inbox into the history, oldest first (under the lock)."""
        inbox, ring, size, last = self._inbox, self._ring, self._size, self._last
        while inbox:  # only the lock holder takes from the inbox
            event_type, timestamp, execution_id, values, keys = inbox.popleft()
            last += 1
            ring[last % size] = (last, event_type, timestamp, execution_id, values, keys)
        self._last = last

    def _store(self, seq: int, entry: ExecutionEvent | _Entry) -> None:
        """Put ``entry`` in its slot (under the lock)."""
        self._ring[seq % self._size] = entry
        self._last = seq

    def _offer(self, event: ExecutionEvent) -> None:
        for subscription in self._subscribers:
            if subscription.matches(event):
                subscription.offer(event)

    def events(
        self,
        *,
        execution_id: str | None = None,
        event_type: EventType | str | Iterable[EventType | str] | None = None,
        since: int | None = None,
        limit: int | None = None,
        workflow: str | None = None,
        after: float | datetime.datetime | None = None,
        before: float | datetime.datetime | None = None,
    ) -> list[ExecutionEvent]:
        """Return matching events from the history, oldest first.

        Args:
            execution_id: Only this execution's events.
            event_type: Only this type, or these types (each an
                :class:`EventType` or its value).
            since: Only events with ``seq`` greater than this.
            limit: At most this many, the most recent ones.
            workflow: Only events of executions of this name (their step
                events too, once the execution's own events named it).
            after: Only events at or after this time (epoch seconds or a ``datetime``).
            before: Only events before this time.

        Raises:
            TypeError, ValueError: an unknown ``event_type``, a negative
                ``limit``, or a time that is neither a number nor a ``datetime``.

        .. versionchanged:: 0.3.0 Several types, ``workflow``, ``after`` and ``before``.
        """
        wanted = _types(event_type)
        checks.count(limit, "limit", minimum=0, optional=True)
        checks.count(since, "since", minimum=0, optional=True)
        if execution_id is not None:
            checks.name(execution_id, "execution_id")
        if workflow is not None:
            checks.name(workflow, "workflow")
        start = checks.moment(after, "after")
        end = checks.moment(before, "before")
        if limit == 0:
            return []
        if workflow is None and start is None and end is None and not isinstance(wanted, frozenset):
            events, _ = self.tail(
                since or 0, execution_id=execution_id, event_type=wanted, limit=limit
            )
            return events
        names = self._names
        kinds = wanted if isinstance(wanted, frozenset) or wanted is None else frozenset({wanted})

        def where(entry: ExecutionEvent | _Entry) -> bool:
            """The filters a history slot is checked against before its event is built."""
            timestamp = entry[2]
            if (start is not None and timestamp < start) or (end is not None and timestamp >= end):
                return False
            if kinds is not None and entry[1] not in kinds:
                return False
            return workflow is None or _workflow(entry, names) == workflow

        events, _ = self.tail(since or 0, execution_id=execution_id, limit=limit, where=where)
        return events

    def tail(
        self,
        after: int,
        *,
        execution_id: str | None = None,
        event_type: EventType | None = None,
        limit: int | None = None,
        where: Callable[[ExecutionEvent | _Entry], bool] | None = None,
    ) -> tuple[list[ExecutionEvent], int]:
        """The matching events published after ``after`` (a ``seq``), and the newest ``seq``.

        For readers that follow the history (the SSE streams): pass the
        returned ``seq`` back next time, and events the filters skipped are
        never scanned again. ``limit`` keeps the most recent ones (a reader
        that lags further loses the oldest). The cost follows what was
        published since ``after``; publishing does no work per reader.
        ``where`` (for :meth:`events`) checks each history slot, under the
        lock, before its event is built.

        .. versionadded:: 0.2.0
        """
        # Newest first, stopping at ``after`` or once ``limit`` matched: the cost
        # follows the answer (and what a filter skips), not the history's size.
        result: list[ExecutionEvent] = []
        ring, size = self._ring, self._size
        with self._lock:
            self._drain()
            newest = self._last
            oldest = max(after + 1, newest - size + 1)
            for seq in range(newest, oldest - 1, -1):
                entry = ring[seq % size]
                if entry is None:  # pragma: no cover - every slot up to ``newest`` is stored
                    break
                if (
                    (execution_id is None or entry[3] == execution_id)
                    and (event_type is None or entry[1] is event_type)
                    and (where is None or where(entry))
                ):
                    if not isinstance(entry, ExecutionEvent):
                        entry = ring[seq % size] = _built(entry)
                    result.append(entry)
                    if limit is not None and len(result) >= limit:
                        break
        result.reverse()
        return result, max(newest, after)

    @property
    def last_seq(self) -> int:
        """The ``seq`` of the newest event published (0 before the first): a reader's
        starting cursor for :meth:`tail`.

        .. versionadded:: 0.2.0
        """
        with self._lock:
            self._drain()
            return self._last

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called (readers following the history stop)."""
        return self._closed

    def subscribe(
        self,
        callback: Callback,
        *,
        execution_id: str | None = None,
        event_type: EventType | str | None = None,
    ) -> Subscription:
        """Deliver future matching events to ``callback`` (sync or async), off the engine's thread.

        Raises:
            TypeError: ``callback`` is not callable.
            ValueError: an unknown ``event_type``.
        """
        checks.function(callback, "callback")
        wanted = checks.member(event_type, "event_type", EventType, optional=True)
        if execution_id is not None:
            checks.name(execution_id, "execution_id")
        subscription = Subscription(callback, execution_id, wanted, self._max_queue)
        if subscription.is_async:
            self._start_task(subscription)
        else:
            threading.Thread(
                target=subscription.run_thread,
                name=f"stepwatch-subscriber-{subscription.name}",
                daemon=True,
            ).start()
        with self._lock:
            self._subscribers = (*self._subscribers, subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription | Callback) -> None:
        """Stop delivery at once (queued events are discarded).

        Args:
            subscription: What :meth:`subscribe` returned, or the callback
                itself: every subscription whose callback equals it (``==``, as
                ``atexit.unregister`` compares, so ``unsubscribe(obj.method)``
                finds ``subscribe(obj.method)``) ends.

        .. versionchanged:: 0.2.0 Accepts the callback.
        """
        with self._lock:
            if isinstance(subscription, Subscription):
                ending = [subscription]
            else:
                ending = [s for s in self._subscribers if _same_callback(s.callback, subscription)]
            self._subscribers = tuple(s for s in self._subscribers if s not in ending)
        for ended in ending:
            ended.close()
            loop = ended.private_loop
            if loop is not None:
                try:
                    loop.call_soon_threadsafe(loop.stop)
                except RuntimeError:
                    pass

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """The live subscriptions."""
        return self._subscribers

    def _start_task(self, subscription: Subscription) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # No loop running: a loop thread of its own, so a callback that blocks
            # its loop delays nobody but itself (like a sync subscriber's thread).
            loop = asyncio.new_event_loop()
            threading.Thread(
                target=_run_loop,
                args=(loop,),
                name=f"stepwatch-subscriber-{subscription.name}",
                daemon=True,
            ).start()
            subscription.private_loop = loop
        subscription._loop = loop
        ready = threading.Event()

        def create() -> None:
            subscription._wake = asyncio.Event()
            subscription.task = loop.create_task(subscription.run_task())
            ready.set()

        if loop is subscription.private_loop:
            loop.call_soon_threadsafe(create)
            ready.wait(timeout=5.0)
        else:
            create()

    def after_fork_in_child(self) -> None:
        """Drop subscribers (their threads and loops stayed in the parent); fresh lock."""
        self._lock = threading.Lock()
        self._subscribers = ()

    def close(self) -> None:
        """Unsubscribe everyone (stopping their private loops); readers of :meth:`tail` stop."""
        self._closed = True
        for subscription in self._subscribers:
            self.unsubscribe(subscription)
