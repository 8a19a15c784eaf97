"""Bad runtime input and stepwatch's own failures never reach the host (see also test_fuzz.py)."""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import TracerProvider

import stepwatch
from stepwatch import testing
from stepwatch.testing import Harness


@pytest.mark.internal_errors
@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((7.5,), {}),
        ((-0.1,), {}),
        ((float("nan"),), {}),
        (("half",), {}),
        ((), {"done": -1, "total": 3}),
        ((), {"done": 5, "total": 3}),
        ((), {"done": 1.5}),
        ((), {"total": True}),
    ],
)
def test_invalid_progress_is_logged_once_and_dropped(
    sw: Harness, caplog: pytest.LogCaptureFixture, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    with caplog.at_level(logging.WARNING, logger="stepwatch"), stepwatch.step("p") as step:
        step.progress(0.25)
        step.progress(*args, **kwargs)
        step.progress(*args, **kwargs)
        assert step.fraction == 0.25
    warnings = [r for r in caplog.records if "invalid step progress" in r.getMessage()]
    assert len(warnings) == 1
    assert testing.internal_errors()["step.progress.invalid"] == 2


@pytest.mark.internal_errors
def test_calls_after_end_are_ignored(sw: Harness, caplog: pytest.LogCaptureFixture) -> None:
    with stepwatch.execution("done") as ex, ex.step("s") as step:
        pass
    with caplog.at_level(logging.WARNING, logger="stepwatch"):
        step.progress(0.5)
        step.skip("late")
        ex.fail("late")
        ex.set_total_steps(3)
        ex.event("late")
        ex.request_approval()
        ex.approve()
    assert sw.attributes("execution done")["workflow.execution.outcome"] == "success"
    assert step.fraction is None
    errors = testing.internal_errors()
    assert errors["execution.fail.ended"] == 1
    assert errors["step.progress.ended"] == 1


@pytest.mark.internal_errors
def test_invalid_attribute_values_dropped(sw: Harness) -> None:
    with stepwatch.execution("attrs") as ex:
        ex.event("custom", good=1, bad=object(), mixed=[1, "a"], fine=["a", "b"])
        ex.request_approval(approver="ops", weird={"a": 1})
        ex.approve()
    (event,) = [e for e in sw.span("execution attrs").events if e.name == "custom"]
    assert dict(event.attributes or {}) == {"good": 1, "fine": ("a", "b")}
    assert testing.internal_errors()["execution.event.attribute"] == 2


@pytest.mark.internal_errors
def test_approve_without_request_is_ignored(sw: Harness) -> None:
    with stepwatch.execution("noreq") as ex:
        ex.approve(by="x")
    assert sw.metric_points("workflow.approval.duration") == []
    assert testing.internal_errors()["execution.approve.unrequested"] == 1


@pytest.mark.internal_errors
def test_failing_id_callable_falls_back(sw: Harness) -> None:
    def broken(_: int) -> str:
        raise RuntimeError("user bug in id callable")

    @stepwatch.execution("fallback", execution_id=broken)
    def run(x: int) -> int:
        return x

    assert run(4) == 4
    execution_id = sw.attributes("execution fallback")["workflow.execution.id"]
    assert isinstance(execution_id, str) and len(execution_id) == 32
    assert testing.internal_errors()["execution.execution_id"] == 1


@pytest.mark.internal_errors
def test_failing_monitor_is_contained(sw: Harness) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("bus is broken")

    sw.monitor.bus.publish = explode  # type: ignore[method-assign]
    sw.monitor.bus.record = explode  # type: ignore[method-assign]

    @stepwatch.execution("resilient")
    def run() -> str:
        with stepwatch.step("s"):
            return "fine"

    assert run() == "fine"
    assert sw.attributes("execution resilient")["workflow.execution.outcome"] == "success"
    errors = testing.internal_errors()
    assert errors["monitor.execution_started"] == 1
    assert errors["monitor.step_ended"] == 1


class _BrokenTracerProvider(TracerProvider):
    """An SDK provider whose tracer fails: no real part can be made to fail here."""

    def get_tracer(self, *args: Any, **kwargs: Any) -> Any:
        tracer = super().get_tracer(*args, **kwargs)

        def start_span(*a: Any, **k: Any) -> Any:
            raise RuntimeError("tracer broken")

        tracer.start_span = start_span  # type: ignore[method-assign]
        return tracer


@pytest.mark.internal_errors
def test_failing_tracer_never_reaches_host() -> None:
    monitor = stepwatch.Monitor(tracer_provider=_BrokenTracerProvider())
    monitor.install()
    try:

        @stepwatch.execution("tracerless")
        def run(x: int) -> int:
            with stepwatch.step("s") as st:
                st.progress(0.5)
            return x * 3

        assert run(2) == 6
        with stepwatch.execution("cm") as ex:
            ex.approve()
        assert testing.internal_errors()["execution.start"] >= 2
    finally:
        monitor.shutdown()


def test_suppression_is_honoured(sw: Harness) -> None:
    @stepwatch.execution("quiet")
    def run() -> int:
        with stepwatch.step("inner") as st:
            st.progress(0.5)
        return 1

    token = otel_context.attach(
        otel_context.set_value(otel_context._SUPPRESS_INSTRUMENTATION_KEY, True)
    )
    try:
        assert run() == 1
        carrier = stepwatch.enqueue("quiet", execution_id="q-1")
    finally:
        otel_context.detach(token)
    assert sw.spans() == []
    assert sw.metric_points("workflow.execution.duration") == []
    assert carrier["stepwatch-execution-id"] == "q-1"


@pytest.mark.parametrize("how", ["suppress_instrumentation", "plain key"])
def test_suppression_through_the_public_api_and_the_legacy_key(sw: Harness, how: str) -> None:
    @stepwatch.execution("quiet")
    def run() -> int:
        with stepwatch.step("inner"):
            return 1

    with contextlib.ExitStack() as stack:
        if how == "suppress_instrumentation":
            stack.enter_context(suppress_instrumentation())
        else:
            token = otel_context.attach(otel_context.set_value("suppress_instrumentation", True))
            stack.callback(otel_context.detach, token)
        assert run() == 1
    assert sw.spans() == []
    assert run() == 1  # and observed again once the suppression is gone
    assert [span.name for span in sw.spans()] == ["step inner", "execution quiet"]


@pytest.mark.internal_errors
def test_enqueue_with_bad_input_never_raises(sw: Harness) -> None:
    assert stepwatch.enqueue("", execution_id="x") == {}
    assert stepwatch.enqueue("n", execution_id=None) == {}  # type: ignore[arg-type]
    assert stepwatch.enqueue("n", execution_id="x", carrier=5)["stepwatch-execution-id"] == "x"  # type: ignore[arg-type]


@pytest.mark.internal_errors
def test_garbage_carrier_is_tolerated(sw: Harness) -> None:
    carriers: list[Any] = [{"traceparent": "garbage", "stepwatch-enqueued-at": "soon"}, {"x": 1}, 7]
    for carrier in carriers:

        @stepwatch.execution("garbage", carrier=lambda carrier=carrier: carrier)
        def run() -> str:
            return "ran"

        assert run() == "ran"
    assert len(sw.spans("execution garbage")) == 3


class _UnprintableId:
    def __str__(self) -> str:
        raise RuntimeError("no id for you")


class _HostileCount(int):
    """An int whose comparisons, ``__index__`` and ``repr`` raise."""

    def __lt__(self, other: object) -> bool:
        raise RuntimeError("no comparing")

    def __ge__(self, other: object) -> bool:
        raise RuntimeError("no comparing")

    def __index__(self) -> int:
        raise RuntimeError("no index")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.internal_errors
def test_an_id_whose_str_raises_still_records_the_execution(sw: Harness) -> None:
    hostile: Any = _UnprintableId()

    @stepwatch.execution("hostile-id", execution_id=lambda: hostile)
    def run() -> str:
        return "host result"

    assert run() == "host result"
    (span,) = sw.spans()
    execution_id = span.attributes["workflow.execution.id"]  # type: ignore[index]
    assert isinstance(execution_id, str) and len(execution_id) == 32
    assert sw.monitor.progress(execution_id).state == "success"  # type: ignore[union-attr]
    assert sw.monitor.summary().outcomes["success"] == 1
    assert testing.internal_errors() == {"execution.id.execution_id": 1}


def test_a_hostile_total_steps_int_still_records_the_execution(sw: Harness) -> None:
    @stepwatch.execution("hostile-total", execution_id="ht-1", total_steps=lambda: _HostileCount(3))
    def run() -> str:
        return "host result"

    assert run() == "host result"
    progress = sw.monitor.progress("ht-1")
    assert progress is not None and progress.state == "success"
    assert progress.total_steps == 3 and type(progress.total_steps) is int
    assert sw.monitor.active_executions() == []


class _HostileMeta(type):
    def __hash__(cls) -> int:
        raise RuntimeError("no hash")

    def __eq__(cls, other: object) -> bool:
        raise RuntimeError("no eq")


class _HostileClassError(ValueError, metaclass=_HostileMeta):
    pass


class _RaisingModuleName:
    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq")

    __hash__ = object.__hash__

    def __str__(self) -> str:
        raise RuntimeError("no str")


class _HostileModuleError(ValueError):
    pass


_HostileModuleError.__module__ = _RaisingModuleName()  # type: ignore[assignment]


class _EngineTimeLimit(Exception):
    pass


@pytest.mark.parametrize("error", [_HostileClassError, _HostileModuleError])
def test_a_hostile_exception_class_still_ends_the_execution(
    sw: Harness, error: type[Exception]
) -> None:
    stepwatch.instrument.register_outcome(_EngineTimeLimit, "timeout")  # as integrations do
    try:
        with (
            pytest.raises(error),
            stepwatch.execution("hostile-class", execution_id="hc-1"),
            stepwatch.step("inner"),
        ):
            raise error("boom")
    finally:
        stepwatch.instrument.unregister_outcome(_EngineTimeLimit)
    assert sw.monitor.active_executions() == []
    progress = sw.monitor.progress("hc-1")
    assert progress is not None and progress.state == "failure"
    assert sw.monitor.summary().outcomes["failure"] == 1
    error_type = sw.attributes("execution hostile-class")["error.type"]
    assert isinstance(error_type, str) and error_type.endswith(error.__qualname__)
    assert testing.internal_errors() == {}
