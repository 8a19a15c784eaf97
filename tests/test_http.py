"""The HTTP surface over real loopback sockets."""

from __future__ import annotations

import http.client
import json
import select
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

import stepwatch
from stepwatch import Rules
from stepwatch.http import ServerHandle, make_wsgi_app
from stepwatch.testing import Harness, capture
from tests.helpers import run_ended_history

WAIT = 30.0  # upper bound for waits; never reached when things work

TOKEN = "t0ken-for-tests"


def request(
    handle: ServerHandle,
    path: str,
    *,
    token: str | None = None,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> tuple[int, str, Any]:
    host, port = handle.url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    all_headers = dict(headers or {})
    if token is not None:
        all_headers["Authorization"] = f"Bearer {token}"
    connection.request(method, path, body=body, headers=all_headers)
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    content_type = response.getheader("Content-Type") or ""
    parsed = json.loads(raw) if raw and "json" in content_type else raw
    return response.status, content_type, parsed


@pytest.fixture
def served() -> Iterator[tuple[Harness, ServerHandle]]:
    with capture(rules=Rules(min_executions=5)) as sw:
        handle = sw.monitor.serve()
        try:
            yield sw, handle
        finally:
            handle.close()


@pytest.fixture
def secured() -> Iterator[tuple[Harness, ServerHandle]]:
    with capture() as sw:
        handle = sw.monitor.serve(token=TOKEN)
        try:
            yield sw, handle
        finally:
            handle.close()


def test_binds_to_loopback_by_default(served: tuple[Harness, ServerHandle]) -> None:
    assert served[1].url.startswith("http://127.0.0.1:")


def test_livez_and_readyz(served: tuple[Harness, ServerHandle]) -> None:
    sw, handle = served
    assert request(handle, "/livez")[:3] == (200, "application/json", {"status": "pass"})
    assert request(handle, "/readyz")[0] == 200
    sw.monitor.add_check("cache", lambda: False, critical=False)
    sw.monitor.health(refresh=True)
    assert request(handle, "/readyz")[0] == 200  # non-critical: still ready
    sw.monitor.add_check("db", lambda: False, critical=True)
    sw.monitor.health(refresh=True)
    status, _, body = request(handle, "/readyz")
    assert (status, body) == (503, {"status": "fail", "failing": ["db"]})


def test_readyz_ignores_slo_alerts(served: tuple[Harness, ServerHandle]) -> None:
    sw, handle = served
    for _ in range(10):
        with pytest.raises(ValueError, match="x"), stepwatch.execution("bad"):
            raise ValueError("x")
    assert sw.monitor.health(refresh=True).status.value == "unhealthy"
    assert request(handle, "/readyz")[0] == 200
    assert request(handle, "/healthz")[0] == 503


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_livez_reports_a_dead_loop(served: tuple[Harness, ServerHandle]) -> None:
    sw, handle = served
    sw.monitor.start(interval=60)
    assert request(handle, "/livez")[0] == 200
    fatal = threading.Event()

    def die() -> None:
        fatal.set()
        raise SystemExit  # not an Exception: it ends the loop's thread

    sw.monitor.reader.refresh = die  # type: ignore[method-assign]
    sw.monitor.start(interval=0.01)
    assert fatal.wait(WAIT)
    deadline = time.monotonic() + WAIT
    while not sw.monitor.loop_died and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sw.monitor.loop_died
    status, _, body = request(handle, "/livez")
    assert (status, body["status"]) == (503, "fail")


def test_healthz_body_shape(served: tuple[Harness, ServerHandle]) -> None:
    sw, handle = served
    status, content_type, body = request(handle, "/healthz")
    assert (status, content_type) == (200, "application/health+json")
    assert body["status"] == "pass"
    assert body["checks"] == {}
    sw.monitor.add_check("cache", lambda: False, critical=False)
    sw.monitor.health(refresh=True)
    status, _, body = request(handle, "/healthz")
    assert (status, body["status"]) == (200, "warn")
    (component,) = body["checks"]["cache:status"]
    assert component["status"] == "fail"
    assert component["componentId"] == "cache"
    assert component["time"].endswith("Z")
    assert "observedValue" in component
    (alert,) = body["checks"]["ComponentDown:status"]
    assert alert["status"] == "warn"
    for _ in range(10):
        with pytest.raises(ValueError, match="x"), stepwatch.execution("bad"):
            raise ValueError("x")
    sw.monitor.health(refresh=True)
    status, _, body = request(handle, "/healthz")
    assert (status, body["status"]) == (503, "fail")
    (rate,) = body["checks"]["HighFailureRate:failureRate"]
    assert (rate["observedValue"], rate["observedUnit"], rate["status"]) == (1.0, "ratio", "fail")
    assert (rate["componentId"], rate["componentType"]) == ("HighFailureRate", "system")
    assert rate["labels"] == {"name": "bad"}
    assert body["version"] == ".".join(stepwatch.__version__.split(".")[:2])
    assert body["releaseId"] == stepwatch.__version__


def test_executions_routes(served: tuple[Harness, ServerHandle]) -> None:
    _, handle = served
    with stepwatch.execution("job", execution_id="e/1", total_steps=2) as ex:
        with ex.step("one"):
            pass
        status, _, body = request(handle, "/executions")
        assert status == 200
        assert [e["execution_id"] for e in body["executions"]] == ["e/1"]
        status, _, one = request(handle, "/executions/e%2F1")
        assert (status, one["percent"], one["state"]) == (200, 50.0, "executing")
    assert request(handle, "/executions/missing")[0] == 404
    assert request(handle, "/nowhere")[0] == 404


def test_summary_route(served: tuple[Harness, ServerHandle]) -> None:
    _, handle = served
    with stepwatch.execution("job"):
        pass
    status, _, body = request(handle, "/summary?window=60&name=job")
    assert (status, body["total"], body["name"], body["window"]) == (200, 1, "job", 60.0)
    for bad in ("window=abc", "window=-1", "window=99999", "window=nan", "window=1&window=2"):
        status, content_type, body = request(handle, f"/summary?{bad}")
        assert (status, content_type) == (400, "application/json"), bad
        assert "error" in body
        assert "Traceback" not in json.dumps(body)


def test_alerts_route(served: tuple[Harness, ServerHandle]) -> None:
    sw, handle = served
    for _ in range(10):
        with pytest.raises(ValueError, match="x"), stepwatch.execution("bad"):
            raise ValueError("x")
    sw.monitor.health(refresh=True)
    status, _, body = request(handle, "/alerts?severity=critical&limit=5&active=true")
    assert status == 200
    assert [a["rule"] for a in body["alerts"]] == ["HighFailureRate"]
    assert request(handle, "/alerts?severity=warning")[2] == {"alerts": []}
    for bad in ("severity=loud", "limit=-3", "limit=x", "active=maybe"):
        assert request(handle, f"/alerts?{bad}")[0] == 400, bad


def test_methods_bodies_and_limits(served: tuple[Harness, ServerHandle]) -> None:
    _, handle = served
    assert request(handle, "/livez", method="POST", body=b"")[0] == 405
    assert request(handle, "/livez", method="GET", body=b"x" * 10)[0] == 413
    assert request(handle, "/summary?" + "a" * 5000)[0] == 414
    status, _, body = request(handle, "/livez", method="HEAD")
    assert (status, body) == (200, b"")


def test_token_required_except_livez(secured: tuple[Harness, ServerHandle]) -> None:
    _, handle = secured
    assert request(handle, "/livez")[0] == 200
    for path in (
        "/readyz",
        "/healthz",
        "/executions",
        "/summary",
        "/alerts",
        "/events?format=json",
    ):
        status, _, body = request(handle, path)
        assert (status, body["error"]) == (401, "a valid bearer token is required"), path
        assert request(handle, path, token="wrong")[0] == 401
        assert request(handle, path, token=TOKEN)[0] == 200
    assert request(handle, "/healthz", headers={"Authorization": "Basic abc"})[0] == 401


def test_app_is_pure_wsgi() -> None:
    with capture() as sw:
        app = make_wsgi_app(sw.monitor)
        captured: dict[str, Any] = {}

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            captured["status"] = status
            captured["headers"] = dict(headers)

        body = b"".join(app({"REQUEST_METHOD": "GET", "PATH_INFO": "/livez"}, start_response))
        assert captured["status"] == "200 OK"
        assert captured["headers"]["Content-Type"] == "application/json"
        assert json.loads(body) == {"status": "pass"}
    with pytest.raises(ValueError, match="token"):
        make_wsgi_app(sw.monitor, token="")


def test_handler_errors_become_500_without_traceback(served: tuple[Harness, ServerHandle]) -> None:
    sw, handle = served

    def broken(limit: int | None = None) -> Any:
        raise RuntimeError("secret internals")

    sw.monitor.active_executions = broken  # type: ignore[method-assign]
    status, _, body = request(handle, "/executions")
    assert (status, body) == (500, {"error": "internal error", "status": 500})


# ---------------------------------------------------------------------- SSE
class SSEClient:
    """Reads a text/event-stream response on a thread; events land in a list."""

    def __init__(self, handle: ServerHandle, path: str, headers: dict[str, str] | None = None):
        host, port = handle.url.removeprefix("http://").split(":")
        self.connection = http.client.HTTPConnection(host, int(port), timeout=30)
        self.connection.request("GET", path, headers=headers or {})
        self.response = self.connection.getresponse()
        self.status = self.response.status
        self.events: list[dict[str, Any]] = []
        self.comments = 0
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, daemon=True)
        if self.status == 200:
            self._thread.start()

    def _read(self) -> None:
        current: dict[str, Any] = {}
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if line.startswith(":"):
                    with self._changed:
                        self.comments += 1
                        self._changed.notify_all()
                elif not line:
                    if "data" in current:
                        with self._changed:
                            self.events.append(current)
                            self._changed.notify_all()
                    current = {}
                else:
                    key, _, value = line.partition(": ")
                    current[key] = json.loads(value) if key == "data" else value
        except (OSError, ValueError):
            return

    def wait_for(self, predicate: Callable[[SSEClient], bool], timeout: float = 30.0) -> bool:
        with self._changed:
            return self._changed.wait_for(lambda: predicate(self), timeout)

    def close(self) -> None:
        self.connection.close()


