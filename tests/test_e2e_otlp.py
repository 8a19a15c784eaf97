"""End to end over real OTLP: a subprocess configured only by OTEL_* variables, real receivers."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

from tests.helpers import run_engine
from tests.otlp_receivers import Received, grpc_receiver, http_receiver

Receiver = Callable[[], AbstractContextManager[tuple[str, Received]]]

STATUS_ERROR = 2  # opentelemetry.proto.trace.v1.Status.STATUS_CODE_ERROR
KIND_PRODUCER = 4


def run_otlp_engine(endpoint: str, protocol: str) -> subprocess.CompletedProcess[str]:
    return run_engine(
        "tests.engines.otlp_engine",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
        OTEL_SERVICE_NAME="e2e-engine",
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=test",
        OTEL_BSP_SCHEDULE_DELAY="100",
    )


@pytest.fixture(params=["grpc", "http/protobuf"])
def exported(request: pytest.FixtureRequest) -> Iterator[Received]:
    protocol: str = request.param
    receiver = grpc_receiver if protocol == "grpc" else http_receiver
    with receiver() as (endpoint, received):
        result = run_otlp_engine(endpoint, protocol)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == "done"
        # shutdown() flushed both signals before the process exited.
        assert received.wait_for(lambda r: len(r.spans) >= 9 and len(r.metrics) >= 5)
        yield received


def test_spans_names_attributes_and_resource(exported: Received) -> None:
    names = exported.span_names()
    assert {"execution e2e-job", "step fetch", "step charge", "enqueue e2e-job"} <= names
    executions = [s for s in exported.spans if s.name == "execution e2e-job"]
    assert len(executions) == 3
    for span in exported.spans:
        assert span.resource["service.name"] == "e2e-engine"
        assert span.resource["deployment.environment.name"] == "test"
        assert span.scope == "stepwatch"
    by_id = {s.attributes["workflow.execution.id"]: s for s in executions}
    good = by_id["order-1"]
    assert good.attributes["workflow.definition.name"] == "e2e-job"
    assert good.attributes["workflow.execution.outcome"] == "success"
    assert good.attributes["workflow.execution.steps.total"] == 2
    assert good.attributes["workflow.execution.steps.completed"] == 2
    assert [name for name, _ in good.events] == [
        "execution.started",
        "execution.completed",
        "sla.violated",
    ]
    steps = [s for s in exported.spans if s.name == "step fetch" and s.trace_id == good.trace_id]
    assert steps[0].parent_span_id == good.span_id
    assert steps[0].attributes["workflow.task.type"] == "http"
    assert [name for name, _ in steps[0].events] == ["step.progress"]


def test_failure_status_exception_and_error_type(exported: Received) -> None:
    failed = next(
        s
        for s in exported.spans
        if s.name == "execution e2e-job" and s.attributes["workflow.execution.id"] == "order-3"
    )
    assert failed.status_code == STATUS_ERROR
    assert failed.attributes["workflow.execution.outcome"] == "failure"
    assert failed.attributes["error.type"] == "UpstreamError"  # defined in __main__
    assert [name for name, _ in failed.events][-2:] == ["exception", "execution.failed"]
    charge = next(
        s for s in exported.spans if s.name == "step charge" and s.trace_id == failed.trace_id
    )
    assert charge.status_code == STATUS_ERROR
    assert charge.attributes["workflow.task.outcome"] == "failure"


def test_enqueue_and_approval_on_one_trace(exported: Received) -> None:
    approved = next(
        s
        for s in exported.spans
        if s.name == "execution e2e-job" and s.attributes["workflow.execution.id"] == "order-2"
    )
    enqueue = next(
        s
        for s in exported.spans
        if s.name == "enqueue e2e-job" and s.attributes["workflow.execution.id"] == "order-2"
    )
    assert enqueue.kind == KIND_PRODUCER
    assert approved.trace_id == enqueue.trace_id
    assert approved.parent_span_id == enqueue.span_id
    assert [name for name, _ in enqueue.events] == ["execution.created", "execution.queued"]
    event_names = [name for name, _ in approved.events]
    assert event_names.index("approval.requested") < event_names.index("approval.approved")
    started = dict(approved.events)["execution.started"]
    assert started["workflow.execution.queue_wait"] >= 0


def test_metrics_names_units_and_attributes(exported: Received) -> None:
    units = {m.name: m.unit for m in exported.metrics}
    assert units == {
        "workflow.execution.duration": "s",
        "workflow.execution.active": "{execution}",
        "workflow.task.duration": "s",
        "workflow.execution.sla.violations": "{violation}",
        "workflow.approval.duration": "s",
    }
    kinds = {m.name: m.kind for m in exported.metrics}
    assert kinds["workflow.execution.duration"] == "histogram"
    assert kinds["workflow.execution.active"] == "sum"
    assert kinds["workflow.execution.sla.violations"] == "sum"
    durations = [m for m in exported.metrics if m.name == "workflow.execution.duration"]
    attribute_sets = {tuple(sorted(p["attributes"].items())) for m in durations for p in m.points}
    assert (
        ("workflow.definition.name", "e2e-job"),
        ("workflow.execution.state", "pending"),
    ) in attribute_sets
    outcomes = {dict(a).get("workflow.execution.outcome") for a in attribute_sets}
    assert {"success", "failure"} <= outcomes
    for metric in exported.metrics:
        for point in metric.points:
            assert "workflow.execution.id" not in point["attributes"]
            assert "workflow.task.name" not in point["attributes"]
            assert metric.resource["service.name"] == "e2e-engine"
