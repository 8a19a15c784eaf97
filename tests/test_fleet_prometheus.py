"""The fleet path for real: Prometheus scrapes stepwatch processes and fires the shipped rules."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import clean_environment, free_port, require_binary

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "collector-config" / "prometheus" / "stepwatch-rules.yaml"
DEADLINE = 100.0  # seconds for Prometheus to see what it must see; the test takes ~20


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _wait_until(condition: Callable[[], Any], what: str) -> Any:
    """Poll an external process's API until ``condition`` holds (bounded by DEADLINE)."""
    deadline = time.monotonic() + DEADLINE
    while time.monotonic() < deadline:
        try:
            result = condition()
        except (OSError, ValueError):
            result = None
        if result:
            return result
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}")


class Engine:
    def __init__(self, name: str, failing: int) -> None:
        self.metrics_port = free_port()
        environment = clean_environment()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.engines.fleet_engine",
                name,
                str(failing),
                str(self.metrics_port),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
            cwd=ROOT,
        )
        assert self.process.stdout is not None
        first = self.process.stdout.readline().split()
        assert first[:1] == ["monitor"], first
        self.monitor_url = first[1]

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = _get_json(f"{self.monitor_url}/alerts?active=true")["alerts"]
        return alerts

    def stop(self) -> str:
        stdout, stderr = self.process.communicate(input="", timeout=60)
        assert self.process.returncode == 0, stderr
        return stdout


@pytest.fixture
def engines() -> Iterator[dict[str, Engine]]:
    started = {"bad": Engine("bad", failing=2), "good": Engine("good", failing=0)}
    try:
        yield started
    finally:
        for engine in started.values():
            if engine.process.poll() is None:
                engine.stop()


def test_prometheus_fires_the_shipped_rule_like_the_monitor(
    engines: dict[str, Engine], tmp_path: Path
) -> None:
    binary = require_binary("prometheus")
    port = free_port()
    targets = [f"127.0.0.1:{e.metrics_port}" for e in engines.values()]
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n  - {RULES}\n"
        "scrape_configs:\n  - job_name: stepwatch-engines\n"
        f"    static_configs:\n      - targets: {json.dumps(targets)}\n"
    )
    server = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until(
            lambda: urllib.request.urlopen(f"{base}/-/ready", timeout=5).status == 200,
            "Prometheus ready",
        )

        def firing_in_prometheus() -> list[dict[str, Any]]:
            alerts = _get_json(f"{base}/api/v1/alerts")["data"]["alerts"]
            return [a for a in alerts if a["state"] == "firing"]

        firing = _wait_until(
            lambda: [
                a for a in firing_in_prometheus() if a["labels"]["alertname"] == "HighFailureRate"
            ],
            "HighFailureRate to fire in Prometheus",
        )
        assert {a["labels"]["workflow_definition_name"] for a in firing} == {"bad"}
        assert firing[0]["labels"]["severity"] == "critical"
        assert 0.3 <= float(firing[0]["value"]) <= 0.5  # 40% of executions fail

        # The bad process's own Monitor reports the same alert; the good one nothing.
        own = _wait_until(engines["bad"].alerts, "the bad engine's Monitor to fire")
        assert [(a["rule"], a["labels"]) for a in own] == [("HighFailureRate", {"name": "bad"})]
        assert engines["good"].alerts() == []

        # Nothing fires for the healthy workload in Prometheus either.
        names = {
            (a["labels"]["alertname"], a["labels"].get("workflow_definition_name"))
            for a in firing_in_prometheus()
        }
        assert ("HighFailureRate", "good") not in names
        assert ("HighTimeoutRate", "good") not in names
        assert not any(alert == "ComponentDown" for alert, _ in names)
        # The translation the rules rely on is what the SDK exports.
        series = _get_json(
            f"{base}/api/v1/series?match[]=workflow_execution_duration_seconds_count"
        )["data"]
        assert {s["workflow_definition_name"] for s in series} == {"bad", "good"}
    finally:
        server.terminate()
        server.wait(timeout=30)
    for engine in engines.values():
        assert engine.stop().startswith("ran ")
