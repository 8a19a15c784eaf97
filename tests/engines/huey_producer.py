"""Enqueues the test's six Huey tasks under one producer span; prints its trace id."""

from __future__ import annotations

from opentelemetry import trace

from tests.engines.huey_app import add, boom, flaky, slow

with trace.get_tracer("producer").start_as_current_span("producer") as span:
    for i in range(3):
        add(i, i)
    boom()
    slow()
    flaky()
    print(f"trace {span.get_span_context().trace_id:032x}", flush=True)
