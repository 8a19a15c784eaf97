"""Nothing lost when a process leaves: real engines and real processes, the SDK's default intervals.

Each case runs real worker processes (Celery prefork with a real Redis, RQ
forking per job, bare ``os.fork`` children and a ``multiprocessing`` fork
pool) configured in code or by ``opentelemetry-instrument`` (zero code),
with the SDK's **default** export intervals (a 5 s span batch delay, a 60 s
metric interval: far longer than the processes live). The processes are
stopped right after their last result. What a real OTLP receiver got is
compared with the ground truth: the executions and their outcomes, and per
``service.instance.id`` (one per process) as many executions in the
exported ``workflow.execution.duration`` counts as spans, so no process
re-exports another's points.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from tests.helpers import ROOT, clean_environment, free_port
from tests.otlp_receivers import Received, grpc_receiver, http_receiver
from tests.test_integrations import redis_clean, redis_url

__all__ = ["redis_clean", "redis_url"]  # the fixtures, used by name

BIN = Path(sys.executable).parent
INSTRUMENT = str(BIN / "opentelemetry-instrument")
TIMEOUT = 120.0
"""Seconds a wait may take: generous for a busy 2-core machine; never reached when right."""
ARRIVED = 30.0
"""Seconds to wait for the receiver once every process is gone (its handler threads finish)."""

MODES = ["in-code", "zero-code"]


def _receiver(mode: str) -> AbstractContextManager[tuple[str, Received]]:
    # configure() defaults to OTLP/HTTP; the distro to OTLP/gRPC.
    return http_receiver() if mode == "in-code" else grpc_receiver()


def _command(mode: str, command: list[str]) -> list[str]:
    return command if mode == "in-code" else [INSTRUMENT, *command]


def _environment(mode: str, endpoint: str, **extra: str) -> dict[str, str]:
    """No OTEL_METRIC_EXPORT_INTERVAL, no OTEL_BSP_SCHEDULE_DELAY: the SDK's defaults."""
    environment = clean_environment(
        OTEL_SERVICE_NAME="leaving",
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_EXPORTER_OTLP_INSECURE="true",
        # A live receiver on a busy machine may take longer than the 1 s bound
        # (then a child leaving with os._exit would lose its export): these
        # tests guard what arrives, the bound has its own test.
        **{"STEPWATCH_FLUSH_TIMEOUT": "30", **extra},
    )
    if mode == "in-code":
        environment["STEPWATCH_TEST_IN_CODE"] = "1"
    return environment


def ground_truth(received: Received) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """(outcomes of the execution spans, spans per instance, metric count per instance).

    The metric count of an instance is the latest cumulative count of
    ``workflow.execution.duration`` of each of its attribute sets, summed.
    """
    spans = [s for s in received.spans if s.name.startswith("execution ")]
    assert len({s.span_id for s in spans}) == len(spans), "a span was exported twice"
    outcomes = Counter(str(s.attributes["workflow.execution.outcome"]) for s in spans)
    per_instance = Counter(str(s.resource.get("service.instance.id")) for s in spans)
    latest: dict[tuple[str, frozenset[tuple[str, object]]], int] = {}
    for metric in received.metrics:
        if metric.name != "workflow.execution.duration":
            continue
        instance = str(metric.resource.get("service.instance.id"))
        for point in metric.points:
            key = (instance, frozenset(point["attributes"].items()))
            latest[key] = int(point["point"].count)
    counted: Counter[str] = Counter()
    for (instance, _attributes), count in latest.items():
        counted[instance] += count
    return outcomes, per_instance, +counted


def _arrived(expected: int) -> Callable[[Received], bool]:
    def check(received: Received) -> bool:
        outcomes, _spans, counted = ground_truth(received)
        return sum(outcomes.values()) >= expected and sum(counted.values()) >= expected

    return check


def _run(command: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        env=environment,
        cwd=ROOT,
        capture_output=True,
        text=True,
        # RQ 3.0's burst worker may wait up to 60 s at its exit (a race of its
        # pubsub thread's teardown in redis-py), whatever stepwatch does.
        timeout=3 * TIMEOUT,
        check=False,
    )


@pytest.fixture
def worker_log(tmp_path: Path) -> Path:
    return tmp_path / "worker.log"


