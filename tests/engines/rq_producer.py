"""Enqueues the test's six RQ jobs under one producer span; prints its trace id."""

from __future__ import annotations

import os

from opentelemetry import trace
from redis import Redis
from rq import Queue, Retry

from tests.engines import rq_jobs

queue = Queue("orders", connection=Redis.from_url(os.environ["STEPWATCH_TEST_REDIS"]))
with trace.get_tracer("producer").start_as_current_span("producer") as span:
    for i in range(3):
        queue.enqueue(rq_jobs.add, i, i)
    queue.enqueue(rq_jobs.boom)
    queue.enqueue(rq_jobs.slow, job_timeout=1)
    queue.enqueue(rq_jobs.flaky, retry=Retry(max=1))
    print(f"trace {span.get_span_context().trace_id:032x}", flush=True)
