"""The event bus: history queries and subscribers that never hold up the engine."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Generator
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

import stepwatch
from stepwatch import EventType, semconv, testing
from stepwatch.events import EventBus, ExecutionEvent
from stepwatch.testing import FakeClock, Harness

WAIT = 30.0  # upper bound for waits on events; never reached when things work


def _run(execution_id: str, *, fail: bool = False) -> None:
    with stepwatch.execution("job", execution_id=execution_id) as ex:
        with ex.step("one", step_type="t"):
            pass
        if fail:
            ex.fail("nope")


def test_every_lifecycle_type_reaches_history(sw: Harness) -> None:
    carrier = stepwatch.enqueue("job", execution_id="all")
    with stepwatch.execution("job", carrier=carrier, sla=1.0) as ex:
        with ex.step("a") as st:
            st.progress(0.5)
        with pytest.raises(ValueError, match="b failed"), ex.step("b"):
            raise ValueError("b failed")
        ex.request_approval(approver="ops")
        ex.approve(by="x")
        ex.request_approval()
        ex.reject(by="y")
        sw.clock.advance(2)
    seen = {event.type for event in sw.events(execution_id="all")}
    expected = {
        t for t in EventType if t.value.split(".")[0] in {"execution", "step", "approval", "sla"}
    }
    expected -= {
        EventType.EXECUTION_FAILED,
        EventType.EXECUTION_CANCELLED,
        EventType.EXECUTION_TIMEOUT,
        EventType.EXECUTION_RETRIED,
        EventType.EXECUTION_LOST,  # recorded by a process group member: tests/test_group_dead.py
    }
    assert seen == expected


def test_history_filters(sw: Harness) -> None:
    _run("a")
    _run("b", fail=True)
    assert {e.execution_id for e in sw.events(execution_id="a")} == {"a"}
    failed = sw.monitor.events(event_type="execution.failed")
    assert [(e.execution_id, e.data["reason"]) for e in failed] == [("b", "nope")]
    all_events = sw.monitor.events()
    middle = all_events[2].seq
    assert [e.seq for e in sw.monitor.events(since=middle)] == [e.seq for e in all_events[3:]]
    assert sw.monitor.events(limit=2) == all_events[-2:]
    assert sw.monitor.events(limit=len(all_events) + 5) == all_events
    assert sw.monitor.events(limit=0) == []
    with pytest.raises(ValueError, match="limit"):
        sw.monitor.events(limit=-1)
    with pytest.raises(ValueError, match="nonsense"):
        sw.monitor.events(event_type="nonsense")


def test_timestamps_come_from_monitor_clock(sw: Harness) -> None:
    sw.clock.set(2_000_000_000.0)
    _run("clocked")
    assert {e.timestamp for e in sw.events(execution_id="clocked")} == {2_000_000_000.0}


def test_subscription_filters_by_execution_and_type(sw: Harness) -> None:
    by_id: list[ExecutionEvent] = []
    by_type: list[ExecutionEvent] = []
    done = threading.Event()
    failed_seen = threading.Event()

    def on_id(event: ExecutionEvent) -> None:
        by_id.append(event)
        if event.type is EventType.EXECUTION_COMPLETED:
            done.set()

    def on_type(event: ExecutionEvent) -> None:
        by_type.append(event)
        failed_seen.set()

    sub_id = sw.monitor.subscribe(on_id, execution_id="mine")
    sub_type = sw.monitor.subscribe(on_type, event_type="execution.failed")
    _run("other")
    _run("theirs", fail=True)
    _run("mine")
    assert done.wait(WAIT)
    assert failed_seen.wait(WAIT)
    assert {e.execution_id for e in by_id} == {"mine"}
    assert [e.type.value for e in by_id] == [
        "execution.started",
        "step.started",
        "step.completed",
        "execution.completed",
    ]
    assert [(e.type, e.execution_id) for e in by_type] == [(EventType.EXECUTION_FAILED, "theirs")]
    sw.monitor.unsubscribe(sub_id)
    sw.monitor.unsubscribe(sub_type)


def test_async_subscriber_runs_on_its_loop(sw: Harness) -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        received: list[str] = []
        finished = asyncio.Event()

        async def on_event(event: ExecutionEvent) -> None:
            assert asyncio.get_running_loop() is loop
            received.append(event.type.value)
            if event.type is EventType.EXECUTION_COMPLETED:
                finished.set()

        subscription = sw.monitor.subscribe(on_event, execution_id="async-1")
        _run("async-1")
        await asyncio.wait_for(finished.wait(), WAIT)
        sw.monitor.unsubscribe(subscription)
        return received

    assert asyncio.run(main())[-1] == "execution.completed"


def test_async_subscriber_without_a_loop_gets_a_private_one(sw: Harness) -> None:
    got = threading.Event()
    loops: list[asyncio.AbstractEventLoop] = []

    async def on_event(event: ExecutionEvent) -> None:
        loops.append(asyncio.get_running_loop())
        got.set()

    subscription = sw.monitor.subscribe(on_event, event_type=EventType.EXECUTION_COMPLETED)
    _run("private")
    assert got.wait(WAIT)
    assert loops[0].is_running()
    sw.monitor.unsubscribe(subscription)


def test_failing_subscriber_is_logged_and_others_still_served(
    sw: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    good = threading.Event()
    failed_once = threading.Event()

    def broken(event: ExecutionEvent) -> None:
        failed_once.set()
        raise RuntimeError("subscriber bug")

    def healthy(event: ExecutionEvent) -> None:
        if event.type is EventType.EXECUTION_COMPLETED:
            good.set()

    with caplog.at_level(logging.WARNING, logger="stepwatch.events"):
        broken_sub = sw.monitor.subscribe(broken)
        healthy_sub = sw.monitor.subscribe(healthy)
        _run("x")
        assert good.wait(WAIT)
        assert failed_once.wait(WAIT)
        assert broken_sub.drain(WAIT)
    assert broken_sub.failures == 4
    assert any("broken" in r.getMessage() for r in caplog.records)
    sw.monitor.unsubscribe(broken_sub)
    sw.monitor.unsubscribe(healthy_sub)


def test_slow_subscriber_never_holds_up_the_engine(sw: Harness) -> None:
    release = threading.Event()

    def slow(event: ExecutionEvent) -> None:
        release.wait(1.0)  # one second per event, unless released at the end

    subscription = sw.monitor.subscribe(slow)
    with stepwatch.execution("busy", execution_id="busy-1") as ex:
        for n in range(10_000):
            with ex.step(f"s{n}"):
                pass
    published = len(sw.monitor.events(execution_id="busy-1"))
    assert published == 10_000  # bounded by the history; 20,002 were published
    # 20,002 events were published for the subscriber. Had publishing waited on it,
    # at one second per event the run could not have ended before it had handled
    # them all (five and a half hours). It has handled a handful; the overflow
    # beyond its bounded queue was dropped and counted.
    assert subscription.delivered < 100
    assert subscription.pending <= 1_000
    assert subscription.dropped >= 20_002 - 1_000 - 100
    sw.monitor.unsubscribe(subscription)
    release.set()


def test_unsubscribe_stops_delivery_at_once() -> None:
    clock = FakeClock()
    bus = EventBus(clock, max_queue=10)
    gate = threading.Event()
    entered = threading.Event()
    delivered: list[int] = []

    finished = threading.Event()

    def blocked(event: ExecutionEvent) -> None:
        entered.set()
        gate.wait(WAIT)
        delivered.append(event.seq)
        finished.set()

    subscription = bus.subscribe(blocked)
    for _ in range(5):
        bus.publish(EventType.STEP_STARTED, "u", {})
    assert entered.wait(WAIT)
    bus.unsubscribe(subscription)
    gate.set()
    bus.publish(EventType.STEP_STARTED, "u", {})
    # The callback in flight finishes; nothing queued behind it is delivered.
    assert subscription.drain(WAIT)
    assert finished.wait(WAIT)
    assert delivered == [1]
    assert subscription.pending == 0
    bus.close()


def test_subscribe_validates_arguments(sw: Harness) -> None:
    with pytest.raises(TypeError, match="callback"):
        sw.monitor.subscribe(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nope"):
        sw.monitor.subscribe(print, event_type="nope")


def test_tail_follows_the_history_with_a_cursor_past_what_filters_skip() -> None:
    bus = EventBus(FakeClock())
    assert bus.tail(0) == ([], 0) and bus.last_seq == 0
    threads = threading.active_count()
    for index in range(5):
        bus.publish(EventType.STEP_STARTED, f"e-{index}", {})
        bus.publish(EventType.STEP_COMPLETED, f"e-{index}", {})
    assert threading.active_count() == threads  # a reader is no subscriber: no thread
    started, cursor = bus.tail(0, event_type=EventType.STEP_STARTED)
    assert [event.execution_id for event in started] == [f"e-{i}" for i in range(5)]
    assert cursor == 10 == bus.last_seq  # past the skipped step.completed events too
    assert bus.tail(cursor) == ([], 10)
    latest, cursor = bus.tail(4, limit=2)
    assert [event.seq for event in latest] == [9, 10]  # a lagging reader keeps the newest
    bus.publish(EventType.STEP_STARTED, "late", {})
    late, cursor = bus.tail(cursor, execution_id="late")
    assert [event.execution_id for event in late] == ["late"] and cursor == 11
    assert not bus.closed
    bus.close()
    assert bus.closed


_KEYS = ("step", "step_type", "attempt")
_operation = st.tuples(
    st.booleans(),  # by value (record) or as a dict (publish)
    st.sampled_from([EventType.STEP_STARTED, EventType.STEP_COMPLETED]),
    st.sampled_from(["a", "b", None]),
)


@given(
    max_history=st.integers(min_value=1, max_value=7),
    operations=st.lists(_operation, max_size=30),
    since=st.integers(min_value=0, max_value=35),
    limit=st.none() | st.integers(min_value=0, max_value=9),
    execution_id=st.sampled_from(["a", "b", None]),
    event_type=st.sampled_from([EventType.STEP_STARTED, EventType.STEP_COMPLETED, None]),
)
def test_the_history_ring_answers_as_a_list_of_every_event_would(
    max_history: int,
    operations: list[tuple[bool, EventType, str | None]],
    since: int,
    limit: int | None,
    execution_id: str | None,
    event_type: EventType | None,
) -> None:
    """Reference: all events in a list, the last ``max_history`` kept, filtered in order."""
    bus = EventBus(FakeClock(), max_history=max_history)
    every: list[tuple[int, EventType, str | None, dict[str, object]]] = []
    for seq, (by_value, kind, owner) in enumerate(operations, start=1):
        values = (f"s{seq}", None, seq)
        if by_value:
            bus.record(kind, owner, _KEYS, values, float(seq))
        else:
            bus.publish(kind, owner, dict(zip(_KEYS, values, strict=True)), float(seq))
        every.append((seq, kind, owner, dict(zip(_KEYS, values, strict=True))))
    kept = every[-max_history:]
    wanted = [
        event
        for event in kept
        if event[0] > since
        and (execution_id is None or event[2] == execution_id)
        and (event_type is None or event[1] is event_type)
    ]
    if limit is not None:
        wanted = wanted[max(len(wanted) - limit, 0) :] if limit else []
    got = bus.events(since=since, limit=limit, execution_id=execution_id, event_type=event_type)
    assert [(e.seq, e.type, e.execution_id, e.data) for e in got] == wanted
    assert [e.timestamp for e in got] == [float(event[0]) for event in wanted]
    assert len(bus) == len(kept) and bus.last_seq == len(every)
    assert (
        bus.events(since=since, limit=limit, execution_id=execution_id, event_type=event_type)
        == got
    )


def test_step_events_recorded_by_value_read_back_as_their_payloads(sw: Harness) -> None:
    @stepwatch.step("closed early")
    def numbers() -> Generator[int, None, None]:
        yield 1
        yield 2

    with stepwatch.execution("job", execution_id="by-value") as ex:
        with ex.step("one", step_type="t"):
            sw.clock.advance(0.5)
        generator = numbers()
        next(generator)
        generator.close()
    events = sw.events(execution_id="by-value")
    started: semconv.StepStartedData = {"step": "one", "step_type": "t", "attempt": 1}
    assert next(e.data for e in events if e.type is EventType.STEP_STARTED) == started
    completed: list[semconv.StepEndedData] = [
        {"step": "one", "step_type": "t", "outcome": "success", "duration": 0.5, "attempt": 1},
        {
            "step": "closed early",
            "step_type": None,
            "outcome": "skip",
            "duration": 0.0,
            "attempt": 1,
            "reason": "generator closed by its consumer",
        },
    ]
    assert [e.data for e in events if e.type is EventType.STEP_COMPLETED] == completed
    assert [list(e.data) for e in events if e.type is EventType.STEP_COMPLETED] == [
        list(data) for data in completed
    ]  # the keys in the payloads' declared order, as JSON shows them


def test_a_subscriber_gets_step_events_recorded_by_value_at_once(sw: Harness) -> None:
    received: list[ExecutionEvent] = []
    done = threading.Event()

    def collect(event: ExecutionEvent) -> None:
        received.append(event)
        if event.type is EventType.STEP_COMPLETED:
            done.set()

    sw.monitor.subscribe(collect, event_type=None)
    with stepwatch.execution("job", execution_id="live") as ex, ex.step("one"):
        pass
    assert done.wait(WAIT)
    step_events = [event for event in received if event.type.value.startswith("step.")]
    assert [event.type for event in step_events] == [
        EventType.STEP_STARTED,
        EventType.STEP_COMPLETED,
    ]
    assert step_events[0].data == {"step": "one", "step_type": None, "attempt": 1}
    assert step_events == [e for e in sw.events(execution_id="live") if e in step_events]


def test_an_async_callback_raising_cancelled_error_is_a_failure_and_delivery_goes_on() -> None:
    """The callback's own ``CancelledError`` is not its delivery task being cancelled."""
    seen: list[int] = []
    bus = EventBus(FakeClock())

    async def cancels_once(event: ExecutionEvent) -> None:
        seen.append(event.seq)
        if event.seq == 1:
            raise asyncio.CancelledError

    subscription = bus.subscribe(cancels_once)
    try:
        for index in range(5):
            bus.publish(EventType.EXECUTION_STARTED, f"e-{index}", {})
        assert subscription.drain(WAIT)
        assert seen == [1, 2, 3, 4, 5]
        assert subscription.failures == 1
        assert subscription.delivered == 4
        assert subscription.active and subscription.pending == 0
    finally:
        bus.close()


