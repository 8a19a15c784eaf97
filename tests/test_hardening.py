"""Regression tests for defects adversarial reviews found, each named by the behaviour it guards.

Each test fails on the code before its fix.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
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
def test_an_unprintable_exception_still_ends_the_execution(
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


def _depth(function: Any) -> int:
    """How deep ``function(0)`` recurses before the recursion limit (it returns its depth)."""
    return int(function(0))


def _plain(n: int) -> int:
    try:
        return _plain(n + 1)
    except RecursionError:
        return n


def _minimal_decorator(function: Callable[[int], int]) -> Callable[[int], int]:
    """The least a decorator can be: one frame of its own around the call."""

    @functools.wraps(function)
    def wrapper(n: int) -> int:
        return function(n)

    return wrapper


@_minimal_decorator
def _minimally_decorated(n: int) -> int:
    try:
        return _minimally_decorated(n + 1)
    except RecursionError:
        return n


@stepwatch.step("level")
def _stepwise(n: int) -> int:
    try:
        return _stepwise(n + 1)
    except RecursionError:
        return n


def test_a_decorated_recursion_goes_as_deep_as_any_wrapper_allows(sw: Harness) -> None:
    plain = _depth(_plain)
    minimal = _depth(_minimally_decorated)
    decorated = _depth(_stepwise)
    # Two frames per decorated level (its own and the host's) is the floor for
    # any wrapper; stepwatch adds nothing to it (0.1: three, a third of plain).
    assert decorated >= minimal
    assert 2 * decorated >= plain - 2
    assert len(sw.spans("step level")) > decorated // 2


def test_bookkeeping_completes_at_the_recursion_limit(sw: Harness) -> None:
    @stepwatch.execution("deep", execution_id=lambda n: f"deep-{n}")
    def deep(n: int) -> int:
        with stepwatch.step("level"):
            try:
                return deep(n + 1)
            except RecursionError:
                return n

    reached = deep(0)
    assert reached > 100
    seen = [str(event.type) for event in sw.monitor.events()]
    started = seen.count("execution.started")
    assert 0 < started <= reached + 1
    ends = set(semconv.EXECUTION_END_EVENTS.values())
    assert sum(kind in ends for kind in seen) == started  # every observed run ended
    step_ends = seen.count("step.completed") + seen.count("step.failed")
    assert seen.count("step.started") == step_ends
    assert len(sw.spans("execution deep")) == started
    assert sw.monitor.active_executions() == []
    assert testing.internal_errors() == {}


def _status_of_stream(url: str, path: str) -> int:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", path)
        return connection.getresponse().status
    finally:
        connection.close()


def test_head_events_gives_its_sse_slot_back() -> None:
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


def test_a_failing_signal_keeps_its_alert_whatever_the_other_does() -> None:
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


def test_step_types_stay_within_the_group_cap() -> None:
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


def test_a_served_monitor_never_answers_from_a_stale_evaluation() -> None:
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


def _get(url: str, path: str) -> tuple[int, bytes]:
    """Status and body of one GET over a fresh connection."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _get_status(url: str, path: str) -> int:
    return _get(url, path)[0]


def test_a_blocking_async_subscriber_starves_nobody() -> None:
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


def test_base_exceptions_in_subscribers_and_checks_are_reported_as_such() -> None:
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


