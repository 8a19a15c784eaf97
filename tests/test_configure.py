"""configure(): exporters from OTEL_* variables, globals, shutdown; each case in a new process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest


def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env=environment,
        check=False,
    )


PROBE = """
import json
from opentelemetry import metrics, trace
import stepwatch
monitor = stepwatch.configure({args})
tp = monitor.tracer_provider
exporters = [type(e).__name__ for e in monitor.exporters]
modules = [type(e).__module__ for e in monitor.exporters]
print(json.dumps({{
    "service": tp.resource.attributes.get("service.name"),
    "team": tp.resource.attributes.get("team"),
    "exporters": exporters,
    "modules": modules,
    "installed": monitor.installed,
    "global_tracer": trace.get_tracer_provider() is tp,
    "global_meter": metrics.get_meter_provider() is monitor.meter_provider,
    "sampler": type(tp.sampler).__name__,
}}))
monitor.shutdown()
"""


def _probe(args: str = "", **env: str) -> dict[str, object]:
    result = _run(PROBE.format(args=args), **env)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def test_no_endpoint_means_in_process_only() -> None:
    probe = _probe('service_name="billing"')
    assert probe["service"] == "billing"
    assert probe["exporters"] == []
    assert probe["installed"] is True
    assert probe["global_tracer"] is True and probe["global_meter"] is True


def test_endpoint_variable_selects_otlp_http_by_default() -> None:
    probe = _probe(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9")
    assert probe["exporters"] == ["OTLPSpanExporter", "OTLPMetricExporter"]
    modules = probe["modules"]
    assert isinstance(modules, list)
    assert all("proto.http" in m for m in modules)


def test_grpc_protocol_variable() -> None:
    probe = _probe(
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_EXPORTER_OTLP_PROTOCOL="grpc"
    )
    modules = probe["modules"]
    assert isinstance(modules, list)
    assert all("proto.grpc" in m for m in modules)


def test_per_signal_protocol_wins() -> None:
    probe = _probe(
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        OTEL_EXPORTER_OTLP_PROTOCOL="grpc",
        OTEL_EXPORTER_OTLP_METRICS_PROTOCOL="http/protobuf",
    )
    modules = probe["modules"]
    assert isinstance(modules, list)
    assert "proto.grpc" in modules[0] and "proto.http" in modules[1]


def test_resource_and_sampler_from_environment() -> None:
    probe = _probe(
        OTEL_SERVICE_NAME="from-env",
        OTEL_RESOURCE_ATTRIBUTES="team=payments",
        OTEL_TRACES_SAMPLER="always_off",
    )
    assert probe["service"] == "from-env"
    assert probe["team"] == "payments"
    assert probe["sampler"] == "StaticSampler"


def test_explicit_service_name_wins_over_environment() -> None:
    assert _probe('service_name="code"', OTEL_SERVICE_NAME="env")["service"] == "code"


def test_console_exporter_prints_spans() -> None:
    result = _run(
        """
        import stepwatch
        monitor = stepwatch.configure(service_name="c", exporter="console")
        with stepwatch.execution("printed", execution_id="p-9"):
            pass
        monitor.shutdown()
        """
    )
    assert result.returncode == 0, result.stderr
    assert '"name": "execution printed"' in result.stdout
    assert '"workflow.execution.id": "p-9"' in result.stdout


def test_given_providers_are_used_as_they_are() -> None:
    result = _run(
        """
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        from opentelemetry import trace
        import stepwatch
        exporter = InMemorySpanExporter()
        tp = TracerProvider()
        tp.add_span_processor(SimpleSpanProcessor(exporter))
        monitor = stepwatch.configure(tracer_provider=tp, exporter="none")
        with stepwatch.execution("given"):
            pass
        monitor.shutdown()
        assert [s.name for s in exporter.get_finished_spans()] == ["execution given"]
        # A provider the caller gave is not made global, nor shut down.
        assert trace.get_tracer_provider() is not tp
        with tp.get_tracer("x").start_as_current_span("still-open"):
            pass
        assert len(exporter.get_finished_spans()) == 2
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_set_global_false_has_no_global_side_effects() -> None:
    probe = _probe("set_global=False")
    assert probe["installed"] is False
    assert probe["global_tracer"] is False


