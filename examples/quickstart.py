"""Ten lines: one execution with steps, then its progress and the engine's health."""

import stepwatch

monitor = stepwatch.configure(service_name="quickstart")
with stepwatch.execution("nightly", execution_id="n-1", total_steps=3) as run:
    for name in ("extract", "transform", "load"):
        with run.step(name, step_type="etl") as step:
            step.progress(done=1, total=1)
print(run.progress().state, run.progress().percent, monitor.progress("n-1") is not None)
print("health:", monitor.health(refresh=True).status.value)
monitor.shutdown()
