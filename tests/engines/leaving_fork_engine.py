"""A parent that records, then forks: bare ``os.fork`` children and a ``multiprocessing`` fork pool.

Usage: python -m tests.engines.leaving_fork_engine   (OTEL_* variables point at a receiver)

``STEPWATCH_TEST_IN_CODE=1`` configures stepwatch here (the result dropped);
otherwise run it under ``opentelemetry-instrument``. The SDK's default export
intervals. The parent runs 4 executions (3 successes, 1 cancellation), then
forks 3 children that each run 2 executions and leave with ``os._exit``, then
maps 4 executions over a fork ``Pool(2)``, then runs 1 more and exits
normally. Each child must export its own executions only, under its own
``service.instance.id``. Prints one JSON line with the children's exit codes.
"""

from __future__ import annotations

import json
import multiprocessing
import os

import stepwatch


@stepwatch.execution("job", execution_id=lambda name: name)
def job(name: str) -> str:
    with stepwatch.step("work", step_type="compute"):
        return name


def main() -> None:
    if os.environ.get("STEPWATCH_TEST_IN_CODE"):
        stepwatch.configure(service_name="leaving")
    for number in range(3):
        job(f"parent-{number}")
    with stepwatch.execution("job", execution_id="parent-cancelled") as cancelled:
        cancelled.cancel(reason="not needed")
    children = []
    for number in range(3):
        pid = os.fork()
        if pid == 0:
            job(f"child-{number}-a")
            job(f"child-{number}-b")
            os._exit(0)
        children.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    with multiprocessing.get_context("fork").Pool(2) as pool:
        pool.map(job, [f"pool-{n}" for n in range(4)], chunksize=1)
    job("parent-last")
    print(json.dumps({"exit_codes": codes}), flush=True)


if __name__ == "__main__":
    main()
