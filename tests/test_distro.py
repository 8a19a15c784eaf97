"""Under ``opentelemetry-instrument``: real auto-instrumentation and a real OTLP receiver.

The distro's defaults (OTLP over gRPC to localhost:4317) are used as they
are: the receiver binds 127.0.0.1:4317, and the tests skip when that port is
taken. Every execution span must arrive exactly once, whether the
application calls ``stepwatch.configure()`` or has no stepwatch set-up code
at all (the ``stepwatch`` instrumentor installs the Monitor).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import stepwatch
from stepwatch import configuration
from stepwatch.instrumentation import StepwatchInstrumentor
from tests.otlp_receivers import Received, grpc_receiver

APP = """
import sys
from opentelemetry import trace
import stepwatch

if sys.argv[1] == "configure":
    stepwatch.configure()


@stepwatch.execution("job", execution_id=lambda i: f"job-{i}")
def job(i):
    with stepwatch.step("work"):
        pass


with trace.get_tracer("app").start_as_current_span("app own span"):
    pass
for index in range(3):
    job(index)
print("app done", flush=True)
"""

INSTRUMENT = Path(sys.executable).parent / "opentelemetry-instrument"


@pytest.fixture
def receiver() -> Iterator[Received]:
    try:
        context = grpc_receiver(port=4317)
        endpoint, received = context.__enter__()
    except RuntimeError as exc:  # grpc cannot bind: something else listens there
        pytest.skip(f"127.0.0.1:4317 is taken ({exc})")
    try:
        if not endpoint.endswith(":4317"):
            pytest.skip("127.0.0.1:4317 is taken")
        yield received
    finally:
        context.__exit__(None, None, None)


def _instrumented(tmp_path: Path, mode: str, **env: str) -> subprocess.CompletedProcess[str]:
    app = tmp_path / "app.py"
    app.write_text(APP)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment.update({"OTEL_SERVICE_NAME": "distro-app", "OTEL_METRIC_EXPORT_INTERVAL": "500"})
    environment.update(env)
    result = subprocess.run(
        [str(INSTRUMENT), sys.executable, str(app), mode],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "app done" in result.stdout
    return result


def _names(received: Received) -> list[str]:
    return sorted(span.name for span in received.spans)


@pytest.mark.parametrize("mode", ["configure", "no-stepwatch-code"])
def test_distro_defaults_get_every_execution_span_once(
    tmp_path: Path, receiver: Received, mode: str
) -> None:
    _instrumented(tmp_path, mode)
    assert receiver.wait_for(lambda r: len(r.spans) >= 7, timeout=60)
    names = _names(receiver)
    assert names.count("execution job") == 3
    assert names.count("step work") == 3
    assert names.count("app own span") == 1
    ids = {
        s.attributes["workflow.execution.id"] for s in receiver.spans if s.name == "execution job"
    }
    assert ids == {"job-0", "job-1", "job-2"}
    # One pipeline: every span comes from the distro's providers (one resource).
    assert {s.resource.get("service.name") for s in receiver.spans} == {"distro-app"}


@pytest.mark.parametrize("mode", ["configure", "no-stepwatch-code"])
def test_disabling_the_instrumentor_turns_stepwatch_off(
    tmp_path: Path, receiver: Received, mode: str
) -> None:
    _instrumented(tmp_path, mode, OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="stepwatch")
    assert receiver.wait_for(lambda r: "app own span" in r.span_names(), timeout=60)
    assert _names(receiver) == ["app own span"]
    assert not any(m.name.startswith("workflow.") for m in receiver.metrics)


def test_traces_exporter_none_exports_metrics_only(tmp_path: Path, receiver: Received) -> None:
    _instrumented(tmp_path, "configure", OTEL_TRACES_EXPORTER="none")
    assert receiver.wait_for(
        lambda r: any(m.name == "workflow.execution.duration" for m in r.metrics), timeout=60
    )
    assert receiver.spans == []


def test_console_prints_the_spans(tmp_path: Path) -> None:
    result = _instrumented(
        tmp_path, "configure", OTEL_TRACES_EXPORTER="console", OTEL_METRICS_EXPORTER="none"
    )
    assert result.stdout.count('"name": "execution job"') == 3


def test_instrument_and_uninstrument_in_code_are_idempotent() -> None:
    instrumentor = StepwatchInstrumentor()
    instrumentor.instrument(exporter="none", set_global=False)
    instrumentor.instrument(exporter="none", set_global=False)
    monitor = configuration.adopted()
    assert monitor is not None and not monitor.closed
    assert stepwatch.configure(exporter="none", set_global=False) is monitor
    with pytest.raises(TypeError, match="rules"):  # bad arguments still refused
        stepwatch.configure(rules="strict", set_global=False)  # type: ignore[arg-type]
    instrumentor.uninstrument()
    instrumentor.uninstrument()
    closed: bool = monitor.closed  # re-read: uninstrument() shut it down
    assert closed and configuration.adopted() is None
    later = stepwatch.configure(exporter="none", set_global=False)
    assert later is not monitor
    later.shutdown()


DEAD_ENDPOINT_APP = """
import json
from opentelemetry import metrics, trace
import stepwatch

monitor = stepwatch.configure()
with stepwatch.execution("job"):
    pass
trace.get_tracer_provider().force_flush()
metrics.get_meter_provider().force_flush()
health = monitor.health(refresh=True)
print("RESULT", json.dumps({
    "status": health.status.value,
    "rules": sorted({alert.rule for alert in health.alerts}),
    "failing": sorted(monitor.export_status.failing_signals()),
}), flush=True)
"""


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_the_distros_export_failures_reach_health(tmp_path: Path, protocol: str) -> None:
    with socket.socket() as probe:  # a port nothing listens on: every export is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = tmp_path / "app.py"
    app.write_text(DEAD_ENDPOINT_APP)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment.update(
        {
            "OTEL_SERVICE_NAME": "distro-app",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
            "OTEL_LOGS_EXPORTER": "none",
        }
    )
    result = subprocess.run(
        [str(INSTRUMENT), sys.executable, str(app)],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    line = next(line for line in result.stdout.splitlines() if line.startswith("RESULT "))
    assert json.loads(line.removeprefix("RESULT ")) == {
        "status": "degraded",
        "rules": ["TelemetryExportFailing"],
        "failing": ["metrics", "traces"],
    }
