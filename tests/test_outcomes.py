"""The outcome taxonomy on spans, metrics and events; host exceptions re-raised unchanged."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import traceback
from collections.abc import Generator, Iterator

import pytest
from opentelemetry.trace import StatusCode

import stepwatch
from stepwatch import Outcome
from stepwatch.instrument import classify, register_outcome, unregister_outcome
from stepwatch.testing import Harness


class EngineError(Exception):
    pass


CASES: list[tuple[BaseException, Outcome, str | None]] = [
    (EngineError("boom"), Outcome.FAILURE, f"{__name__}.EngineError"),
    (ValueError("bad"), Outcome.FAILURE, "ValueError"),
    (TimeoutError("slow"), Outcome.TIMEOUT, "TimeoutError"),
    (asyncio.TimeoutError(), Outcome.TIMEOUT, "TimeoutError"),  # noqa: UP041 - the alias on purpose
    (concurrent.futures.TimeoutError(), Outcome.TIMEOUT, "TimeoutError"),
    (asyncio.CancelledError(), Outcome.CANCELLATION, None),
    (concurrent.futures.CancelledError(), Outcome.CANCELLATION, None),
    (KeyboardInterrupt(), Outcome.CANCELLATION, None),
    (SystemExit(3), Outcome.CANCELLATION, None),
    (GeneratorExit(), Outcome.CANCELLATION, None),
]


@pytest.mark.parametrize(("exc", "outcome", "error_type"), CASES)
def test_classify(exc: BaseException, outcome: Outcome, error_type: str | None) -> None:
    assert classify(exc) is outcome


def test_classify_success() -> None:
    assert classify(None) is Outcome.SUCCESS


@pytest.mark.parametrize(("exc", "outcome", "error_type"), CASES)
def test_exception_outcome_on_span_metric_and_event(
    sw: Harness, exc: BaseException, outcome: Outcome, error_type: str | None
) -> None:
    @stepwatch.execution("job", execution_id="j-1")
    def job() -> None:
        with stepwatch.step("work", step_type="compute"):
            raise exc

    with pytest.raises(type(exc)) as caught:
        job()
    assert caught.value is exc

    for name, key in (
        ("execution job", "workflow.execution.outcome"),
        ("step work", "workflow.task.outcome"),
    ):
        span = sw.span(name)
        attributes = dict(span.attributes or {})
        assert attributes[key] == outcome.value
        assert attributes.get("error.type") == error_type
        failed = outcome in (Outcome.FAILURE, Outcome.TIMEOUT)
        assert span.status.status_code is (StatusCode.ERROR if failed else StatusCode.UNSET)
        recorded = [e for e in span.events if e.name == "exception"]
        assert len(recorded) == (1 if failed else 0)

    (point,) = sw.metric_points(
        "workflow.execution.duration", {"workflow.execution.state": "executing"}
    )
    assert point.attributes["workflow.execution.outcome"] == outcome.value
    assert point.attributes.get("error.type") == error_type
    (step_point,) = sw.metric_points("workflow.task.duration")
    assert step_point.attributes["workflow.task.outcome"] == outcome.value

    end_event = {
        Outcome.FAILURE: "execution.failed",
        Outcome.TIMEOUT: "execution.timeout",
        Outcome.CANCELLATION: "execution.cancelled",
    }[outcome]
    assert [e.name for e in sw.span("execution job").events][-1] == end_event
    assert sw.events(end_event)[0].execution_id == "j-1"


def _raise_deep() -> None:
    raise EngineError("deep")


def test_host_exception_same_object_and_traceback(sw: Harness) -> None:
    @stepwatch.step("deep")
    def deep() -> None:
        _raise_deep()

    with pytest.raises(EngineError) as caught:
        deep()
    frames = [frame.name for frame in traceback.extract_tb(caught.value.__traceback__)]
    # The host's own frames are all there, innermost last.
    assert frames[-2:] == ["deep", "_raise_deep"]
    assert caught.value.args == ("deep",)


def test_async_exception_reraised_unchanged(sw: Harness) -> None:
    error = EngineError("async")

    @stepwatch.step("afail")
    async def afail() -> None:
        await asyncio.sleep(0)
        raise error

    with pytest.raises(EngineError) as caught:
        asyncio.run(afail())
    assert caught.value is error
    assert sw.attributes("step afail")["workflow.task.outcome"] == "failure"


def test_asyncio_cancellation_is_cancellation(sw: Harness) -> None:
    started = asyncio.Event

    @stepwatch.step("forever")
    async def forever(ready: asyncio.Event) -> None:
        ready.set()
        await asyncio.Event().wait()

    async def main() -> None:
        ready = started()
        task = asyncio.create_task(forever(ready))
        await ready.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    span = sw.span("step forever")
    assert dict(span.attributes or {})["workflow.task.outcome"] == "cancellation"
    assert span.status.status_code is StatusCode.UNSET


def test_asyncio_wait_for_timeout_is_timeout(sw: Harness) -> None:
    @stepwatch.execution("waits")
    async def waits() -> None:
        await asyncio.wait_for(asyncio.Event().wait(), timeout=0.01)

    with pytest.raises(TimeoutError):
        asyncio.run(waits())
    assert sw.attributes("execution waits")["workflow.execution.outcome"] == "timeout"


def test_generator_exception_and_close(sw: Harness) -> None:
    @stepwatch.step("g")
    def g() -> Iterator[int]:
        yield 1
        raise EngineError("in gen")

    gen = g()
    assert next(gen) == 1
    with pytest.raises(EngineError):
        next(gen)
    assert sw.attributes("step g")["workflow.task.outcome"] == "failure"

    sw.clear()
    cleanup: list[str] = []

    @stepwatch.step("closed")
    def closed() -> Generator[int, None, None]:
        try:
            yield 1
            yield 2
        finally:
            cleanup.append("done")

    gen2 = closed()
    next(gen2)
    gen2.close()
    assert cleanup == ["done"]
    # Closed by its consumer after a normal yield: it did what was asked (0.2: skip).
    closed_attributes = sw.attributes("step closed")
    assert closed_attributes["workflow.task.outcome"] == "skip"
    assert closed_attributes["workflow.task.outcome.reason"] == "generator closed by its consumer"


def test_return_values_untouched(sw: Harness) -> None:
    sentinel = object()

    @stepwatch.execution("r")
    def r() -> object:
        return sentinel

    assert r() is sentinel


@pytest.mark.parametrize(
    ("method", "outcome", "status"),
    [
        ("fail", "failure", StatusCode.ERROR),
        ("cancel", "cancellation", StatusCode.UNSET),
        ("timeout", "timeout", StatusCode.ERROR),
    ],
)
def test_explicit_execution_outcomes(
    sw: Harness, method: str, outcome: str, status: StatusCode
) -> None:
    with stepwatch.execution("explicit") as ex:
        getattr(ex, method)("the reason")
    span = sw.span("execution explicit")
    attributes = dict(span.attributes or {})
    assert attributes["workflow.execution.outcome"] == outcome
    assert attributes["workflow.execution.outcome.reason"] == "the reason"
    assert span.status.status_code is status
    if status is StatusCode.ERROR:
        assert attributes["error.type"] == "_OTHER"
        assert span.status.description == "the reason"


def test_exception_wins_over_explicit_outcome(sw: Harness) -> None:
    def both() -> None:
        with stepwatch.execution("both") as ex:
            ex.cancel("first")
            raise EngineError("then")

    with pytest.raises(EngineError):
        both()
    assert sw.attributes("execution both")["workflow.execution.outcome"] == "failure"


def test_skip(sw: Harness) -> None:
    with stepwatch.execution("s") as ex:
        with ex.step("maybe") as st:
            st.skip("not needed")
        assert ex.progress().completed_steps == 1
    attributes = dict(sw.span("step maybe").attributes or {})
    assert attributes["workflow.task.outcome"] == "skip"
    assert attributes["workflow.task.outcome.reason"] == "not needed"


def test_keyboard_interrupt_passes_through_context_manager(sw: Harness) -> None:
    with pytest.raises(KeyboardInterrupt), stepwatch.step("interrupted"):
        raise KeyboardInterrupt
    assert sw.attributes("step interrupted")["workflow.task.outcome"] == "cancellation"
    assert sys.exc_info() == (None, None, None)


class EngineDeadline(Exception):
    pass


class SoftEngineDeadline(EngineDeadline):
    pass


@pytest.fixture
def deadline_is_timeout() -> Iterator[None]:
    register_outcome(EngineDeadline, "timeout")
    try:
        yield
    finally:
        unregister_outcome(EngineDeadline)


def test_registered_exception_maps_executions_and_steps(
    sw: Harness, deadline_is_timeout: None
) -> None:
    with (
        pytest.raises(SoftEngineDeadline),
        stepwatch.execution("limited") as ex,
        ex.step("work"),
    ):
        raise SoftEngineDeadline("the engine's time limit")
    assert sw.attributes("execution limited")["workflow.execution.outcome"] == "timeout"
    assert sw.attributes("execution limited")["error.type"] == f"{__name__}.SoftEngineDeadline"
    assert sw.attributes("step work")["workflow.task.outcome"] == "timeout"
    unregister_outcome(EngineDeadline)
    assert classify(SoftEngineDeadline()) is Outcome.FAILURE


def test_nearest_registered_class_wins(deadline_is_timeout: None) -> None:
    register_outcome(SoftEngineDeadline, Outcome.CANCELLATION)
    try:
        assert classify(SoftEngineDeadline()) is Outcome.CANCELLATION
        assert classify(EngineDeadline()) is Outcome.TIMEOUT
    finally:
        unregister_outcome(SoftEngineDeadline)


@pytest.mark.parametrize(
    ("exception_type", "outcome", "error"),
    [
        (ValueError("not a class"), "timeout", TypeError),
        (int, "timeout", TypeError),
        (EngineDeadline, 3, TypeError),
        (EngineDeadline, "late", ValueError),
        (EngineDeadline, "success", ValueError),
        (EngineDeadline, Outcome.SKIP, ValueError),
    ],
)
def test_register_outcome_refuses_bad_arguments(
    exception_type: object, outcome: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match=r"exception_type|outcome"):
        register_outcome(exception_type, outcome)  # type: ignore[arg-type]
