"""One view of a process group: real worker processes sharing a directory with this one."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import stepwatch
from stepwatch.group import FORMAT, FORMAT_VERSION, MAX_FILE_BYTES, SUFFIX, merge_progress
from stepwatch.progress import ExecutionProgress
from tests.helpers import ROOT, clean_environment


class Worker:
    """A ``tests.engines.group_worker`` process, driven on stdin."""

    def __init__(self, directory: Path, name: str, carrier: dict[str, str] | None = None):
        args = [sys.executable, "-m", "tests.engines.group_worker", str(directory), name]
        if carrier is not None:
            args.append(json.dumps(carrier))
        self.name = name
        self.process = subprocess.Popen(
            args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=clean_environment(),
            cwd=ROOT,
        )
        self.expect("READY")

    def expect(self, word: str) -> None:
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        assert line == word, f"{self.name}: expected {word!r}, got {line!r}"

    def send(self, command: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def finish(self) -> None:
        self.send("exit")
        assert self.process.wait(timeout=60) == 0

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=60)


def until(condition: Callable[[], Any], timeout: float) -> Any:
    """Poll ``condition`` (every 50 ms) until it is truthy; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)  # polling another process's publish: no event crosses processes


@pytest.fixture
def group_dir(tmp_path: Path) -> Path:
    return tmp_path / "group"


@pytest.fixture
def parent(group_dir: Path) -> Iterator[stepwatch.Monitor]:
    monitor = stepwatch.Monitor(multiprocess_dir=group_dir)
    previous_installed = monitor.installed
    monitor.install()
    try:
        yield monitor
    finally:
        monitor.shutdown()
        assert previous_installed is False


def _running(monitor: stepwatch.Monitor) -> dict[str, float | None]:
    return {
        p.execution_id: p.percent for p in monitor.active_executions() if p.state == "executing"
    }


def test_parent_sees_the_workers_running_and_finished(
    parent: stepwatch.Monitor, group_dir: Path
) -> None:
    workers = [Worker(group_dir, "w1"), Worker(group_dir, "w2")]
    try:
        wanted = {"w1-running", "w2-running"}
        seen = until(lambda: wanted <= _running(parent).keys() and _running(parent), 3.0)
        assert seen, _running(parent)
        assert seen["w1-running"] == pytest.approx(37.5)  # 1.5 of 4 steps
        progress = parent.progress("w2-running")
        assert progress is not None
        assert (progress.completed_steps, progress.running_steps, progress.pending_steps) == (
            1,
            1,
            2,
        )
        for worker in workers:
            worker.send("end")
        for worker in workers:
            worker.expect("DONE")
        summary = until(lambda: (s := parent.summary()).total == 8 and s, 10.0)
        assert summary, parent.summary()
        assert summary.outcomes["success"] == 6
        assert summary.outcomes["failure"] == 2
        assert summary.failure_rate == pytest.approx(0.25)
        for worker in workers:
            worker.finish()
        assert not (_running(parent).keys() & wanted)
        assert parent.summary().total == 8  # their finished data stays in the windows
    finally:
        for worker in workers:
            worker.kill()


def test_producer_sees_executing_then_finished_never_pending_again(
    parent: stepwatch.Monitor, group_dir: Path
) -> None:
    carrier = stepwatch.enqueue("held", execution_id="job-1")
    progress = parent.progress("job-1")
    assert progress is not None and progress.state == "pending"
    worker = Worker(group_dir, "consumer", carrier)
    try:
        states: list[str] = []

        def state_is(wanted: str) -> bool:
            record = parent.progress("job-1")
            assert record is not None
            states.append(record.state)
            return record.state == wanted

        assert until(lambda: state_is("executing"), 5.0), states
        listed = [p for p in parent.active_executions() if p.execution_id == "job-1"]
        assert [p.state for p in listed] == ["executing"]
        worker.send("end")
        worker.expect("DONE")
        assert until(lambda: state_is("success"), 5.0), states
        first_executing = states.index("executing")
        assert "pending" not in states[first_executing:]
        assert all(p.execution_id != "job-1" for p in parent.active_executions())
        worker.finish()
    finally:
        worker.kill()


