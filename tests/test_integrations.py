"""The engine integrations against the real engines: a real Redis, real workers, no stepwatch code.

For each of Celery (prefork, concurrency 2), RQ (``rq worker --burst``,
forking per job), dramatiq (its worker processes and threads) and Huey (its
consumer): a producer and a worker, both under ``opentelemetry-instrument``
with only the engine's own code, export to a real OTLP receiver. Three
successes, one failure, one time limit and one retried-then-successful task
must give exactly those outcomes, every execution in the producer's trace,
fleet-wide ``pending`` back to 0, and the worker's process group answering
``summary()`` with those counts.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import stepwatch
from stepwatch.integrations.celery import CeleryInstrumentor
from stepwatch.integrations.rq import RQInstrumentor
from stepwatch.testing import Harness
from tests.helpers import ROOT, clean_environment, free_port
from tests.otlp_receivers import Received, ReceivedSpan, grpc_receiver

BIN = Path(sys.executable).parent
INSTRUMENT = str(BIN / "opentelemetry-instrument")
TIMEOUT = 120.0
"""Seconds any one wait may take: generous for a busy 2-core machine; never reached when right."""


@dataclass(frozen=True)
class Engine:
    name: str
    """Also the argument of ``python -m tests.engines.producer``."""
    worker: tuple[str, ...]
    prefix: str
    """What the engine names a task: ``prefix + "add"``."""
    exits_by_itself: bool = False


ENGINES = [
    Engine(
        "celery",
        (
            str(BIN / "celery"),
            "-A",
            "tests.engines.celery_app",
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
        ),
        "orders.",
    ),
    Engine(
        "rq",
        (str(BIN / "rq"), "worker", "--burst", "--url", "{redis}", "orders"),
        "tests.engines.rq_jobs.",
        exits_by_itself=True,
    ),
    Engine(
        "dramatiq",
        (str(BIN / "dramatiq"), "tests.engines.dramatiq_app", "--processes", "1", "--threads", "2"),
        "",
    ),
    Engine(
        "huey",
        (str(BIN / "huey_consumer"), "tests.engines.huey_app.huey", "-w", "2", "-k", "thread"),
        "",
    ),
]

EXPECTED = Counter(
    {
        ("add", 1, "success"): 3,
        ("boom", 1, "failure"): 1,
        ("slow", 1, "timeout"): 1,
        ("flaky", 1, "retry"): 1,
        ("flaky", 2, "success"): 1,
    }
)


# ---------------------------------------------------------------------------- redis
@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real redis-server on a free loopback port, for this module's tests."""
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI"):
            pytest.fail("redis-server is missing: .ci/run installs Debian's redis-server")
        pytest.skip("redis-server not installed (apt-get install redis-server)")
    import redis

    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.05)  # redis-server is starting: poll until it answers
        yield url
    finally:
        client.close()
        server.terminate()
        server.wait(timeout=30)


@pytest.fixture
def redis_clean(redis_url: str) -> str:
    import redis

    with redis.Redis.from_url(redis_url) as client:
        client.flushall()
    return redis_url


# --------------------------------------------------------------------------- helpers
def _environment(redis: str, endpoint: str, **extra: str) -> dict[str, str]:
    return clean_environment(
        STEPWATCH_TEST_REDIS=redis,
        OTEL_SERVICE_NAME="orders",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_INSECURE="true",
        OTEL_METRIC_EXPORT_INTERVAL="500",
        OTEL_BSP_SCHEDULE_DELAY="100",
        **extra,
    )


def _executions(received: Received) -> list[ReceivedSpan]:
    return [s for s in received.spans if s.name.startswith("execution ")]