def test_sse_filtered_stream_and_resume() -> None:
    with capture() as sw:
        handle = sw.monitor.serve(heartbeat=0.2)
        try:
            client = SSEClient(handle, "/events?execution_id=mine")
            assert client.status == 200
            assert client.response.getheader("Content-Type") == "text/event-stream"
            assert client.wait_for(lambda c: c.comments >= 1)  # the stream is open
            with stepwatch.execution("job", execution_id="other"):
                pass
            with stepwatch.execution("job", execution_id="mine") as ex, ex.step("s"):
                pass
            assert client.wait_for(lambda c: len(c.events) >= 4)
            assert {e["data"]["execution_id"] for e in client.events} == {"mine"}
            assert [e["event"] for e in client.events] == [
                "execution.started",
                "step.started",
                "step.completed",
                "execution.completed",
            ]
            base = sw.monitor.bus.resume_base  # SSE ids: the history's start, plus seq
            assert all(int(e["id"]) == base + e["data"]["seq"] for e in client.events)
            last_seen = client.events[1]["id"]
            client.close()

            # Reconnect after the second event: the missed ones come from the history.
            resumed = SSEClient(handle, "/events?execution_id=mine", {"Last-Event-ID": last_seen})
            assert resumed.wait_for(lambda c: len(c.events) >= 2)
            assert [e["event"] for e in resumed.events] == ["step.completed", "execution.completed"]
            typed = SSEClient(handle, "/events?type=execution.completed")
            assert typed.wait_for(lambda c: c.comments >= 1)
            with stepwatch.execution("job", execution_id="third"):
                pass
            assert typed.wait_for(lambda c: len(c.events) >= 1)
            assert [e["data"]["execution_id"] for e in typed.events] == ["third"]
            resumed.close()
            typed.close()
            assert request(handle, "/events?type=nonsense")[0] == 400
            assert request(handle, "/events", headers={"Last-Event-ID": "x"})[0] == 400
        finally:
            handle.close()