def test_killed_worker_leaves_nothing_running(parent: stepwatch.Monitor, group_dir: Path) -> None:
    doomed, survivor = Worker(group_dir, "doomed"), Worker(group_dir, "survivor")
    try:
        survivor.send("end")
        survivor.expect("DONE")
        wanted = {"doomed-running"}
        assert until(lambda: wanted <= _running(parent).keys(), 5.0)
        assert until(lambda: parent.summary().total == 4, 5.0)
        os.kill(doomed.process.pid, signal.SIGKILL)
        doomed.process.wait(timeout=60)
        assert "doomed-running" not in _running(parent)
        assert parent.progress("doomed-running") is None or (
            parent.progress("doomed-running").state != "executing"  # type: ignore[union-attr]
        )
        # The survivor's data is intact.
        assert parent.summary().total == 4
        assert parent.progress("survivor-quick-2") is not None
        survivor.finish()
    finally:
        doomed.kill()
        survivor.kill()


# ----------------------------------------------------------------------- fuzzing
def _valid_document() -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "stepwatch": "0.2.0",
        "pid": os.getpid(),
        "published_at": time.time(),
        "execution_fields": [],
        "step_fields": [],
        "executions": [],
        "finished": [],
        "windows": {"fine_slot": 10.0, "coarse_slot": 60.0, "fine": [], "coarse": [], "levels": []},
        "alerts": [],
    }


def _queries(monitor: stepwatch.Monitor) -> None:
    monitor.active_executions()
    monitor.progress("x")
    monitor.summary()
    monitor.health(refresh=True)
    monitor.alerts()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@pytest.mark.internal_errors
