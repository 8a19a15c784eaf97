"""An engine that forks worker processes after configure(), inside an execution.

Usage: python -m tests.engines.fork_engine   (OTEL_* variables point at a receiver)

Prints one JSON line: what each child's Monitor saw, and the parent's after.
"""

from __future__ import annotations

import json
import multiprocessing
from multiprocessing.queues import Queue
from typing import Any

import stepwatch

monitor: stepwatch.Monitor


def child(number: int, results: Queue[dict[str, Any]]) -> None:
    execution_id = f"child-{number}"
    with (
        stepwatch.execution("child-job", execution_id=execution_id, total_steps=1) as ex,
        ex.step("work", step_type="compute"),
    ):
        pass
    progress = monitor.progress(execution_id)
    health = monitor.health(refresh=True)
    results.put(
        {
            "number": number,
            "state": progress.state if progress else None,
            "percent": progress.percent if progress else None,
            "health": health.status.value,
            "loop_running": monitor.running,
            "parent_executions_seen_running": [p.execution_id for p in monitor.active_executions()],
        }
    )


def main() -> None:
    global monitor  # noqa: PLW0603 - the children inherit it through fork
    monitor = stepwatch.configure(service_name="fork-engine")
    monitor.start(interval=0.5)
    context = multiprocessing.get_context("fork")
    results: Queue[dict[str, Any]] = context.Queue()
    with stepwatch.execution("parent-job", execution_id="parent-during"):
        workers = [context.Process(target=child, args=(n, results)) for n in range(3)]
        for worker in workers:
            worker.start()
        children = [results.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(timeout=60)
    with stepwatch.execution("parent-job", execution_id="parent-after"):
        pass
    after = monitor.progress("parent-after")
    summary = monitor.summary()
    print(
        json.dumps(
            {
                "children": sorted(children, key=lambda c: c["number"]),
                "exit_codes": [w.exitcode for w in workers],
                "parent_after": after.state if after else None,
                "parent_total": summary.total,
                "parent_loop_running": monitor.running,
            }
        ),
        flush=True,
    )
    monitor.shutdown()


if __name__ == "__main__":
    main()
