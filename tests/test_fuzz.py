"""Hypothesis suites over every public runtime entry point.

The default run (``make test``) uses the ``default`` profile; ``make fuzz``
runs the ``fuzz`` profile: 1,500 generated cases per test, over 10,000 in all.
Contract checked everywhere: nothing escapes into host code (queries may raise
only the documented ``ValueError``/``TypeError``), and afterwards a normal
execution still records correctly.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import stepwatch
from stepwatch.http import make_wsgi_app
from stepwatch.testing import Harness, capture

anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.binary(max_size=8),
    st.lists(st.one_of(st.integers(), st.text(max_size=3), st.floats()), max_size=4),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=3),
    st.tuples(st.integers(), st.text(max_size=2)),
)
texts = st.text(max_size=40)
header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60)


def still_records(sw: Harness) -> None:
    """A normal execution after the abuse records exactly as it should."""
    with stepwatch.execution("after", total_steps=1) as after, after.step("ok"):
        pass
    progress = sw.monitor.progress(after.id)
    assert progress is not None
    assert (progress.state, progress.percent, progress.completed_steps) == ("success", 100.0, 1)
    span = sw.spans("execution after")[-1]
    assert dict(span.attributes or {})["workflow.execution.outcome"] == "success"


@pytest.mark.internal_errors
@given(
    fraction=anything,
    done=anything,
    total=anything,
    message=anything,
    reason=anything,
    total_steps=anything,
    name=anything,
    attributes=st.dictionaries(st.text(max_size=5), anything, max_size=3),
)
def test_handle_methods(
    fraction: Any,
    done: Any,
    total: Any,
    message: Any,
    reason: Any,
    total_steps: Any,
    name: Any,
    attributes: dict[str, Any],
) -> None:
    with capture() as sw:
        with stepwatch.execution("fuzz", execution_id="f-1") as ex:
            ex.set_total_steps(total_steps)
            ex.event(name, **attributes)
            ex.request_approval(approver=reason, **attributes)
            ex.approve(by=message)
            ex.reject(by=name, reason=reason)
            with ex.step("s") as step:
                step.progress(fraction, done=done, total=total, message=message)
                step.progress(fraction)
                step.skip(reason)
            ex.fail(reason)
            ex.cancel(reason)
            ex.timeout(reason)
            ex.progress()
        step.progress(fraction)  # after the end: ignored
        ex.event("late")
        still_records(sw)


@pytest.mark.internal_errors
@given(name=anything, execution_id=anything, queue=anything, carrier=anything)
def test_enqueue(name: Any, execution_id: Any, queue: Any, carrier: Any) -> None:
    with capture() as sw:
        result = stepwatch.enqueue(name, execution_id=execution_id, carrier=carrier, queue=queue)
        assert isinstance(result, dict)
        json.dumps(result)  # always a plain, serializable carrier
        still_records(sw)


@pytest.mark.internal_errors
@given(
    carrier=st.one_of(
        anything,
        st.dictionaries(
            st.sampled_from(
                [
                    "traceparent",
                    "tracestate",
                    "stepwatch-enqueued-at",
                    "stepwatch-execution-id",
                    "x",
                ]
            ),
            st.one_of(texts, st.integers(), st.floats(), st.none()),
            max_size=5,
        ),
        st.builds(
            lambda version, trace, span, flags: {
                "traceparent": f"{version}-{trace}-{span}-{flags}"
            },
            st.text(max_size=3),
            st.text(max_size=34),
            st.text(max_size=18),
            st.text(max_size=3),
        ),
    )
)
def test_execution_with_garbage_carriers(carrier: Any) -> None:
    with capture() as sw:

        @stepwatch.execution("carried", carrier=lambda: carrier)
        def run() -> str:
            return "ran"

        assert run() == "ran"
        assert sw.spans("execution carried")
        still_records(sw)


@given(execution_id=anything, event_type=anything, since=anything, limit=anything)
def test_events_query(execution_id: Any, event_type: Any, since: Any, limit: Any) -> None:
    with capture() as sw:
        still_records(sw)
        try:
            events = sw.monitor.events(
                execution_id=execution_id, event_type=event_type, since=since, limit=limit
            )
            assert isinstance(events, list)
        except (ValueError, TypeError):
            pass
        still_records(sw)


@given(window=anything, name=anything, severity=anything, limit=anything, active=anything)
def test_summary_and_alerts_queries(
    window: Any, name: Any, severity: Any, limit: Any, active: Any
) -> None:
    with capture() as sw:
        for query in (
            lambda: sw.monitor.summary(window, name=name),
            lambda: sw.monitor.alerts(severity, limit, active=active),
            lambda: sw.monitor.progress(name),
        ):
            try:
                query()
            except (ValueError, TypeError):
                pass
        still_records(sw)


@given(
    path=st.sampled_from(
        [
            "/livez",
            "/readyz",
            "/healthz",
            "/executions",
            "/executions/x",
            "/summary",
            "/alerts",
            "/events",
        ]
    ),
    query=header_text,
    authorization=st.one_of(st.none(), header_text, st.just("Bearer tok")),
    last_event_id=st.one_of(st.none(), header_text),
    method=st.sampled_from(["GET", "HEAD", "POST", "DELETE", "get"]),
    content_length=st.one_of(st.none(), st.sampled_from(["0", "1", "-1", "abc", ""])),
)
def test_http_inputs(
    path: str,
    query: str,
    authorization: str | None,
    last_event_id: str | None,
    method: str,
    content_length: str | None,
) -> None:
    with capture() as sw:
        app = make_wsgi_app(sw.monitor, token="tok")
        environ: dict[str, Any] = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "QUERY_STRING": query,
        }
        if authorization is not None:
            environ["HTTP_AUTHORIZATION"] = authorization
        if last_event_id is not None:
            environ["HTTP_LAST_EVENT_ID"] = last_event_id
        if content_length is not None:
            environ["CONTENT_LENGTH"] = content_length
        seen: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
            seen["status"] = int(status.split(maxsplit=1)[0])
            seen["type"] = dict(headers)["Content-Type"]

        body = app(environ, start_response)
        assert seen["status"] in {200, 400, 401, 404, 405, 413, 414, 503}
        if seen["type"] != "text/event-stream":
            raw = b"".join(body)
            if raw:
                json.loads(raw)
        else:
            close = getattr(body, "close", None)
            if close is not None:
                close()  # never iterate an endless stream here
        still_records(sw)


@given(
    name=anything,
    execution_id=anything,
    total_steps=anything,
    sla=anything,
    attributes=anything,
    step_type=anything,
)
def test_setup_arguments(
    name: Any, execution_id: Any, total_steps: Any, sla: Any, attributes: Any, step_type: Any
) -> None:
    for build in (
        lambda: stepwatch.execution(
            name, execution_id=execution_id, total_steps=total_steps, sla=sla, attributes=attributes
        ),
        lambda: stepwatch.step(name, step_type=step_type, attributes=attributes),
        lambda: stepwatch.Rules(window=sla, failure_rate=total_steps, min_executions=execution_id),
    ):
        try:
            build()
        except (TypeError, ValueError):
            pass  # set-up errors are clear and typed; nothing else may come out
