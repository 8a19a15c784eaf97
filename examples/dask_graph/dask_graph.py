# mypy: disable-error-code="no-untyped-call, misc"
"""Recipe: dask graphs under stepwatch, on the threaded scheduler and on distributed workers.

dask has no stepwatch integration and needs none:

1. A ``dask.delayed`` graph on the threaded scheduler is one execution, each
   graph node a step. ``execution.step(name)`` binds a step to its execution,
   so the scheduler's pool threads need no context propagation.
2. On ``distributed``, each task sent to a worker process is an execution of
   its own there. The decorated function travels by pickle (cloudpickle by
   value for a function defined inside another, as here) and keeps its
   decoration; a ``WorkerPlugin`` sets stepwatch up in each worker, and a
   shared ``multiprocess_dir`` lets this process's Monitor answer for them.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from typing import Any

try:
    from dask.base import compute
    from dask.delayed import delayed
    from distributed import Client, LocalCluster, WorkerPlugin
except ImportError as missing:  # `make demo` installs only the cli extra
    sys.exit(
        f"this example needs dask and distributed ({missing}): pip install 'stepwatch[examples]'"
    )

import stepwatch


def threaded_graph(monitor: stepwatch.Monitor) -> None:
    def load(part: int) -> list[int]:
        return list(range(part * 10, part * 10 + 10))

    def total(parts: list[list[int]]) -> int:
        return sum(sum(part) for part in parts)

    with stepwatch.execution("report", execution_id="report-1", total_steps=5) as execution:
        loaded = [delayed(execution.step("load", step_type="dask")(load))(i) for i in range(4)]
        summed = delayed(execution.step("total", step_type="dask")(total))(loaded)
        (result,) = compute(summed, scheduler="threads", num_workers=4)
    progress = monitor.progress("report-1")
    assert progress is not None
    print(f"threaded: result {result}, {progress.completed_steps} of {progress.total_steps} steps")


class StepwatchPlugin(WorkerPlugin):
    """Sets stepwatch up in each dask worker process, in the same process group."""

    def __init__(self, group: str) -> None:
        self.group = group

    def setup(self, worker: Any) -> None:
        stepwatch.configure(service_name="dask-worker", multiprocess_dir=self.group)


def distributed_graph(monitor: stepwatch.Monitor, group: str) -> None:
    @stepwatch.execution("score", execution_id=lambda n: f"score-{n}")
    def score(n: int) -> tuple[int, int, bool]:
        with stepwatch.step("square", step_type="compute"):
            value = n * n
        return value, os.getpid(), stepwatch.current_execution() is not None

    with (
        LocalCluster(
            n_workers=1, threads_per_worker=2, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        client.register_plugin(StepwatchPlugin(group))
        results = client.gather(client.map(score, range(3)))
        values = [value for value, _, _ in results]
        elsewhere = all(pid != os.getpid() for _, pid, _ in results)
        decorated = all(inside for _, _, inside in results)
        print(f"distributed: {values}, in a worker process: {elsewhere}, decorated: {decorated}")
        # The worker publishes to the group at least every second.
        deadline = time.monotonic() + 60
        while monitor.summary(name="score").total < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        print(f"group summary: {monitor.summary(name='score').outcomes['success']} x score")


if __name__ == "__main__":
    group = tempfile.mkdtemp(prefix="dask-group-")
    monitor = stepwatch.configure(service_name="dask-client", multiprocess_dir=group)
    threaded_graph(monitor)
    distributed_graph(monitor, group)
    monitor.shutdown()
