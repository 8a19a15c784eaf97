"""Dramatiq actors for the integration tests: no stepwatch code but a step.

The broker is a real Redis from ``STEPWATCH_TEST_REDIS``.
"""

from __future__ import annotations

import os
import time

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import CurrentMessage

import stepwatch

broker = RedisBroker(url=os.environ.get("STEPWATCH_TEST_REDIS", "redis://127.0.0.1:6379/0"))
broker.add_middleware(CurrentMessage())
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name="orders", max_retries=0)
def add(x: int, y: int) -> int:
    with stepwatch.step("sum", step_type="compute"):
        return x + y


@dramatiq.actor(queue_name="orders", max_retries=0)
def boom() -> None:
    raise ValueError("the order is invalid")


@dramatiq.actor(queue_name="orders", max_retries=0, time_limit=500)
def slow() -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        time.sleep(0.05)
    raise AssertionError("the time limit never fired")


@dramatiq.actor(queue_name="orders", max_retries=1, min_backoff=10, max_backoff=20)
def flaky() -> str:
    message = CurrentMessage.get_current_message()
    if message is not None and not message.options.get("retries"):
        raise ConnectionError("payment gateway unreachable")
    return "paid"
