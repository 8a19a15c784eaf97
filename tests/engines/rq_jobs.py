"""RQ jobs for the integration tests: plain functions, no stepwatch code but a step."""

from __future__ import annotations

import time

from rq import get_current_job

import stepwatch


def add(x: int, y: int) -> int:
    with stepwatch.step("sum", step_type="compute"):
        return x + y


def boom() -> None:
    raise ValueError("the order is invalid")


def slow() -> None:
    time.sleep(30)
    raise AssertionError("the job timeout never fired")


def flaky() -> str:
    job = get_current_job()
    if job is not None and job.retries_left:  # the first attempt: RQ will retry it
        raise ConnectionError("payment gateway unreachable")
    return "paid"


def own_meta() -> object:
    """What the job finds under its own ``meta["stepwatch"]``."""
    job = get_current_job()
    return None if job is None else job.meta.get("stepwatch")
