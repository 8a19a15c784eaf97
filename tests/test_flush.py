"""The bounded per-execution flush of forked children, and the failure board processes share."""

from __future__ import annotations

import os

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from stepwatch._exporters import ObservedSpanExporter
from stepwatch._flush import FIRST_BACKOFF, MAX_BACKOFF, BoundedFlush, FailureBoard
from stepwatch.health import ExportStatus
from tests.helpers import free_port
from tests.otlp_receivers import http_receiver


def _provider(endpoint: str) -> TracerProvider:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", timeout=5))
    )
    return provider


def test_board_backs_off_doubling_up_to_the_maximum_and_clears_on_success() -> None:
    board = FailureBoard()
    assert not board.failing(now=100.0)
    assert board.failed(now=100.0) == FIRST_BACKOFF
    assert board.failing(now=100.0 + FIRST_BACKOFF - 1)
    assert not board.failing(now=100.0 + FIRST_BACKOFF)
    backoffs = [board.failed(now=200.0) for _ in range(6)]
    assert backoffs == [2 * FIRST_BACKOFF, 4 * FIRST_BACKOFF, 8 * FIRST_BACKOFF, *[MAX_BACKOFF] * 3]
    board.succeeded()
    assert not board.failing(now=200.0)
    assert board.failed(now=300.0) == FIRST_BACKOFF


def test_board_lesson_of_a_forked_child_reaches_the_parent_and_later_children() -> None:
    board = FailureBoard()
    pid = os.fork()
    if pid == 0:  # the child learns the backend fails, and leaves like a horse
        board.failed()
        os._exit(0)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert board.failing()


@pytest.mark.internal_errors
def test_flush_against_a_refusing_endpoint_waits_the_bound_once_then_skips() -> None:
    provider = _provider(f"http://127.0.0.1:{free_port()}")
    try:
        board = FailureBoard()
        flush = BoundedFlush(
            lambda: (provider,), before=None, failures=lambda: 0, board=board, timeout=0.2
        )
        for number in range(3):
            with provider.get_tracer("t").start_as_current_span(f"job-{number}"):
                pass
            flush()
        assert (flush.attempts, flush.skipped) == (1, 2)
        assert board.failing()
    finally:
        provider.shutdown()


def test_flush_delivers_to_a_live_endpoint_before_returning() -> None:
    with http_receiver() as (endpoint, received):
        provider = _provider(endpoint)
        try:
            board = FailureBoard()
            flush = BoundedFlush(
                lambda: (provider,), before=None, failures=lambda: 0, board=board, timeout=30.0
            )
            with provider.get_tracer("t").start_as_current_span("job"):
                pass
            flush()
            assert [s.name for s in received.spans] == ["job"]
            assert (flush.attempts, flush.skipped, board.failing()) == (1, 0, False)
        finally:
            provider.shutdown()


@pytest.mark.internal_errors
def test_an_export_failing_during_the_flush_marks_the_backend_failing() -> None:
    with http_receiver() as (endpoint, _received):
        status = ExportStatus()
        # A path the receiver answers with 404: the export fails at once.
        exporter = ObservedSpanExporter(OTLPSpanExporter(endpoint=f"{endpoint}/nope"), status)
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(BatchSpanProcessor(exporter))
        try:
            board = FailureBoard()
            flush = BoundedFlush(
                lambda: (provider,),
                before=None,
                failures=lambda: status.failures,
                board=board,
                timeout=30.0,
            )
            with provider.get_tracer("t").start_as_current_span("job"):
                pass
            flush()
            assert status.failures == 1
            assert board.failing()
        finally:
            provider.shutdown()
