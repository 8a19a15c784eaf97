"""Queueing: enqueue here, execute in another process, one trace, queue wait measured."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import textwrap

import pytest

import stepwatch
from stepwatch.testing import Harness

WORKER = textwrap.dedent(
    """
    import json, sys
    import stepwatch
    from stepwatch.testing import FakeClock, capture

    carrier = json.loads(sys.argv[1])
    clock = FakeClock(float(carrier["stepwatch-enqueued-at"]) + 5.0)
    with capture(clock=clock) as sw:
        @stepwatch.execution("remote-job", carrier=lambda msg: msg)
        def work(msg):
            with stepwatch.step("do"):
                clock.advance(1.0)
            return "ok"

        assert work(carrier) == "ok"
        span = sw.span("execution remote-job")
        (wait,) = sw.metric_points(
            "workflow.execution.duration", {"workflow.execution.state": "pending"}
        )
        print(json.dumps({
            "trace_id": format(span.context.trace_id, "032x"),
            "parent_span_id": format(span.parent.span_id, "016x") if span.parent else None,
            "execution_id": span.attributes["workflow.execution.id"],
            "queue_wait": wait.value,
        }))
    """
)


def test_cross_process_trace_and_queue_wait(sw: Harness) -> None:
    carrier = stepwatch.enqueue("remote-job", execution_id="r-1", queue="jobs")
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in carrier.items())
    assert json.loads(json.dumps(carrier)) == carrier
    enqueue_span = sw.span("enqueue remote-job")
    assert [e.name for e in enqueue_span.events] == ["execution.created", "execution.queued"]
    pending = sw.monitor.progress("r-1")
    assert pending is not None and pending.state == "pending"

    result = subprocess.run(
        [sys.executable, "-c", WORKER, json.dumps(carrier)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    assert remote["trace_id"] == format(enqueue_span.context.trace_id, "032x")
    assert remote["parent_span_id"] == format(enqueue_span.context.span_id, "016x")
    assert remote["execution_id"] == "r-1"
    assert remote["queue_wait"] == pytest.approx(5.0)


def test_enqueue_in_process_counts_pending(sw: Harness) -> None:
    carrier = stepwatch.enqueue("local", execution_id="l-1")
    (pending,) = sw.metric_points(
        "workflow.execution.active", {"workflow.execution.state": "pending"}
    )
    assert pending.value == 1
    assert [e.type.value for e in sw.events(execution_id="l-1")] == [
        "execution.created",
        "execution.queued",
    ]
    sw.clock.advance(2)
    with stepwatch.execution("local", carrier=carrier) as ex:
        assert ex.id == "l-1"
        assert ex.queue_wait == pytest.approx(2.0)
    (pending,) = sw.metric_points(
        "workflow.execution.active", {"workflow.execution.state": "pending"}
    )
    assert pending.value == 0
    started = sw.events("execution.started", execution_id="l-1")[0]
    assert started.data["queue_wait"] == pytest.approx(2.0)


def test_enqueue_writes_into_given_carrier(sw: Harness) -> None:
    headers = {"content-type": "json"}
    returned = stepwatch.enqueue("h", execution_id="h-1", carrier=headers)
    assert "traceparent" in headers and headers["stepwatch-execution-id"] == "h-1"
    assert returned == headers and returned is not headers
    assert headers["content-type"] == "json"


# --------------------------------------------------------------------- scheduled work
def test_scheduled_work_is_not_backlog_until_due_and_waits_from_its_due_time(
    sw: Harness,
) -> None:
    rules = sw.monitor.rules
    carriers = [
        stepwatch.enqueue("later", execution_id=f"s-{n}", countdown=4.0)
        for n in range(rules.queue_depth + 50)
    ]
    summary = sw.monitor.summary()
    assert summary.scheduled == rules.queue_depth + 50
    assert summary.queue_depth == 0
    assert "QueueBacklog" not in {a.rule for a in sw.monitor.health(refresh=True).alerts}
    sw.clock.advance(5.0)  # due one second ago
    summary = sw.monitor.summary()
    assert summary.scheduled == 0
    assert summary.queue_depth == rules.queue_depth + 50
    assert "QueueBacklog" in {a.rule for a in sw.monitor.health(refresh=True).alerts}
    with stepwatch.execution("later", carrier=carriers[0]) as ex:
        pass
    assert ex.queue_wait == pytest.approx(1.0)  # from the due time, not the enqueue
    assert sw.monitor.summary().queue_wait.max == pytest.approx(1.0)


def test_eta_as_a_datetime_and_invalid_due_times(sw: Harness) -> None:
    due = datetime.datetime.fromtimestamp(sw.clock() + 60, tz=datetime.UTC)
    stepwatch.enqueue("later", execution_id="dt", eta=due)
    assert sw.monitor.summary().scheduled == 1
    # Due already, or no valid due time: ready work at once.
    stepwatch.enqueue("now", execution_id="past", eta=sw.clock() - 5)
    assert sw.monitor.summary().scheduled == 1
    assert sw.monitor.summary().queue_depth == 1
