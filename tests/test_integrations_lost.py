"""Celery workers that die and tasks scheduled for later, with a real Redis and real workers.

A pool child killed while it runs a task (``acks_late``): the broker
redelivers the task, which runs again as attempt 2, the worker's process
group ends the killed run as ``lost``, and ``pending`` ends at 0 without
ever going below it. Tasks sent with a ``countdown`` are scheduled work,
never backlog: ``QueueBacklog`` stays silent and their queue wait starts
when they are due.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import stepwatch
from stepwatch.semconv import EXECUTION_ACTIVE, WORKFLOW_EXECUTION_STATE
from tests.otlp_receivers import Received, grpc_receiver
from tests.test_integrations import (
    BIN,
    TIMEOUT,
    _environment,
    _executions,
    _produce,
    _start,
    _stop,
    redis_clean,  # noqa: F401 - a fixture
    redis_url,  # noqa: F401 - a fixture
)

pytestmark = pytest.mark.slow

WORKER = (
    str(BIN / "celery"),
    "-A",
    "tests.engines.celery_lost_app",
    "worker",
    "--pool",
    "prefork",
    "--concurrency",
    "2",
    "--loglevel",
    "WARNING",
    "--without-heartbeat",
    "--without-mingle",
    "--without-gossip",
)


def _group_pending(monitor: stepwatch.Monitor) -> float:
    """The group's raw pending level (summary() clamps it; this must never need to)."""
    monitor.summary()  # refreshes the group's view
    levels = monitor._windows.levels(EXECUTION_ACTIVE.name)
    return sum(v for a, v in levels.items() if dict(a).get(WORKFLOW_EXECUTION_STATE) == "pending")


def _fleet_pending_samples(received: Received) -> list[int]:
    """The fleet's pending sum after each export received, in arrival order."""
    latest: dict[tuple[str, str], int] = {}
    sums = []
    for metric in list(received.metrics):
        if metric.name != EXECUTION_ACTIVE.name:
            continue
        instance = str(metric.resource.get("service.instance.id"))
        for point in metric.points:
            attributes = point["attributes"]
            if attributes.get(WORKFLOW_EXECUTION_STATE) == "pending":
                name = str(attributes.get("workflow.definition.name"))
                latest[(instance, name)] = int(point["point"].as_int)
        sums.append(sum(latest.values()))
    return sums


KILLED = {
    "celery": (WORKER, ["tests.engines.celery_lost_app", "hold"]),
    "rq": (
        (str(BIN / "rq"), "worker", "--burst", "--url", "{redis}", "orders"),
        ["tests.engines.rq_lost_jobs"],
    ),
}


