"""Regression tests for the defects an adversarial run found (issue #13), one per item.

Each test is named after its item and fails on the code before the fix.
"""

from __future__ import annotations

import http.client

import pytest
from opentelemetry.trace import StatusCode

import stepwatch
from stepwatch import semconv, testing
from stepwatch.health import ExportStatus
from stepwatch.limits import Limits
from stepwatch.testing import Harness, capture


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
