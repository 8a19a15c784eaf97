"""Metric names, units and attribute sets exactly per the contract; bounded labels."""

from __future__ import annotations

import pytest

import stepwatch
from stepwatch import semconv
from stepwatch.testing import Harness

CONTRACT = {
    "workflow.execution.duration": ("s", semconv.EXECUTION_METRIC_ATTRIBUTES),
    "workflow.execution.active": (
        "{execution}",
        {"workflow.definition.name", "workflow.execution.state"},
    ),
    "workflow.task.duration": ("s", semconv.STEP_METRIC_ATTRIBUTES),
    "workflow.execution.sla.violations": ("{violation}", {"workflow.definition.name"}),
    "workflow.approval.duration": ("s", semconv.APPROVAL_METRIC_ATTRIBUTES),
}


def _workload(sw: Harness) -> None:
    carrier = stepwatch.enqueue("pipeline", execution_id="p-1")
    sw.clock.advance(4)

    @stepwatch.execution("pipeline", total_steps=2, sla=1.0, carrier=lambda: carrier)
    def pipeline() -> None:
        with stepwatch.step("secret-step-name-1", step_type="http"):
            sw.clock.advance(0.5)
        ex = stepwatch.current_execution()
        assert ex is not None
        ex.request_approval(approver="ops")
        sw.clock.advance(3)
        ex.approve(by="alice")
        with (
            pytest.raises(ValueError, match="x"),
            stepwatch.step("secret-step-name-2", step_type="db"),
        ):
            raise ValueError("x")

    pipeline()


def test_names_units_and_attribute_keys(sw: Harness) -> None:
    _workload(sw)
    seen = {m.name: m for m in sw.metrics()}
    assert set(seen) == set(CONTRACT)
    for name, (unit, allowed) in CONTRACT.items():
        metric = seen[name]
        assert metric.unit == unit, name
        assert metric.description
        for point in metric.data.data_points:
            keys = set(point.attributes or {})
            assert keys <= set(allowed), (name, keys)
            values = {str(v) for v in (point.attributes or {}).values()}
            assert not any("secret" in v or v == "p-1" for v in values), (name, values)


def test_queue_wait_and_active(sw: Harness) -> None:
    _workload(sw)
    (wait,) = sw.metric_points(
        "workflow.execution.duration", {"workflow.execution.state": "pending"}
    )
    assert wait.attributes == {
        "workflow.definition.name": "pipeline",
        "workflow.execution.state": "pending",
    }
    assert wait.value == pytest.approx(4.0)
    active = {
        p.attributes["workflow.execution.state"]: p.value
        for p in sw.metric_points("workflow.execution.active")
    }
    assert active == {"pending": 0, "executing": 0}


def test_execution_duration_and_sla(sw: Harness) -> None:
    _workload(sw)
    (run,) = sw.metric_points(
        "workflow.execution.duration", {"workflow.execution.state": "executing"}
    )
    assert run.value == pytest.approx(3.5)
    assert run.attributes["workflow.execution.outcome"] == "success"
    (violations,) = sw.metric_points("workflow.execution.sla.violations")
    assert violations.value == 1
    assert violations.attributes == {"workflow.definition.name": "pipeline"}
    span = sw.span("execution pipeline")
    assert "sla.violated" in [e.name for e in span.events]
    assert sw.events("sla.violated")[0].execution_id == "p-1"


def test_no_sla_violation_within_sla(sw: Harness) -> None:
    with stepwatch.execution("quick", sla=10.0):
        sw.clock.advance(9.9)
    assert sw.metric_points("workflow.execution.sla.violations") == []


def test_task_duration_points(sw: Harness) -> None:
    _workload(sw)
    points = {
        (p.attributes["workflow.task.type"], p.attributes["workflow.task.outcome"]): p
        for p in sw.metric_points("workflow.task.duration")
    }
    assert set(points) == {("http", "success"), ("db", "failure")}
    assert points["http", "success"].value == pytest.approx(0.5)
    assert points["db", "failure"].attributes["error.type"] == "ValueError"
    assert points["db", "failure"].attributes["workflow.definition.name"] == "pipeline"


def test_approval_duration(sw: Harness) -> None:
    _workload(sw)
    (approval,) = sw.metric_points("workflow.approval.duration")
    assert approval.value == pytest.approx(3.0)
    assert approval.attributes == {
        "workflow.definition.name": "pipeline",
        "workflow.approval.outcome": "approved",
    }
    names = [e.name for e in sw.span("execution pipeline").events]
    assert names.index("approval.requested") < names.index("approval.approved")
    approved = sw.events("approval.approved")[0]
    assert approved.data == {"name": "pipeline", "outcome": "approved", "by": "alice"}


def test_rejection(sw: Harness) -> None:
    with stepwatch.execution("gate") as ex:
        ex.request_approval(approver="ops", ticket="T-1")
        sw.clock.advance(2)
        ex.reject(by="bob", reason="risky")
    (point,) = sw.metric_points("workflow.approval.duration")
    assert point.attributes["workflow.approval.outcome"] == "rejected"
    rejected = [e for e in sw.span("execution gate").events if e.name == "approval.rejected"]
    assert rejected[0].attributes is not None
    assert rejected[0].attributes["workflow.approval.reason"] == "risky"
    requested = sw.events("approval.requested")[0]
    assert requested.data == {"name": "gate", "ticket": "T-1", "approver": "ops"}


def test_buckets_are_in_seconds(sw: Harness) -> None:
    with stepwatch.step("b"):
        sw.clock.advance(2.0)
    (point,) = sw.metric_points("workflow.task.duration")
    assert tuple(point.point.explicit_bounds) == semconv.DURATION_BUCKETS
