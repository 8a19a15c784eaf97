"""Every kind of callable, bare and with arguments, as decorator and context manager."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator

import pytest

import stepwatch
from stepwatch.semconv import SPAN_EXECUTION, SPAN_STEP
from stepwatch.testing import Harness

EXEC_OUTCOME = "workflow.execution.outcome"
TASK_OUTCOME = "workflow.task.outcome"


@stepwatch.step("sync", step_type="t")
def sync_step(x: int, *, y: int = 1) -> int:
    """Sync doc."""
    return x + y


@stepwatch.step
async def async_step(x: int) -> int:
    """Async doc."""
    await asyncio.sleep(0)
    return x * 2


@stepwatch.step("gen")
def gen_step(n: int) -> Iterator[int]:
    """Generator doc."""
    yield from range(n)
    return


@stepwatch.step("agen")
async def agen_step(n: int) -> AsyncIterator[int]:
    """Async generator doc."""
    for i in range(n):
        await asyncio.sleep(0)
        yield i


class Engine:
    """An engine with every method kind."""

    def __init__(self, base: int) -> None:
        self.base = base

    @stepwatch.step("method")
    def method(self, x: int) -> int:
        """Method doc."""
        return self.base + x

    @stepwatch.step("cm")
    @classmethod
    def cm(cls, x: int) -> str:
        """Classmethod doc."""
        return f"{cls.__name__}:{x}"

    @stepwatch.step("sm")
    @staticmethod
    def sm(x: int) -> int:
        """Staticmethod doc."""
        return -x

    @classmethod
    @stepwatch.step("cm_inner")
    def cm_inner(cls, x: int) -> str:
        return f"{cls.__name__}/{x}"

    @stepwatch.execution("run", execution_id=lambda self_or_x: "fixed")
    def run(self, x: int) -> int:
        return self.method(x) + self.sm(x)


def test_sync_function_span_and_metadata(sw: Harness) -> None:
    assert sync_step(1, y=2) == 3
    span = sw.span("step sync")
    assert span.attributes is not None
    assert span.attributes["workflow.task.name"] == "sync"
    assert span.attributes["workflow.task.type"] == "t"
    assert span.attributes[TASK_OUTCOME] == "success"
    assert sync_step.__name__ == "sync_step"
    assert sync_step.__qualname__ == "sync_step"
    assert sync_step.__doc__ == "Sync doc."
    assert str(inspect.signature(sync_step)) == "(x: 'int', *, y: 'int' = 1) -> 'int'"
    assert not inspect.iscoroutinefunction(sync_step)


async def _run_async() -> int:
    return await async_step(21)


def test_coroutine_function(sw: Harness) -> None:
    assert inspect.iscoroutinefunction(async_step)
    assert async_step.__doc__ == "Async doc."
    assert asyncio.run(_run_async()) == 42
    # Bare decorator: the name defaults to the qualname.
    assert sw.attributes("step async_step")[TASK_OUTCOME] == "success"


def test_coroutine_span_covers_the_work(sw: Harness) -> None:
    @stepwatch.step("slow")
    async def slow() -> None:
        sw.clock.advance(2.5)

    async def main() -> None:
        coro = slow()
        sw.clock.advance(10)  # time between creating and awaiting is not the work
        await coro

    asyncio.run(main())
    span = sw.span("step slow")
    assert span.end_time is not None and span.start_time is not None
    assert (span.end_time - span.start_time) / 1e9 == pytest.approx(2.5)


def test_generator_span_covers_iteration(sw: Harness) -> None:
    assert inspect.isgeneratorfunction(gen_step)
    gen = gen_step(3)
    assert sw.spans("step gen") == []  # nothing runs until iterated
    items = []
    for item in gen:
        items.append(item)
        sw.clock.advance(1)
    assert items == [0, 1, 2]
    span = sw.span("step gen")
    assert sw.attributes("step gen")[TASK_OUTCOME] == "success"
    assert span.end_time is not None and span.start_time is not None
    assert (span.end_time - span.start_time) / 1e9 == pytest.approx(3)


def test_generator_send_throw_and_return_value(sw: Harness) -> None:
    @stepwatch.step("echo")
    def echo() -> Generator[int, int | None, None]:
        received = 0
        while True:
            try:
                value = yield received
            except KeyError:
                received = -1
                continue
            if value is None:
                return
            received = value

    def outer() -> Generator[int, int | None, None]:
        yield from echo()

    gen = echo()
    assert next(gen) == 0
    assert gen.send(5) == 5
    assert gen.throw(KeyError("k")) == -1
    with pytest.raises(StopIteration):
        gen.send(None)
    assert sw.attributes("step echo")[TASK_OUTCOME] == "success"
    assert list(outer()) == [0]


def test_generator_return_value_preserved(sw: Harness) -> None:
    @stepwatch.step("ret")
    def ret() -> Generator[int, None, int]:
        yield 1
        return 99

    def consume() -> Generator[int, None, None]:
        value = yield from ret()
        yield value

    assert list(consume()) == [1, 99]


def test_async_generator(sw: Harness) -> None:
    assert inspect.isasyncgenfunction(agen_step)

    async def main() -> list[int]:
        return [i async for i in agen_step(3)]

    assert asyncio.run(main()) == [0, 1, 2]
    assert sw.attributes("step agen")[TASK_OUTCOME] == "success"


def test_async_generator_asend_and_athrow(sw: Harness) -> None:
    @stepwatch.step("aecho")
    async def aecho() -> AsyncGenerator[int, int | None]:
        value = 0
        while True:
            try:
                got = yield value
            except ValueError:
                got = -1
            if got is None:
                return
            value = got

    async def main() -> list[int]:
        gen = aecho()
        out = [await gen.asend(None), await gen.asend(4), await gen.athrow(ValueError())]
        with pytest.raises(StopAsyncIteration):
            await gen.asend(None)
        return out

    assert asyncio.run(main()) == [0, 4, -1]
    assert sw.attributes("step aecho")[TASK_OUTCOME] == "success"


def test_an_unobserved_async_generator_still_gets_asend_and_athrow(sw: Harness) -> None:
    """Under ``suppress_instrumentation()`` the wrapper still delegates like ``yield from``."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    @stepwatch.step("aecho-unobserved")
    async def aecho() -> AsyncGenerator[int, int | None]:
        value = 0
        while True:
            try:
                got = yield value
            except ValueError:
                got = -1
            if got is None:
                return
            value = got

    async def main() -> list[int]:
        gen = aecho()
        out = [await gen.asend(None), await gen.asend(4), await gen.athrow(ValueError())]
        with pytest.raises(StopAsyncIteration):
            await gen.asend(None)
        return out

    with suppress_instrumentation():
        assert asyncio.run(main()) == [0, 4, -1]
    assert [s.name for s in sw.spans()] == []