class _Listener:
    def __init__(self) -> None:
        self.seen: list[int] = []

    def on_event(self, event: ExecutionEvent) -> None:
        self.seen.append(event.seq)


def test_unsubscribe_finds_a_bound_method_by_equality() -> None:
    """Each ``obj.method`` is a new bound method: ``unsubscribe`` compares with ``==``."""
    bus = EventBus(FakeClock())
    listener = _Listener()
    subscription = bus.subscribe(listener.on_event)
    bus.unsubscribe(listener.on_event)
    try:
        assert not subscription.active
        assert bus.subscriptions == ()
        bus.publish(EventType.EXECUTION_STARTED, "e", {})
        assert listener.seen == []
    finally:
        bus.close()


@pytest.mark.internal_errors
def test_emit_publishes_an_engines_own_event_outside_any_execution(sw: Harness) -> None:
    sw.monitor.emit("worker.joined", host="w-1", slots=4, bad=object())
    sw.monitor.emit("deploy", execution_id="d-7")
    sw.monitor.emit("")  # refused, never raised
    events = sw.monitor.events(event_type=EventType.CUSTOM)
    assert [(e.execution_id, e.data) for e in events] == [
        (None, {"name": None, "event": "worker.joined", "attributes": {"host": "w-1", "slots": 4}}),
        ("d-7", {"name": None, "event": "deploy", "attributes": {}}),
    ]
    assert testing.internal_errors().keys() >= {"monitor.emit.name"}


