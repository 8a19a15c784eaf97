"""Sends the test's six dramatiq messages under one producer span; prints its trace id."""

from __future__ import annotations

from opentelemetry import trace

from tests.engines.dramatiq_app import add, boom, flaky, slow

with trace.get_tracer("producer").start_as_current_span("producer") as span:
    for i in range(3):
        add.send(i, i)
    boom.send()
    slow.send()
    flaky.send()
    print(f"trace {span.get_span_context().trace_id:032x}", flush=True)
