"""A fork-per-job worker (RQ's and luigi's pattern): each job runs in a child that os._exits.

Usage: python -m tests.engines.fork_job_engine   (OTEL_* variables point at a receiver)

The parent runs one execution, forks three children that each run one
execution and call ``os._exit(0)`` straight after (no flush in user code),
then runs a second execution inside which it forks a fourth child that
leaves the parent's open step and execution normally and exits through
``sys.exit`` (neither is the child's to end). Prints one JSON line with the
children's exit codes.
"""

from __future__ import annotations

import json
import os
import sys

import stepwatch


@stepwatch.execution("job", execution_id=lambda name: name, total_steps=1)
def job(name: str) -> None:
    with stepwatch.step("work", step_type="compute"):
        pass


def fork_inside_an_execution() -> int:
    """Fork inside an open execution and step; both processes leave the blocks normally."""
    with (
        stepwatch.execution("job", execution_id="parent-2", total_steps=1),
        stepwatch.step("work", step_type="compute"),
    ):
        pid = os.fork()
    return pid


def main() -> None:
    monitor = stepwatch.configure(service_name="fork-per-job")
    job("parent-1")
    children = []
    for number in range(3):
        pid = os.fork()
        if pid == 0:
            job(f"child-{number}")
            os._exit(0)
        children.append(pid)
    pid = fork_inside_an_execution()
    if pid == 0:
        sys.exit(0)  # atexit runs in this child: it must not export parent-2 again
    children.append(pid)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in children]
    monitor.shutdown()
    print(json.dumps({"exit_codes": codes}), flush=True)


if __name__ == "__main__":
    main()
