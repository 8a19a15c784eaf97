"""Bad set-up arguments raise at decoration time, naming the argument."""

from __future__ import annotations

from typing import Any

import pytest

import stepwatch


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"name": ""}, ValueError, "name"),
        ({"name": "   "}, ValueError, "name"),
        ({"name": 3}, TypeError, "name"),
        ({"total_steps": -1}, ValueError, "total_steps"),
        ({"total_steps": 2.5}, TypeError, "total_steps"),
        ({"total_steps": True}, TypeError, "total_steps"),
        ({"execution_id": 42}, TypeError, "execution_id"),
        ({"execution_id": ""}, ValueError, "execution_id"),
        ({"sla": 0}, ValueError, "sla"),
        ({"sla": -5}, ValueError, "sla"),
        ({"sla": float("nan")}, ValueError, "sla"),
        ({"sla": "10"}, TypeError, "sla"),
        ({"attributes": ["a"]}, TypeError, "attributes"),
        ({"attributes": {"k": object()}}, TypeError, "attributes"),
        ({"attributes": {"k": [1, "a"]}}, TypeError, "attributes"),
        ({"carrier": 5}, TypeError, "carrier"),
    ],
)
def test_execution_setup_errors(
    kwargs: dict[str, Any], error: type[Exception], argument: str
) -> None:
    name = kwargs.pop("name", "ok")
    with pytest.raises(error, match=argument):
        stepwatch.execution(name, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "argument"),
    [
        ({"name": ""}, ValueError, "name"),
        ({"step_type": ""}, ValueError, "step_type"),
        ({"step_type": 7}, TypeError, "step_type"),
        ({"attributes": {"": 1}}, TypeError, "attributes"),
    ],
)
def test_step_setup_errors(kwargs: dict[str, Any], error: type[Exception], argument: str) -> None:
    name = kwargs.pop("name", "ok")
    with pytest.raises(error, match=argument):
        stepwatch.step(name, **kwargs)


def test_decorating_a_non_callable() -> None:
    with pytest.raises(TypeError, match="wrap functions"):
        stepwatch.step("x")(42)


def test_execution_step_validates_name() -> None:
    with stepwatch.execution("e") as ex, pytest.raises(ValueError, match="name"):
        ex.step("")


def test_configure_rejects_unknown_exporter() -> None:
    with pytest.raises(ValueError, match="exporter"):
        stepwatch.configure(exporter="zipkin", set_global=False)


def test_monitor_rejects_non_callable_clock() -> None:
    with pytest.raises(TypeError, match="clock"):
        stepwatch.Monitor(clock=5)  # type: ignore[arg-type]
