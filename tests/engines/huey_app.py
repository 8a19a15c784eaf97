"""Huey tasks for the integration tests: no stepwatch code but a step.

The storage is a real Redis from ``STEPWATCH_TEST_REDIS``. Huey's thread
workers stop a task at its ``timeout`` cooperatively (``task.check_timeout()``).
"""

from __future__ import annotations

import os
import time
from typing import Any

from huey import RedisHuey

import stepwatch

huey = RedisHuey("orders", url=os.environ.get("STEPWATCH_TEST_REDIS", "redis://127.0.0.1:6379/0"))


@huey.task()
def add(x: int, y: int) -> int:
    with stepwatch.step("sum", step_type="compute"):
        return x + y


@huey.task()
def boom() -> None:
    raise ValueError("the order is invalid")


@huey.task(timeout=0.5, context=True)
def slow(task: Any) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        task.check_timeout()
        time.sleep(0.05)
    raise AssertionError("the timeout never fired")


@huey.task(retries=1, context=True)
def flaky(task: Any) -> str:
    if task.retries:  # the first attempt: Huey will retry it
        raise ConnectionError("payment gateway unreachable")
    return "paid"
