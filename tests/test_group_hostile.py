"""The process group's directory is shared space: what a hostile file, link or peer can do.

The writer never writes through a link nor under a name another user could
predict; the reader opens only regular files of its own user, of bounded
size, never through a link; every number it reads is checked; its memory and
time are bounded in the number of peers.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import stepwatch
from stepwatch import group as group_module
from stepwatch.group import SUFFIX

pytestmark = pytest.mark.internal_errors


@pytest.fixture
def group_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "group"
    directory.mkdir()
    return directory


def _published(group_dir: Path, ids: tuple[str, ...] = ("peer-a",)) -> dict[str, Any]:
    """A real member's document: running executions ``ids``, finished work in its windows."""
    member = stepwatch.Monitor(multiprocess_dir=group_dir, publish_interval=600.0).install()
    try:
        for number in range(3):
            try:
                with stepwatch.execution("done", execution_id=f"done-{number}"):
                    if number == 0:
                        raise RuntimeError("fails")
            except RuntimeError:
                pass
        scopes = [stepwatch.execution("held", execution_id=i, total_steps=2) for i in ids]
        for scope in scopes:
            scope.__enter__()
        assert member.group is not None
        member.group.publish()
        document: dict[str, Any] = json.loads(member.group.path.read_text())
        for scope in reversed(scopes):  # last entered, first left
            scope.__exit__(None, None, None)
        member.group.path.unlink()
        return document
    finally:
        member.shutdown()
        assert member.group is not None
        member.group.path.unlink(missing_ok=True)


def _write(group_dir: Path, document: dict[str, Any], name: str = "peer") -> Path:
    path = group_dir / f"{name}{SUFFIX}"
    path.write_text(json.dumps(document))
    return path


@pytest.fixture
def viewer(group_dir: Path) -> Iterator[stepwatch.Monitor]:
    monitor = stepwatch.Monitor(multiprocess_dir=group_dir, publish_interval=None)
    try:
        yield monitor
    finally:
        monitor.shutdown()


def _running(monitor: stepwatch.Monitor) -> set[str]:
    return {p.execution_id for p in monitor.active_executions()}


