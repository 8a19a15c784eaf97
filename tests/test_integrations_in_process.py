"""The engine integrations in one process, on the engines' real in-process parts.

Huey's ``MemoryHuey`` and dramatiq's ``StubBroker`` with a real ``Worker``
are the engines' own in-memory backends, not mocks: the cases the
subprocess tests cannot reach cheaply (a delayed-queue move is not a new
enqueue, revocation and skipping are cancellations, ``instrument()`` /
``uninstrument()`` are idempotent) run here against them.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

import dramatiq
import pytest
from dramatiq.brokers.stub import StubBroker
from dramatiq.middleware import Middleware, Retries, SkipMessage
from huey import MemoryHuey

from stepwatch.integrations.dramatiq import DramatiqInstrumentor, StepwatchMiddleware
from stepwatch.integrations.huey import HOOK_NAME, HueyInstrumentor
from stepwatch.testing import Harness


def _outcomes(sw: Harness) -> list[tuple[str, Any]]:
    return sorted(
        (span.name, (span.attributes or {}).get("workflow.execution.outcome"))
        for span in sw.spans()
        if span.name.startswith(("execution ", "enqueue "))
    )


# ----------------------------------------------------------------------------- huey
@pytest.fixture
def huey_instrumented() -> Iterator[None]:
    instrumentor = HueyInstrumentor()
    instrumentor.instrument()
    instrumentor.instrument()  # idempotent
    try:
        yield
    finally:
        instrumentor.uninstrument()


def _huey() -> tuple[MemoryHuey, Any]:
    huey = MemoryHuey("orders", utc=False)

    @huey.task()  # type: ignore[untyped-decorator]
    def add(x: int, y: int) -> int:
        return x + y

    return huey, add


def test_huey_scheduled_task_moved_to_the_queue_is_one_enqueue(
    sw: Harness, huey_instrumented: None
) -> None:
    huey, add = _huey()
    add.schedule((1, 2), delay=60)
    summary = sw.monitor.summary()
    assert (summary.scheduled, summary.queue_depth) == (1, 0)  # scheduled: not backlog
    now = datetime.datetime.now()
    huey.execute(huey.dequeue(), timestamp=now)  # not due: Huey moves it to its schedule
    for task in huey.read_schedule(now + datetime.timedelta(seconds=120)):
        huey.enqueue(task)  # due: back on the queue (the consumer's scheduler does this)
    assert huey.execute(huey.dequeue(), timestamp=now + datetime.timedelta(seconds=120)) == 3
    assert _outcomes(sw) == [("enqueue add", None), ("execution add", "success")]
    assert sw.monitor.summary().queue_depth == 0


def test_huey_revoked_task_is_a_cancellation(sw: Harness, huey_instrumented: None) -> None:
    huey, add = _huey()
    add(1, 2).revoke()
    huey.execute(huey.dequeue())
    assert _outcomes(sw) == [("enqueue add", None), ("execution add", "cancellation")]
    assert sw.monitor.summary().queue_depth == 0


def test_huey_uninstrument_unhooks(sw: Harness) -> None:
    instrumentor = HueyInstrumentor()
    instrumentor.instrument()
    hooked, _ = _huey()
    instrumentor.uninstrument()
    instrumentor.uninstrument()  # idempotent
    plain, add = _huey()
    add(1, 2)
    assert plain.execute(plain.dequeue()) == 3
    assert HOOK_NAME not in plain._pre_execute
    assert HOOK_NAME not in hooked._pre_execute
    assert _outcomes(sw) == []


# ------------------------------------------------------------------------- dramatiq
@pytest.fixture
def stub_broker() -> Iterator[StubBroker]:
    instrumentor = DramatiqInstrumentor()
    instrumentor.instrument()
    instrumentor.instrument()  # idempotent
    broker = StubBroker()
    broker.emit_after("process_boot")
    previous = dramatiq.get_broker()
    dramatiq.set_broker(broker)
    try:
        yield broker
    finally:
        dramatiq.set_broker(previous)
        instrumentor.uninstrument()


def _run(broker: StubBroker) -> None:
    worker = dramatiq.Worker(broker, worker_timeout=50)
    worker.start()
    try:
        broker.join("default", timeout=30_000)
        worker.join()
    finally:
        worker.stop()


def test_dramatiq_middleware_sits_once_just_before_retries(stub_broker: StubBroker) -> None:
    kinds = [type(m) for m in stub_broker.middleware]
    assert kinds.count(StepwatchMiddleware) == 1
    assert kinds.index(StepwatchMiddleware) + 1 == kinds.index(Retries)


def test_dramatiq_delayed_message_moved_to_its_queue_is_one_enqueue(
    sw: Harness, stub_broker: StubBroker
) -> None:
    @dramatiq.actor(max_retries=0)
    def delayed() -> None:
        pass

    delayed.send_with_options(delay=20)
    summary = sw.monitor.summary()
    assert (summary.scheduled, summary.queue_depth) == (1, 0)  # delayed: not backlog
    _run(stub_broker)
    assert _outcomes(sw) == [("enqueue delayed", None), ("execution delayed", "success")]
    assert sw.monitor.summary().queue_depth == 0


class _Skipper(Middleware):
    def before_process_message(self, broker: Any, message: Any) -> None:
        if message.actor_name == "skipped":
            raise SkipMessage("not today")


def test_dramatiq_skipped_message_is_a_cancellation(sw: Harness, stub_broker: StubBroker) -> None:
    stub_broker.add_middleware(_Skipper())

    @dramatiq.actor(max_retries=0)
    def skipped() -> None:
        raise AssertionError("a skipped message never runs")

    skipped.send()
    _run(stub_broker)
    assert _outcomes(sw) == [("enqueue skipped", None), ("execution skipped", "cancellation")]
    assert sw.monitor.summary().queue_depth == 0


def test_dramatiq_uninstrument_takes_the_middleware_out(sw: Harness) -> None:
    instrumentor = DramatiqInstrumentor()
    instrumentor.instrument()
    broker = StubBroker()
    instrumentor.uninstrument()
    instrumentor.uninstrument()  # idempotent
    assert not any(isinstance(m, StepwatchMiddleware) for m in broker.middleware)
    assert not any(isinstance(m, StepwatchMiddleware) for m in StubBroker().middleware)
