"""A Celery app whose pool children may be killed, and scheduled tasks: no stepwatch code.

``acks_late`` with ``task_reject_on_worker_lost``: a task whose pool child
dies is requeued and redelivered by the broker (Redis). The broker comes
from ``STEPWATCH_TEST_REDIS``; ``STEPWATCH_TEST_MARKS`` is a directory where
``orders.hold`` writes its pool child's pid (``<task id>.pid``) on its first
delivery before it holds on, so that a test can kill that child.

``python -m tests.engines.celery_lost_app hold`` sends one ``orders.hold``;
``... later N SECONDS`` sends N ``orders.later`` with ``countdown=SECONDS``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

from celery import Celery

app = Celery(
    "celery_lost_app", broker=os.environ.get("STEPWATCH_TEST_REDIS", "redis://127.0.0.1:6379/0")
)
app.conf.update(
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
)


@app.task(name="orders.hold", bind=True)
def hold(self: Any) -> str:
    if self.request.delivery_info.get("redelivered"):
        return "done on redelivery"
    marks = Path(os.environ["STEPWATCH_TEST_MARKS"])
    (marks / f"{self.request.id}.pid").write_text(str(os.getpid()))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # held until the test kills this pool child
        time.sleep(0.05)
    return "never killed"


@app.task(name="orders.later")
def later() -> str:
    return "ran when due"


if __name__ == "__main__":
    if sys.argv[1] == "hold":
        print(hold.delay().id)
    else:
        count, seconds = int(sys.argv[2]), float(sys.argv[3])
        for _ in range(count):
            later.apply_async(countdown=seconds)
