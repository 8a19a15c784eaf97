"""Members of a process group that die: their running executions end ``lost``, once, and
nothing they leave behind (ghost files, retired files, a member that cannot publish)
shows as pending, running or alerting work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import stepwatch
from stepwatch.group import COMPONENT, SUFFIX, process_start
from stepwatch.semconv import EventType, HealthStatus, Outcome
from tests.helpers import ROOT, clean_environment
from tests.test_group import until

# A dead member is noticed at the next sweep of a surviving member (every
# publish interval: 0.2 s here) and its executions recorded at once; the
# bound below only guards a busy CI box against hanging forever.
NOTICED_WITHIN = 30.0


class Member:
    """A ``tests.engines.lost_worker`` process: runs carriers, holds ``held`` of them."""

    def __init__(self, directory: Path, carriers: list[dict[str, str]], held: int) -> None:
        carriers_file = directory.parent / f"carriers-{len(carriers)}-{held}-{time.monotonic_ns()}"
        carriers_file.write_text(json.dumps(carriers))
        module = "tests.engines.lost_worker"
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, str(directory), str(carriers_file), str(held)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=clean_environment(),
            cwd=ROOT,
        )
        assert self.line() == "READY"

    def line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def lost(self) -> int:
        self.send("lost")
        word, count = self.line().split()
        assert word == "LOST"
        return int(count)

    def finish(self) -> None:
        self.send("exit")
        assert self.process.wait(timeout=60) == 0

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=60)


@pytest.fixture
def group_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "group"
    directory.mkdir()
    return directory


@pytest.fixture
def producer(group_dir: Path) -> Iterator[stepwatch.Monitor]:
    """This test process as a member of the group: it enqueues the work."""
    monitor = stepwatch.Monitor(multiprocess_dir=group_dir, publish_interval=0.2).install()
    try:
        yield monitor
    finally:
        monitor.shutdown()


def _lost_in_group(monitor: stepwatch.Monitor) -> int:
    return monitor.summary().outcomes[Outcome.LOST.value]


def test_a_killed_members_two_running_executions_end_lost_exactly_once(
    producer: stepwatch.Monitor, group_dir: Path
) -> None:
    carriers = [stepwatch.enqueue("job", execution_id=f"job-{n}") for n in range(3)]
    doomed = Member(group_dir, carriers[:2], held=2)
    survivor = Member(group_dir, carriers[2:], held=0)
    try:
        assert until(lambda: len(producer.active_executions()) == 2, NOTICED_WITHIN)
        assert {p.state for p in producer.active_executions()} == {"executing"}
        os.kill(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait(timeout=60)
        assert until(lambda: _lost_in_group(producer) >= 2, NOTICED_WITHIN)
        # Both survivors swept: exactly one of them claimed the dead member.
        here = len(producer.events(event_type=EventType.EXECUTION_LOST))
        assert here + survivor.lost() == 2
        assert _lost_in_group(producer) == 2
        summary = producer.summary()
        assert summary.active_executions == 0
        assert summary.queue_depth == 0
        assert summary.lost_rate == pytest.approx(2 / 3)
        assert producer.active_executions() == []
        for execution_id in ("job-0", "job-1"):
            progress = producer.progress(execution_id)
            assert progress is not None
            assert progress.state == Outcome.LOST.value
            assert progress.completed_steps == 2
        alerts = [a for a in producer.health(refresh=True).alerts if a.rule == "ExecutionsLost"]
        assert [(a.labels, a.value) for a in alerts] == [({"name": "job"}, 2.0)]
        survivor.finish()
    finally:
        doomed.kill()
        survivor.kill()


def _held_document(group_dir: Path, execution_id: str = "ghost-run") -> dict[str, Any]:
    """What a member publishes while it runs ``execution_id`` (the member itself then gone)."""
    member = stepwatch.Monitor(multiprocess_dir=group_dir, publish_interval=600.0).install()
    try:
        with stepwatch.execution("held", execution_id=execution_id, total_steps=2):
            assert member.group is not None
            member.group.publish()
            document: dict[str, Any] = json.loads(member.group.path.read_text())
    finally:
        member.shutdown()
        assert member.group is not None
        member.group.path.unlink()  # only the planted files hold the id
    return document


def _plant(group_dir: Path, document: dict[str, Any], name: str, **changes: Any) -> Path:
    path = group_dir / name
    path.write_text(json.dumps({**document, **changes}))
    return path


def _ghost_alert() -> dict[str, Any]:
    return {
        "id": "ghost-alert",
        "rule": "ComponentDown",
        "severity": "critical",
        "message": "ghost",
        "labels": {"component": "db"},
        "value": 0.0,
        "threshold": 1.0,
        "state": "firing",
        "started_at": time.time(),
        "resolved_at": None,
    }


def _reused_pid_name(document: dict[str, Any]) -> tuple[str, int, int]:
    """A file name of a process that had this (alive) pid before: another start time."""
    pid = os.getpid()
    start = process_start(pid)
    assert start is not None
    return f"{pid}-{start - 1}-{document['namespace']}-0123456789ab{SUFFIX}", pid, start - 1


def test_a_ghost_file_with_a_reused_pid_and_a_future_publish_time_shows_nothing_running(
    group_dir: Path,
) -> None:
    document = _held_document(group_dir)
    name, _, start = _reused_pid_name(document)
    # Claiming to have published an hour from now, with a critical alert firing.
    _plant(
        group_dir,
        document,
        name,
        start_time=start,
        published_at=time.time() + 3600,
        alerts=[_ghost_alert()],
    )
    viewer = stepwatch.Monitor(multiprocess_dir=group_dir, publish_interval=None)
    try:
        assert viewer.active_executions() == []
        assert viewer.alerts() == []
        assert viewer.health(refresh=True).status is HealthStatus.HEALTHY
    finally:
        viewer.shutdown()
    # A publishing member claims the ghost's running execution as lost, once.
    survivor = stepwatch.Monitor(multiprocess_dir=group_dir, publish_interval=600.0)
    try:
        assert survivor.group is not None
        survivor.group.sweep()
        survivor.group.sweep()
        lost = survivor.events(event_type=EventType.EXECUTION_LOST)
        assert [e.execution_id for e in lost] == ["ghost-run"]
    finally:
        survivor.shutdown()


def test_a_file_without_start_time_claiming_the_future_is_stale_by_its_write_time(
    group_dir: Path,
) -> None:
    document = _held_document(group_dir)
    ghost = _plant(
        group_dir,
        document,
        f"{os.getpid()}-old-writer{SUFFIX}",
        start_time=None,
        namespace=None,
        published_at=time.time() + 3600,
    )
    an_hour_ago = time.time() - 3600
    os.utime(ghost, (an_hour_ago, an_hour_ago))
    viewer = stepwatch.Monitor(multiprocess_dir=group_dir, publish_interval=None)
    try:
        assert viewer.active_executions() == []
    finally:
        viewer.shutdown()


def test_retiring_a_dead_workers_file_leaves_no_phantom_backlog(group_dir: Path) -> None:
    later = [0.0]
    producer = stepwatch.Monitor(
        multiprocess_dir=group_dir,
        publish_interval=600.0,
        clock=lambda: time.time() + later[0],
        rules=stepwatch.Rules(queue_depth=100),
    ).install()
    try:
        carriers = [stepwatch.enqueue("job", execution_id=f"r-{n}") for n in range(150)]
        worker = Member(group_dir, carriers, held=0)
        worker.finish()
        assert producer.summary().queue_depth == 0
        assert producer.group is not None
        (dead,) = [p for p in group_dir.glob(f"*{SUFFIX}") if p != producer.group.path]
        # Seven hours on, the dead worker's file is retired by the next sweep.
        later[0] = 7 * 3600.0
        producer.group.sweep()
        assert not dead.exists()
        summary = producer.summary()
        assert summary.queue_depth == 0
        assert summary.active_executions == 0
        assert producer.active_executions() == []
        assert [a.rule for a in producer.health(refresh=True).alerts] == []
        # Another member, looking next, sees the same.
        viewer = stepwatch.Monitor(
            multiprocess_dir=group_dir, publish_interval=None, clock=lambda: time.time() + later[0]
        )
        try:
            assert viewer.summary().queue_depth == 0
            assert viewer.active_executions() == []
        finally:
            viewer.shutdown()
    finally:
        producer.shutdown()


@pytest.mark.internal_errors
def test_a_member_that_cannot_publish_is_degraded_and_leaves_no_temporary_file(
    group_dir: Path,
) -> None:
    member = stepwatch.Monitor(multiprocess_dir=group_dir, publish_interval=600.0)
    try:
        assert member.group is not None
        path = member.group.path
        path.unlink()
        path.mkdir()  # the file's place is taken: every rename into it fails
        (path / "keep").write_text("x")
        assert member.group.publish() is False
        health = member.health(refresh=True)
        (component,) = [c for c in health.components if c.name == COMPONENT]
        assert component.status is HealthStatus.DEGRADED
        assert component.critical is False
        assert "cannot publish" in (component.message or "")
        assert health.status is HealthStatus.DEGRADED
        assert sorted(p.name for p in group_dir.iterdir()) == [path.name]
        (path / "keep").unlink()
        path.rmdir()
        assert member.group.publish() is True
        assert member.health(refresh=True).status is HealthStatus.HEALTHY
    finally:
        member.shutdown()


def test_two_survivors_that_saw_the_same_dead_member_never_both_end_its_executions(
    group_dir: Path,
) -> None:
    document = _held_document(group_dir)
    name, pid, start = _reused_pid_name(document)
    ghost = _plant(group_dir, document, name, start_time=start)
    survivors = [
        stepwatch.Monitor(multiprocess_dir=group_dir, publish_interval=600.0) for _ in "ab"
    ]
    try:
        # Both listed the directory before either claimed: both try to claim.
        for survivor in survivors:
            assert survivor.group is not None
            survivor.group._claim_lost(ghost, (pid, start, document["namespace"]))
        lost = [
            event.execution_id
            for survivor in survivors
            for event in survivor.events(event_type=EventType.EXECUTION_LOST)
        ]
        assert lost == ["ghost-run"]
    finally:
        for survivor in survivors:
            survivor.shutdown()


def test_a_redelivered_run_of_a_dead_member_is_its_next_attempt_and_leaves_pending_once(
    group_dir: Path,
) -> None:
    # A dead member had started the enqueue (its pending level -1) and was running it.
    document = _held_document(group_dir, "redelivered-run")
    pending = [["workflow.definition.name", "held"], ["workflow.execution.state", "pending"]]
    document["windows"]["levels"].append(["workflow.execution.active", pending, -1.0])
    name, _, start = _reused_pid_name(document)
    survivor = stepwatch.Monitor(multiprocess_dir=group_dir, publish_interval=600.0).install()
    try:
        carrier = stepwatch.enqueue("held", execution_id="redelivered-run")  # pending +1
        _plant(group_dir, document, name, start_time=start)
        assert survivor.summary().queue_depth == 0
        assert survivor.group is not None
        survivor.group.sweep()  # finds it dead: lost, and remembered
        # The engine redelivers the message (dramatiq after a dead worker: no marker of its own).
        with stepwatch.execution("held", carrier=carrier) as ex:
            assert ex.attempt == 2
            levels = survivor._windows.levels("workflow.execution.active").items()
            state = "workflow.execution.state"
            assert sum(v for a, v in levels if dict(a)[state] == "pending") == 0
        assert survivor.progress("redelivered-run").attempt == 2  # type: ignore[union-attr]
        assert survivor.summary().queue_wait.count == 0  # no wait spans a dead attempt
    finally:
        survivor.shutdown()


def test_a_killed_member_its_parent_has_not_reaped_yet_is_dead(group_dir: Path) -> None:
    survivor = stepwatch.Monitor(multiprocess_dir=group_dir, publish_interval=600.0).install()
    try:
        carrier = stepwatch.enqueue("job", execution_id="zombie-run")
        doomed = Member(group_dir, [carrier], held=1)
        try:
            os.kill(doomed.process.pid, signal.SIGKILL)  # and not reaped: a zombie
            stat = Path(f"/proc/{doomed.process.pid}/stat")
            assert until(lambda: stat.read_bytes().rsplit(b")", 1)[1].split()[0] == b"Z", 30.0)
            assert survivor.group is not None
            survivor.group.sweep()
            lost = survivor.events(event_type=EventType.EXECUTION_LOST)
            assert [e.execution_id for e in lost] == ["zombie-run"]
        finally:
            doomed.kill()
    finally:
        survivor.shutdown()
