"""What an RQ job costs when the OTLP endpoint refuses connections (a dead local Collector).

Run: ``python benchmarks/bench_dead_collector.py [--jobs N] [--runs N]``
(needs Debian's ``redis-server`` and the ``rq`` extra).

A real redis-server on a free loopback port, a real RQ worker in burst mode
(one forked work horse per job, leaving with ``os._exit``), ``--jobs``
trivial jobs. Two setups, run alternately ``--runs`` times each:

- ``plain``: the worker with stepwatch neither configured nor instrumented;
- ``dead collector``: the worker with ``stepwatch.configure()`` and
  ``RQInstrumentor`` in code, ``OTEL_EXPORTER_OTLP_ENDPOINT`` a loopback port
  nothing listens on, the SDK's default export intervals and
  ``flush_timeout`` (1 s).

A job's wall time is RQ's own ``ended_at - started_at`` (set in the horse
around ``Job.perform``, which includes the execution's end and its flush).
Prints one JSON object: per setup, the first job's and the median later
job's milliseconds (medians over runs), and the later jobs' difference from
plain. The contract: the first job within the flush bound, the later ones
within 50 ms of plain.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

from redis import Redis
from redis.exceptions import ConnectionError as RedisDown
from rq import Queue, Worker

import stepwatch
from stepwatch.integrations.rq import RQInstrumentor

HERE = Path(__file__).resolve().parent
QUEUE = "bench-dead-collector"


def noop(number: int) -> int:
    """The job: nothing but the engine's and stepwatch's own work."""
    return number


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _worker(url: str, instrumented: bool) -> None:
    if instrumented:
        stepwatch.configure(service_name="bench-dead-collector")
        RQInstrumentor().instrument()
    connection = Redis.from_url(url)
    Worker([Queue(QUEUE, connection=connection)], connection=connection).work(
        burst=True, logging_level="ERROR"
    )


def _run(url: str, jobs: int, instrumented: bool) -> list[float]:
    """Enqueue ``jobs`` jobs, run a burst worker over them; each job's milliseconds, in order."""
    connection = Redis.from_url(url)
    connection.flushall()
    queue = Queue(QUEUE, connection=connection)
    enqueued = [queue.enqueue("bench_dead_collector.noop", n) for n in range(jobs)]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(HERE), str(HERE.parent / "src"), environment.get("PYTHONPATH", "")]
    )
    environment["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{_free_port()}"
    environment["OTEL_EXPORTER_OTLP_TIMEOUT"] = "2"  # the worker's own exit flush
    flag = "--instrumented" if instrumented else "--plain"
    subprocess.run(
        [sys.executable, __file__, "--worker", url, flag],
        env=environment,
        check=True,
        timeout=600,
        stdout=subprocess.DEVNULL,
    )
    durations = []
    for job in enqueued:
        job.refresh()  # type: ignore[no-untyped-call]
        assert job.started_at is not None and job.ended_at is not None, job.get_status()
        durations.append((job.ended_at - job.started_at).total_seconds() * 1000)
    connection.close()
    return durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--instrumented", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--plain", action="store_true", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.worker:
        _worker(options.worker, options.instrumented)
        return
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not installed")
    port = _free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                Redis.from_url(url).ping()
                break
            except RedisDown:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # redis-server is starting
        runs: dict[str, list[list[float]]] = {"plain": [], "dead collector": []}
        for _ in range(options.runs):
            runs["plain"].append(_run(url, options.jobs, instrumented=False))
            runs["dead collector"].append(_run(url, options.jobs, instrumented=True))
    finally:
        server.terminate()
        server.wait(timeout=30)
    report: dict[str, dict[str, float]] = {}
    for setup, results in runs.items():
        report[setup] = {
            "first job ms": round(statistics.median(r[0] for r in results), 2),
            "later jobs median ms": round(
                statistics.median(statistics.median(r[1:]) for r in results), 2
            ),
            "later jobs max ms": round(max(max(r[1:]) for r in results), 2),
        }
    report["later jobs: dead collector - plain, ms"] = {
        "median": round(
            report["dead collector"]["later jobs median ms"]
            - report["plain"]["later jobs median ms"],
            2,
        )
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
