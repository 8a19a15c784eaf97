"""The pytest plugin: a user's test file gets ``stepwatch_capture`` with no import of the plugin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