def _fleet_pending(received: Received) -> dict[str, int]:
    """Per process (``service.instance.id``), the latest pending level, summed over names."""
    latest: dict[tuple[str, str], int] = {}
    for metric in received.metrics:
        if metric.name != "workflow.execution.active":
            continue
        instance = str(metric.resource.get("service.instance.id"))
        for point in metric.points:
            attributes = point["attributes"]
            if attributes.get("workflow.execution.state") == "pending":
                name = str(attributes.get("workflow.definition.name"))
                latest[(instance, name)] = int(point["point"].as_int)
    per_process: dict[str, int] = {}
    for (instance, _name), level in latest.items():
        per_process[instance] = per_process.get(instance, 0) + level
    return per_process


def _produce(module_and_args: list[str], environment: dict[str, str]) -> str:
    """Run a producer under ``opentelemetry-instrument`` to completion; its stdout."""
    produced = subprocess.run(
        [INSTRUMENT, sys.executable, "-m", *module_and_args],
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert produced.returncode == 0, produced.stderr
    return produced.stdout


def _start(command: list[str], environment: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A worker under ``opentelemetry-instrument``, its output going to ``log``."""
    with log.open("wb") as output:
        return subprocess.Popen(
            [INSTRUMENT, *command], env=environment, cwd=ROOT, stdout=output, stderr=output
        )


def _stop(worker: subprocess.Popen[bytes], log: Path) -> str:
    """Stop the worker (SIGTERM, the engines' warm shutdown) and return its output."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait(timeout=30)
    return log.read_text(errors="replace")


# ----------------------------------------------------------------------------- tests
@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES, ids=[e.name for e in ENGINES])
def test_engine_outcomes_trace_pending_and_group_summary(
    engine: Engine, redis_clean: str, tmp_path: Path
) -> None:
    group = tmp_path / "group"
    group.mkdir()
    context = grpc_receiver()
    endpoint, received = context.__enter__()
    monitor = stepwatch.Monitor(multiprocess_dir=group, publish_interval=None)
    worker: subprocess.Popen[bytes] | None = None
    log = tmp_path / "worker.log"
    try:
        environment = _environment(redis_clean, endpoint)
        produced = _produce(["tests.engines.producer", engine.name], environment)
        trace_id = produced.split("trace ")[1].split()[0]

        command = [part.format(redis=redis_clean) for part in engine.worker]
        worker = _start(command, {**environment, "STEPWATCH_MULTIPROCESS_DIR": str(group)}, log)
        assert received.wait_for(lambda r: len(_executions(r)) >= 7, timeout=TIMEOUT), (
            [s.name for s in received.spans],
            _stop(worker, log)[-4000:],
        )
        executions = _executions(received)
        seen = Counter(
            (
                s.attributes["workflow.definition.name"].removeprefix(engine.prefix),
                s.attributes["workflow.execution.attempt"],
                s.attributes["workflow.execution.outcome"],
            )
            for s in executions
        )
        assert seen == EXPECTED

        # One trace: the producer's, for every enqueue, execution and step.
        assert {s.trace_id for s in received.spans} == {trace_id}
        # A step added inside a task is the execution's child.
        by_id = {s.span_id: s for s in received.spans}
        steps = [s for s in received.spans if s.name == "step sum"]
        assert len(steps) == 3
        assert {by_id[s.parent_span_id].name for s in steps} == {f"execution {engine.prefix}add"}
        # The retried task's re-enqueue is counted once: two enqueues for flaky.
        enqueues = Counter(s.name for s in received.spans if s.name.startswith("enqueue "))
        assert enqueues[f"enqueue {engine.prefix}flaky"] == 2
        assert sum(enqueues.values()) == 7

        # Fleet-wide pending back to 0 (producer +6, worker -7 + 1 re-enqueue).
        assert received.wait_for(
            lambda r: len(_fleet_pending(r)) >= 2 and sum(_fleet_pending(r).values()) == 0,
            timeout=TIMEOUT,
        ), _fleet_pending(received)

        # The worker's process group answers summary() with those counts.
        wanted = {"success": 4, "failure": 1, "timeout": 1, "retry": 1, "cancellation": 0}
        deadline = time.monotonic() + TIMEOUT
        while True:
            outcomes = monitor.summary().outcomes
            if {k: outcomes.get(k) for k in wanted} == wanted or time.monotonic() > deadline:
                break
            time.sleep(0.2)  # the group's processes publish at least every second
        assert {k: outcomes.get(k) for k in wanted} == wanted
    finally:
        errors = "" if worker is None else _stop(worker, log)
        monitor.shutdown()
        context.__exit__(None, None, None)
    assert "stepwatch:" not in errors, errors[-4000:]


@pytest.mark.slow
def test_celery_execution_is_a_child_of_the_celery_instrumentations_run_span(
    redis_clean: str, tmp_path: Path
) -> None:
    """Next to ``opentelemetry-instrumentation-celery``: its run span parents the execution."""
    with grpc_receiver() as (endpoint, received):
        environment = _environment(redis_clean, endpoint)
        _produce(["tests.engines.producer", "celery"], environment)
        log = tmp_path / "worker.log"
        worker = _start(list(ENGINES[0].worker), environment, log)
        try:
            assert received.wait_for(lambda r: len(_executions(r)) >= 7, timeout=TIMEOUT)
        finally:
            _stop(worker, log)
        by_id = {s.span_id: s for s in received.spans}
        for execution in _executions(received):
            parent = by_id[execution.parent_span_id]
            assert parent.name == "run/" + execution.attributes["workflow.definition.name"]
        assert len({s.trace_id for s in received.spans}) == 1


PROBE = """
import json
from stepwatch.instrumentation import StepwatchInstrumentor
from stepwatch.integrations.celery import CeleryInstrumentor
from stepwatch.integrations.dramatiq import DramatiqInstrumentor
from stepwatch.integrations.huey import HueyInstrumentor
from stepwatch.integrations.rq import RQInstrumentor

print(json.dumps({
    cls.__name__: cls().is_instrumented_by_opentelemetry
    for cls in (StepwatchInstrumentor, CeleryInstrumentor, RQInstrumentor,
                DramatiqInstrumentor, HueyInstrumentor)
}))
"""


@pytest.mark.parametrize(
    ("disabled", "off"),
    [
        ("", set()),
        ("stepwatch_celery", {"CeleryInstrumentor"}),
        ("stepwatch_rq,stepwatch_huey", {"RQInstrumentor", "HueyInstrumentor"}),
    ],
)
def test_entry_points_load_and_disable_one_by_one(disabled: str, off: set[str]) -> None:
    import json

    result = subprocess.run(
        [INSTRUMENT, sys.executable, "-c", PROBE],
        env=clean_environment(
            OTEL_TRACES_EXPORTER="none",
            OTEL_METRICS_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=disabled,
        ),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=True,
    )
    instrumented = json.loads(result.stdout.strip().splitlines()[-1])
    assert {name for name, on in instrumented.items() if not on} == off


@pytest.mark.slow
def test_celery_expired_task_is_a_cancellation(redis_clean: str, tmp_path: Path) -> None:
    """A task revoked by its expiry never runs: one execution, ``cancellation``, pending 0."""
    with grpc_receiver() as (endpoint, received):
        environment = _environment(redis_clean, endpoint)
        _produce(["tests.engines.celery_expired"], environment)
        log = tmp_path / "worker.log"
        worker = _start([*ENGINES[0].worker[:3], "worker", "--pool", "solo"], environment, log)
        try:
            assert received.wait_for(lambda r: len(_executions(r)) >= 1, timeout=TIMEOUT)
            assert received.wait_for(
                lambda r: len(_fleet_pending(r)) >= 2 and sum(_fleet_pending(r).values()) == 0,
                timeout=TIMEOUT,
            ), _fleet_pending(received)
        finally:
            _stop(worker, log)
        (execution,) = _executions(received)
        assert execution.attributes["workflow.execution.outcome"] == "cancellation"
        assert execution.attributes["workflow.execution.outcome.reason"] == "expired before it ran"


def test_rq_scheduled_job_is_one_enqueue_and_a_cancelled_one_a_cancellation(
    sw: Harness, redis_clean: str
) -> None:
    """In process, on the real Redis: RQ's scheduler moving a due job is no new enqueue."""
    from redis import Redis
    from rq import Queue, SimpleWorker
    from rq.scheduler import RQScheduler

    from tests.engines import rq_jobs

    instrumentor = RQInstrumentor()
    instrumentor.instrument()
    instrumentor.instrument()  # idempotent
    try:
        connection = Redis.from_url(redis_clean)
        queue = Queue("orders", connection=connection)
        queue.enqueue_at(datetime.now(UTC) - timedelta(seconds=1), rq_jobs.add, 1, 2)
        queue.enqueue(rq_jobs.add, 3, 4).cancel()
        scheduler = RQScheduler([queue], connection=connection)
        scheduler.acquire_locks()  # type: ignore[no-untyped-call]
        scheduler.enqueue_scheduled_jobs()  # type: ignore[no-untyped-call]
        scheduler.release_locks()  # type: ignore[no-untyped-call]
        assert SimpleWorker([queue], connection=connection).work(burst=True)
    finally:
        instrumentor.uninstrument()
        instrumentor.uninstrument()  # idempotent
    assert not hasattr(Queue.enqueue_job, "__wrapped__")
    name = "tests.engines.rq_jobs.add"
    outcomes = sorted(
        (span.name, (span.attributes or {}).get("workflow.execution.outcome"))
        for span in sw.spans()
        if span.name.startswith(("execution ", "enqueue "))
    )
    assert outcomes == [
        (f"enqueue {name}", None),
        (f"enqueue {name}", None),
        (f"execution {name}", "cancellation"),
        (f"execution {name}", "success"),
    ]
    assert sw.monitor.summary().queue_depth == 0


def test_rq_leaves_the_jobs_own_meta_stepwatch_alone_and_counts_the_enqueue(
    sw: Harness, redis_clean: str
) -> None:
    """A job's own ``meta["stepwatch"]`` is no carrier: kept, and the enqueue still counted."""
    from redis import Redis
    from rq import Queue, SimpleWorker

    from tests.engines import rq_jobs

    instrumentor = RQInstrumentor()
    instrumentor.instrument()
    try:
        connection = Redis.from_url(redis_clean)
        queue = Queue("orders", connection=connection)
        job = queue.enqueue(rq_jobs.own_meta, meta={"stepwatch": {"team": "payments"}})

        class Worker(SimpleWorker):
            """No command channel: its thread can take a minute to stop (an RQ race)."""

            def subscribe(self) -> None:
                pass

            def unsubscribe(self) -> None:
                pass

        assert Worker([queue], connection=connection).work(burst=True)
        job.refresh()  # type: ignore[no-untyped-call]
    finally:
        instrumentor.uninstrument()
    assert job.return_value() == {"team": "payments"}  # what the job saw
    assert job.meta["stepwatch"] == {"team": "payments"}  # and what it keeps
    name = "tests.engines.rq_jobs.own_meta"
    assert sorted(s.name for s in sw.spans() if s.name.endswith(name)) == [
        f"enqueue {name}",
        f"execution {name}",
    ]
    execution = sw.span(f"execution {name}")
    assert execution.links and execution.attributes is not None
    assert execution.attributes["workflow.execution.outcome"] == "success"
    assert sw.monitor.summary().queue_depth == 0


def test_celery_instrument_and_uninstrument_are_idempotent() -> None:
    from celery import signals

    def ours() -> int:
        return sum(
            1
            for receivers in (signals.task_prerun.receivers, signals.before_task_publish.receivers)
            for (lookup, _receiver) in receivers
            if "stepwatch" in str(lookup[0])
        )

    instrumentor = CeleryInstrumentor()
    before = ours()
    instrumentor.instrument()
    instrumentor.instrument()
    assert ours() == before + 2
    instrumentor.uninstrument()
    instrumentor.uninstrument()
    assert ours() == before
