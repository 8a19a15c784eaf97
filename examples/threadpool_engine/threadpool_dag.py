"""The DAG engine on a thread pool: steps on pool threads parented to their own execution."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import stepwatch

monitor = stepwatch.configure(service_name="threadpool-dag")
executions = ThreadPoolExecutor(max_workers=3, thread_name_prefix="execution")
steps = ThreadPoolExecutor(max_workers=4, thread_name_prefix="step")


def fetch(execution: stepwatch.Execution, source: str) -> str:
    with execution.step(f"fetch-{source}", step_type="http"):
        time.sleep(0.02)
        return f"data from {source}"


def run_dag(n: int) -> str:
    with stepwatch.execution("dag", execution_id=f"dag-{n}", total_steps=3) as execution:
        futures = [steps.submit(fetch, execution, source) for source in ("a", "b")]
        parts = [future.result(timeout=30) for future in futures]
        with execution.step("merge", step_type="compute"):
            return " + ".join(parts)


results = list(executions.map(run_dag, range(6)))
for n in range(6):
    progress = monitor.progress(f"dag-{n}")
    assert progress is not None
    print(
        progress.execution_id, progress.state, f"{progress.percent:.0f}%", progress.completed_steps
    )
    assert (progress.state, progress.completed_steps) == ("success", 3)
assert len(results) == 6
executions.shutdown()
steps.shutdown()
monitor.shutdown()
print("every execution: 3 of 3 steps, success")
