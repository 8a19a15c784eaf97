"""Quick start: a tiny engine instrumented with stepwatch, then what stepwatch saw.

Run it with ``make demo`` or ``python examples/quickstart.py``. With an
``OTEL_EXPORTER_OTLP_ENDPOINT`` set, the same run is exported over OTLP.
"""

from __future__ import annotations

import time

import stepwatch

monitor = stepwatch.configure(service_name="quickstart-engine")


@stepwatch.step(step_type="io")
def fetch(order: int) -> int:
    time.sleep(0.01)
    return order * 2


@stepwatch.step(step_type="compute")
def transform(value: int) -> int:
    step = stepwatch.current_step()
    for i in range(4):
        time.sleep(0.005)
        if step is not None:
            step.progress(done=i + 1, total=4)
    if value % 5 == 0:
        raise ValueError(f"cannot transform {value}")
    return value + 1


@stepwatch.step(step_type="io")
def store(value: int) -> None:
    time.sleep(0.01)


@stepwatch.execution("order-pipeline", total_steps=3, execution_id=lambda order: f"order-{order}")
def pipeline(order: int) -> int:
    value = transform(fetch(order))
    store(value)
    return value


def main() -> None:
    for order in range(1, 11):
        try:
            pipeline(order)
        except ValueError:
            pass  # the engine's own error handling; stepwatch recorded the failure

    print("executions stepwatch saw:")
    for event in monitor.events(event_type="execution.completed") + monitor.events(
        event_type="execution.failed"
    ):
        progress = monitor.progress(event.execution_id or "")
        if progress is not None:
            print(
                f"  {progress.execution_id:<9} {progress.state:<8} "
                f"{progress.completed_steps}/{progress.total_steps} steps "
                f"({progress.percent:.0f}%)  failed steps: {progress.failed_steps}"
            )
    failed = monitor.events(event_type="step.failed")
    print(f"step failures: {len(failed)}; last: {failed[-1].data if failed else None}")
    print(f"events recorded: {len(monitor.events())}")
    monitor.shutdown()


if __name__ == "__main__":
    main()
