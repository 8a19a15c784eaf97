"""A Celery app with a result backend, for the tests of processes that leave (prefork children).

``STEPWATCH_TEST_IN_CODE=1``: the app configures stepwatch itself (dropping
``configure()``'s result) and instruments Celery in code; otherwise
``opentelemetry-instrument`` does both. The export intervals are the SDK's
defaults: nothing arrives unless the children flush per execution.
"""

from __future__ import annotations

import os

from celery import Celery

import stepwatch

REDIS = os.environ.get("STEPWATCH_TEST_REDIS", "redis://127.0.0.1:6379/0")

app = Celery("leaving_celery_app", broker=REDIS, backend=REDIS)
app.conf.update(
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    worker_prefetch_multiplier=1,
    result_expires=600,
)

if os.environ.get("STEPWATCH_TEST_IN_CODE"):
    from stepwatch.integrations.celery import CeleryInstrumentor

    stepwatch.configure()  # the result is dropped on purpose: stepwatch keeps it
    CeleryInstrumentor().instrument()


@app.task(name="leaving.add")
def add(x: int, y: int) -> int:
    with stepwatch.step("sum", step_type="compute"):
        return x + y


@app.task(name="leaving.boom")
def boom() -> None:
    raise ValueError("the order is invalid")
