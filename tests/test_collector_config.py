"""The shipped Collector configs, Prometheus rules and Grafana dashboard."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from stepwatch import Rules
from stepwatch.prometheus import COLLECTOR_JOB, ENGINES_JOB, rules_yaml
from stepwatch.semconv import RULE_NAMES
from tests.helpers import require_binary

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "collector-config"
RULES_FILE = CONFIG / "prometheus" / "stepwatch-rules.yaml"
RULES_TEST = CONFIG / "prometheus" / "stepwatch-rules.test.yaml"

# Component types shipped by otelcol-contrib (v0.120.0): the ones a stepwatch
# deployment plausibly uses. A typo or a removed component fails the check.
KNOWN = {
    "receivers": {"otlp", "prometheus", "hostmetrics", "filelog"},
    "processors": {
        "memory_limiter",
        "batch",
        "resource",
        "resourcedetection",
        "attributes",
        "tail_sampling",
        "probabilistic_sampler",
        "filter",
        "transform",
        "k8sattributes",
    },
    "exporters": {
        "otlp",
        "otlphttp",
        "loadbalancing",
        "prometheus",
        "prometheusremotewrite",
        "debug",
    },
    "extensions": {
        "health_check",
        "pprof",
        "zpages",
        "file_storage",
        "basicauth",
        "bearertokenauth",
    },
}
PULL_EXPORTERS = {"prometheus", "debug"}  # served or local: no sending queue to configure


def _type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def _load(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((CONFIG / name).read_text())
    return document


@pytest.mark.parametrize("name", ["agent.yaml", "gateway.yaml"])
def test_collector_config_structure(name: str) -> None:
    config = _load(name)
    service = config["service"]
    used: dict[str, set[str]] = {kind: set() for kind in ("receivers", "processors", "exporters")}
    for pipeline_name, pipeline in service["pipelines"].items():
        assert pipeline.get("receivers"), pipeline_name
        assert pipeline.get("exporters"), pipeline_name
        processors = pipeline.get("processors", [])
        assert processors[:1] == ["memory_limiter"], (
            f"{pipeline_name}: memory_limiter must be first"
        )
        if "batch" in processors:
            assert processors.index("batch") > processors.index("memory_limiter")
        for kind, seen in used.items():
            for component in pipeline.get(kind, []):
                assert component in (config.get(kind) or {}), (
                    f"{pipeline_name} uses undefined {component}"
                )
                seen.add(component)
    for kind, names in used.items():
        defined = set(config.get(kind) or {})
        assert defined == names, f"{kind} defined but unused: {defined - names}"
    extensions = set(config.get("extensions") or {})
    assert set(service.get("extensions", [])) == extensions
    for kind in ("receivers", "processors", "exporters", "extensions"):
        for component in config.get(kind) or {}:
            assert _type(component) in KNOWN[kind], f"unknown {kind[:-1]} type {component}"
    for exporter, settings in (config.get("exporters") or {}).items():
        if _type(exporter) in PULL_EXPORTERS:
            continue
        # The queue at the exporter's own level, never inside loadbalancing's
        # protocol.otlp (upstream documents that as breaking exports).
        assert settings.get("sending_queue", {}).get("enabled") is True, exporter
        assert settings.get("retry_on_failure", {}).get("enabled") is True, exporter
        inner = settings.get("protocol", {}).get("otlp", {})
        assert "sending_queue" not in inner and "retry_on_failure" not in inner, exporter


def test_agent_routes_traces_by_trace_id_through_a_persistent_queue() -> None:
    agent = _load("agent.yaml")
    balancing = agent["exporters"]["loadbalancing"]
    assert balancing["routing_key"] == "traceID"
    storage = balancing["sending_queue"]["storage"]
    assert storage in agent["extensions"]
    assert _type(storage) == "file_storage"
    assert agent["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"].startswith("127.0.0.1:")
    assert agent["service"]["pipelines"]["traces"]["exporters"] == ["loadbalancing"]


def test_gateway_keeps_failed_timed_out_and_slow_traces() -> None:
    gateway = _load("gateway.yaml")
    policies = {p["type"]: p for p in gateway["processors"]["tail_sampling"]["policies"]}
    assert set(policies["string_attribute"]["string_attribute"]["values"]) >= {"failure", "timeout"}
    assert policies["string_attribute"]["string_attribute"]["key"] == "workflow.execution.outcome"
    assert policies["latency"]["latency"]["threshold_ms"] > 0
    assert 0 < policies["probabilistic"]["probabilistic"]["sampling_percentage"] < 100
    assert {"health_check", "pprof", "zpages"} <= set(gateway["extensions"])
    assert gateway["service"]["pipelines"]["metrics"]["exporters"] == ["prometheus"]


def test_committed_rules_are_current() -> None:
    assert RULES_FILE.read_text() == rules_yaml(Rules()), (
        "collector-config/prometheus/stepwatch-rules.yaml is stale: "
        "run `stepwatch rules > collector-config/prometheus/stepwatch-rules.yaml`"
    )


def test_rules_carry_every_rule_name_and_severity() -> None:
    document = yaml.safe_load(RULES_FILE.read_text())
    rules = document["groups"][0]["rules"]
    assert {r["alert"] for r in rules} == set(RULE_NAMES)
    severities = {(r["alert"], r["labels"]["severity"]) for r in rules}
    assert ("HighFailureRate", "critical") in severities
    assert ("HighTimeoutRate", "warning") in severities
    assert ("SLABurnRate", "critical") in severities
    assert ("SLABurnRate", "warning") in severities


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_binary("promtool"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_promtool_check_rules() -> None:
    result = _promtool("check", "rules", str(RULES_FILE))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 9 rules found" in result.stdout


def test_promtool_unit_tests_pass() -> None:
    result = _promtool("test", "rules", str(RULES_TEST))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "mutation",
    [
        Rules(failure_rate=0.5),
        Rules(timeout_rate=0.3),
        Rules(queue_depth=1000),
        Rules(min_executions=500),
    ],
)
def test_promtool_unit_tests_catch_wrong_thresholds(tmp_path: Path, mutation: Rules) -> None:
    # The unit tests are honest: with other thresholds some expectation fails.
    (tmp_path / "stepwatch-rules.yaml").write_text(rules_yaml(mutation))
    (tmp_path / "stepwatch-rules.test.yaml").write_text(RULES_TEST.read_text())
    result = _promtool("test", "rules", str(tmp_path / "stepwatch-rules.test.yaml"))
    assert result.returncode != 0, result.stdout


METRIC_NAMES = {
    "workflow_execution_duration_seconds_count",
    "workflow_execution_duration_seconds_bucket",
    "workflow_task_duration_seconds_bucket",
    "workflow_execution_active",
    "workflow_execution_queue_depth",
    "workflow_execution_sla_violations_total",
    "ALERTS",
}


def test_dashboard_panels_query_stepwatch_metrics() -> None:
    dashboard = json.loads((CONFIG / "grafana" / "stepwatch.json").read_text())
    titles = [panel["title"] for panel in dashboard["panels"]]
    for expected in (
        "Executions per second by outcome",
        "Execution duration p50 / p95 / p99 by name",
        "Queue depth",
        "Queue wait p50 / p95",
        "Active executions",
        "SLA violations",
        "Step duration p95 by step type",
        "Firing alerts",
    ):
        assert expected in titles
    referenced: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            # Drop grouping clauses and label matchers: what is left are metric names.
            expr = re.sub(r"\bby \([^)]*\)|\{[^}]*\}", "", target["expr"])
            referenced |= set(re.findall(r"\b(workflow_[a-z_]+|ALERTS)\b", expr))
    assert referenced == METRIC_NAMES
    assert len({panel["id"] for panel in dashboard["panels"]}) == len(dashboard["panels"])


def _panel_expression(title: str) -> str:
    dashboard = json.loads((CONFIG / "grafana" / "stepwatch.json").read_text())
    (panel,) = [panel for panel in dashboard["panels"] if panel["title"] == title]
    expression: str = panel["targets"][0]["expr"]
    return expression


@pytest.mark.parametrize(
    ("title", "series"),
    [
        (
            "Queue depth",
            [
                ('workflow_execution_active{workflow_execution_state="pending",i="w"}', "-25x5"),
                ('workflow_execution_active{workflow_execution_state="pending",i="p"}', "20x5"),
            ],
        ),
        (
            "Active executions",
            [
                (
                    'workflow_execution_active{workflow_execution_state="executing",'
                    'workflow_definition_name="a"}',
                    "-2x5",
                )
            ],
        ),
    ],
)
def test_the_dashboard_never_shows_a_negative_count(
    tmp_path: Path, title: str, series: list[tuple[str, str]]
) -> None:
    # Export skew: a worker's -1s reach the backend before the producer's +1s.
    expression = _panel_expression(title).replace('=~"$name"', '=~".*"').replace("$name", ".*")
    labels = '{workflow_definition_name="a"}' if "by (" in expression else "{}"
    test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [{"series": name, "values": values} for name, values in series],
                "promql_expr_test": [
                    {
                        "expr": expression,
                        "eval_time": "2m",
                        "exp_samples": [{"labels": labels, "value": 0}],
                    }
                ],
            }
        ],
    }
    (tmp_path / "dashboard.test.yaml").write_text(yaml.safe_dump(test))
    result = _promtool("test", "rules", str(tmp_path / "dashboard.test.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_gateway_expires_a_dead_instances_series() -> None:
    # A killed engine's last active count stops counting once its series expire.
    exporter = _load("gateway.yaml")["exporters"]["prometheus"]
    assert exporter["metric_expiration"] == "5m"


def test_agent_transport_security_matches_the_gateway_receiver() -> None:
    agent, gateway = _load("agent.yaml"), _load("gateway.yaml")
    receiver_tls = any(
        "tls" in protocol for protocol in gateway["receivers"]["otlp"]["protocols"].values()
    )
    exporters = agent["exporters"]
    for settings in (exporters["loadbalancing"]["protocol"]["otlp"], exporters["otlp/gateway"]):
        # Plaintext exporters to a plaintext receiver, spelled out: an unset
        # insecure means TLS, which a receiver without TLS refuses.
        assert settings["tls"]["insecure"] is (not receiver_tls)


def test_tail_sampling_keeps_decisions_for_late_spans() -> None:
    sampling = _load("gateway.yaml")["processors"]["tail_sampling"]
    cache = sampling["decision_cache"]
    assert cache["sampled_cache_size"] > 0 and cache["non_sampled_cache_size"] > 0
    wait = int(str(sampling["decision_wait"]).removesuffix("s"))
    assert wait >= 60  # explained in the file: long executions, late spans
    assert "decision_wait" in (CONFIG / "README.md").read_text()


@pytest.mark.parametrize("name", ["agent.yaml", "gateway.yaml"])
def test_collectors_expose_their_own_metrics(name: str) -> None:
    readers = _load(name)["service"]["telemetry"]["metrics"]["readers"]
    ports = [reader["pull"]["exporter"]["prometheus"]["port"] for reader in readers]
    assert ports == [8888]


def test_prometheus_scrapes_the_collectors_and_the_engines() -> None:
    config = yaml.safe_load((CONFIG / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert {COLLECTOR_JOB, ENGINES_JOB} <= set(jobs)
    ports = [
        int(t.rsplit(":", 1)[1])
        for c in jobs[COLLECTOR_JOB].get("static_configs", [])
        for t in c["targets"]
    ]
    ports += [int(d["port"]) for d in jobs[COLLECTOR_JOB].get("dns_sd_configs", [])]
    assert ports and set(ports) == {8888}
    assert config["rule_files"] == ["stepwatch-rules.yaml"]
    rules = {
        r["alert"]: r["expr"] for r in yaml.safe_load(RULES_FILE.read_text())["groups"][0]["rules"]
    }
    assert f'job="{ENGINES_JOB}"' in rules["ComponentDown"]
    assert "otelcol_exporter_send_failed_spans_total" in rules["TelemetryExportFailing"]
    assert "vector(0)" not in rules["TelemetryExportFailing"]


def test_promtool_check_config() -> None:
    promtool = require_binary("promtool")
    result = subprocess.run(
        [promtool, "check", "config", "prometheus.yml"],
        cwd=CONFIG / "prometheus",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# ------------------------------------------------------------- two or more gateways
def _default_host(value: str) -> str:
    """The default of an ``${env:NAME:-default}`` reference (or the value), without a port."""
    match = re.fullmatch(r"\$\{env:\w+:-([^}]+)\}(?::\d+)?", value)
    host = match.group(1) if match else value
    return host.rsplit(":", 1)[0] if re.search(r":\d+$", host) else host


def _gateway_service() -> str:
    agent = _load("agent.yaml")
    return _default_host(agent["exporters"]["loadbalancing"]["resolver"]["dns"]["hostname"])


def test_agents_reach_every_gateway_through_a_headless_service() -> None:
    agent = _load("agent.yaml")
    service = _gateway_service()
    assert "headless" in service  # one A record per gateway pod, not one virtual IP
    assert _default_host(agent["exporters"]["otlp/gateway"]["endpoint"]) == service
    assert (
        "STEPWATCH_GATEWAY_HOST"
        in agent["exporters"]["loadbalancing"]["resolver"]["dns"]["hostname"]
    )


def test_prometheus_scrapes_each_gateway_pod_by_pod() -> None:
    config = yaml.safe_load((CONFIG / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    service = _gateway_service()
    for job_name, port in (("stepwatch-gateway", 8889), (COLLECTOR_JOB, 8888)):
        job = jobs[job_name]
        assert "static_configs" not in job, job_name  # a Service's VIP: one random pod
        (discovery,) = job["dns_sd_configs"]
        assert discovery["type"] == "A" and discovery["port"] == port
        assert service in discovery["names"], job_name


@pytest.mark.parametrize("name", ["agent.yaml", "gateway.yaml"])
def test_health_checks_are_reachable_by_a_kubernetes_probe(name: str) -> None:
    endpoint = _load(name)["extensions"]["health_check"]["endpoint"]
    assert endpoint.split(":")[0] == "0.0.0.0"  # a probe is sent to the pod's address


def test_readme_explains_running_two_or_more_gateways() -> None:
    readme = (CONFIG / "README.md").read_text()
    section = readme.split("### Two or more gateways", 1)[1].split("\n### ", 1)[0]
    service_name = _gateway_service().split(".")[0]
    manifests = [
        document
        for block in re.findall(r"```yaml\n(.*?)```", section, re.S)
        for document in yaml.safe_load_all(block)
        if isinstance(document, dict) and document.get("kind") == "Service"
    ]
    (service,) = manifests
    assert service["metadata"]["name"] == service_name
    assert service["spec"]["clusterIP"] == "None"  # headless
    assert {p["port"] for p in service["spec"]["ports"]} >= {4317, 8888, 8889}
    for words in ("headless Service", "dns_sd_configs", "probe", "metric_expiration"):
        assert words in section
