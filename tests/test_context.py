"""No cross-talk: threads, asyncio tasks and abandoned generators keep their own context."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import ThreadPoolExecutor

import stepwatch
from stepwatch.testing import Harness


def _children_by_parent(sw: Harness) -> dict[int, set[str]]:
    result: dict[int, set[str]] = {}
    for span in sw.spans():
        if span.name.startswith("step") and span.parent is not None:
            result.setdefault(span.parent.span_id, set()).add(span.name)
    return result


def test_thread_pool_executions_see_only_their_own_steps(sw: Harness) -> None:
    @stepwatch.execution("threaded", execution_id=lambda i: f"t-{i}")
    def run(i: int) -> int:
        for k in range(3):
            with stepwatch.step(f"s{i}-{k}") as st:
                assert st.execution is stepwatch.current_execution()
                assert st.execution is not None and st.execution.id == f"t-{i}"
        return i

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert sorted(pool.map(run, range(64))) == list(range(64))

    executions = {
        s.context.span_id: str(dict(s.attributes or {})["workflow.execution.id"])
        for s in sw.spans("execution threaded")
        if s.context is not None
    }
    assert len(executions) == 64
    children = _children_by_parent(sw)
    assert set(children) == set(executions)
    for span_id, execution_id in executions.items():
        i = str(execution_id).split("-")[1]
        assert children[span_id] == {f"step s{i}-{k}" for k in range(3)}
    for n in range(64):
        progress = sw.monitor.progress(f"t-{n}")
        assert progress is not None and progress.completed_steps == 3


def test_asyncio_tasks_see_only_their_own_steps(sw: Harness) -> None:
    @stepwatch.step("leaf")
    async def leaf(i: int) -> int:
        await asyncio.sleep(0)
        current = stepwatch.current_execution()
        assert current is not None and current.id == f"a-{i}"
        return i

    @stepwatch.execution("tasked", execution_id=lambda i: f"a-{i}")
    async def run(i: int) -> int:
        await leaf(i)
        await asyncio.sleep(0)
        return await leaf(i)

    async def main() -> list[int]:
        return await asyncio.gather(*(run(i) for i in range(500)))

    assert asyncio.run(main()) == list(range(500))
    executions = {
        s.context.span_id: str(dict(s.attributes or {})["workflow.execution.id"])
        for s in sw.spans("execution tasked")
        if s.context is not None
    }
    assert len(executions) == 500
    leaves = sw.spans("step leaf")
    assert len(leaves) == 1000
    per_parent: dict[int, int] = {}
    for span in leaves:
        assert span.parent is not None and span.parent.span_id in executions
        per_parent[span.parent.span_id] = per_parent.get(span.parent.span_id, 0) + 1
    assert set(per_parent.values()) == {2}


def test_abandoned_generator_does_not_parent_later_spans(sw: Harness) -> None:
    @stepwatch.step("producer")
    def producer() -> Iterator[int]:
        yield 1
        yield 2

    gen = producer()
    assert next(gen) == 1
    # Suspended mid-iteration: its span is open but not current.
    assert stepwatch.current_step() is None
    with stepwatch.step("unrelated"):
        pass
    unrelated = sw.span("step unrelated")
    assert unrelated.parent is None
    del gen
    gc.collect()
    producer_span = sw.span("step producer")
    assert dict(producer_span.attributes or {})["workflow.task.outcome"] == "skip"
    with stepwatch.step("after"):
        pass
    assert sw.span("step after").parent is None


def test_steps_inside_generator_body_parent_to_it(sw: Harness) -> None:
    @stepwatch.step("outer_gen")
    def outer_gen() -> Iterator[int]:
        with stepwatch.step("inside"):
            pass
        yield 1

    assert list(outer_gen()) == [1]
    assert sw.parent(sw.span("step inside")) is sw.span("step outer_gen")


def test_abandoned_async_generator_does_not_leak(sw: Harness) -> None:
    @stepwatch.step("aproducer")
    async def aproducer() -> AsyncGenerator[int, None]:
        yield 1
        yield 2

    async def main() -> None:
        agen = aproducer()
        assert await agen.__anext__() == 1
        assert stepwatch.current_step() is None
        with stepwatch.step("aunrelated"):
            pass
        await agen.aclose()

    asyncio.run(main())
    assert sw.span("step aunrelated").parent is None
    assert sw.attributes("step aproducer")["workflow.task.outcome"] == "skip"


def test_execution_step_from_thread_without_context_parents_to_execution(sw: Harness) -> None:
    with stepwatch.execution("parent") as ex, ThreadPoolExecutor(1) as pool:

        def in_thread() -> None:
            assert stepwatch.current_execution() is None  # context not propagated
            with ex.step("remote"):
                pass

        pool.submit(in_thread).result(timeout=10)
    assert sw.parent(sw.span("step remote")) is sw.span("execution parent")
    assert ex.progress().completed_steps == 1


def test_a_scope_shared_by_threads_ends_each_threads_own_run(sw: Harness) -> None:
    """A ``with`` handed to another thread ends its own run, never one still inside its ``with``."""
    import contextlib
    import threading

    scope = stepwatch.execution("shared")
    handed = contextlib.ExitStack()
    entered: list[stepwatch.Execution] = []
    inside = threading.Event()
    release = threading.Event()

    def enter_and_hand_over() -> None:
        entered.append(handed.enter_context(scope))

    def stay_inside() -> None:
        with scope as ex:
            entered.append(ex)
            inside.set()
            assert release.wait(30.0)

    first = threading.Thread(target=enter_and_hand_over)
    first.start()
    first.join(30.0)
    second = threading.Thread(target=stay_inside)
    second.start()
    assert inside.wait(30.0)
    closer = threading.Thread(target=handed.close)  # the first thread's exit, elsewhere
    closer.start()
    closer.join(30.0)
    handed_over, still_inside = entered
    assert handed_over.outcome is not None  # ended by the handed-over exit
    assert still_inside.outcome is None  # still running: its thread is inside its ``with``
    assert [p.execution_id for p in sw.monitor.active_executions()] == [still_inside.id]
    release.set()
    second.join(30.0)
    assert sw.monitor.active_executions() == []
    assert {p.execution_id for p in sw.monitor.active_executions()} == set()
    ended = sw.monitor.progress(still_inside.id)
    assert ended is not None and ended.state == "success"
