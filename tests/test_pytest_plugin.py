"""The pytest plugin: a user's test file gets ``stepwatch_capture`` with no import of the plugin."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import stepwatch

SOURCES = str(Path(stepwatch.__file__).resolve().parents[1])


def _pytest_in(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in ``directory`` (a user's project), these stepwatch sources first on the path."""
    path = os.pathsep.join(p for p in (SOURCES, os.environ.get("PYTHONPATH", "")) if p)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=directory,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


USER_TESTS = """
import stepwatch


@stepwatch.execution("user-job", execution_id="u-1", total_steps=1)
def job():
    with stepwatch.step("only"):
        pass


def test_a_user_suite_gets_the_fixture(stepwatch_capture):
    job()
    progress = stepwatch_capture.monitor.progress("u-1")
    assert progress.completed_steps == 1 and progress.state == "success"
    assert stepwatch_capture.span("execution user-job").status.is_ok


def test_each_test_gets_its_own(stepwatch_capture):
    assert stepwatch_capture.monitor.progress("u-1") is None
    assert stepwatch_capture.spans() == []
"""


def test_user_suite_uses_the_fixture_without_importing_the_plugin(tmp_path: Path) -> None:
    (tmp_path / "test_user.py").write_text(USER_TESTS)
    result = _pytest_in(tmp_path, "test_user.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


LIGHT_SESSION = """
import sys


def _loaded():
    return sorted(
        name for name in sys.modules
        if name.startswith(("opentelemetry.sdk", "opentelemetry.exporter", "stepwatch"))
    )


def test_a_session_that_never_uses_the_fixture():
    print("LOADED", ",".join(_loaded()))


def test_the_fixture_loads_what_it_needs_when_used(stepwatch_capture):
    assert "opentelemetry.sdk.trace" in sys.modules
"""


def test_the_plugin_loads_nothing_heavy_until_its_fixture_is_used(tmp_path: Path) -> None:
    (tmp_path / "test_light.py").write_text(LIGHT_SESSION)
    result = _pytest_in(tmp_path, "-s", "test_light.py")
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(line for line in result.stdout.splitlines() if "LOADED" in line)
    loaded = set(line.split("LOADED ", 1)[1].split(","))
    # The plugin itself is loaded (through its entry point), and nothing beyond it.
    assert loaded == {"stepwatch", "stepwatch.pytest_plugin", "stepwatch.version"}
