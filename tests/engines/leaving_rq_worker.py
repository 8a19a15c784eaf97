"""An RQ worker in burst mode (a fork per job), set up in code or by ``opentelemetry-instrument``.

``STEPWATCH_TEST_IN_CODE=1``: stepwatch is configured here (the result
dropped) and RQ instrumented in code. The SDK's default export intervals:
each job's horse leaves with ``os._exit`` right after the job.
"""

from __future__ import annotations

import os

from redis import Redis
from rq import Queue, Worker

import stepwatch

if __name__ == "__main__":
    if os.environ.get("STEPWATCH_TEST_IN_CODE"):
        from stepwatch.integrations.rq import RQInstrumentor

        stepwatch.configure()
        RQInstrumentor().instrument()
    connection = Redis.from_url(os.environ["STEPWATCH_TEST_REDIS"])
    Worker([Queue("leaving", connection=connection)], connection=connection).work(burst=True)