def test_methods_classmethods_staticmethods(sw: Harness) -> None:
    engine = Engine(10)
    assert engine.method(1) == 11
    assert Engine.cm(2) == "Engine:2"
    assert engine.cm(3) == "Engine:3"
    assert Engine.sm(4) == -4
    assert engine.sm(5) == -5
    assert Engine.cm_inner(6) == "Engine/6"
    assert Engine.method.__doc__ == "Method doc."
    assert Engine.cm.__doc__ == "Classmethod doc."
    assert Engine.sm.__doc__ == "Staticmethod doc."
    assert Engine.method.__qualname__ == "Engine.method"
    names = sorted(s.name for s in sw.spans())
    assert names == sorted(
        ["step method", "step cm", "step cm", "step sm", "step sm", "step cm_inner"]
    )


def test_execution_on_method_excludes_self_from_id_callable(sw: Harness) -> None:
    assert Engine(1).run(2) == 1
    execution_span = sw.span("execution run")
    assert sw.attributes("execution run")["workflow.execution.id"] == "fixed"
    children = [s for s in sw.spans() if s.name.startswith("step")]
    assert {s.parent.span_id for s in children if s.parent} == {execution_span.context.span_id}


class Ids:
    """Per-call callables see a method's arguments after ``self``/``cls``, however it binds."""

    @stepwatch.execution(execution_id=lambda x: f"m-{x}")
    def method(self, x: int) -> int:
        return x

    @stepwatch.execution(execution_id=lambda x: f"c-{x}")
    @classmethod
    def outer_cm(cls, x: int) -> int:
        return x

    @classmethod
    @stepwatch.execution(execution_id=lambda x: f"i-{x}")
    def inner_cm(cls, x: int) -> int:
        return x

    @stepwatch.execution(execution_id=lambda x: f"s-{x}")
    @staticmethod
    def outer_sm(x: object) -> object:
        return x

    @staticmethod
    @stepwatch.execution(execution_id=lambda x: f"t-{type(x).__name__}")
    def inner_sm(x: object) -> object:
        return x


class _NoClass:
    """A host object whose ``__class__`` raises (``isinstance`` would call it)."""

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        raise RuntimeError("no class for you")


def test_a_first_argument_whose_class_raises_never_fails_the_call(sw: Harness) -> None:
    hostile = _NoClass()
    assert Ids.inner_sm(hostile) is hostile
    assert Ids.outer_sm(hostile) is hostile
    ids = sorted(str(s.attributes["workflow.execution.id"]) for s in sw.spans() if s.attributes)
    assert ids == ["s-" + repr(hostile), "t-_NoClass"]


class MoreIds(Ids):
    pass


def test_per_call_callables_take_a_methods_own_arguments(sw: Harness) -> None:
    ids = MoreIds()
    ids.method(1)
    Ids.method(ids, 2)  # through the class, self passed by hand
    ids.outer_cm(3)
    MoreIds.inner_cm(4)
    ids.outer_sm(5)
    Ids.inner_sm(ids)  # a staticmethod handed an instance keeps it as its argument
    got = sorted(str(s.attributes["workflow.execution.id"]) for s in sw.spans() if s.attributes)
    assert got == ["c-3", "i-4", "m-1", "m-2", "s-5", "t-MoreIds"]


