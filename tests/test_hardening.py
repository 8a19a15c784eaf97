"""Regression tests for the defects an adversarial run found (issue #13), one per item.

Each test is named after its item and fails on the code before the fix.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import threading
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

import stepwatch
from stepwatch import semconv, testing
from stepwatch.events import ExecutionEvent
from stepwatch.health import ExportStatus
from stepwatch.limits import Limits
from stepwatch.testing import Harness, capture

WAIT = 30.0  # upper bound for waits on events; never reached when things work


class _UnprintableError(ValueError):
    def __str__(self) -> str:
        raise RuntimeError("no string for you")


class _NotAStringError(ValueError):
    def __str__(self) -> str:
        return 42  # type: ignore[return-value]  # noqa: PLE0307 - deliberately hostile


@pytest.mark.parametrize("error", [_UnprintableError, _NotAStringError])
def test_item_01_an_unprintable_exception_still_ends_the_execution(
    sw: Harness, error: type[Exception]
) -> None:
    raised = error()

    @stepwatch.execution("hostile", execution_id="h-1")
    def run() -> None:
        with stepwatch.step("explodes"):
            raise raised

    with pytest.raises(error) as caught:
        run()
    assert caught.value is raised  # the host's exception, unchanged
    execution = sw.span("execution hostile")
    step = sw.span("step explodes")
    for span in (execution, step):
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description is not None
        assert f"<unprintable {error.__qualname__}>" in span.status.description
        assert any(e.name == semconv.EXCEPTION_EVENT for e in span.events)
    assert sw.monitor.active_executions() == []
    progress = sw.monitor.progress("h-1")
    assert progress is not None and progress.state == "failure"
    assert sw.monitor.summary().outcomes["failure"] == 1
    assert testing.internal_errors() == {}


def _status_of_stream(url: str, path: str) -> int:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def test_item_03_head_events_gives_its_sse_slot_back() -> None:
    with capture(limits=Limits(max_sse_clients=2)) as sw:
        handle = sw.monitor.serve(heartbeat=0.2)
        try:
            host, port = handle.url.removeprefix("http://").split(":")
            for _ in range(6):
                connection = http.client.HTTPConnection(host, int(port), timeout=30)
                connection.request("HEAD", "/events")
                response = connection.getresponse()
                assert response.status == 200
                response.read()
                connection.close()
            assert _status_of_stream(handle.url, "/events") == 200
        finally:
            handle.close()


def test_item_04_a_failing_signal_keeps_its_alert_whatever_the_other_does() -> None:
    with capture(export_status=ExportStatus()) as sw:
        status = sw.monitor.export_status
        seen: list[set[str]] = []
        for _ in range(24):
            status.record(False, "HTTP 500", "metrics")
            status.record(True, None, "traces")
            firing = sw.monitor.health(refresh=True).alerts
            seen.append({a.labels["signal"] for a in firing if a.rule == "TelemetryExportFailing"})
            status.record(True, None, "metrics")
            status.record(False, "HTTP 503", "traces")
            firing = sw.monitor.health(refresh=True).alerts
            seen.append({a.labels["signal"] for a in firing if a.rule == "TelemetryExportFailing"})
        assert seen == [{"metrics"}, {"traces"}] * 24
        status.record(False, "HTTP 500", "metrics")
        both = [a for a in sw.monitor.health(refresh=True).alerts if a.labels.get("signal")]
        assert sorted(a.labels["signal"] for a in both) == ["metrics", "traces"]
        assert all(a.labels["signal"] + " export is failing" in a.message for a in both)


def test_item_08_step_types_stay_within_the_group_cap() -> None:
    cap = 100
    with capture(limits=Limits(max_series=cap)) as sw:
        with stepwatch.execution("many-types"):
            for index in range(1_200):
                with stepwatch.step("s", step_type=f"type-{index}"):
                    pass
        sizes = sw.monitor.reader.sizes()
        assert sizes["series"] <= cap
        assert sizes["groups"] <= cap + 8  # the cap, plus the overflow groups per metric
        steps = sw.monitor.summary().steps
        assert len(steps) <= cap + 1
        assert sum(stats.total for stats in steps.values()) == 1_200  # nothing lost
        assert "otel.metric.overflow" in steps


def test_item_09_a_served_monitor_never_answers_from_a_stale_evaluation() -> None:
    healthy = {"db": True}
    with capture() as sw:
        handle = sw.monitor.serve()
        try:
            assert _get_status(handle.url, "/readyz") == 200  # evaluated on first ask
            sw.monitor.add_check("db", lambda: healthy["db"])
            healthy["db"] = False
            assert _get_status(handle.url, "/readyz") == 503  # the new check counts at once
            healthy["db"] = True
            assert _get_status(handle.url, "/readyz") == 503  # cached: not stale yet
            sw.clock.advance(sw.monitor.evaluation_interval)
            assert _get_status(handle.url, "/readyz") == 200  # stale: evaluated again
            assert _get_status(handle.url, "/healthz") == 200
            healthy["db"] = False
            sw.clock.advance(sw.monitor.evaluation_interval)
            assert _get_status(handle.url, "/healthz") == 503
        finally:
            handle.close()


def _get_status(url: str, path: str) -> int:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


def test_item_10_a_blocking_async_subscriber_starves_nobody() -> None:
    release = threading.Event()
    received: list[int] = []
    done = threading.Event()

    async def blocks(event: ExecutionEvent) -> None:
        release.wait(WAIT)  # blocking work on its loop: the mistake under test

    async def counts(event: ExecutionEvent) -> None:
        received.append(event.seq)
        if len(received) == 200:
            done.set()

    with capture() as sw:
        sw.monitor.subscribe(blocks)
        sw.monitor.subscribe(counts)
        for index in range(100):
            with stepwatch.execution("e", execution_id=f"e-{index}"):
                pass
        try:
            assert done.wait(WAIT)
            assert len(received) == 200
        finally:
            release.set()


def test_item_14_base_exceptions_in_subscribers_and_checks_are_reported_as_such() -> None:
    calls: list[int] = []

    def exits(event: ExecutionEvent) -> None:
        calls.append(event.seq)
        raise SystemExit(3)

    def check_exits() -> bool:
        raise SystemExit(4)

    def check_unprintable() -> bool:
        raise _UnprintableError

    with capture() as sw:
        subscription = sw.monitor.subscribe(exits)
        for index in range(3):
            with stepwatch.execution("e", execution_id=f"e-{index}"):
                pass
        assert subscription.drain(WAIT)
        assert len(calls) == 6  # delivery went on after the first SystemExit
        assert subscription.failures == 6 and subscription.active
        sw.monitor.add_check("exits", check_exits)
        sw.monitor.add_check("unprintable", check_unprintable)
        components = {c.name: c for c in sw.monitor.health(refresh=True).components}
        assert components["exits"].message == "SystemExit: 4"
        assert components["unprintable"].message == (
            "_UnprintableError: <unprintable _UnprintableError>"
        )


def test_item_15_a_raising_subscriber_logs_once_per_error_type(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def raises(event: ExecutionEvent) -> None:
        if event.seq % 2:
            raise ValueError("odd")
        raise KeyError("even")

    with capture() as sw, caplog.at_level("WARNING", logger="stepwatch"):
        subscription = sw.monitor.subscribe(raises)
        for index in range(50):
            with stepwatch.execution("e", execution_id=f"e-{index}"):
                pass
        assert subscription.drain(WAIT)
        assert subscription.failures == 100
        logged = [r for r in caplog.records if "subscriber" in r.getMessage()]
        assert len(logged) == 2  # one per error type, each with its traceback
        assert all(r.exc_info for r in logged)


def test_item_19_unsubscribe_accepts_the_callback() -> None:
    seen: list[int] = []

    def callback(event: ExecutionEvent) -> None:
        seen.append(event.seq)

    with capture() as sw:
        first = sw.monitor.subscribe(callback)
        second = sw.monitor.subscribe(callback, event_type="execution.started")
        sw.monitor.unsubscribe(callback)  # the 0.1 signature's natural use
        assert not first.active and not second.active
        with stepwatch.execution("e"):
            pass
        assert seen == []


def test_item_17_executions_are_listed_bounded_and_without_steps_on_request() -> None:
    with capture() as sw, contextlib.ExitStack() as running:
        for index in range(150):
            ex = running.enter_context(stepwatch.execution("r", execution_id=f"r-{index:03}"))
            with ex.step("only"):
                pass
        handle = sw.monitor.serve()
        try:
            body = _get_json(handle.url, "/executions")
            assert len(body["executions"]) == 100  # bounded by default
            assert body["executions"][0]["execution_id"] == "r-000"  # the oldest first
            few = _get_json(handle.url, "/executions?limit=5&steps=0")
            assert [e["execution_id"] for e in few["executions"]] == [f"r-{i:03}" for i in range(5)]
            assert all("steps" not in e for e in few["executions"])
            assert len(_get_json(handle.url, "/executions?limit=1000")["executions"]) == 150
        finally:
            handle.close()


def _get_json(url: str, path: str) -> Any:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        assert response.status == 200
        return json.loads(response.read())
    finally:
        connection.close()


def test_item_18_custom_events_reach_history_and_subscribers_typed(sw: Harness) -> None:
    got: list[ExecutionEvent] = []
    done = threading.Event()

    def listen(event: ExecutionEvent) -> None:
        got.append(event)
        done.set()

    sw.monitor.subscribe(listen, event_type="custom")
    with stepwatch.execution("deploy", execution_id="d-1") as ex:
        ex.event("cache.warmed", entries=12, bad=object())
        ex.event("")  # refused: no name
    (event,) = sw.monitor.events(event_type=stepwatch.EventType.CUSTOM)
    assert event.execution_id == "d-1"
    assert event.data == {"name": "deploy", "event": "cache.warmed", "attributes": {"entries": 12}}
    assert json.loads(json.dumps(event.to_dict()))["type"] == "custom"
    assert done.wait(WAIT) and got[0].seq == event.seq
    span_events = [e for e in sw.span("execution deploy").events if e.name == "cache.warmed"]
    assert len(span_events) == 1 and dict(span_events[0].attributes or {}) == {"entries": 12}
    with pytest.raises(TypeError, match="event_type"):
        sw.monitor.bus.publish("not-a-type", None, {})  # type: ignore[arg-type]
