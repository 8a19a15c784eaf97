"""A Celery app for the integration tests: no stepwatch code, only Celery's.

The broker comes from ``STEPWATCH_TEST_REDIS`` (a real redis-server the test
started). ``opentelemetry-instrument`` adds stepwatch through its entry points.
"""

from __future__ import annotations

import os
import time
from typing import Any

from celery import Celery

import stepwatch

app = Celery(
    "celery_app", broker=os.environ.get("STEPWATCH_TEST_REDIS", "redis://127.0.0.1:6379/0")
)
app.conf.update(
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    task_acks_late=False,
    worker_prefetch_multiplier=1,
)


@app.task(name="orders.add")
def add(x: int, y: int) -> int:
    with stepwatch.step("sum", step_type="compute"):
        return x + y


@app.task(name="orders.boom")
def boom() -> None:
    raise ValueError("the order is invalid")


@app.task(name="orders.slow", soft_time_limit=0.5)
def slow() -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.05)
    raise AssertionError("the soft time limit never fired")


@app.task(name="orders.flaky", bind=True, max_retries=3)
def flaky(self: Any) -> str:
    if self.request.retries == 0:
        raise self.retry(exc=ConnectionError("payment gateway unreachable"), countdown=0)
    return "paid"
