"""The stepwatch command, run as a real subprocess."""

from __future__ import annotations

import http.server
import json
import os
import pty
import re
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

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
    assert "Queued: 1  Scheduled: 1" in result.stdout, result.stdout


def test_missing_rich_gives_a_clear_message(tmp_path: Path) -> None:
    shim = tmp_path / "rich"
    shim.mkdir()
    (shim / "__init__.py").write_text("raise ImportError('rich is not installed')\n")
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    result = stepwatch_cli("demo", env={"PYTHONPATH": path})
    assert result.returncode == 2
    assert _one_line_no_traceback(result).endswith("pip install 'stepwatch[cli]'")


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


# ------------------------------------------------------------ hostile servers and user errors
ENDLESS = b"endless"


class _Hostile(http.server.BaseHTTPRequestHandler):
    """Answers each path with what the test planted: a proxy's page, garbage, an endless body."""

    answers: ClassVar[dict[str, tuple[int, str, bytes]]] = {}

    def do_GET(self) -> None:
        path = self.path.split("?")[0]
        status, content_type, body = self.answers.get(path, (404, "text/plain", b"no"))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        if body is ENDLESS:
            self.end_headers()
            chunk = b"[" * 65536
            try:
                while True:  # until the client hangs up
                    self.wfile.write(chunk)
            except OSError:
                return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def hostile() -> Iterator[tuple[str, dict[str, tuple[int, str, bytes]]]]:
    answers: dict[str, tuple[int, str, bytes]] = {}
    handler = type("Handler", (_Hostile,), {"answers": answers})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", answers
    finally:
        server.shutdown()
        server.server_close()


PROXY_PAGE = (502, "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>")
GARBAGE = {
    "proxy-502-page": PROXY_PAGE,
    "json-list": (200, "application/json", b'[1, 2, "pass"]'),
    "wrong-types": (200, "application/json", b'{"status": 5, "checks": "none"}'),
    "not-utf8": (200, "application/json", b"\xff\xfe{"),
    "endless-body": (200, "application/json", ENDLESS),
}


def _one_line_no_traceback(result: subprocess.CompletedProcess[str]) -> str:
    output = (result.stdout + result.stderr).strip()
    assert "Traceback" not in output
    assert len(output.splitlines()) == 1, output
    return output


@pytest.mark.parametrize("answer", sorted(GARBAGE))
def test_health_exits_3_in_one_line_on_any_garbage_answer(
    hostile: tuple[str, dict[str, tuple[int, str, bytes]]], answer: str
) -> None:
    url, answers = hostile
    answers["/healthz"] = GARBAGE[answer]
    result = stepwatch_cli("health", url, "--timeout", "30")
    assert result.returncode == 3, result.stdout + result.stderr
    assert _one_line_no_traceback(result).startswith("unexpected answer from")


@pytest.mark.parametrize("answer", sorted(GARBAGE))
def test_top_exits_3_in_one_line_on_any_garbage_answer(
    hostile: tuple[str, dict[str, tuple[int, str, bytes]]], answer: str
) -> None:
    url, answers = hostile
    answers["/healthz"] = (200, "application/health+json", b'{"status": "pass"}')
    for route in ("/healthz", "/executions", "/alerts", "/events"):
        answers[route] = GARBAGE[answer]
        result = stepwatch_cli("top", url, "--once")
        assert result.returncode == 3, (route, result.stdout + result.stderr)
        assert _one_line_no_traceback(result).startswith("unexpected answer from")
        answers[route] = (200, "application/json", b'{"%s": []}' % route[1:].encode())
        answers["/healthz"] = (200, "application/health+json", b'{"status": "pass"}')


def _serve_executions(
    answers: dict[str, tuple[int, str, bytes]], executions: list[dict[str, object]]
) -> None:
    answers["/healthz"] = (200, "application/health+json", b'{"status": "pass"}')
    answers["/executions"] = (
        200,
        "application/json",
        json.dumps({"executions": executions}).encode(),
    )
    answers["/alerts"] = (200, "application/json", b'{"alerts": [1, {"rule": 3}]}')
    answers["/events"] = (200, "application/json", b'{"events": [{"seq": "x"}, null]}')


