"""Attempts and retries: attempt numbers, one pending exit per enqueue, rates, step retries."""

from __future__ import annotations

import itertools
import multiprocessing
from collections.abc import Generator, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from multiprocessing.queues import Queue
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from opentelemetry.trace import StatusCode

import stepwatch
from stepwatch import Outcome
from stepwatch.testing import Harness, capture
from tests.engines.attempt_worker import pending_level, serve


def test_retries_from_one_carrier_count_pending_once(sw: Harness) -> None:
    carrier = stepwatch.enqueue("job", execution_id="j-1")
    assert pending_level(sw) == 1
    sw.clock.advance(5.0)
    for run in range(3):
        with stepwatch.execution("job", carrier=carrier) as ex:
            if run < 2:
                ex.retry("broker redelivers")
        sw.clock.advance(1.0)
        assert pending_level(sw) == 0
    spans = sw.spans("execution job")
    assert [s.attributes["workflow.execution.attempt"] for s in spans] == [1, 2, 3]  # type: ignore[index]
    assert [s.attributes["workflow.execution.outcome"] for s in spans] == [  # type: ignore[index]
        "retry",
        "retry",
        "success",
    ]
    # One queue wait: the first attempt's, from its enqueue; none across attempts.
    (wait,) = sw.metric_points(
        "workflow.execution.duration", {"workflow.execution.state": "pending"}
    )
    assert (wait.count, wait.value) == (1, 5.0)
    assert sw.monitor.summary().queue_depth == 0
    assert [e.type.value for e in sw.events(execution_id="j-1")].count("execution.retried") == 2


def test_reenqueue_measures_the_attempts_own_wait(sw: Harness) -> None:
    first = stepwatch.enqueue("job", execution_id="j-2")
    sw.clock.advance(4.0)
    with stepwatch.execution("job", carrier=first) as ex:
        ex.retry()
    sw.clock.advance(30.0)  # backoff before the engine queues it again
    second = stepwatch.enqueue("job", execution_id="j-2", attempt=2)
    assert pending_level(sw) == 1
    sw.clock.advance(2.0)
    with stepwatch.execution("job", carrier=second) as ex:
        assert ex.attempt == 2
    assert pending_level(sw) == 0
    (wait,) = sw.metric_points(
        "workflow.execution.duration", {"workflow.execution.state": "pending"}
    )
    assert (wait.count, wait.value) == (2, 6.0)  # 4 s, then 2 s: never the 30 s backoff
    enqueue_spans = sw.spans("enqueue job")
    assert [s.attributes["workflow.execution.attempt"] for s in enqueue_spans] == [1, 2]  # type: ignore[index]


def test_told_attempt_from_a_callable(sw: Harness) -> None:
    @stepwatch.execution("told", attempt=lambda message: message["retries"] + 1)
    def run(message: dict[str, int]) -> int:
        current = stepwatch.current_execution()
        assert current is not None
        return current.attempt

    assert run({"retries": 2}) == 3
    assert sw.attributes("execution told")["workflow.execution.attempt"] == 3
    progress = sw.monitor.progress(str(sw.attributes("execution told")["workflow.execution.id"]))
    assert progress is not None
    assert progress.attempt == 3


def test_retry_rate_and_final_outcome_rates(sw: Harness) -> None:
    for index in range(10):
        with stepwatch.execution("order", execution_id=f"o-{index}") as ex:
            if index < 4:
                ex.retry()
    summary = sw.monitor.summary()
    assert summary.total == 10
    assert (summary.executions, summary.attempts) == (6, 10)  # four were retried
    assert summary.outcomes["retry"] == 4
    assert summary.retry_rate == pytest.approx(0.4)
    assert summary.failure_rate == 0.0
    assert summary.timeout_rate == 0.0
    assert summary.success_rate == 1.0


def _raises_if(condition: bool) -> AbstractContextManager[object]:
    return pytest.raises(RuntimeError) if condition else nullcontext()


def _attempt(index: int, attempt: int) -> None:
    """Order ``index``'s ``attempt``: orders 0 and 1 fail twice (retried), order 0 then for good."""
    with stepwatch.execution("order", attempt=attempt) as ex:
        if index < 2 and attempt < 3:
            ex.retry("transient")
            raise RuntimeError("transient")
        if index == 0:
            raise RuntimeError("for good")


def test_retried_failures_do_not_raise_the_failure_rate(sw: Harness) -> None:
    for index in range(6):
        for attempt in range(1, 4 if index < 2 else 2):
            with _raises_if((index < 2 and attempt < 3) or index == 0):
                _attempt(index, attempt)
    summary = sw.monitor.summary()
    assert summary.outcomes["retry"] == 4
    assert summary.failure_rate == pytest.approx(1 / 6)
    assert summary.retry_rate == pytest.approx(4 / 10)


