"""Queueing: enqueue here, execute in another process, one trace, queue wait measured."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys
import textwrap
from typing import Any

import pytest

import stepwatch
from stepwatch import semconv, testing
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


@pytest.mark.internal_errors
@pytest.mark.parametrize(
    ("raw", "expected"),
    [(42, "42"), (b"job-7", "job-7"), (b"\xff\xfe", None), (3.5, None), ("   ", None)],
)
def test_a_carrier_id_becomes_a_string_or_is_ignored(
    sw: Harness, raw: object, expected: str | None
) -> None:
    """What a message carries under the id key is text, or no id (a new one is made)."""
    carrier: dict[str, Any] = dict(stepwatch.enqueue("job", execution_id="queued"))
    carrier[semconv.CARRIER_EXECUTION_ID] = raw
    with stepwatch.execution("job", carrier=carrier) as ex:
        pass
    assert type(ex.id) is str
    if expected is not None:
        assert ex.id == expected
        assert testing.internal_errors() == {}
    else:
        assert len(ex.id) == 32 and ex.id != "queued"  # a fresh uuid4 hex
        assert testing.internal_errors() == {"execution.id.carrier": 1}
    json.dumps([event.to_dict() for event in sw.monitor.events()])
    progress = sw.monitor.progress(ex.id)
    assert progress is not None and progress.state == "success"
    assert sw.monitor.summary().queue_depth == 0


def test_a_long_id_is_cut_with_a_hash_so_distinct_ids_stay_distinct(sw: Harness) -> None:
    limit = sw.monitor.limits.max_id_length
    assert limit == 256  # the documented default
    first, second = "x" * 5_000 + "1", "x" * 5_000 + "2"
    carrier = stepwatch.enqueue("job", execution_id=first)
    assert len(carrier[semconv.CARRIER_EXECUTION_ID]) == limit
    with stepwatch.execution("job", carrier=carrier) as one:
        pass
    with stepwatch.execution("job", execution_id=second) as two:
        pass
    assert len(one.id) == len(two.id) == limit
    assert one.id != two.id
    assert one.id.startswith("x" * (limit - 17)) and one.id[limit - 17] == "~"
    assert one.id == sw.monitor.limits.bounded_id(first)  # the same rule everywhere
    found = sw.monitor.progress(second)  # queried by the whole id
    assert found is not None and found.execution_id == two.id
    sw.monitor.emit("note", execution_id=first)  # an engine's own event, by the whole id
    mine = sw.monitor.events(execution_id=first)
    assert {e.execution_id for e in mine} == {one.id} and mine[-1].type == "custom"
    assert sw.monitor.summary().queue_depth == 0  # the enqueue and its start agree
    short = "s" * limit
    with stepwatch.execution("job", execution_id=short) as kept:
        pass
    assert kept.id == short  # an id that fits is never touched


@pytest.mark.internal_errors
def test_a_forged_enqueue_time_records_no_queue_wait(sw: Harness) -> None:
    """An enqueue time decades ago is no queue wait; one in the future (skew) is a wait of 0."""
    forged = stepwatch.enqueue("job", execution_id="forged")
    forged[semconv.CARRIER_ENQUEUED_AT] = "0.0"
    with stepwatch.execution("job", carrier=forged) as ex:
        pass
    assert ex.queue_wait is None
    assert testing.internal_errors() == {"carrier.enqueued_at.too_old": 1}
    ahead = stepwatch.enqueue("job", execution_id="ahead")
    ahead[semconv.CARRIER_ENQUEUED_AT] = repr(sw.clock() + 3_600.0)
    with stepwatch.execution("job", carrier=ahead) as later:
        pass
    assert later.queue_wait == 0.0
    waits = sw.monitor.summary().queue_wait
    assert waits.count == 1 and waits.max == 0.0
    assert sw.monitor.summary().queue_depth == 0  # both left pending all the same


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


def test_max_id_length_is_at_most_what_every_group_reader_accepts() -> None:
    assert stepwatch.Limits(max_id_length=1024).max_id_length == 1024
    with pytest.raises(ValueError, match="max_id_length"):
        stepwatch.Limits(max_id_length=1025)