@settings(max_examples=60)
@given(
    garbage=st.binary(max_size=512),
    field=st.sampled_from(["executions", "finished", "windows", "alerts", "pid", "published_at"]),
    value=_JSON,
)
def test_fuzzed_group_files_never_raise_from_a_query(
    tmp_path_factory: pytest.TempPathFactory, garbage: bytes, field: str, value: Any
) -> None:
    directory = tmp_path_factory.mktemp("fuzz")
    (directory / f"1-garbage{SUFFIX}").write_bytes(garbage)
    document = _valid_document()
    document[field] = value
    (directory / f"2-shaped{SUFFIX}").write_text(json.dumps(document))
    valid = json.dumps(_valid_document()).encode()
    (directory / f"3-truncated{SUFFIX}").write_bytes(valid[: len(valid) // 2])
    wrong = {**_valid_document(), "version": FORMAT_VERSION + 1}
    (directory / f"4-version{SUFFIX}").write_text(json.dumps(wrong))
    with (directory / f"5-huge{SUFFIX}").open("wb") as huge:
        huge.truncate(MAX_FILE_BYTES + 1)
    monitor = stepwatch.Monitor(multiprocess_dir=directory, publish_interval=None)
    try:
        _queries(monitor)
    finally:
        monitor.shutdown()


@pytest.mark.internal_errors
def test_a_valid_peer_file_among_bad_ones_is_read(tmp_path: Path) -> None:
    document = _valid_document()
    now = time.time()
    record = {
        "execution_id": "peer-1",
        "name": "n",
        "state": "executing",
        "total_steps": 2,
        "completed_steps": 1,
        "failed_steps": 0,
        "running_steps": 1,
        "pending_steps": 0,
        "percent": 50.0,
        "current_step": "b",
        "started_at": now,
        "updated_at": now,
        "eta_seconds": None,
        "attempt": 1,
        "a_future_field": "ignored by this reader",
    }
    document["execution_fields"] = list(record)
    document["executions"] = [[*record.values(), []]]
    (tmp_path / f"9-valid{SUFFIX}").write_text(json.dumps(document))
    (tmp_path / f"8-bad{SUFFIX}").write_text("{")
    monitor = stepwatch.Monitor(multiprocess_dir=tmp_path, publish_interval=None)
    try:
        assert [p.execution_id for p in monitor.active_executions()] == ["peer-1"]
        assert not list(tmp_path.glob(f"{os.getpid()}-*{SUFFIX}"))  # a viewer never writes
    finally:
        monitor.shutdown()


def test_rules_fire_on_the_groups_merged_windows(tmp_path: Path) -> None:
    """Two members of one group (two Monitors here, one file each): the pool's failure
    rate fires HighFailureRate in the member that saw no failure itself."""
    rules = stepwatch.Rules(min_executions=10, failure_rate=0.2)
    failing = stepwatch.Monitor(multiprocess_dir=tmp_path, publish_interval=600.0, rules=rules)
    healthy = stepwatch.Monitor(multiprocess_dir=tmp_path, publish_interval=600.0, rules=rules)
    try:
        failing.install()
        for number in range(12):
            try:
                with stepwatch.execution("pool-job", execution_id=f"f-{number}"):
                    if number % 2:
                        raise RuntimeError("half of them fail")
            except RuntimeError:
                pass
        assert failing.group is not None and failing.group.publish()
        healthy.install()
        for number in range(4):
            with stepwatch.execution("pool-job", execution_id=f"h-{number}"):
                pass
        summary = healthy.summary()
        assert (summary.total, summary.outcomes["failure"]) == (16, 6)
        health = healthy.health(refresh=True)
        assert [a.rule for a in health.alerts] == ["HighFailureRate"]
        assert health.status.value == "unhealthy"
        assert healthy.tracker.sizes()["finished"] == 4  # its own data stays its own
    finally:
        failing.shutdown()
        healthy.shutdown()


@pytest.mark.parametrize(
    ("options", "error", "argument"),
    [
        ({"multiprocess_dir": 3}, TypeError, "multiprocess_dir"),
        ({"multiprocess_dir": ""}, ValueError, "multiprocess_dir"),
        ({"multiprocess_dir": "x", "publish_interval": 0}, ValueError, "publish_interval"),
        ({"multiprocess_dir": "x", "publish_interval": True}, TypeError, "publish_interval"),
    ],
)
def test_group_setup_errors_name_the_argument(
    tmp_path: Path, options: dict[str, Any], error: type[Exception], argument: str
) -> None:
    if options.get("multiprocess_dir") == "x":
        options = {**options, "multiprocess_dir": tmp_path / "x"}
    with pytest.raises(error, match=argument):
        stepwatch.Monitor(**options)


def _record(state: str, attempt: int = 1, updated_at: float = 1.0) -> ExecutionProgress:
    return ExecutionProgress(
        execution_id="e",
        name="n",
        state=state,
        total_steps=None,
        completed_steps=0,
        failed_steps=0,
        running_steps=0,
        pending_steps=None,
        percent=None,
        current_step=None,
        started_at=None,
        updated_at=updated_at,
        eta_seconds=None,
        attempt=attempt,
    )


def test_the_most_advanced_record_wins() -> None:
    def best(*records: ExecutionProgress) -> tuple[str, int]:
        merged = merge_progress(records)["e"]
        return merged.state, merged.attempt

    assert best(_record("pending"), _record("executing")) == ("executing", 1)
    assert best(_record("executing", updated_at=9), _record("success")) == ("success", 1)
    # Re-enqueued for attempt 2 after attempt 1 ended as retry: pending again.
    assert best(_record("retry"), _record("pending", attempt=2)) == ("pending", 2)
    assert best(_record("pending", attempt=2), _record("executing", attempt=2)) == ("executing", 2)


def test_a_reenqueued_attempt_is_pending_with_its_attempt(sw: Any) -> None:
    with stepwatch.execution("job", carrier=stepwatch.enqueue("job", execution_id="r")) as ex:
        ex.retry()
    stepwatch.enqueue("job", execution_id="r", attempt=2)
    progress = sw.monitor.progress("r")
    assert (progress.state, progress.attempt) == ("pending", 2)


@pytest.mark.internal_errors
@settings(max_examples=60)
@given(position=st.integers(0, 15), value=_JSON, slot_part=st.integers(0, 2), slot_value=_JSON)
def test_fuzzed_records_and_windows_never_raise_from_a_query(
    tmp_path_factory: pytest.TempPathFactory,
    position: int,
    value: Any,
    slot_part: int,
    slot_value: Any,
) -> None:
    now = time.time()
    fields = [f.name for f in dataclasses.fields(ExecutionProgress) if f.name != "steps"]
    record: list[Any] = [
        "fuzz-1",
        "n",
        "executing",
        4,
        1,
        0,
        1,
        2,
        25.0,
        "b",
        now,
        now,
        None,
        1,
        [],
    ]
    record[position % len(record)] = value
    histogram = [1, 1.0, 1.0, 1.0, 0, 20, 0, [1]]
    slot: list[Any] = [
        "workflow.execution.duration",
        [["workflow.execution.state", "executing"]],
        1.0,
    ]
    group: list[Any] = ["workflow.execution.duration", None, None, histogram]
    (slot if slot_part < 2 else group)[slot_part if slot_part < 2 else 3] = slot_value
    document = {
        **_valid_document(),
        "execution_fields": fields,
        "step_fields": [],
        "executions": [record],
        "windows": {
            "fine_slot": 10.0,
            "coarse_slot": 60.0,
            "fine": [{"start": now // 10 * 10, "counts": [slot], "groups": [group]}],
            "coarse": [],
            "levels": [],
        },
    }
    directory = tmp_path_factory.mktemp("fuzz-deep")
    (directory / f"1-deep{SUFFIX}").write_text(json.dumps(document))
    monitor = stepwatch.Monitor(multiprocess_dir=directory, publish_interval=None)
    try:
        _queries(monitor)
        monitor.summary(60)
    finally:
        monitor.shutdown()
