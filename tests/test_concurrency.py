"""Threads and tasks in numbers: exact counts, exact progress, no cross-talk, no deadlock."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

import stepwatch
from stepwatch.events import ExecutionEvent
from stepwatch.limits import Limits
from stepwatch.testing import Harness, capture

JOIN_TIMEOUT = 300.0  # a deadlock fails the test instead of hanging it


@pytest.fixture
def fast() -> Iterator[Harness]:
    """Spans sampled out: these tests are about stepwatch's own state, at volume."""
    with capture(sampler=ALWAYS_OFF, limits=Limits(max_finished=20_000)) as harness:
        yield harness


def _run_threads(count: int, target: object, args: tuple[object, ...] = ()) -> None:
    threads = [threading.Thread(target=target, args=(n, *args)) for n in range(count)]  # type: ignore[arg-type]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive(), "deadlock: a worker thread never finished"


def _thread_workload(sw: Harness, threads: int, executions: int, steps: int) -> None:
    crosstalk: list[str] = []

    def worker(number: int) -> None:
        for e in range(executions):
            execution_id = f"t{number}-{e}"
            with stepwatch.execution("threaded", execution_id=execution_id, total_steps=steps):
                for _ in range(steps):
                    with stepwatch.step("s", step_type="unit") as step:
                        current = stepwatch.current_execution()
                        if (
                            current is None
                            or current.id != execution_id
                            or step.execution is not current
                        ):
                            crosstalk.append(execution_id)

    _run_threads(threads, worker)
    assert crosstalk == []
    summary = sw.monitor.summary()
    assert summary.total == threads * executions
    assert summary.outcomes["success"] == threads * executions
    assert summary.steps["unit"].total == threads * executions * steps
    for number in range(threads):
        for e in range(executions):
            progress = sw.monitor.progress(f"t{number}-{e}")
            assert progress is not None
            assert (progress.completed_steps, progress.percent) == (steps, 100.0)


def test_sixteen_threads_ten_thousand_steps_each(fast: Harness) -> None:
    _thread_workload(fast, threads=16, executions=100, steps=100)


def test_thousand_concurrent_asyncio_tasks(fast: Harness) -> None:
    crosstalk: list[str] = []

    @stepwatch.step("leg", step_type="io")
    async def leg(execution_id: str) -> None:
        await asyncio.sleep(0)
        current = stepwatch.current_execution()
        if current is None or current.id != execution_id:
            crosstalk.append(execution_id)

    async def task(number: int) -> None:
        execution_id = f"a-{number}"
        async with stepwatch.execution("tasked", execution_id=execution_id, total_steps=5):
            for _ in range(5):
                await leg(execution_id)

    async def main() -> None:
        await asyncio.wait_for(asyncio.gather(*(task(n) for n in range(1_000))), JOIN_TIMEOUT)

    asyncio.run(main())
    assert crosstalk == []
    summary = fast.monitor.summary()
    assert (summary.total, summary.steps["io"].total) == (1_000, 5_000)
    for number in range(1_000):
        progress = fast.monitor.progress(f"a-{number}")
        assert progress is not None
        assert (progress.completed_steps, progress.state) == (5, "success")


def test_no_races_with_a_tiny_switch_interval(fast: Harness) -> None:
    """Thread switches after nearly every bytecode, with readers and a subscriber running."""
    seen: list[int] = []
    subscription = fast.monitor.subscribe(
        lambda event: seen.append(event.seq), event_type="execution.completed"
    )
    stop = threading.Event()
    query_errors: list[BaseException] = []

    def query() -> None:
        while not stop.is_set():
            try:
                fast.monitor.summary()
                fast.monitor.health(refresh=True)
                fast.monitor.active_executions()
                fast.monitor.events(limit=5)
            except BaseException as exc:  # surfaced below
                query_errors.append(exc)
                return

    reader = threading.Thread(target=query)
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        reader.start()
        _thread_workload(fast, threads=16, executions=25, steps=20)
    finally:
        stop.set()
        reader.join(JOIN_TIMEOUT)
        sys.setswitchinterval(previous)
    assert not reader.is_alive()
    assert query_errors == []
    assert subscription.drain(JOIN_TIMEOUT)
    assert len(seen) + subscription.dropped == 16 * 25
    history: list[ExecutionEvent] = fast.monitor.events()
    assert len(history) == 10_000  # 16,800 published, the history keeps its bound
    seqs = [event.seq for event in history]
    assert seqs == sorted(set(seqs))  # strictly increasing, no duplicates
    assert seqs[-1] == 16 * 25 * (2 + 2 * 20)