def test_sse_clients_are_bounded() -> None:
    with capture() as sw:
        app = make_wsgi_app(sw.monitor, max_sse_clients=1, heartbeat=0.2)
        from wsgiref.simple_server import make_server

        from stepwatch.http import _QuietHandler, _ThreadingWSGIServer

        server = make_server("127.0.0.1", 0, app, _ThreadingWSGIServer, _QuietHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        handle = ServerHandle(server, thread)
        try:
            first = SSEClient(handle, "/events")
            assert first.status == 200
            second = SSEClient(handle, "/events")
            assert second.status == 503
            assert second.response.getheader("Retry-After") == "5"
            first.close()
        finally:
            handle.close()


def test_healthz_names_the_service_and_its_release() -> None:
    resource = Resource.create({"service.name": "billing", "service.version": "4.2.7"})
    monitor = stepwatch.Monitor(
        tracer_provider=TracerProvider(resource=resource), meter_provider=MeterProvider()
    )
    handle = monitor.serve()
    try:
        _, _, body = request(handle, "/healthz")
    finally:
        handle.close()
        monitor.shutdown()
    assert (body["serviceId"], body["version"], body["releaseId"]) == ("billing", "4.2", "4.2.7")


# ------------------------------------------------------------------- hostile clients
def _address(handle: ServerHandle) -> tuple[str, int]:
    host, port = handle.url.removeprefix("http://").split(":")
    return host, int(port)


def _closed_by_server(connection: socket.socket) -> bool:
    """Whether the server closed ``connection`` (EOF or reset), without waiting."""
    readable, _, _ = select.select([connection], [], [], 0)
    if not readable:
        return False
    try:
        return connection.recv(65536, socket.MSG_PEEK) == b""
    except OSError:
        return True


def test_sse_resume_from_before_a_restart_replays_the_new_history() -> None:
    """A ``Last-Event-ID`` kept across a server restart must not silence the stream."""
    with capture() as before:
        handle = before.monitor.serve(heartbeat=0.2)
        try:
            client = SSEClient(handle, "/events")
            assert client.wait_for(lambda c: c.comments >= 1)
            for index in range(5):
                with stepwatch.execution("job", execution_id=f"old-{index}"):
                    pass
            assert client.wait_for(lambda c: len(c.events) >= 10)
            kept = client.events[-1]["id"]  # what a browser's EventSource would send back
            client.close()
        finally:
            handle.close()
    with capture() as after:  # the restarted process: a new, shorter history
        for index in range(3):
            with stepwatch.execution("job", execution_id=f"new-{index}"):
                pass
        handle = after.monitor.serve(heartbeat=0.2)
        try:
            resumed = SSEClient(handle, "/events", {"Last-Event-ID": kept})
            assert resumed.wait_for(lambda c: len(c.events) >= 6)
            assert {e["data"]["execution_id"] for e in resumed.events} == {
                "new-0",
                "new-1",
                "new-2",
            }
            # Within one history, resuming still skips what was seen.
            again = SSEClient(handle, "/events", {"Last-Event-ID": resumed.events[3]["id"]})
            assert again.wait_for(lambda c: len(c.events) >= 2)
            assert [e["data"]["seq"] for e in again.events] == [5, 6]
            # A plain seq (0.2 clients, the dashboard): of this history it resumes;
            # beyond it (kept from before the restart) it replays the history.
            plain = SSEClient(handle, "/events", {"Last-Event-ID": "4"})
            stale = SSEClient(handle, "/events", {"Last-Event-ID": "10"})
            assert plain.wait_for(lambda c: len(c.events) >= 2)
            assert stale.wait_for(lambda c: len(c.events) >= 6)
            assert [e["data"]["seq"] for e in plain.events] == [5, 6]
            assert [e["data"]["seq"] for e in stale.events] == [1, 2, 3, 4, 5, 6]
            for client in (resumed, again, plain, stale):
                client.close()
        finally:
            handle.close()


def test_closing_the_server_ends_its_open_event_streams() -> None:
    with capture() as sw:
        handle = sw.monitor.serve(heartbeat=0.2)
        client = SSEClient(handle, "/events")
        try:
            assert client.wait_for(lambda c: c.comments >= 1)
            handle.close()
            client._thread.join(WAIT)
            assert not client._thread.is_alive()  # the stream ended: EOF
            with stepwatch.execution("job", execution_id="after-close"):
                pass
            assert client.events == []
        finally:
            client.close()
            handle.close()


@pytest.mark.internal_errors
def test_dropped_connections_are_counted_not_printed(capfd: pytest.CaptureFixture[str]) -> None:
    from stepwatch import testing

    with capture() as sw:
        handle = sw.monitor.serve(request_timeout=0.2)
        half_sent: list[socket.socket] = []
        try:
            for _ in range(5):
                connection = socket.create_connection(_address(handle), timeout=WAIT)
                connection.sendall(b"GET /summ")  # never finished
                half_sent.append(connection)
            for connection in half_sent:  # the server drops each one
                while connection.recv(65536):
                    pass
        finally:
            for connection in half_sent:
                connection.close()
            handle.close()
    assert "Traceback" not in capfd.readouterr().err
    assert testing.internal_errors() == {"http.connection": 5}


@pytest.mark.internal_errors
def test_a_trickled_request_is_dropped_at_its_deadline() -> None:
    """A byte at a time, each well within the timeout: the whole request still has one."""
    with capture() as sw:
        handle = sw.monitor.serve(request_timeout=0.5, max_connections=2)
        connection = socket.create_connection(_address(handle), timeout=WAIT)
        pace = threading.Event()  # never set: paces the trickle, 0.05 s a byte
        try:
            dropped = False
            for byte in b"GET /summary?" + b"x" * 600:  # 30 s of trickling at most
                if _closed_by_server(connection):
                    dropped = True
                    break
                try:
                    connection.sendall(bytes([byte]))
                except OSError:
                    dropped = True
                    break
                pace.wait(0.05)
            assert dropped
            assert request(handle, "/livez")[0] == 200
        finally:
            connection.close()
            handle.close()


@pytest.mark.internal_errors
def test_livez_answers_while_every_request_slot_is_held() -> None:
    """Past the slots, a probe is answered when its request line arrives, idle crowd or not."""
    with capture() as sw:
        handle = sw.monitor.serve(request_timeout=WAIT, max_connections=1)
        address = _address(handle)
        held = [socket.create_connection(address, timeout=WAIT)]  # silent, holds the slot
        try:
            probe = socket.create_connection(address, timeout=WAIT)
            probe.sendall(b"GET /li")
            # 100 idle connections past the slot behind the probe, which is slow to send
            # the rest of its line (well within http.OVERFLOW_GRACE).
            held.extend(socket.create_connection(address, timeout=WAIT) for _ in range(100))
            threading.Event().wait(0.2)
            probe.sendall(b"vez HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = b""
            while chunk := probe.recv(65536):
                answer += chunk
            probe.close()
            assert answer.startswith(b"HTTP/1.0 200"), answer
            other = socket.create_connection(address, timeout=WAIT)
            other.sendall(b"GET /summary HTTP/1.1\r\nHost: x\r\n\r\n")
            assert other.recv(65536).startswith(b"HTTP/1.0 503")
            other.close()
        finally:
            for connection in held:
                connection.close()
            handle.close()


@pytest.mark.internal_errors
def test_an_event_that_is_not_json_never_ends_a_stream() -> None:
    from stepwatch import EventType, testing

    with capture() as sw:
        handle = sw.monitor.serve(heartbeat=0.2)
        try:
            client = SSEClient(handle, "/events")
            assert client.wait_for(lambda c: c.comments >= 1)
            sw.monitor.bus.publish(EventType.EXECUTION_STARTED, "odd", {"blob": b"\xff"})
            with stepwatch.execution("job", execution_id="after"):
                pass
            assert client.wait_for(lambda c: len(c.events) >= 3)
            odd, *rest = client.events
            assert odd["data"]["error"] == "the event's data is not JSON"
            assert {e["data"]["execution_id"] for e in rest} == {"after"}
            # A resume from before it passes over it again, and goes on.
            again = SSEClient(handle, "/events", {"Last-Event-ID": str(int(odd["id"]) - 1)})
            assert again.wait_for(lambda c: len(c.events) >= 3)
            client.close()
            again.close()
        finally:
            handle.close()
        assert testing.internal_errors() == {"http.sse.encode": 1}  # encoded once for all


def test_executions_route_answers_the_history_query(sw: Harness) -> None:
    run_ended_history(sw.clock)
    handle = sw.monitor.serve()
    try:

        def ids(query: str) -> list[str]:
            with urllib.request.urlopen(f"{handle.url}/executions?{query}", timeout=10) as answer:
                return [row["execution_id"] for row in json.load(answer)["executions"]]

        assert ids("workflow=nightly") == ["n-2", "n-1", "n-0"]
        assert ids("outcome=failure") == ["n-1"]
        assert ids("state=success&state=failure&workflow=nightly&limit=2") == ["n-2", "n-1"]
        assert ids("") == []  # no filter: pending and running only, as before
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{handle.url}/executions?state=finished", timeout=10)
        assert refused.value.code == 400
    finally:
        handle.close()