def test_top_shows_fields_of_the_wrong_type_as_unknown(
    hostile: tuple[str, dict[str, tuple[int, str, bytes]]],
) -> None:
    url, answers = hostile
    _serve_executions(
        answers,
        [
            {"execution_id": 5, "name": None, "percent": "lots", "eta_seconds": "soon"},
            {"execution_id": "ok-1", "name": "n", "percent": 1e400, "eta_seconds": [1]},
            "not an execution",  # type: ignore[list-item]
        ],
    )
    result = stepwatch_cli("top", url, "--once", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok-1" in result.stdout
    assert "Traceback" not in result.stderr


def test_top_never_passes_terminal_control_sequences(
    hostile: tuple[str, dict[str, tuple[int, str, bytes]]],
) -> None:
    url, answers = hostile
    _serve_executions(
        answers,
        [
            {
                "execution_id": "\x1b]0;owned\x07id-1",
                "name": "\x1b[2J\x1b[Hwipe",
                "state": "executing\x9b31m",
                "current_step": "step\u202etxt.exe",
            }
        ],
    )
    answers["/events"] = (
        200,
        "application/json",
        json.dumps(
            {"events": [{"seq": 1, "type": "step.started", "execution_id": "\x1bc-reset"}]}
        ).encode(),
    )
    result = stepwatch_cli("top", url, "--once", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    for control in ("\x1b", "\x07", "\x9b", "\u202e"):
        assert control not in result.stdout
    assert "?]0;owned?id-1" in result.stdout  # shown as text
    assert "?[2J?[Hwipe" in result.stdout
    assert "?c-reset" in result.stdout


def test_top_shows_an_unknown_or_sub_second_eta_never_as_0s(
    hostile: tuple[str, dict[str, tuple[int, str, bytes]]],
) -> None:
    url, answers = hostile
    _serve_executions(
        answers,
        [
            {"execution_id": "unknown-eta", "eta_seconds": None},
            {"execution_id": "zero-eta", "eta_seconds": 0.0},
            {"execution_id": "short-eta", "eta_seconds": 0.04},
            {"execution_id": "sub-second-eta", "eta_seconds": 0.44},
            {"execution_id": "long-eta", "eta_seconds": 125.0},
        ],
    )
    result = stepwatch_cli("top", url, "--once", env={"COLUMNS": "200"})
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {
        line.split()[0]: line.split()[-1] for line in result.stdout.splitlines() if "-eta" in line
    }
    assert rows == {
        "unknown-eta": "?",
        "zero-eta": "<0.1s",
        "short-eta": "<0.1s",
        "sub-second-eta": "0.4s",
        "long-eta": "2m05s",
    }


def test_the_token_comes_from_the_environment_too(served: tuple[Harness, ServerHandle]) -> None:
    _, handle = served
    result = stepwatch_cli("health", handle.url, env={"STEPWATCH_TOKEN": "tok"})
    assert (result.returncode, result.stdout.splitlines()[0]) == (0, "pass"), result.stderr
    top = stepwatch_cli("top", handle.url, "--once", env={"STEPWATCH_TOKEN": "tok"})
    assert top.returncode == 0, top.stdout + top.stderr
    wrong = stepwatch_cli("health", handle.url, env={"STEPWATCH_TOKEN": "nope"})
    assert wrong.returncode == 3
    given = stepwatch_cli("health", handle.url, "--token", "tok", env={"STEPWATCH_TOKEN": "x"})
    assert given.returncode == 0  # the option wins over the variable


def test_a_busy_serve_port_is_one_line_and_exit_2() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = stepwatch_cli("demo", "--executions", "1", "--serve", str(port))
    assert result.returncode == 2
    line = _one_line_no_traceback(result)
    assert line.startswith(f"stepwatch demo: cannot serve on port {port}")


def test_a_missing_rules_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = stepwatch_cli("rules", "--config", str(tmp_path / "missing.toml"))
    assert result.returncode == 2
    line = _one_line_no_traceback(result)
    assert line.startswith("stepwatch rules: cannot read") and "missing.toml" in line
    listed = tmp_path / "list.json"
    listed.write_text("[1, 2]")
    result = stepwatch_cli("rules", "--config", str(listed))
    assert result.returncode == 2
    assert _one_line_no_traceback(result).startswith("stepwatch rules:")


def test_the_demos_ended_counter_reaches_the_total_on_a_terminal() -> None:
    # 1,500 executions record more events than the history keeps (10,000).
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment.update({"COLUMNS": "120", "LINES": "50", "TERM": "xterm"})
    leader, follower = pty.openpty()
    with subprocess.Popen(
        [
            sys.executable,
            *("-m", "stepwatch", "demo", "--executions", "1500"),
            *("--concurrency", "100", "--speed", "0.05"),
        ],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=environment,
    ) as process:
        os.close(follower)
        output = bytearray()
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            output.extend(chunk)
        assert process.wait(timeout=120) == 0, output.decode(errors="replace")[-2000:]
    os.close(leader)
    text = re.sub(rb"\x1b\[[0-9;?]*[A-Za-z]", b"", bytes(output))  # colours and cursor moves
    assert b"1500/1500 executions ended" in text