def _stop(worker: subprocess.Popen[bytes]) -> int:
    """SIGTERM (Celery's warm shutdown) and wait; the exit code."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    try:
        return worker.wait(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        worker.kill()
        return worker.wait(timeout=30)


CELERY_WORKERS = {
    "prefork-2": ["--concurrency", "2"],
    "max-tasks-per-child-1": ["--concurrency", "2", "--max-tasks-per-child", "1"],
}


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("pool", list(CELERY_WORKERS))
def test_celery_prefork_children_deliver_every_execution_when_stopped_after_the_last_result(
    pool: str, mode: str, redis_clean: str, worker_log: Path
) -> None:
    with _receiver(mode) as (endpoint, received):
        environment = _environment(mode, endpoint, STEPWATCH_TEST_REDIS=redis_clean)
        command = [
            str(BIN / "celery"),
            "-A",
            "tests.engines.leaving_celery_app",
            "worker",
            "--pool",
            "prefork",
            *CELERY_WORKERS[pool],
            "--loglevel",
            "WARNING",
            "--without-heartbeat",
            "--without-mingle",
            "--without-gossip",
        ]
        with worker_log.open("wb") as output:
            worker = subprocess.Popen(
                _command(mode, command), env=environment, cwd=ROOT, stdout=output, stderr=output
            )
        try:
            producer = _run(
                [sys.executable, "-m", "tests.engines.leaving_producer", "celery", "6"],
                clean_environment(STEPWATCH_TEST_REDIS=redis_clean),
            )
            assert producer.stdout.strip() == "done", producer.stderr
        finally:
            _stop(worker)  # right after the last result
        log = worker_log.read_text(errors="replace")
        assert received.wait_for(_arrived(7), timeout=ARRIVED), (ground_truth(received), log)
        outcomes, spans, counted = ground_truth(received)
    assert outcomes == {"success": 6, "failure": 1}
    assert counted == spans
    if pool == "max-tasks-per-child-1":
        assert len(spans) == 7  # a new child, a new service.instance.id, per task
    assert "stepwatch:" not in log, log[-4000:]


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_rq_fork_per_job_delivers_every_execution(mode: str, redis_clean: str) -> None:
    with _receiver(mode) as (endpoint, received):
        environment = _environment(mode, endpoint, STEPWATCH_TEST_REDIS=redis_clean)
        producer = _run(
            [sys.executable, "-m", "tests.engines.leaving_producer", "rq", "5"],
            clean_environment(STEPWATCH_TEST_REDIS=redis_clean),
        )
        assert producer.stdout.strip() == "done", producer.stderr
        worker = _run(
            _command(mode, [sys.executable, "-m", "tests.engines.leaving_rq_worker"]), environment
        )
        assert worker.returncode == 0, worker.stderr[-4000:]
        assert received.wait_for(_arrived(6), timeout=ARRIVED), (ground_truth(received), worker)
        outcomes, spans, counted = ground_truth(received)
    assert outcomes == {"success": 5, "failure": 1}
    assert counted == spans
    assert len(spans) == 6  # one horse per job
    assert "stepwatch:" not in worker.stderr, worker.stderr[-4000:]


@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_children_of_a_parent_that_recorded_export_only_their_own(mode: str) -> None:
    with _receiver(mode) as (endpoint, received):
        result = _run(
            _command(mode, [sys.executable, "-m", "tests.engines.leaving_fork_engine"]),
            _environment(mode, endpoint),
        )
        assert result.returncode == 0, result.stderr[-4000:]
        assert json.loads(result.stdout.strip().splitlines()[-1]) == {"exit_codes": [0, 0, 0]}
        assert received.wait_for(_arrived(15), timeout=ARRIVED), ground_truth(received)
        outcomes, spans, counted = ground_truth(received)
        by_instance: dict[str, set[str]] = {}
        for span in received.spans:
            if span.name.startswith("execution "):
                instance = str(span.resource.get("service.instance.id"))
                by_instance.setdefault(instance, set()).add(
                    str(span.attributes["workflow.execution.id"]).split("-")[0]
                )
    assert outcomes == {"success": 14, "cancellation": 1}
    assert counted == spans  # nobody re-exported the parent's cancellation or successes
    kinds = sorted(sorted(v) for v in by_instance.values())
    assert kinds.count(["child"]) == 3
    assert kinds.count(["parent"]) == 1
    pool = sorted(n for i, n in spans.items() if by_instance[i] == {"pool"})
    assert pool in ([4], [1, 3], [2, 2])  # the pool's one or two workers ran 4 together
    assert "stepwatch:" not in result.stderr, result.stderr[-4000:]


@pytest.mark.slow
def test_a_dead_collector_costs_one_bounded_flush_for_the_whole_fork_per_job_worker(
    redis_clean: str,
) -> None:
    """The first horse pays the flush bound; the others know the backend fails and skip it."""
    refused = f"http://127.0.0.1:{free_port()}"  # nothing listens: connections are refused
    producer = _run(
        [sys.executable, "-m", "tests.engines.leaving_producer", "rq", "5"],
        clean_environment(STEPWATCH_TEST_REDIS=redis_clean),
    )
    assert producer.stdout.strip() == "done", producer.stderr
    worker = _run(
        [sys.executable, "-m", "tests.engines.leaving_rq_worker"],
        _environment(
            "in-code",
            refused,
            STEPWATCH_TEST_REDIS=redis_clean,
            OTEL_EXPORTER_OTLP_TIMEOUT="2",  # the parent's own exit flush
            STEPWATCH_FLUSH_TIMEOUT="1",  # the default bound
        ),
    )
    assert worker.returncode == 0, worker.stderr[-4000:]
    # Each horse is a new process: it logs its own first failed flush, so one
    # line per flush attempted and failed.
    attempts = worker.stderr.count("skipping per-execution flushes")
    assert attempts == 1, worker.stderr[-4000:]


def _script(how: str, endpoint: str, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.engines.leaving_script", how],
        env=_environment("in-code", endpoint, **extra),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _terminated(script: subprocess.Popen[str]) -> tuple[int, str, bool]:
    """Wait for ``ready``, send SIGTERM, wait for the end.

    Returns:
        The return code, stderr, and whether SIGTERM had its default action.
    """
    assert script.stdout is not None
    ready, default = script.stdout.readline().split()
    assert ready == "ready"
    script.send_signal(signal.SIGTERM)
    _out, errors = script.communicate(timeout=TIMEOUT)
    return script.returncode, errors, default == "True"


def test_a_script_that_drops_configures_result_delivers_everything_at_exit() -> None:
    with http_receiver() as (endpoint, received):
        script = _script("exit", endpoint)
        _out, errors = script.communicate(timeout=TIMEOUT)
        assert script.returncode == 0, errors
        assert received.wait_for(_arrived(3), timeout=ARRIVED), ground_truth(received)
        outcomes, spans, counted = ground_truth(received)
    assert outcomes == {"success": 3}
    assert counted == spans


def test_a_script_stopped_by_sigterm_delivers_everything_and_dies_by_the_signal() -> None:
    with http_receiver() as (endpoint, received):
        code, errors, default = _terminated(_script("sigterm", endpoint))
        assert not default  # stepwatch handles it
        assert code == -signal.SIGTERM, errors  # exit status 143 in a shell
        assert received.wait_for(_arrived(3), timeout=ARRIVED), ground_truth(received)
        outcomes, spans, counted = ground_truth(received)
    assert outcomes == {"success": 3}
    assert counted == spans
    assert "stepwatch:" not in errors, errors


def test_sigterm_is_left_alone_when_opted_out() -> None:
    with http_receiver() as (endpoint, _received):
        code, errors, default = _terminated(
            _script("sigterm", endpoint, STEPWATCH_HANDLE_SIGTERM="false")
        )
    assert default
    assert code == -signal.SIGTERM, errors


def test_sigterm_handled_by_the_application_is_left_to_it() -> None:
    with http_receiver() as (endpoint, received):
        code, errors, default = _terminated(_script("own-handler", endpoint))
        assert not default  # the application's handler, still in place
        assert code == 3, errors  # it ran (sys.exit(3)); the normal exit then flushed
        assert received.wait_for(_arrived(3), timeout=ARRIVED), ground_truth(received)
        outcomes, spans, counted = ground_truth(received)
    assert outcomes == {"success": 3}
    assert counted == spans


GROUP_PROBE = """
import json, os, sys
import stepwatch
from stepwatch import Monitor

directory = sys.argv[1]
# Publishes at start-up and then once a minute: only the start publish can show the job.
Monitor(multiprocess_dir=directory, publish_interval=60).install()
started_r, started_w = os.pipe()
go_r, go_w = os.pipe()
pid = os.fork()
if pid == 0:
    with stepwatch.execution("short-job", execution_id="horse-1"):
        os.write(started_w, b"s")
        os.read(go_r, 1)
    os._exit(0)
os.read(started_r, 1)
viewer = Monitor(multiprocess_dir=directory, publish_interval=None)
running = [p.execution_id for p in viewer.active_executions()]
os.write(go_w, b"g")
code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
print(json.dumps({"running": running, "code": code}))
"""


def test_a_freshly_forked_group_member_publishes_when_an_execution_starts(tmp_path: Path) -> None:
    result = _run([sys.executable, "-c", GROUP_PROBE, str(tmp_path / "group")], clean_environment())
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "running": ["horse-1"],
        "code": 0,
    }