# ------------------------------------------------------------------ links and names
def test_the_writer_never_writes_through_a_link_planted_at_a_name_it_uses(
    group_dir: Path, tmp_path: Path
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("precious")
    member = stepwatch.Monitor(multiprocess_dir=group_dir, publish_interval=600.0)
    try:
        assert member.group is not None
        path = member.group.path
        # Links at the file's own name and at every name a predictable writer
        # would derive from it (0.2: ".<name>.<thread id>.tmp").
        path.unlink()
        path.symlink_to(victim)
        for thread in threading.enumerate():
            planted = path.with_name(f".{path.name}.{thread.ident}.tmp")
            planted.symlink_to(victim)
        assert member.group.publish() is True
        assert victim.read_text() == "precious"
        assert not path.is_symlink()
        assert json.loads(path.read_text())["pid"] == os.getpid()
    finally:
        member.shutdown()


def test_temporary_names_are_new_and_unpredictable_each_publish(
    group_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    names: list[str] = []
    real_replace = os.replace

    def replace(source: Any, target: Any) -> None:
        names.append(Path(source).name)
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    member = stepwatch.Monitor(multiprocess_dir=group_dir, publish_interval=600.0)
    try:
        assert member.group is not None
        for _ in range(3):
            assert member.group.publish()
    finally:
        member.shutdown()
    assert len(names) >= 3
    assert len(set(names)) == len(names)
    assert all(member.group.path.name not in name for name in names)


def test_the_reader_never_follows_a_link_to_a_peer_file(
    group_dir: Path, tmp_path: Path, viewer: stepwatch.Monitor
) -> None:
    outside = tmp_path / f"outside{SUFFIX}"
    outside.write_text(json.dumps(_published(group_dir)))
    (group_dir / f"link{SUFFIX}").symlink_to(outside)
    assert _running(viewer) == set()
    # The same file in place is read: the link was the only reason it was not.
    _write(group_dir, json.loads(outside.read_text()))
    assert _running(viewer) == {"peer-a"}


# ------------------------------------------------------------- not regular files
def test_a_fifo_in_the_directory_never_hangs_a_query(
    group_dir: Path, viewer: stepwatch.Monitor
) -> None:
    os.mkfifo(group_dir / f"fifo{SUFFIX}")
    _write(group_dir, _published(group_dir))
    answers: list[set[str]] = []
    query = threading.Thread(target=lambda: answers.append(_running(viewer)), daemon=True)
    query.start()
    query.join(60)
    assert answers == [{"peer-a"}]


def test_a_link_to_dev_zero_is_skipped_with_one_warning(
    group_dir: Path, viewer: stepwatch.Monitor, caplog: pytest.LogCaptureFixture
) -> None:
    (group_dir / f"zero{SUFFIX}").symlink_to("/dev/zero")
    _write(group_dir, _published(group_dir))
    with caplog.at_level(logging.WARNING, logger="stepwatch.group"):
        for _ in range(3):
            assert _running(viewer) == {"peer-a"}
    warnings = [r for r in caplog.records if f"zero{SUFFIX}" in r.getMessage()]
    assert len(warnings) == 1


def test_a_file_of_another_user_is_not_read(group_dir: Path, viewer: stepwatch.Monitor) -> None:
    path = _write(group_dir, _published(group_dir))
    other = os.getuid() + 1
    try:
        os.chown(path, other, -1)
    except PermissionError:
        pytest.skip("changing a file's owner needs privileges here")
    assert _running(viewer) == set()


# --------------------------------------------------------------------- numbers
def _first_group(document: dict[str, Any]) -> list[Any]:
    for slot in document["windows"]["fine"]:
        if slot["groups"]:
            histogram: list[Any] = slot["groups"][0][3]
            return histogram
    raise AssertionError("no histogram published")


@pytest.mark.parametrize(
    "poison",
    [
        pytest.param(lambda h: h.__setitem__(6, 2**40), id="histogram-offset-2**40"),
        pytest.param(lambda h: h.__setitem__(6, -(2**40)), id="histogram-offset-minus-2**40"),
        pytest.param(lambda h: h.__setitem__(1, float("nan")), id="histogram-sum-nan"),
        pytest.param(lambda h: h.__setitem__(3, float("inf")), id="histogram-max-infinity"),
        pytest.param(lambda h: h.__setitem__(0, -5), id="histogram-count-negative"),
    ],
)
def test_invalid_histogram_numbers_skip_the_peer_and_never_raise(
    group_dir: Path, viewer: stepwatch.Monitor, poison: Any
) -> None:
    document = _published(group_dir)
    poison(_first_group(document))
    _write(group_dir, document)
    summary = viewer.summary()
    assert summary.total == 0
    assert summary.duration.count == 0
    viewer.health(refresh=True)


@pytest.mark.parametrize(
    "value", [float("nan"), float("inf"), -3.0], ids=["nan", "infinity", "negative"]
)
def test_invalid_counts_skip_the_peer_and_never_make_totals_negative(
    group_dir: Path, viewer: stepwatch.Monitor, value: float
) -> None:
    document = _published(group_dir)
    for slot in document["windows"]["fine"]:
        for count in slot["counts"]:
            count[2] = value
    _write(group_dir, document)
    summary = viewer.summary()
    assert summary.total == 0
    assert all(count >= 0 for count in summary.outcomes.values())
    viewer.health(refresh=True)


@pytest.mark.parametrize("value", [float("nan"), float("inf")], ids=["nan", "infinity"])
def test_invalid_levels_and_publish_times_never_raise(
    group_dir: Path, viewer: stepwatch.Monitor, value: float
) -> None:
    document = _published(group_dir)
    levels = document["windows"]["levels"]
    document["windows"]["levels"] = [[metric, labels, value] for metric, labels, _ in levels]
    _write(group_dir, document, "levels")
    _write(group_dir, {**_published(group_dir), "published_at": value}, "published")
    summary = viewer.summary()
    assert summary.active_executions == 0
    assert summary.queue_depth == 0
    assert _running(viewer) == set()


def test_the_summary_route_answers_200_over_a_poisoned_peer(
    group_dir: Path, viewer: stepwatch.Monitor
) -> None:
    document = _published(group_dir)
    _first_group(document)[6] = 2**40
    _write(group_dir, document)
    server = viewer.serve()
    try:
        with urllib.request.urlopen(f"{server.url}/summary", timeout=30) as response:
            assert response.status == 200
            assert json.load(response)["total"] == 0
    finally:
        server.close()


# ------------------------------------------------------------------------- ids
@pytest.mark.parametrize(
    "bad_id", [42, None, ["a"], "x" * (group_module.MAX_ID_LENGTH + 1)], ids=repr
)
def test_one_record_with_a_bad_id_never_hides_the_peers_other_executions(
    group_dir: Path, viewer: stepwatch.Monitor, bad_id: Any
) -> None:
    document = _published(group_dir, ids=("good-1", "bad", "good-2"))
    fields = document["execution_fields"]
    for record in document["executions"]:
        if record[fields.index("execution_id")] == "bad":
            record[fields.index("execution_id")] = bad_id
    _write(group_dir, document)
    assert _running(viewer) == {"good-1", "good-2"}


def test_long_ids_trim_records_before_the_groups_figures(
    group_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_module, "MAX_FILE_BYTES", 64 * 1024)
    long_ids = tuple(f"{n}-" + "x" * 1000 for n in range(200))  # 200 kB of ids
    document = _published(group_dir, ids=long_ids)
    assert len(json.dumps(document)) <= 64 * 1024
    assert 0 < len(document["executions"]) < 200
    counts = [count for slot in document["windows"]["fine"] for count in slot["counts"]]
    assert counts, "the windows were dropped to make room for ids"


# ----------------------------------------------------------------------- bounds
def test_a_reader_reads_at_most_max_peers_files(
    group_dir: Path, viewer: stepwatch.Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_module, "MAX_PEERS", 4)
    document = _published(group_dir)
    for number in range(10):
        _write(group_dir, {**document, "executions": []}, f"peer-{number}")
    assert viewer.group is not None
    assert len(viewer.group.peers()) == 4


def test_a_reader_holds_at_most_max_read_bytes_of_peer_files(
    group_dir: Path, viewer: stepwatch.Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    document = _published(group_dir)
    size = len(json.dumps(document))
    monkeypatch.setattr(group_module, "MAX_READ_BYTES", 3 * size + size // 2)
    for number in range(10):
        _write(group_dir, document, f"peer-{number}")
    assert viewer.group is not None
    assert len(viewer.group.peers()) == 3
