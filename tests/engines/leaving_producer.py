"""The producer of the tests of processes that leave: ``N`` successes and one failure.

``python -m tests.engines.leaving_producer celery N`` sends ``N`` ``add`` and
one ``boom`` to the Celery app and waits for every result (no telemetry of
its own); ``... rq N`` enqueues them on RQ's ``leaving`` queue. Prints ``done``.
"""

from __future__ import annotations

import contextlib
import os
import sys


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

    from tests.engines import leaving_jobs

    queue = Queue("leaving", connection=Redis.from_url(os.environ["STEPWATCH_TEST_REDIS"]))
    for n in range(count):
        queue.enqueue(leaving_jobs.add, n, 1)
    queue.enqueue(leaving_jobs.boom)


if __name__ == "__main__":
    {"celery": _celery, "rq": _rq}[sys.argv[1]](int(sys.argv[2]))
    print("done", flush=True)
