"""The Monitor over HTTP: probes, executions, summaries, alerts and live Server-Sent Events.

Usage::

    handle = monitor.serve(port=8474, token="s3cret")   # a daemon thread on 127.0.0.1
    handle.url                                           # "http://127.0.0.1:8474"
    handle.close()

    app = stepwatch.http.make_wsgi_app(monitor)          # mount in any WSGI server

Routes (all ``GET``; JSON unless noted):

============================ ===================================================
``/``                        the live dashboard (HTML; its ``dashboard.js`` and
                             ``dashboard.css`` beside it): served without a
                             token, it holds no data and asks for the token
``/group``                   the process group's members (``[]`` outside a group)
``/livez``                   200 while the process (and the evaluation loop, if
                             started) is alive; 503 when the loop died
``/readyz``                  critical component checks only: 200 or 503
``/healthz``                 ``application/health+json`` (IETF draft): 200 for
                             pass and warn, 503 for fail
``/executions?q=&offset=&limit=&steps=``  running, then pending executions,
                             each oldest first; with ``state`` (repeatable),
                             ``workflow``, ``outcome``, ``since`` or ``until``
                             the history (``Monitor.executions``); with any
                             filter or ``offset``, also ``total`` and ``matched``
``/executions/{id}``         one execution's progress, 404 when unknown
``/summary?window=&name=``   ``MetricsSummary``
``/alerts?severity=&limit=&active=``  alerts
``/events?execution_id=&type=``       Server-Sent Events (``text/event-stream``);
                             resumes after ``Last-Event-ID``; ``format=json``
                             returns the history instead (with ``limit``)
============================ ===================================================

Security: the server binds to 127.0.0.1 unless told otherwise. With a token,
every route but ``/livez`` and the dashboard's own files needs
``Authorization: Bearer <token>`` (compared in constant time; 401
otherwise). Only ``GET`` and ``HEAD`` are served, query strings are capped
at 2 KiB, bad query values get a 400 with a JSON error, and errors never
carry a traceback. Nothing of the engine's function arguments is ever
recorded, so nothing of them can be served.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import os
import select
import socket
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import IO, TYPE_CHECKING, Any, cast
from urllib.parse import parse_qs
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer, make_server

from opentelemetry import trace

from stepwatch import _checks as checks
from stepwatch import _dashboard, semconv
from stepwatch._models import iso
from stepwatch.events import ExecutionEvent
from stepwatch.health import Alert, SystemHealth
from stepwatch.semconv import EventType, ExecutionState, HealthStatus, Severity
from stepwatch.version import __version__

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

    from stepwatch.group import Peer
    from stepwatch.monitor import Monitor
    from stepwatch.progress import ExecutionProgress

__all__ = ["ServerHandle", "make_wsgi_app", "serve"]

_logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 15.0
"""Seconds between SSE heartbeat comments (they also detect gone clients)."""
EXECUTIONS_LIMIT = 100
"""Executions ``/executions`` lists by default (running first); ``?limit=`` asks for more."""
MAX_EXECUTIONS_LIMIT = 10_000
"""The most ``/executions?limit=`` lists."""

_HISTORY_FILTERS = frozenset({"state", "workflow", "outcome", "since", "until"})
"""``/executions`` parameters that ask for the history query (``Monitor.executions``)."""
REQUEST_TIMEOUT = 10.0
"""Seconds a connection may stay silent before it is dropped (slow or half-sent requests)."""
MAX_CONNECTIONS = 64
"""Connections served at once; past it new ones get 503 (``GET /livez`` still answered)."""
MAX_QUERY_BYTES = 2048
"""Longest query string accepted (414 beyond)."""
MAX_AUTHORIZATION_BYTES = 1024
SSE_QUEUE = 1_000
"""Most events one SSE write carries (after a replay): a client that lags further loses the
oldest."""
SSE_WRITE_INTERVAL = 0.05
"""Seconds between two reads of the event history by one SSE stream: what was published
meanwhile goes out in one write, so a busy engine costs each client 20 wake-ups a second."""

_JSON = "application/json"
_PAGE_HEADERS = [
    ("Content-Security-Policy", _dashboard.CONTENT_SECURITY_POLICY),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
]
_HEALTH_JSON = "application/health+json"
_STATUS_TEXT = {
    200: "200 OK",
    400: "400 Bad Request",
    401: "401 Unauthorized",
    404: "404 Not Found",
    405: "405 Method Not Allowed",
    413: "413 Content Too Large",
    414: "414 URI Too Long",
    500: "500 Internal Server Error",
    503: "503 Service Unavailable",
}
_HEALTH_TO_IETF = {
    HealthStatus.HEALTHY: "pass",
    HealthStatus.DEGRADED: "warn",
    HealthStatus.UNHEALTHY: "fail",
}
_SEVERITY_TO_IETF = {Severity.INFO: "pass", Severity.WARNING: "warn", Severity.CRITICAL: "fail"}
_RULE_MEASUREMENT = {
    semconv.RULE_HIGH_FAILURE_RATE: ("failureRate", "ratio"),
    semconv.RULE_HIGH_TIMEOUT_RATE: ("timeoutRate", "ratio"),
    semconv.RULE_QUEUE_BACKLOG: ("queueDepth", "{execution}"),
    semconv.RULE_STUCK_EXECUTIONS: ("stuckExecutions", "{execution}"),
    semconv.RULE_SLA_BURN_RATE: ("burnRate", "ratio"),
    semconv.RULE_COMPONENT_DOWN: ("status", None),
    semconv.RULE_TELEMETRY_EXPORT_FAILING: ("exportFailures", "{export}"),
}

Response = tuple[int, str, Iterable[bytes], list[tuple[str, str]]]


class _BadRequest(Exception):
    """A query value that cannot be used; becomes a 400."""


def _json_body(status: int, payload: Any, content_type: str = _JSON) -> Response:
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    return status, content_type, [body], []


def _error(status: int, message: str, headers: list[tuple[str, str]] | None = None) -> Response:
    code, content_type, body, _ = _json_body(status, {"error": message, "status": status})
    return code, content_type, body, headers or []


def _single(params: dict[str, list[str]], key: str) -> str | None:
    values = params.get(key)
    if not values:
        return None
    if len(values) > 1:
        raise _BadRequest(f"{key} given more than once")
    return values[0]


def _number(params: dict[str, list[str]], key: str) -> float | None:
    raw = _single(params, key)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise _BadRequest(f"{key} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise _BadRequest(f"{key} must be finite")
    return value


def _integer(params: dict[str, list[str]], key: str, default: int) -> int:
    raw = _single(params, key)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadRequest(f"{key} must be an integer, got {raw!r}") from None
    if value < 0:
        raise _BadRequest(f"{key} must be >= 0")
    return value


def _boolean(params: dict[str, list[str]], key: str) -> bool | None:
    raw = _single(params, key)
    if raw is None:
        return None
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise _BadRequest(f"{key} must be true or false, got {raw!r}")


def _event_type(params: dict[str, list[str]]) -> EventType | None:
    raw = _single(params, "type")
    if raw is None:
        return None
    try:
        return EventType(raw)
    except ValueError:
        raise _BadRequest(f"unknown event type {raw!r}") from None


def health_json(
    health: SystemHealth,
    service: str | None = None,
    release: str | None = None,
) -> dict[str, Any]:
    """Render a :class:`SystemHealth` in the IETF ``application/health+json`` draft format.

    Args:
        health: What to render.
        service: ``serviceId`` (the resource's ``service.name``).
        release: ``releaseId``, the full release (the resource's
            ``service.version``; default stepwatch's own version); ``version``
            is its first two dot-separated parts.
    """
    checks: dict[str, list[dict[str, Any]]] = {}
    for component in health.components:
        entry: dict[str, Any] = {
            "componentId": component.name,
            "componentType": "component",
            "observedValue": component.status.value,
            "status": _HEALTH_TO_IETF[component.status],
            "time": iso(component.checked_at),
        }
        if component.duration is not None:
            entry["observedValue"] = round(component.duration * 1000, 3)
            entry["observedUnit"] = "ms"
        if component.message:
            entry["output"] = component.message
        checks.setdefault(f"{component.name}:status", []).append(entry)
    for alert in health.alerts:
        checks.setdefault(_alert_key(alert), []).append(_alert_check(alert))
    body: dict[str, Any] = {
        "status": _HEALTH_TO_IETF[health.status],
        "description": f"stepwatch health: {health.status.value}",
        "checks": checks,
        "time": iso(health.checked_at),
    }
    if service:
        body["serviceId"] = service
    release = release or __version__
    body["version"] = ".".join(release.split(".")[:2])
    body["releaseId"] = release
    return body


def _service(monitor: Monitor) -> tuple[str | None, str | None]:
    """``service.name`` and ``service.version`` of the Monitor's resource, when it has one."""
    provider = monitor.tracer_provider or trace.get_tracer_provider()
    attributes = getattr(getattr(provider, "resource", None), "attributes", None) or {}
    name, version = attributes.get("service.name"), attributes.get("service.version")
    return (
        name if isinstance(name, str) else None,
        version if isinstance(version, str) else None,
    )


def _alert_key(alert: Alert) -> str:
    measurement, _ = _RULE_MEASUREMENT.get(alert.rule, ("value", None))
    return f"{alert.rule}:{measurement}"


def _alert_check(alert: Alert) -> dict[str, Any]:
    _, unit = _RULE_MEASUREMENT.get(alert.rule, ("value", None))
    entry: dict[str, Any] = {
        "componentId": alert.rule,
        "componentType": "system",
        "observedValue": alert.value,
        "status": _SEVERITY_TO_IETF[alert.severity],
        "time": iso(alert.started_at),
        "output": alert.message,
    }
    if alert.labels:
        entry["labels"] = dict(alert.labels)
    if unit is not None:
        entry["observedUnit"] = unit
    return entry


def _matching(executions: list[ExecutionProgress], query: str | None) -> list[ExecutionProgress]:
    """Those whose id, name or current step contains ``query`` (any case)."""
    if not query:
        return executions
    folded = query.casefold()
    return [
        p
        for p in executions
        if folded in p.execution_id.casefold()
        or folded in p.name.casefold()
        or (p.current_step is not None and folded in p.current_step.casefold())
    ]


def _member(peer: Peer) -> dict[str, Any]:
    """One other process of the group, as the dashboard lists it (counts, no ids)."""
    executions = peer.executions
    pending = sum(1 for p in executions if p.state == ExecutionState.PENDING.value)
    return {
        "pid": peer.pid,
        "self": False,
        "alive": peer.alive,
        "published_at": iso(peer.published_at),
        "running": len(executions) - pending,
        "pending": pending,
        "alerts": len(peer.alerts),
    }


def _sse(event: ExecutionEvent) -> bytes:
    data = json.dumps(event.to_dict(), separators=(",", ":"))
    return f"id: {event.seq}\nevent: {event.type.value}\ndata: {data}\n\n".encode()


class _Encoded:
    """Each event serialized once for every SSE client (the most recent ``size`` kept)."""

    def __init__(self, size: int = SSE_QUEUE) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._frames: OrderedDict[int, bytes] = OrderedDict()

    def frames(self, events: list[ExecutionEvent]) -> bytes:
        """Several events' frames as one write (one lock round for the lookups)."""
        with self._lock:
            cached = [self._frames.get(event.seq) for event in events]
        fresh: dict[int, bytes] = {}
        frames: list[bytes] = []
        for event, frame in zip(events, cached, strict=True):
            if frame is None:
                fresh[event.seq] = _sse(event)
            frames.append(frame or fresh[event.seq])
        if fresh:
            with self._lock:
                self._frames.update(fresh)
                while len(self._frames) > self._size:
                    self._frames.popitem(last=False)
        return b"".join(frames)


class _Stream:
    """An SSE body that gives its client slot back exactly once: when it ends or is closed.

    The WSGI server calls ``close()`` on every body, iterated or not (PEP 3333):
    a stream whose client left before the first byte, or a ``HEAD``, releases
    its slot too; a generator never started would never reach its ``finally``.
    """

    def __init__(self, frames: Iterator[bytes], release: Callable[[], None]) -> None:
        self._frames = frames
        self._release: Callable[[], None] | None = release
        self._lock = threading.Lock()

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            return next(self._frames)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        try:
            close = getattr(self._frames, "close", None)
            if close is not None:
                close()
        finally:
            with self._lock:
                release, self._release = self._release, None
            if release is not None:
                release()


class _App:
    """The WSGI application; state is the Monitor's, plus the SSE client count."""

    def __init__(
        self,
        monitor: Monitor,
        token: str | None,
        heartbeat: float,
        max_clients: int,
    ) -> None:
        self.monitor = monitor
        self._token = token.encode() if token is not None else None
        self.heartbeat = heartbeat
        self._clients = threading.BoundedSemaphore(max_clients)
        self._encoded = _Encoded()
        self.routes: dict[str, Callable[[dict[str, list[str]], WSGIEnvironment], Response]] = {
            "/livez": self._livez,
            "/readyz": self._readyz,
            "/healthz": self._healthz,
            "/executions": self._executions,
            "/summary": self._summary,
            "/alerts": self._alerts,
            "/events": self._events,
            "/group": self._group,
        }

    # ---------------------------------------------------------------- plumbing
    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        try:
            status, content_type, body, headers = self._dispatch(environ)
        except Exception:
            _logger.warning("stepwatch: HTTP handler failed", exc_info=True)
            status, content_type, body, headers = _error(500, "internal error")
        start_response(
            _STATUS_TEXT.get(status, f"{status} Error"),
            [
                ("Content-Type", content_type),
                ("Cache-Control", "no-store"),
                ("X-Content-Type-Options", "nosniff"),
                *headers,
            ],
        )
        if environ.get("REQUEST_METHOD") == "HEAD":
            close = getattr(body, "close", None)
            if close is not None:
                close()  # a stream never iterated still gives its client slot back
            return []
        return body

    def _authorized(self, environ: WSGIEnvironment) -> bool:
        if self._token is None:
            return True
        header = environ.get("HTTP_AUTHORIZATION", "")
        if len(header) > MAX_AUTHORIZATION_BYTES:
            return False
        scheme, _, credentials = header.strip().partition(" ")
        if scheme.lower() != "bearer":  # auth schemes are case-insensitive (RFC 7235)
            return False
        return hmac.compare_digest(credentials.strip().encode(), self._token)

    def _dispatch(self, environ: WSGIEnvironment) -> Response:
        method = environ.get("REQUEST_METHOD", "GET")
        if method not in ("GET", "HEAD"):
            return _error(405, "only GET and HEAD are served", [("Allow", "GET, HEAD")])
        length = environ.get("CONTENT_LENGTH") or "0"
        if not length.isdigit() or int(length) > 0 or environ.get("HTTP_TRANSFER_ENCODING"):
            return _error(413, "requests carry no body")
        raw_query = environ.get("QUERY_STRING", "")
        if len(raw_query) > MAX_QUERY_BYTES:
            return _error(414, f"query strings are limited to {MAX_QUERY_BYTES} bytes")
        # PEP 3333 hands PATH_INFO over as latin-1 text of the (already
        # percent-decoded) bytes: decode those as UTF-8, and decode nothing twice.
        raw_path = environ.get("PATH_INFO", "/") or "/"
        try:
            path = raw_path.encode("latin-1").decode("utf-8")
        except UnicodeError:
            return _error(400, "the path is not UTF-8")
        route = path.rstrip("/") or "/"
        page = _dashboard.asset(route, token_required=self._token is not None)
        if page is not None:  # the same bytes for everyone: no data, so no token
            content_type, body = page
            return 200, content_type, [body], _PAGE_HEADERS
        if route != "/livez" and not self._authorized(environ):
            return _error(401, "a valid bearer token is required", [("WWW-Authenticate", "Bearer")])
        try:
            params = parse_qs(raw_query, keep_blank_values=False, strict_parsing=False)
            handler = self.routes.get(route)
            if handler is not None:
                return handler(params, environ)
            if path.startswith("/executions/"):
                return self._execution(path[len("/executions/") :])
            return _error(404, f"no route {path!r}")
        except _BadRequest as exc:
            return _error(400, str(exc))

    # ------------------------------------------------------------------ routes
    def _livez(self, params: dict[str, list[str]], environ: WSGIEnvironment) -> Response:
        if self.monitor.loop_died:
            return _json_body(503, {"status": "fail", "output": "evaluation loop stopped"})
        return _json_body(200, {"status": "pass"})

    def _readyz(self, params: dict[str, list[str]], environ: WSGIEnvironment) -> Response:
        monitor = self.monitor
        components = monitor.health(max_age=monitor.evaluation_interval).components
        failing = [c.name for c in components if c.critical and c.status is HealthStatus.UNHEALTHY]
        if failing:
            return _json_body(503, {"status": "fail", "failing": failing})
        return _json_body(200, {"status": "pass"})

    def _healthz(self, params: dict[str, list[str]], environ: WSGIEnvironment) -> Response:
        monitor = self.monitor
        health = monitor.health(max_age=monitor.evaluation_interval)
        body = health_json(health, *_service(monitor))
        return _json_body(503 if body["status"] == "fail" else 200, body, _HEALTH_JSON)

    def _executions(self, params: dict[str, list[str]], environ: WSGIEnvironment) -> Response:
        limit = min(_integer(params, "limit", EXECUTIONS_LIMIT), MAX_EXECUTIONS_LIMIT)
        with_steps = _boolean(params, "steps")
        query = _single(params, "q")
        offset = _integer(params, "offset", 0) if "offset" in params else None
        history = not _HISTORY_FILTERS.isdisjoint(params)
        body: dict[str, Any] = {"limit": limit}
        if query is None and offset is None and not history:
            executions = self.monitor.active_executions(limit=limit)  # the cheap path
        else:
            everything = self._history(params) if history else self.monitor.active_executions()
            matching = _matching(everything, query)
            start = offset or 0
            executions = matching[start : start + limit]
            body.update(total=len(everything), matched=len(matching), offset=start)
        rows = []
        for progress in executions:
            row = progress.to_dict()
            if with_steps is False:
                del row["steps"]
            rows.append(row)
        body["executions"] = rows
        return _json_body(200, body)

    def _history(self, params: dict[str, list[str]]) -> list[ExecutionProgress]:
        """Every execution ``Monitor.executions`` selects with the route's filters."""
        try:
            return self.monitor.executions(
                state=params.get("state"),
                workflow=_single(params, "workflow"),
                outcome=_single(params, "outcome"),
                since=_number(params, "since"),
                until=_number(params, "until"),
                limit=sys.maxsize,
            )
        except (ValueError, TypeError) as exc:
            raise _BadRequest(str(exc)) from None

    def _execution(self, execution_id: str) -> Response:
        progress = self.monitor.progress(execution_id)
        if progress is None:
            return _error(404, f"no execution {execution_id!r}")
        return _json_body(200, progress.to_dict())

    def _group(self, params: dict[str, list[str]], environ: WSGIEnvironment) -> Response:
        group = self.monitor.group
        if group is None:
            return _json_body(200, {"group": False, "members": []})
        sizes = self.monitor.tracker.sizes()
        own = {
            "pid": os.getpid(),
            "self": True,
            "alive": True,
            "published_at": None,
            "running": sizes["running"],
            "pending": sizes["pending"],
            "alerts": None,  # this process's own are in /alerts with the group's
        }
        peers = sorted((_member(peer) for peer in group.peers()), key=lambda m: m["pid"])
        return _json_body(200, {"group": True, "members": [own, *peers]})

    def _summary(self, params: dict[str, list[str]], environ: WSGIEnvironment) -> Response:
        window = _number(params, "window")
        name = _single(params, "name")
        try:
            summary = self.monitor.summary(window, name=name)
        except (ValueError, TypeError) as exc:
            raise _BadRequest(str(exc)) from None
        return _json_body(200, summary.to_dict())

    def _alerts(self, params: dict[str, list[str]], environ: WSGIEnvironment) -> Response:
        severity = _single(params, "severity")
        limit = _integer(params, "limit", 100)
        active = _boolean(params, "active")
        try:
            alerts = self.monitor.alerts(severity, limit, active=active)
        except ValueError as exc:
            raise _BadRequest(str(exc)) from None
        return _json_body(200, {"alerts": [a.to_dict() for a in alerts]})

    def _events(self, params: dict[str, list[str]], environ: WSGIEnvironment) -> Response:
        execution_id = _single(params, "execution_id")
        event_type = _event_type(params)
        if _single(params, "format") == "json":
            limit = _integer(params, "limit", 100)
            events = self.monitor.events(
                execution_id=execution_id, event_type=event_type, limit=limit
            )
            return _json_body(200, {"events": [e.to_dict() for e in events]})
        last = environ.get("HTTP_LAST_EVENT_ID") or _single(params, "last_event_id")
        since: int | None = None
        if last is not None:
            try:
                since = int(last)
            except ValueError:
                raise _BadRequest(f"Last-Event-ID must be an integer, got {last!r}") from None
        if not self._clients.acquire(blocking=False):
            return _error(503, "too many event streams", [("Retry-After", "5")])
        stream = _Stream(self._stream(execution_id, event_type, since), self._clients.release)
        return 200, "text/event-stream", stream, [("X-Accel-Buffering", "no")]

    def _stream(
        self, execution_id: str | None, event_type: EventType | None, since: int | None
    ) -> Iterator[bytes]:
        bus = self.monitor.bus
        # The stream follows the bus history: publishing does no work per client.
        # A replay (Last-Event-ID) is complete; after it, at most SSE_QUEUE
        # events per write, the oldest lost by a client that lags further. The
        # cursor is taken before the first byte: what follows it is delivered.
        cursor = since if since is not None else bus.last_seq
        yield b": stepwatch event stream\nretry: 3000\n\n"
        limit = None if since is not None else SSE_QUEUE
        written = time.monotonic()
        while not bus.closed:
            events, cursor = bus.tail(
                cursor, execution_id=execution_id, event_type=event_type, limit=limit
            )
            limit = SSE_QUEUE
            if events:
                yield self._encoded.frames(events)
                written = time.monotonic()
            elif time.monotonic() - written >= self.heartbeat:
                yield f": heartbeat {time.time():.0f}\n\n".encode()
                written = time.monotonic()
            time.sleep(SSE_WRITE_INTERVAL)  # what is published meanwhile goes in one write


def make_wsgi_app(
    monitor: Monitor,
    *,
    token: str | None = None,
    heartbeat: float = HEARTBEAT_SECONDS,
    max_sse_clients: int | None = None,
) -> Callable[[WSGIEnvironment, StartResponse], Iterable[bytes]]:
    """Build the WSGI app serving ``monitor`` (pure: no socket, no thread).

    Args:
        monitor: The data source.
        token: When set, every route but ``/livez`` needs ``Authorization: Bearer <token>``
            (and the dashboard's files, which hold no data: the page asks for the token).
        heartbeat: Seconds between SSE heartbeat comments.
        max_sse_clients: Concurrent ``/events`` streams before 503 (default
            ``monitor.limits.max_sse_clients``).

    Raises:
        TypeError: an argument of the wrong type, named in the message.
        ValueError: an empty token, a heartbeat that is not a positive finite
            number of seconds, or fewer than 1 SSE client.

    .. versionadded:: 0.1.0
    .. versionchanged:: 0.3.0 ``GET /`` (the live dashboard), ``GET /group``, and
       ``q``, ``state`` and ``offset`` on ``GET /executions``.
    """
    checks.name(token, "token", optional=True)
    heartbeat = checks.seconds(heartbeat, "heartbeat")
    if max_sse_clients is None:
        max_sse_clients = monitor.limits.max_sse_clients
    checks.count(max_sse_clients, "max_sse_clients")
    return _App(monitor, token, heartbeat, max_sse_clients)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """A thread per connection, at most ``MAX_CONNECTIONS`` at once.

    Past the cap a connection is not given a thread: if it has already sent
    ``GET /livez`` (looked at for :data:`_LIVEZ_GRACE` seconds by the accepting
    thread), it is answered there, else it gets ``503`` and is closed. So a
    flood of slow or half-sent requests neither grows threads nor silences
    liveness probes.
    """

    daemon_threads = True
    request_queue_size = 64
    max_connections = 64
    request_timeout = REQUEST_TIMEOUT

    def server_activate(self) -> None:
        super().server_activate()
        self._slots = threading.BoundedSemaphore(self.max_connections)
        self.refused = 0

    def process_request(self, request: Any, client_address: Any) -> None:
        if self._slots.acquire(blocking=False):
            try:
                super().process_request(request, client_address)
            except BaseException:
                self._slots.release()
                raise
            return
        self.refused += 1
        _answer_over_capacity(request)
        self.shutdown_request(request)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


_LIVEZ_GRACE = 0.05
_OVER_CAPACITY = (
    b"HTTP/1.0 503 Service Unavailable\r\nConnection: close\r\nRetry-After: 1\r\n"
    b"Content-Type: application/json\r\n\r\n"
    b'{"error": "too many connections", "status": 503}'
)
_LIVEZ_OK = (
    b"HTTP/1.0 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n\r\n"
    b'{"status": "pass"}'
)


def _answer_over_capacity(request: socket.socket) -> None:
    """On the accepting thread: a ready ``GET /livez`` gets its answer, anything else 503."""
    try:
        ready, _, _ = select.select([request], [], [], _LIVEZ_GRACE)
        head = request.recv(16, socket.MSG_PEEK) if ready else b""
        request.settimeout(_LIVEZ_GRACE)
        request.sendall(
            _LIVEZ_OK if head.startswith((b"GET /livez ", b"GET /livez/ ")) else _OVER_CAPACITY
        )
    except OSError:
        pass


class _ClosingServerHandler(ServerHandler):
    """Says ``Connection: close``: one request per connection, so a pipelined second
    request is refused out loud (the client knows to send it again) instead of dropped."""

    def cleanup_headers(self) -> None:
        super().cleanup_headers()
        headers = self.headers  # type: ignore[attr-defined]  # set by BaseHandler.start_response
        if "Connection" not in headers:
            headers["Connection"] = "close"


class _QuietHandler(WSGIRequestHandler):
    """Logs requests at debug level instead of printing them to stderr.

    The socket times out after the server's ``request_timeout`` (10 s by
    default): a request still incomplete then is dropped, its thread freed.
    """

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.request_timeout)  # type: ignore[attr-defined]

    def handle(self) -> None:
        """One request (as ``WSGIRequestHandler.handle``), answered with ``Connection: close``."""
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = ""
            self.request_version = ""
            self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = _ClosingServerHandler(
            self.rfile,
            cast(IO[bytes], self.wfile),
            self.get_stderr(),
            self.get_environ(),
            multithread=False,
        )
        handler.request_handler = self  # type: ignore[attr-defined]  # wsgiref's back-pointer
        handler.run(self.server.get_app())  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:
        _logger.debug("stepwatch http: " + format, *args)


class ServerHandle:
    """A running server: its ``url``, ``server``, ``thread``, and ``close()``.

    .. versionadded:: 0.1.0
    """

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self.server = server
        self.thread = thread
        host, port = server.server_address[:2]
        host_text = host.decode() if isinstance(host, bytes) else str(host)
        self.url = f"http://{host_text}:{port}"

    def close(self) -> None:
        """Stop serving and release the port (open event streams end at their next write)."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5.0)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(
    monitor: Monitor,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    token: str | None = None,
    heartbeat: float | None = None,
    request_timeout: float = REQUEST_TIMEOUT,
    max_connections: int = MAX_CONNECTIONS,
) -> ServerHandle:
    """Serve ``make_wsgi_app(monitor)`` on a daemon thread; ``port=0`` picks a free port.

    Args:
        monitor, host, port, token, heartbeat: As :meth:`Monitor.serve`.
        request_timeout: Seconds a connection may stay silent (an incomplete
            request, a stream nobody reads) before it is dropped.
        max_connections: Connections served at once, each on its own thread;
            past it new ones get ``503`` at once (``GET /livez`` is still answered).

    Raises:
        OSError: the address cannot be bound.
        TypeError, ValueError: a bad argument, named in the message.
    """
    request_timeout = checks.seconds(request_timeout, "request_timeout")
    checks.count(max_connections, "max_connections")
    app = make_wsgi_app(
        monitor, token=token, heartbeat=HEARTBEAT_SECONDS if heartbeat is None else heartbeat
    )
    server_class = type(
        "_Server",
        (_ThreadingWSGIServer,),
        {"request_timeout": request_timeout, "max_connections": max_connections},
    )
    server: WSGIServer = make_server(
        host, port, app, server_class=server_class, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, name="stepwatch-http", daemon=True)
    thread.start()
    return ServerHandle(server, thread)