@pytest.mark.parametrize("engine", sorted(KILLED))
def test_a_task_whose_worker_process_is_killed_is_lost_then_runs_as_attempt_2(
    engine: str,
    redis_clean: str,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    """Celery: the pool child (``acks_late``: redelivered); RQ: the work horse (retried)."""
    worker_command, producer = KILLED[engine]
    group, marks = tmp_path / "group", tmp_path / "marks"
    group.mkdir()
    marks.mkdir()
    log = tmp_path / "worker.log"
    with grpc_receiver() as (endpoint, received):
        environment = _environment(
            redis_clean,
            endpoint,
            STEPWATCH_MULTIPROCESS_DIR=str(group),
            STEPWATCH_TEST_MARKS=str(marks),
        )
        monitor = stepwatch.Monitor(multiprocess_dir=group, publish_interval=None)
        worker = None
        samples: list[float] = []
        try:
            task_id = _produce(producer, environment).strip()
            command = [part.format(redis=redis_clean) for part in worker_command]
            worker = _start(command, environment, log)
            mark = marks / f"{task_id}.pid"
            deadline = time.monotonic() + TIMEOUT
            while not mark.exists() and time.monotonic() < deadline:
                time.sleep(0.05)  # the worker process writes it when the task starts
            assert mark.exists(), _stop(worker, log)[-4000:]
            # Its start consumed the enqueue, in the group and at the backend.
            assert received.wait_for(
                lambda r: (_fleet_pending_samples(r) or [1])[-1] == 0, timeout=TIMEOUT
            ), _fleet_pending_samples(received)
            # Killed while the group knows it runs (its process published it).
            while time.monotonic() < deadline and not any(
                p.execution_id == task_id and p.state == "executing"
                for p in monitor.active_executions()
            ):
                samples.append(_group_pending(monitor))
                time.sleep(0.05)  # a member publishes every second
            os.kill(int(mark.read_text()), signal.SIGKILL)

            def settled(r: Received) -> bool:
                samples.append(_group_pending(monitor))
                runs = [
                    s for s in _executions(r) if s.attributes["workflow.execution.id"] == task_id
                ]
                outcomes = monitor.summary().outcomes
                return bool(runs) and outcomes["lost"] == 1 and outcomes["success"] == 1

            assert received.wait_for(settled, timeout=TIMEOUT), (
                monitor.summary().outcomes,
                _stop(worker, log)[-4000:],
            )
            (run,) = [
                s for s in _executions(received) if s.attributes["workflow.execution.id"] == task_id
            ]
            assert run.attributes["workflow.execution.attempt"] == 2
            assert run.attributes["workflow.execution.outcome"] == "success"
            assert monitor.progress(task_id).attempt == 2  # type: ignore[union-attr]
            summary = monitor.summary()
            assert summary.outcomes["lost"] == 1
            assert summary.outcomes["success"] == 1
            assert summary.active_executions == 0
            samples.append(_group_pending(monitor))
            assert samples[-1] == 0
            assert min(samples) >= 0, samples
            fleet = _fleet_pending_samples(received)
            assert fleet[-1] == 0
            assert min(fleet) >= 0, fleet
        finally:
            errors = "" if worker is None else _stop(worker, log)
            monitor.shutdown()
    assert "stepwatch:" not in errors, errors[-4000:]


def test_celery_countdown_tasks_never_fire_queue_backlog_and_wait_from_their_due_time(
    redis_clean: str,  # noqa: F811 - the fixture
    tmp_path: Path,
) -> None:
    group = tmp_path / "group"
    group.mkdir()
    log = tmp_path / "worker.log"
    countdown, count = 20.0, 150  # far longer than producing takes, even on a busy machine
    with grpc_receiver() as (endpoint, received):
        environment = _environment(redis_clean, endpoint, STEPWATCH_MULTIPROCESS_DIR=str(group))
        monitor = stepwatch.Monitor(
            multiprocess_dir=group, publish_interval=None, rules=stepwatch.Rules(queue_depth=100)
        )
        worker = None
        try:
            _produce(
                ["tests.engines.celery_lost_app", "later", str(count), str(countdown)], environment
            )
            # Before they are due: more than the backlog threshold waits, none of it backlog.
            before_due = monitor.summary()
            health = monitor.health(refresh=True)
            assert before_due.scheduled > 100, before_due
            assert before_due.queue_depth == 0, before_due
            assert [a for a in health.alerts if a.rule == "QueueBacklog"] == []
            worker = _start(list(WORKER), environment, log)

            def done(r: Received) -> bool:
                summary = monitor.summary()
                return len(_executions(r)) >= count and summary.queue_wait.count >= count

            assert received.wait_for(done, timeout=TIMEOUT), _stop(worker, log)[-4000:]
            summary = monitor.summary()
            assert summary.outcomes["success"] == count
            # Queue wait from the due time: far below the countdown itself.
            assert summary.queue_wait.count == count
            assert summary.queue_wait.p50 is not None
            assert summary.queue_wait.p50 < countdown / 2, summary.queue_wait
        finally:
            errors = "" if worker is None else _stop(worker, log)
            monitor.shutdown()
    assert "stepwatch:" not in errors, errors[-4000:]
