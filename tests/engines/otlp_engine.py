"""An engine configured only through OTEL_* variables: runs a small workload and exits.

Usage: python -m tests.engines.otlp_engine
"""

from __future__ import annotations

import stepwatch


class UpstreamError(Exception):
    """The engine's own failure."""


@stepwatch.step("fetch", step_type="http")
def fetch(order: int) -> int:
    step = stepwatch.current_step()
    if step is not None:
        step.progress(done=1, total=2)
    return order * 2


@stepwatch.step("charge", step_type="payment")
def charge(order: int) -> None:
    if order == 3:
        raise UpstreamError("card declined")


def main() -> None:
    monitor = stepwatch.configure()  # everything from the environment
    for order in (1, 2, 3):
        carrier = stepwatch.enqueue("e2e-job", execution_id=f"order-{order}")
        try:
            # Order 1 has an SLA no run can meet: one SLA violation.
            sla = 1e-9 if order == 1 else 60.0
            with stepwatch.execution("e2e-job", carrier=carrier, total_steps=2, sla=sla) as ex:
                fetch(order)
                if order == 2:
                    ex.request_approval(approver="ops")
                    ex.approve(by="alice")
                charge(order)
        except UpstreamError:
            pass
    monitor.shutdown()
    print("done")


if __name__ == "__main__":
    main()
