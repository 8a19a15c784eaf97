"""Producer and worker processes over a multiprocessing queue: one trace per job, queue wait."""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.queues import Queue
from typing import Any

import stepwatch

JOBS = 8
WORKERS = 2


def worker(work: Queue[dict[str, str] | None], results: Queue[dict[str, Any]]) -> None:
    monitor = stepwatch.configure(service_name="queue-worker")
    while (carrier := work.get()) is not None:
        with stepwatch.execution("resize-image", carrier=carrier, total_steps=2) as execution:
            with execution.step("download", step_type="http"):
                time.sleep(0.01)
            with execution.step("resize", step_type="compute"):
                time.sleep(0.02)
            results.put(
                {
                    "execution_id": execution.id,
                    "trace_id": format(execution.span.get_span_context().trace_id, "032x"),
                    "queue_wait": execution.queue_wait,
                }
            )
    monitor.shutdown()


def main() -> None:
    monitor = stepwatch.configure(service_name="queue-producer")
    context = multiprocessing.get_context("spawn")
    work: Queue[dict[str, str] | None] = context.Queue()
    results: Queue[dict[str, Any]] = context.Queue()
    monitor.observe_queue_depth(work.qsize, queue="images")

    sent: dict[str, str] = {}
    for n in range(JOBS):
        carrier = stepwatch.enqueue("resize-image", execution_id=f"img-{n}", queue="images")
        sent[carrier["stepwatch-execution-id"]] = carrier["traceparent"].split("-")[1]
        work.put(carrier)
    depth_before = monitor.summary().queue_depth
    print(f"queued {JOBS} jobs; depth read from the queue: {depth_before}")

    workers = [context.Process(target=worker, args=(work, results)) for _ in range(WORKERS)]
    for process in workers:
        process.start()
    done = [results.get(timeout=120) for _ in range(JOBS)]
    for _ in workers:
        work.put(None)
    for process in workers:
        process.join(timeout=120)

    for result in sorted(done, key=lambda r: r["execution_id"]):
        same = result["trace_id"] == sent[result["execution_id"]]
        print(
            f"{result['execution_id']}: queue wait {result['queue_wait']:.3f} s, "
            f"same trace as its enqueue: {same}"
        )
        assert same, result
        assert result["queue_wait"] is not None and result["queue_wait"] >= 0
    assert depth_before == JOBS
    assert all(process.exitcode == 0 for process in workers)
    monitor.shutdown()
    print("every job: one trace from enqueue to finish")


if __name__ == "__main__":
    main()
