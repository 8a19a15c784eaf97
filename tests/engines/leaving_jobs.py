"""RQ jobs for the tests of processes that leave: ``add`` succeeds (with a step), ``boom`` fails."""

from __future__ import annotations

import stepwatch


def add(x: int, y: int) -> int:
    with stepwatch.step("sum", step_type="compute"):
        return x + y


def boom() -> None:
    raise ValueError("the order is invalid")
