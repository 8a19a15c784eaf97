"""A user's own test suite, written only against stepwatch's public API and stepwatch.testing.

This is what the docs tell engine authors to write: a three-line fixture, their
engine code, and assertions on spans, metric points, events and progress.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import stepwatch
from stepwatch.testing import Harness, capture

# ------------------------------------------------------------ the user's engine


class PaymentDeclined(Exception):
    pass


@stepwatch.step("charge", step_type="payment")
def charge(amount: float) -> str:
    if amount > 1_000:
        raise PaymentDeclined("over the limit")
    return "ok"


@stepwatch.execution("checkout", total_steps=2, sla=5.0, execution_id=lambda order: order["id"])
def checkout(order: dict[str, object]) -> str:
    with stepwatch.step("reserve", step_type="inventory"):
        pass
    return charge(float(order["amount"]))  # type: ignore[arg-type]


# ------------------------------------------------------------------ the tests


@pytest.fixture
def sw() -> Iterator[Harness]:
    with capture() as harness:
        yield harness


def test_checkout_records_a_successful_execution(sw: Harness) -> None:
    assert checkout({"id": "o-1", "amount": 10}) == "ok"
    execution = sw.attributes("execution checkout")
    assert execution["workflow.execution.id"] == "o-1"
    assert execution["workflow.execution.outcome"] == "success"
    assert [s.name for s in sw.spans()] == ["step reserve", "step charge", "execution checkout"]
    assert sw.parent(sw.span("step charge")) is sw.span("execution checkout")


def test_declined_payment_is_a_failure_everywhere(sw: Harness) -> None:
    with pytest.raises(PaymentDeclined):
        checkout({"id": "o-2", "amount": 5_000})
    assert sw.attributes("step charge")["workflow.task.outcome"] == "failure"
    (point,) = sw.metric_points(
        "workflow.execution.duration", {"workflow.execution.state": "executing"}
    )
    assert point.attributes["workflow.execution.outcome"] == "failure"
    assert point.attributes["error.type"].endswith("PaymentDeclined")
    assert [e.execution_id for e in sw.events("execution.failed")] == ["o-2"]


def test_progress_and_sla_with_the_fake_clock(sw: Harness) -> None:
    with stepwatch.execution("checkout", execution_id="o-3", total_steps=2, sla=5.0) as ex:
        with ex.step("reserve"):
            sw.clock.advance(2)
        progress = sw.monitor.progress("o-3")
        assert progress is not None
        assert progress.percent == 50.0
        sw.clock.advance(4)
    (violations,) = sw.metric_points("workflow.execution.sla.violations")
    assert violations.value == 1
    assert sw.monitor.summary().sla.violations == 1


def test_health_turns_unhealthy_on_failures() -> None:
    with capture(rules=stepwatch.Rules(min_executions=5)) as sw:
        for n in range(5):
            with pytest.raises(PaymentDeclined):
                checkout({"id": f"bad-{n}", "amount": 9_999})
        health = sw.monitor.health(refresh=True)
        assert health.status is stepwatch.HealthStatus.UNHEALTHY
        assert [a.rule for a in health.alerts] == ["HighFailureRate"]
