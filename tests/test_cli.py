"""The stepwatch command, run as a real subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

import stepwatch
from stepwatch.http import ServerHandle
from stepwatch.semconv import RULE_NAMES
from stepwatch.testing import FakeClock, Harness, capture


def stepwatch_cli(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "stepwatch", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=environment,
        check=False,
    )


@pytest.fixture
def served() -> Iterator[tuple[Harness, ServerHandle]]:
    with capture() as sw:
        handle = sw.monitor.serve(token="tok")
        try:
            yield sw, handle
        finally:
            handle.close()


def test_health_pass(served: tuple[Harness, ServerHandle]) -> None:
    result = stepwatch_cli("health", served[1].url, "--token", "tok")
    assert (result.returncode, result.stdout.splitlines()[0]) == (0, "pass"), result.stderr


def test_health_warn_and_fail(served: tuple[Harness, ServerHandle]) -> None:
    sw, handle = served
    sw.monitor.add_check("cache", lambda: False, critical=False)
    sw.monitor.health(refresh=True)
    assert stepwatch_cli("health", handle.url, "--token", "tok").returncode == 1
    sw.monitor.add_check("db", lambda: False, critical=True)
    sw.monitor.health(refresh=True)
    result = stepwatch_cli("health", handle.url, "--token", "tok")
    assert result.returncode == 2
    assert result.stdout.splitlines()[0] == "fail"
    assert "db:status" in result.stdout


def test_health_unreachable_and_unauthorised(served: tuple[Harness, ServerHandle]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = stepwatch_cli("health", f"http://127.0.0.1:{port}", "--timeout", "5")
    assert result.returncode == 3
    assert result.stdout.startswith("unreachable")
    unauthorised = stepwatch_cli("health", served[1].url, "--token", "wrong")
    assert unauthorised.returncode == 3
    assert unauthorised.stdout.startswith("unauthorised")


def test_rules_yaml_has_every_rule_name() -> None:
    result = stepwatch_cli("rules")
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(result.stdout)
    names = {rule["alert"] for group in document["groups"] for rule in group["rules"]}
    assert names == set(RULE_NAMES)


def test_rules_from_config(tmp_path: Path) -> None:
    config = tmp_path / "rules.toml"
    config.write_text("[rules]\nfailure_rate = 0.05\nmin_executions = 3\n")
    result = stepwatch_cli("rules", "--config", str(config))
    assert result.returncode == 0, result.stderr
    document = yaml.safe_load(result.stdout)
    failure = next(r for r in document["groups"][0]["rules"] if r["alert"] == "HighFailureRate")
    assert ") > 0.05" in failure["expr"]
    assert ">= 3" in failure["expr"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"failure_rate": 3}')
    rejected = stepwatch_cli("rules", "--config", str(bad))
    assert rejected.returncode == 2
    assert "failure_rate" in rejected.stderr


def test_demo_runs_and_summarises() -> None:
    result = stepwatch_cli("demo", "--executions", "6", "--concurrency", "3", "--speed", "0.1")
    assert result.returncode == 0, result.stderr
    assert "stepwatch summary" in result.stdout
    assert "executions" in result.stdout
    assert "health:" in result.stdout
    assert result.stdout.count("order-0") >= 6  # one line per finished execution (not a tty)


def test_top_once_renders_active_execution(served: tuple[Harness, ServerHandle]) -> None:
    _, handle = served
    stepwatch.enqueue("nightly-etl", execution_id="later-1", countdown=600.0)
    stepwatch.enqueue("nightly-etl", execution_id="ready-1")
    with stepwatch.execution("nightly-etl", execution_id="etl-7", total_steps=4) as ex:
        for name in ("a", "b"):
            with ex.step(name):
                pass
        with ex.step("load"):
            result = stepwatch_cli("top", handle.url, "--token", "tok", "--once")
    assert result.returncode == 0, result.stderr
    assert "etl-7" in result.stdout
    assert "nightly-etl" in result.stdout
    assert "50%" in result.stdout
    assert "load" in result.stdout
    assert "execution.started" in result.stdout, result.stdout
    # Ready and scheduled work apart.
    assert "queued 1   scheduled 1   running 1" in result.stdout, result.stdout


def test_missing_rich_gives_a_clear_message(tmp_path: Path) -> None:
    shim = tmp_path / "rich"
    shim.mkdir()
    (shim / "__init__.py").write_text("raise ImportError('rich is not installed')\n")
    result = stepwatch_cli("demo", env={"PYTHONPATH": str(tmp_path)})
    assert result.returncode == 2
    assert "pip install 'stepwatch[cli]'" in result.stderr


def test_version_and_usage() -> None:
    assert stepwatch_cli("--version").stdout.strip() == f"stepwatch {stepwatch.__version__}"
    assert stepwatch_cli().returncode == 2


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "stepwatch"
    result = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0
    assert textwrap.dedent(result.stdout).startswith("stepwatch ")


def test_top_dir_reads_a_process_group_with_no_server(tmp_path: Path) -> None:
    group = tmp_path / "group"
    # Group members share the machine's clock: a fake one frozen at "now".
    clock = FakeClock(time.time())
    with (
        capture(clock=clock, multiprocess_dir=group, publish_interval=30.0) as sw,
        stepwatch.execution("pool-job", execution_id="[/bold]odd-id", total_steps=2) as ex,
    ):
        with ex.step("a"):
            pass
        with ex.step("b"):
            assert sw.monitor.group is not None
            assert sw.monitor.group.publish()
            result = stepwatch_cli("top", "--dir", str(group), "--once", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    assert "process group" in result.stdout
    assert "[/bold]odd-id" in result.stdout  # escaped: an id is data, never markup
    assert "pool-job" in result.stdout
    assert "50%" in result.stdout


def test_top_needs_a_url_or_a_directory(tmp_path: Path) -> None:
    assert stepwatch_cli("top", "--once").returncode == 2
    missing = stepwatch_cli("top", "--dir", str(tmp_path / "missing"), "--once")
    assert missing.returncode == 3


def test_top_treats_ids_and_names_as_text(served: tuple[Harness, ServerHandle]) -> None:
    _, handle = served
    with stepwatch.execution("[link=https://example.invalid]n", execution_id="[/bold]id"):
        result = stepwatch_cli(
            "top", handle.url, "--token", "tok", "--once", env={"COLUMNS": "200"}
        )
    assert result.returncode == 0, result.stderr  # 0.1 crashed on the closing tag
    assert "[/bold]id" in result.stdout
    assert "[link=https://example.invalid]n" in result.stdout