def test_retry_wins_over_the_exception_it_rides_on(sw: Harness) -> None:
    class RetryLater(Exception):
        pass

    @stepwatch.execution("job")
    def job() -> None:
        current = stepwatch.current_execution()
        assert current is not None
        current.retry("rate limited")
        raise RetryLater("429")

    with pytest.raises(RetryLater):
        job()
    span = sw.span("execution job")
    attributes = dict(span.attributes or {})
    assert attributes["workflow.execution.outcome"] == Outcome.RETRY.value
    assert attributes["workflow.execution.outcome.reason"] == "rate limited"
    assert str(attributes["error.type"]).endswith("RetryLater")
    assert span.status.status_code is StatusCode.UNSET
    assert [e.name for e in span.events if e.name == "exception"] == ["exception"]
    (point,) = sw.metric_points(
        "workflow.execution.duration", {"workflow.execution.outcome": "retry"}
    )
    assert str(point.attributes["error.type"]).endswith("RetryLater")


def test_step_retried_in_an_execution_is_one_step(sw: Harness) -> None:
    with stepwatch.execution("three", execution_id="r-1", total_steps=3) as ex:
        for attempt in range(3):
            with _raises_if(attempt < 2), ex.step("fetch"):
                sw.clock.advance(1.0)
                if attempt < 2:
                    raise RuntimeError("connection reset")
            progress = ex.progress()
            assert (
                progress.completed_steps
                + progress.failed_steps
                + progress.running_steps
                + (progress.pending_steps or 0)
                == progress.total_steps
                == 3
            )
        progress = ex.progress()
        assert (progress.completed_steps, progress.failed_steps, progress.pending_steps) == (
            1,
            0,
            2,
        )
        assert progress.percent == pytest.approx(100 / 3)
        assert progress.eta_seconds is not None and progress.eta_seconds > 0
        with ex.step("transform") as step:
            step.progress(1.0)
            running = ex.progress()
            assert running.running_steps == 1
            assert running.percent is not None and running.percent < 100
        with ex.step("store"):
            last = ex.progress()
            assert last.percent is not None and last.percent < 100
            assert last.eta_seconds != 0.0
    final = sw.monitor.progress("r-1")
    assert final is not None
    assert (final.completed_steps, final.failed_steps, final.total_steps) == (3, 0, 3)
    attempts = [s.attributes.get("workflow.task.attempt", 1) for s in sw.spans("step fetch")]  # type: ignore[union-attr]
    assert attempts == [1, 2, 3]


def test_more_steps_than_declared_keep_the_identity(sw: Harness) -> None:
    with stepwatch.execution("under", total_steps=1) as ex:
        with ex.step("a"):
            pass
        with ex.step("b"):
            progress = ex.progress()
            assert progress.total_steps == 2
            assert progress.completed_steps + progress.running_steps == 2
            assert progress.percent is not None and progress.percent < 100


def test_eta_uses_running_fractions_and_falls_steadily(sw: Harness) -> None:
    etas: list[float] = []
    with stepwatch.execution("luigi-like", total_steps=2) as ex:
        for name in ("first", "second"):
            with ex.step(name) as step:
                for tenth in range(1, 11):
                    sw.clock.advance(1.0)
                    step.progress(tenth / 10)
                    eta = ex.progress().eta_seconds
                    if name == "second" and tenth == 10:
                        assert eta is None  # all work reported, the end not known yet
                    else:
                        assert eta is not None
                        etas.append(eta)
    assert all(later < earlier for earlier, later in itertools.pairwise(etas))
    assert etas[0] == pytest.approx(19.0)


def test_generator_step_driven_like_luigi_dynamic_dependencies(sw: Harness) -> None:
    @stepwatch.step("run")
    def run() -> Generator[str, str, None]:
        done = yield "dependency"
        assert done == "ready"

    with stepwatch.execution("build", execution_id="b-1", total_steps=1) as ex:
        # First pass: the dependency is not ready, the engine drops the generator.
        gen = run()
        assert next(gen) == "dependency"
        gen.close()
        # Later pass: run() again from the start, this time to the end.
        gen = run()
        assert next(gen) == "dependency"
        with pytest.raises(StopIteration):
            gen.send("ready")
        progress = ex.progress()
    assert (progress.completed_steps, progress.failed_steps, progress.total_steps) == (1, 0, 1)
    outcomes = [s.attributes["workflow.task.outcome"] for s in sw.spans("step run")]  # type: ignore[index]
    assert outcomes == ["skip", "success"]
    assert "cancellation" not in outcomes


# ------------------------------------------------------------ property: pending never < 0
@dataclass
class _Job:
    carrier: dict[str, str]
    runs: int = 0
    last_process: int | None = None
    started: bool = False