@pytest.mark.parametrize("protocol", ["http/json", "carrier-pigeon"])
def test_unknown_protocol_warns_and_falls_back(protocol: str) -> None:
    result = _run(
        PROBE.format(args=""),
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        OTEL_EXPORTER_OTLP_PROTOCOL=protocol,
    )
    assert result.returncode == 0, result.stderr
    assert "unsupported OTLP protocol" in result.stderr


# ------------------------------------------------------- OTEL_* per signal (#15)
def test_traces_exporter_none_exports_metrics_only() -> None:
    probe = _probe(OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9", OTEL_TRACES_EXPORTER="none")
    assert probe["exporters"] == ["OTLPMetricExporter"]


def test_metrics_exporter_none_and_console_per_signal() -> None:
    probe = _probe(OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none")
    assert probe["exporters"] == ["ConsoleSpanExporter"]


def test_an_explicit_exporter_wins_over_the_variables() -> None:
    probe = _probe('exporter="none"', OTEL_TRACES_EXPORTER="console")
    assert probe["exporters"] == []


def test_an_unknown_exporter_variable_exports_nothing_and_says_so() -> None:
    result = _run(PROBE.format(args=""), OTEL_TRACES_EXPORTER="zipkin-ish")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["exporters"] == []
    assert "OTEL_TRACES_EXPORTER" in result.stderr


def test_console_prints_the_spans() -> None:
    result = _run(
        """
        import stepwatch
        monitor = stepwatch.configure()
        with stepwatch.execution("printed"):
            pass
        monitor.shutdown()
        """,
        OTEL_TRACES_EXPORTER="console",
    )
    assert result.returncode == 0, result.stderr
    assert '"name": "execution printed"' in result.stdout


def test_sdk_disabled_builds_nothing() -> None:
    result = _run(
        """
        import json
        from opentelemetry import trace
        import stepwatch
        monitor = stepwatch.configure()
        with stepwatch.execution("quiet") as ex:
            recording = ex.span.is_recording()
        print(json.dumps({
            "exporters": len(monitor.exporters),
            "recording": recording,
            "sdk_tracer": "sdk" in type(trace.get_tracer_provider()).__module__,
            "in_process": monitor.summary().total,
        }))
        monitor.shutdown()
        """,
        OTEL_SDK_DISABLED="true",
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "exporters": 0,
        "recording": False,
        "sdk_tracer": False,
        "in_process": 1,  # the in-process answers stay: they need no SDK
    }


def test_global_sdk_providers_are_reused_not_built_twice() -> None:
    result = _run(
        """
        import json
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider
        import stepwatch
        tp, mp = TracerProvider(), MeterProvider()
        trace.set_tracer_provider(tp)
        metrics.set_meter_provider(mp)
        monitor = stepwatch.configure()
        print(json.dumps({
            "tracer": monitor.tracer_provider is tp,
            "meter": monitor.meter_provider is mp,
            "exporters": len(monitor.exporters),
        }))
        monitor.shutdown()
        """,
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == {
        "tracer": True,
        "meter": True,
        "exporters": 0,
    }


def test_prometheus_metrics_exporter_serves_stepwatch_metrics() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = _run(
        f"""
        import urllib.request
        import stepwatch
        monitor = stepwatch.configure()
        with stepwatch.execution("scraped"):
            pass
        body = urllib.request.urlopen("http://127.0.0.1:{port}/metrics", timeout=30).read()
        print(body.decode())
        monitor.shutdown()
        """,
        OTEL_METRICS_EXPORTER="prometheus",
        OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
        OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
    )
    assert result.returncode == 0, result.stderr
    assert "workflow_execution_duration" in result.stdout


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _result(result: subprocess.CompletedProcess[str]) -> Any:
    """The probe's JSON line (console exporters print around it)."""
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def test_exporter_variables_take_comma_lists() -> None:
    probe = _probe(
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        OTEL_TRACES_EXPORTER="otlp, console",
        OTEL_METRICS_EXPORTER="otlp,console,otlp",
    )
    assert probe["exporters"] == [
        "OTLPSpanExporter",
        "ConsoleSpanExporter",
        "OTLPMetricExporter",
        "ConsoleMetricExporter",
    ]


def test_an_unknown_entry_in_an_exporter_list_is_skipped_and_the_rest_kept() -> None:
    result = _run(PROBE.format(args=""), OTEL_TRACES_EXPORTER="zipkin-ish,console")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1])["exporters"] == [
        "ConsoleSpanExporter"
    ]
    assert "zipkin-ish" in result.stderr


SCRAPE_AND_EXPORT = """
import json, urllib.request
import stepwatch
monitor = stepwatch.configure()
with stepwatch.execution("scraped"):
    pass
try:
    body = urllib.request.urlopen("http://127.0.0.1:{port}/metrics", timeout=30).read().decode()
except OSError as exc:
    body = "unreachable: " + str(exc)
print("RESULT", json.dumps({{
    "exporters": [type(e).__name__ for e in monitor.exporters],
    "scraped": "workflow_execution_duration" in body,
    "total": monitor.summary().total,
}}))
monitor.shutdown()
"""


def test_otlp_and_prometheus_together() -> None:
    port = _free_port()
    result = _run(
        SCRAPE_AND_EXPORT.format(port=port),
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        OTEL_METRICS_EXPORTER="otlp,prometheus",
        OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
        OTEL_EXPORTER_PROMETHEUS_PORT=str(port),
        OTEL_EXPORTER_OTLP_TIMEOUT="1",
    )
    assert result.returncode == 0, result.stderr
    assert _result(result) == {
        "exporters": ["OTLPSpanExporter", "OTLPMetricExporter"],
        "scraped": True,
        "total": 1,
    }


def _prometheus_cannot_start(port: int, **env: str) -> subprocess.CompletedProcess[str]:
    result = _run(
        SCRAPE_AND_EXPORT.format(port=port),
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="prometheus,console",
        OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
        OTEL_METRIC_EXPORT_INTERVAL="600000",
        **env,
    )
    assert result.returncode == 0, result.stderr
    outcome = _result(result)
    # The other exporters and the Monitor carry on.
    assert outcome["exporters"] == ["ConsoleSpanExporter", "ConsoleMetricExporter"]
    assert outcome["total"] == 1
    return result


def test_a_busy_prometheus_port_warns_and_the_rest_carries_on() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _prometheus_cannot_start(port, OTEL_EXPORTER_PROMETHEUS_PORT=str(port))
    assert "cannot serve Prometheus metrics" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["not-a-port", "70000"])