def test_events_filter_by_several_types_workflow_and_time_range(sw: Harness) -> None:
    start = sw.clock()
    for index, name in enumerate(["nightly", "hourly", "nightly"]):
        with stepwatch.execution(name, execution_id=f"e-{index}") as ex, ex.step("load"):
            sw.clock.advance(10)
    monitor = sw.monitor
    nightly = monitor.events(workflow="nightly")
    assert {e.execution_id for e in nightly} == {"e-0", "e-2"}
    assert {e.type for e in nightly} >= {EventType.STEP_STARTED, EventType.EXECUTION_COMPLETED}
    ends = monitor.events(event_type=["step.completed", EventType.EXECUTION_COMPLETED])
    assert [e.type.value for e in ends] == ["step.completed", "execution.completed"] * 3
    middle = monitor.events(after=start + 10, before=datetime.fromtimestamp(start + 20, UTC))
    assert {e.execution_id for e in middle} == {"e-0", "e-1"}  # e-0 ended at +10, e-1 ran to +20
    assert all(start + 10 <= e.timestamp < start + 20 for e in middle)
    last = monitor.events(workflow="nightly", event_type=["step.started"], limit=1)
    assert [(e.execution_id, e.type) for e in last] == [("e-2", EventType.STEP_STARTED)]
    with pytest.raises(ValueError, match="event_type"):
        monitor.events(event_type=["step.started", "nope"])
    with pytest.raises(TypeError, match="after"):
        monitor.events(after="noon")  # type: ignore[arg-type]
