"""Sends the integration tests' six tasks to one engine under one producer span.

``python -m tests.engines.producer <engine>`` with ``engine`` one of celery,
rq, dramatiq, huey: three successes (``add``), one failure (``boom``), one
time limit (``slow``) and one retried-then-successful task (``flaky``).
Prints the producer span's trace id.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from opentelemetry import trace


def _celery() -> Callable[[str], None]:
    from tests.engines import celery_app

    def send(task: str) -> None:
        getattr(celery_app, task).delay(*((1, 2) if task == "add" else ()))

    return send


def _rq() -> Callable[[str], None]:
    from redis import Redis
    from rq import Queue, Retry

    from tests.engines import rq_jobs

    queue = Queue("orders", connection=Redis.from_url(os.environ["STEPWATCH_TEST_REDIS"]))
    options: dict[str, dict[str, object]] = {
        "slow": {"job_timeout": 1},
        "flaky": {"retry": Retry(max=1)},
    }

    def send(task: str) -> None:
        args = (1, 2) if task == "add" else ()
        queue.enqueue(getattr(rq_jobs, task), *args, **options.get(task, {}))

    return send


def _dramatiq() -> Callable[[str], None]:
    from tests.engines import dramatiq_app

    def send(task: str) -> None:
        getattr(dramatiq_app, task).send(*((1, 2) if task == "add" else ()))

    return send


def _huey() -> Callable[[str], None]:
    from tests.engines import huey_app

    def send(task: str) -> None:
        getattr(huey_app, task)(*((1, 2) if task == "add" else ()))

    return send


ENGINES = {"celery": _celery, "rq": _rq, "dramatiq": _dramatiq, "huey": _huey}

if __name__ == "__main__":
    send = ENGINES[sys.argv[1]]()
    with trace.get_tracer("producer").start_as_current_span("producer") as span:
        for task in ("add", "add", "add", "boom", "slow", "flaky"):
            send(task)
        print(f"trace {span.get_span_context().trace_id:032x}", flush=True)