def test_a_bad_prometheus_port_warns_and_the_rest_carries_on(value: str) -> None:
    result = _prometheus_cannot_start(_free_port(), OTEL_EXPORTER_PROMETHEUS_PORT=value)
    assert f"OTEL_EXPORTER_PROMETHEUS_PORT='{value}' is not a port number" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_prometheus_extra_warns_and_the_rest_carries_on(tmp_path: Path) -> None:
    shim = tmp_path / "prometheus_client"
    shim.mkdir()
    (shim / "__init__.py").write_text("raise ImportError('prometheus_client is not installed')\n")
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    result = _prometheus_cannot_start(
        _free_port(), OTEL_EXPORTER_PROMETHEUS_PORT=str(_free_port()), PYTHONPATH=path
    )
    assert "stepwatch[prometheus]" in result.stderr
    assert "Traceback" not in result.stderr


GROUP_PROBE = """
import json, threading
import stepwatch
outcome = {{}}
try:
    monitor = stepwatch.configure({args})
except Exception as exc:
    outcome["raised"] = f"{{type(exc).__name__}}: {{exc}}"
else:
    outcome["group"] = monitor.group is not None
    with stepwatch.execution("still-recorded"):
        pass
    outcome["total"] = monitor.summary().total
    monitor.shutdown()
outcome["threads"] = sorted(t.name for t in threading.enumerate() if t.name != "MainThread")
print("RESULT", json.dumps(outcome))
"""


def test_an_unusable_multiprocess_dir_variable_warns_and_runs_without_the_group(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = _run(
        GROUP_PROBE.format(args=""),
        STEPWATCH_MULTIPROCESS_DIR=str(blocker / "group"),
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="console",
    )
    assert result.returncode == 0, result.stderr
    assert _result(result) == {
        "group": False,
        "total": 1,
        "threads": [],
    }
    assert "STEPWATCH_MULTIPROCESS_DIR" in result.stderr
    assert "running without a process group" in result.stderr


def test_an_unusable_multiprocess_dir_argument_raises_before_any_exporter_thread_starts(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = _run(
        GROUP_PROBE.format(args=f"multiprocess_dir={str(blocker / 'group')!r}"),
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="console",
    )
    assert result.returncode == 0, result.stderr
    outcome = _result(result)
    assert outcome["threads"] == []  # no exporter thread left running
    assert outcome["raised"].startswith("ValueError: multiprocess_dir")
