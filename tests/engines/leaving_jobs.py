"""Jobs and a producer for the tests of processes that leave: ``add`` succeeds, ``boom`` fails.

``python -m tests.engines.leaving_jobs celery N`` sends ``N`` ``add`` and one
``boom`` to the Celery app and waits for every result (no telemetry of its
own); ``... rq N`` enqueues them on RQ's ``leaving`` queue. Prints ``done``.
"""

from __future__ import annotations

import contextlib
import os
import sys

import stepwatch


def add(x: int, y: int) -> int:
    with stepwatch.step("sum", step_type="compute"):
        return x + y


def boom() -> None:
    raise ValueError("the order is invalid")


def _celery(count: int) -> None:
    from tests.engines import leaving_celery_app as app

    results = [app.add.delay(n, 1) for n in range(count)]
    results.append(app.boom.delay())
    for result in results:
        with contextlib.suppress(ValueError):
            result.get(timeout=120)


def _rq(count: int) -> None:
    from redis import Redis
    from rq import Queue

    from tests.engines import leaving_jobs  # by module name: __main__ is not importable

    queue = Queue("leaving", connection=Redis.from_url(os.environ["STEPWATCH_TEST_REDIS"]))
    for n in range(count):
        queue.enqueue(leaving_jobs.add, n, 1)
    queue.enqueue(leaving_jobs.boom)


if __name__ == "__main__":
    {"celery": _celery, "rq": _rq}[sys.argv[1]](int(sys.argv[2]))
    print("done", flush=True)