@dataclass
class _Model:
    jobs: list[_Job] = field(default_factory=list)
    outstanding: int = 0  # enqueues whose first start has not happened


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("enqueue"), st.integers(0, 99), st.integers(0, 2), st.booleans()),
        st.tuples(st.just("run"), st.integers(0, 99), st.integers(0, 2), st.booleans()),
        st.tuples(st.just("reenqueue"), st.integers(0, 99), st.integers(0, 2), st.booleans()),
    ),
    max_size=14,
)


def _apply(
    op: tuple[str, int, int, bool],
    model: _Model,
    run_in: Any,
    counter: list[int],
) -> None:
    """Apply one engine operation; ``run_in(process, carrier, attempt, retry)`` starts a run."""
    kind, pick, process, retry = op
    if kind == "enqueue" or not model.jobs:
        counter[0] += 1
        carrier = stepwatch.enqueue("job", execution_id=f"p-{counter[0]}")
        model.jobs.append(_Job(carrier))
        model.outstanding += 1
        return
    job = model.jobs[pick % len(model.jobs)]
    if kind == "reenqueue":
        job.carrier = stepwatch.enqueue(
            "job", execution_id=job.carrier["stepwatch-execution-id"], attempt=job.runs + 1
        )
        job.started = False
        job.last_process = None
        model.outstanding += 1
        return
    # A run: the engine tells the attempt when another process runs the same message
    # again (its delivery count), as the integrations do; a re-run here needs no telling.
    told = job.runs + 1 if job.last_process not in (None, process) else None
    attempt = run_in(process, job.carrier, told, retry)
    job.runs = max(job.runs + 1, attempt)
    job.last_process = process
    if not job.started:
        job.started = True
        model.outstanding -= 1


@settings(max_examples=40)
@given(ops=_OPS)
def test_pending_never_negative_in_one_process(ops: list[tuple[str, int, int, bool]]) -> None:
    with capture() as sw:
        model = _Model()

        def run_here(process: int, carrier: dict[str, str], told: int | None, retry: bool) -> int:
            with stepwatch.execution("job", carrier=carrier, attempt=told) as ex:
                if retry:
                    ex.retry()
            return ex.attempt

        counter = [0]
        for op in ops:
            _apply(op, model, run_here, counter)
            level = pending_level(sw)
            assert level >= 0
            assert level == model.outstanding
            assert sw.monitor.summary().queue_depth == model.outstanding


@pytest.fixture(scope="module")
def workers() -> Iterator[list[tuple[Queue[Any], Queue[Any]]]]:
    context = multiprocessing.get_context("spawn")
    pairs: list[tuple[Queue[Any], Queue[Any]]] = [
        (context.Queue(), context.Queue()) for _ in range(2)
    ]
    processes = [context.Process(target=serve, args=pair, daemon=True) for pair in pairs]
    for process in processes:
        process.start()
    for _, answers in pairs:
        assert answers.get(timeout=60)[0] == "ready"
    yield pairs
    for requests, _ in pairs:
        requests.put(None)
    for process in processes:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()


@settings(max_examples=12)
@given(ops=_OPS)
@example(
    ops=[("enqueue", 0, 0, False), ("run", 0, 1, True), ("run", 0, 2, True), ("run", 0, 0, False)]
)
@example(
    ops=[
        ("enqueue", 0, 0, False),
        ("run", 0, 1, True),
        ("reenqueue", 0, 0, False),
        ("run", 0, 2, False),
        ("run", 0, 2, False),
    ]
)
def test_pending_never_negative_across_processes(
    workers: list[tuple[Queue[Any], Queue[Any]]], ops: list[tuple[str, int, int, bool]]
) -> None:
    """A producer here and two spawned workers: the fleet's pending sum tracks the model."""
    with capture() as sw:
        model = _Model()
        levels = [0.0, 0.0, 0.0]  # producer's own level is read fresh; workers' as answered

        def run_anywhere(
            process: int, carrier: dict[str, str], told: int | None, retry: bool
        ) -> int:
            if process == 0:
                with stepwatch.execution("job", carrier=carrier, attempt=told) as ex:
                    if retry:
                        ex.retry()
                return ex.attempt
            requests, answers = workers[process - 1]
            requests.put((carrier, told, retry))
            attempt, level = answers.get(timeout=60)
            levels[process] = level
            return int(attempt)

        baseline = [0.0, *_worker_levels(workers)]
        levels[1:] = baseline[1:]
        counter = [0]
        for op in ops:
            _apply(op, model, run_anywhere, counter)
            fleet = pending_level(sw) + sum(levels[1:]) - sum(baseline[1:])
            assert fleet >= 0
            assert fleet == model.outstanding


def _worker_levels(workers: list[tuple[Queue[Any], Queue[Any]]]) -> list[float]:
    """Each worker's pending level now (a no-op request: a run of a carrier-less execution)."""
    found = []
    for requests, answers in workers:
        requests.put(({}, None, False))
        found.append(float(answers.get(timeout=60)[1]))
    return found