def test_a_raising_subscriber_logs_once_per_error_type(
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


def test_unsubscribe_accepts_the_callback() -> None:
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


def test_executions_are_listed_bounded_and_without_steps_on_request() -> None:
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
    status, body = _get(url, path)
    assert status == 200
    return json.loads(body)


@pytest.mark.internal_errors
def test_custom_events_reach_history_and_subscribers_typed(sw: Harness) -> None:
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


def test_a_scope_exited_in_another_thread_still_ends(sw: Harness) -> None:
    scope = stepwatch.execution("handed-over", execution_id="ho-1")
    stack = contextlib.ExitStack()
    # Entered in one thread, exited in another (the entering thread's context
    # keeps its attachment, so neither is the test's own thread).
    for action in (lambda: stack.enter_context(scope), stack.close):
        worker = threading.Thread(target=action)
        worker.start()
        worker.join(WAIT)
    progress = sw.monitor.progress("ho-1")
    assert progress is not None and progress.state == "success"
    assert sw.monitor.active_executions() == []
    assert sw.span("execution handed-over").end_time is not None
    assert testing.internal_errors() == {}


async def _enter(stack: contextlib.AsyncExitStack, scope: Any) -> None:
    await stack.enter_async_context(scope)


@pytest.mark.asyncio
async def test_a_scope_exited_in_another_task_still_ends(sw: Harness) -> None:
    stack = contextlib.AsyncExitStack()
    await asyncio.create_task(_enter(stack, stepwatch.execution("task", execution_id="t-1")))
    await asyncio.create_task(stack.aclose())
    progress = sw.monitor.progress("t-1")
    assert progress is not None and progress.state == "success"
    assert testing.internal_errors() == {}


def _raw(url: str, request: bytes) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(request)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_ids_paths_bodies_and_pipelining_get_their_documented_http_answers() -> None:
    with capture() as sw:
        for execution_id in ("café-1", "a%41b"):
            with stepwatch.execution("http", execution_id=execution_id):
                pass
        secured = sw.monitor.serve(token="s3cret")
        try:
            url = secured.url
            # Non-ASCII ids are found (UTF-8, percent-encoded on the wire).
            found = _raw(url, b"GET /executions/caf%C3%A9-1 HTTP/1.1\r\nHost: x\r\n"
                         b"Authorization: bearer s3cret\r\n\r\n")  # fmt: skip
            assert found.startswith(b"HTTP/1.0 200"), found[:80]
            assert json.loads(found.split(b"\r\n\r\n", 1)[1])["execution_id"] == "café-1"
            # Percent-decoded once: a%2541b is the id "a%41b", not "aAb".
            once = _raw(url, b"GET /executions/a%2541b HTTP/1.1\r\nHost: x\r\n"
                        b"Authorization: BEARER s3cret\r\n\r\n")  # fmt: skip
            assert once.startswith(b"HTTP/1.0 200"), once[:80]
            assert json.loads(once.split(b"\r\n\r\n", 1)[1])["execution_id"] == "a%41b"
            # /livez/ is /livez: no token asked.
            assert _raw(url, b"GET /livez/ HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.0 200")
            # A chunked body is a body: 413 like any other.
            chunked = _raw(url, b"GET /livez HTTP/1.1\r\nHost: x\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n")  # fmt: skip
            assert chunked.startswith(b"HTTP/1.0 413"), chunked[:80]
            # Pipelined: the first is answered and the connection says it closes.
            pipelined = _raw(url, b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n" * 2)
            head = pipelined.split(b"\r\n\r\n", 1)[0].lower()
            assert head.startswith(b"http/1.0 200") and b"connection: close" in head
        finally:
            secured.close()


def test_shutdown_keeps_one_deadline_for_everything(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()
    evaluating = threading.Event()

    def hangs() -> bool:
        evaluating.set()
        release.wait(WAIT)
        return True

    waits: list[float | None] = []
    join = threading.Thread.join

    def spy(self: threading.Thread, timeout: float | None = None) -> None:
        waits.append(timeout)
        join(self, timeout)

    with capture() as sw:
        sw.monitor.add_check("slow", hangs, timeout=60)
        sw.monitor.start(interval=0.01)
        assert evaluating.wait(WAIT)
        monkeypatch.setattr(threading.Thread, "join", spy)
        try:
            sw.monitor.shutdown(timeout=0.25)
        finally:
            monkeypatch.undo()
            release.set()
    assert waits, "shutdown waited for the evaluation loop"
    assert all(t is not None and t <= 0.25 for t in waits), waits


EXIT_PROGRAM = """
import stepwatch
monitor = stepwatch.configure(service_name="exit-test")
with stepwatch.execution("last"):
    pass
print("body done", flush=True)
"""


def test_a_dead_backend_holds_exit_up_for_one_export_timeout_at_most() -> None:
    # A blackhole: accepts connections and never answers.
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                accepted.append(listener.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
    }
    try:
        # The guard is generous: the point is the exit path, not its speed. Before
        # the fix the SDK's own exit hook waited for the stuck exports; now the
        # Monitor's hook gives up at the export timeout and says so.
        result = subprocess.run(
            [sys.executable, "-c", EXIT_PROGRAM],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        stop.set()
        thread.join(WAIT)
        for connection in accepted:
            connection.close()
        listener.close()
    assert result.returncode == 0, result.stderr
    assert "body done" in result.stdout
    assert "telemetry not flushed within 1" in result.stderr, result.stderr


@pytest.mark.internal_errors  # each dropped connection is counted
def test_half_sent_requests_are_bounded_timed_out_and_livez_answers() -> None:
    with capture() as sw:
        handle = sw.monitor.serve(request_timeout=0.5, max_connections=4)
        host, port = handle.url.removeprefix("http://").split(":")
        baseline = threading.active_count()
        slow: list[socket.socket] = []
        try:
            for _ in range(40):
                connection = socket.create_connection((host, int(port)), timeout=WAIT)
                connection.sendall(b"GET /summ")  # never finished
                slow.append(connection)
            # One thread per served slot, plus the one overflow thread past them.
            assert threading.active_count() <= baseline + 4 + 1
            assert _raw(handle.url, b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n").startswith(
                b"HTTP/1.0 200"
            )
            for connection in slow:  # every one is closed by the server, none hangs
                while connection.recv(65536):
                    pass
        finally:
            for connection in slow:
                connection.close()
            handle.close()


def test_summary_answers_a_day_and_times_runs_when_they_ran(sw: Harness) -> None:
    with stepwatch.execution("old", execution_id="o-1"):
        sw.clock.advance(2)
    sw.clock.advance(3 * 3600)  # nobody asked in between
    with stepwatch.execution("new", execution_id="n-1"):
        sw.clock.advance(1)
    recent = sw.monitor.summary()  # the rules window: only the run of now
    assert recent.total == 1 and recent.outcomes["success"] == 1
    day = sw.monitor.summary(86400)
    assert day.total == 2
    assert day.duration.count == 2 and day.duration.max == 2.0
    assert sw.monitor.summary(86400, name="old").total == 1
    with pytest.raises(ValueError, match="window"):
        sw.monitor.summary(86401)


def test_long_ids_keep_memory_small(sw: Harness) -> None:
    """3,000 executions with 100 kB ids keep what ``Limits.max_id_length`` allows, not 300 MB."""
    import gc
    import tracemalloc

    filler = "i" * 100_000
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for index in range(3_000):
            carrier = stepwatch.enqueue("long-ids", execution_id=f"{filler}{index}")
            with stepwatch.execution("long-ids", carrier=carrier):
                pass
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 2**20, f"{grown / 2**20:.1f} MiB"  # 314 MiB when ids were kept whole
    assert sw.monitor.summary().outcomes["success"] == 3_000
    last = sw.monitor.progress(sw.monitor.limits.bounded_id(f"{filler}2999"))
    assert last is not None and last.state == "success"  # found by the same rule