def test_decorated_functions_are_plain_functions(sw: Harness) -> None:
    assert inspect.isfunction(sync_step)
    assert sync_step.__wrapped__.__name__ == "sync_step"  # type: ignore[attr-defined]
    assert inspect.ismethod(Engine(1).method)
    assert vars(sync_step) == {"__wrapped__": sync_step.__wrapped__}  # type: ignore[attr-defined]


def test_parenting_and_counts(sw: Harness) -> None:
    @stepwatch.execution("deploy", total_steps=2, execution_id=lambda n: f"d-{n}")
    def deploy(n: int) -> int:
        sync_step(n)
        with stepwatch.step("inline"):
            pass
        return n

    assert deploy(7) == 7
    root = sw.span("execution deploy")
    assert root.parent is None
    attributes = dict(root.attributes or {})
    assert attributes["workflow.definition.name"] == "deploy"
    assert attributes["workflow.execution.id"] == "d-7"
    assert attributes["workflow.execution.steps.total"] == 2
    assert attributes["workflow.execution.steps.completed"] == 2
    assert attributes["workflow.execution.steps.failed"] == 0
    assert attributes[EXEC_OUTCOME] == "success"
    for child in (sw.span("step sync"), sw.span("step inline")):
        assert child.parent is not None
        assert child.parent.span_id == root.context.span_id
        assert child.context.trace_id == root.context.trace_id


def test_span_names_follow_templates(sw: Harness) -> None:
    with stepwatch.execution("x") as ex, ex.step("y"):
        pass
    assert sw.span(SPAN_EXECUTION.format(name="x"))
    assert sw.span(SPAN_STEP.format(name="y"))


def test_sync_context_managers_and_handles(sw: Harness) -> None:
    with stepwatch.execution("nightly", execution_id="n-42") as ex:
        assert stepwatch.current_execution() is ex
        assert ex.id == "n-42" and ex.name == "nightly"
        with ex.step("validate", step_type="check") as st:
            assert stepwatch.current_step() is st
            assert st.name == "validate" and st.step_type == "check"
            st.progress(done=3, total=10)
        assert stepwatch.current_step() is None
    assert stepwatch.current_execution() is None
    assert sw.parent(sw.span("step validate")) is sw.span("execution nightly")


def test_async_context_managers(sw: Harness) -> None:
    async def main() -> None:
        async with (
            stepwatch.execution("anightly", execution_id="a-1") as ex,
            stepwatch.step("astep") as st,
        ):
            await asyncio.sleep(0)
            assert stepwatch.current_step() is st
            assert st.execution is ex

    asyncio.run(main())
    assert sw.parent(sw.span("step astep")) is sw.span("execution anightly")


def test_one_scope_entered_concurrently_keeps_per_call_state(sw: Harness) -> None:
    scope = stepwatch.step("shared")

    async def worker(i: int) -> str:
        async with scope as st:
            await asyncio.sleep(0)
            assert stepwatch.current_step() is st
            return st.name

    async def main() -> list[str]:
        return await asyncio.gather(*(worker(i) for i in range(20)))

    assert asyncio.run(main()) == ["shared"] * 20
    assert len(sw.spans("step shared")) == 20
    assert len({s.context.span_id for s in sw.spans("step shared")}) == 20


def test_nested_same_scope_object(sw: Harness) -> None:
    scope = stepwatch.step("again")
    with scope as outer, scope as inner:
        assert inner is not outer
        assert stepwatch.current_step() is inner
    spans = sw.spans("step again")
    assert len(spans) == 2
    assert sw.parent(spans[0]) is spans[1]


def test_step_outside_execution_has_span_and_metrics(sw: Harness) -> None:
    assert sync_step(1) == 2
    span = sw.span("step sync")
    assert span.parent is None
    points = sw.metric_points("workflow.task.duration")
    assert [p.attributes for p in points] == [
        {"workflow.task.type": "t", "workflow.task.outcome": "success"}
    ]


def test_decorating_before_a_monitor_is_installed_resolves_at_call_time() -> None:
    @stepwatch.step("early")
    def early() -> int:
        return 5

    from stepwatch.testing import capture

    with capture() as harness:
        assert early() == 5
        assert harness.span("step early")


def test_no_monitor_installed_still_works() -> None:
    # With no Monitor and no global SDK, the API is a no-op: calls still behave.
    @stepwatch.execution("plain")
    def plain(x: int) -> int:
        with stepwatch.step("inner") as st:
            st.progress(0.5)
        return x

    assert plain(3) == 3
    with stepwatch.execution("cm") as ex:
        assert ex.progress().state == "executing"
