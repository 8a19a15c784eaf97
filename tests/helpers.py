"""Small helpers shared by the tests that run real processes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import stepwatch
from stepwatch.testing import FakeClock

ROOT = Path(__file__).resolve().parent.parent


def clean_environment(**extra: str) -> dict[str, str]:
    """This process's environment without any ``OTEL_*`` variable, plus ``extra``.

    ``PYTHONPATH`` points at the repository so ``python -m tests.engines...`` works,
    and at its ``src`` first, so the processes run this checkout's stepwatch
    (not another one the virtualenv may have installed).
    """
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment["PYTHONPATH"] = os.pathsep.join((str(ROOT / "src"), str(ROOT)))
    environment.update(extra)
    return environment


def free_port() -> int:
    """A loopback port nothing listens on (closed again before returning)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def require_binary(name: str) -> str:
    """The path of a Debian ``prometheus`` package binary; fail in CI, skip elsewhere."""
    found = shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is missing: .ci/run installs Debian's prometheus package")
        pytest.skip(f"{name} not installed (apt-get install prometheus)")
    return found


def run_engine(module: str, *args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m <module> [args]`` to completion in a clean environment plus extras."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_environment(**environment),
        cwd=ROOT,
        check=False,
    )


def run_ended_history(clock: FakeClock) -> None:
    """Four ended runs of 10 s, oldest first: ``nightly`` n-0, n-1 (fails), n-2; ``hourly`` h-0."""
    for index in range(3):
        try:
            with stepwatch.execution("nightly", execution_id=f"n-{index}"):
                clock.advance(10)
                if index == 1:
                    raise RuntimeError("boom")
        except RuntimeError:
            pass
    with stepwatch.execution("hourly", execution_id="h-0"):
        clock.advance(10)
