"""Queueing per the messaging conventions: the run keeps its ambient parent and links the enqueue.

An execution started from an :func:`stepwatch.enqueue` carrier links the
enqueue span; it takes the enqueue as parent only when no span is current
(then the trace continues across the queue); with a current span (an
engine's own consumer span, say) that span stays the parent.
"""

from __future__ import annotations

import json
import subprocess
import sys

from opentelemetry import trace

import stepwatch
from stepwatch.testing import Harness

CONSUMER = """
import json, sys
from opentelemetry import trace
import stepwatch
from stepwatch.testing import capture

carrier = json.loads(sys.argv[1])
with capture() as sw:
    tracer = sw.monitor.tracer_provider.get_tracer("engine")
    with tracer.start_as_current_span("engine run"):
        with stepwatch.execution("queued", carrier=carrier):
            pass
    with stepwatch.execution("queued", carrier=carrier):  # a redelivery, nothing current
        pass
    out = []
    for span in sw.spans("execution queued"):
        out.append({
            "trace": span.context.trace_id,
            "parent": span.parent.span_id if span.parent else None,
            "links": [[l.context.trace_id, l.context.span_id] for l in span.links],
        })
    engine = sw.span("engine run")
    print(json.dumps({"runs": out, "engine": [engine.context.trace_id, engine.context.span_id]}))
"""


def test_no_current_span_continues_the_trace_and_links(sw: Harness) -> None:
    carrier = stepwatch.enqueue("queued", execution_id="q-1", queue="orders")
    with stepwatch.execution("queued", carrier=carrier):
        pass
    enqueue = sw.span("enqueue queued")
    run = sw.span("execution queued")
    assert run.parent is not None and run.parent.span_id == enqueue.context.span_id
    assert [link.context.span_id for link in run.links] == [enqueue.context.span_id]
    assert dict(enqueue.attributes or {})["messaging.destination.name"] == "orders"


def test_a_current_span_stays_the_parent_and_the_enqueue_is_linked(sw: Harness) -> None:
    carrier = stepwatch.enqueue("queued", execution_id="q-2")
    tracer = trace.get_tracer("engine", tracer_provider=sw.monitor.tracer_provider)
    with tracer.start_as_current_span("engine run"), stepwatch.execution("queued", carrier=carrier):
        pass
    enqueue, engine, run = (
        sw.span("enqueue queued"),
        sw.span("engine run"),
        sw.span("execution queued"),
    )
    assert run.parent is not None and run.parent.span_id == engine.context.span_id
    assert run.context.trace_id == engine.context.trace_id  # one trace: the engine's
    assert [(link.context.trace_id, link.context.span_id) for link in run.links] == [
        (enqueue.context.trace_id, enqueue.context.span_id)
    ]


def test_across_processes_parent_and_link(sw: Harness) -> None:
    carrier = stepwatch.enqueue("queued", execution_id="q-3")
    enqueue = sw.span("enqueue queued")
    result = subprocess.run(
        [sys.executable, "-c", CONSUMER, json.dumps(carrier)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(result.stdout)
    under_engine, redelivered = report["runs"]
    created = [enqueue.context.trace_id, enqueue.context.span_id]
    assert under_engine["links"] == [created] and redelivered["links"] == [created]
    assert under_engine["parent"] == report["engine"][1]
    assert under_engine["trace"] == report["engine"][0]
    assert redelivered["parent"] == enqueue.context.span_id  # nothing current: continued
    assert redelivered["trace"] == enqueue.context.trace_id
