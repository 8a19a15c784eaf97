"""An RQ job whose work horse a test kills, and its producer: no stepwatch code.

``hold`` writes its horse's pid to ``STEPWATCH_TEST_MARKS/<job id>.pid`` on its
first run and holds on; run again (RQ retries a job whose horse was killed
when it has retries left) it returns at once.

``python -m tests.engines.rq_lost_jobs`` enqueues one ``hold`` with ``Retry(max=1)``
on the queue ``orders`` and prints its id.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from rq import get_current_job


def hold() -> str:
    job = get_current_job()
    assert job is not None
    mark = Path(os.environ["STEPWATCH_TEST_MARKS"]) / f"{job.id}.pid"
    if mark.exists():
        return "done when run again"
    mark.write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # held until the test kills this horse
        time.sleep(0.05)
    return "never killed"


if __name__ == "__main__":
    from redis import Redis
    from rq import Queue, Retry

    queue = Queue("orders", connection=Redis.from_url(os.environ["STEPWATCH_TEST_REDIS"]))
    print(queue.enqueue("tests.engines.rq_lost_jobs.hold", retry=Retry(max=1)).id)
