"""No port is used for two things across the docs, the examples and the shipped configs.

Following two documents that give one port two jobs ends in ``OSError:
address already in use``, or in a scrape job reading the wrong server (0.2's
docs put ``monitor.serve()`` on 9464, where the engines' Prometheus exporter
listens and ``ComponentDown`` scrapes). Every port these files name, with
the job each gives it, is collected by reading them; each port must have
one job.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from stepwatch.prometheus import COLLECTOR_JOB, ENGINES_JOB

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / "collector-config"

SERVE = "monitor.serve() (stepwatch's HTTP API)"
ENGINE_PROMETHEUS = "an engine's Prometheus exporter (OTEL_METRICS_EXPORTER=prometheus)"
GATEWAY_PROMETHEUS = "the gateway's Prometheus exporter (stepwatch's metrics)"
COLLECTOR_METRICS = "a Collector's own metrics"
OTLP = "OTLP receiver"
HEALTH_CHECK = "a Collector's health_check"
DEBUGGING = "a Collector's pprof / zpages"

Uses = dict[int, set[tuple[str, str]]]


def _port(endpoint: object) -> int:
    match = re.search(r":(\d+)\}?$", str(endpoint))
    assert match is not None, endpoint
    return int(match.group(1))


def _texts() -> Iterator[tuple[str, str]]:
    """Every document and source a user reads: README, docs, examples, docstrings."""
    paths = [ROOT / "README.md", CONFIG / "README.md"]
    paths += sorted((ROOT / "docs").glob("*.md"))
    paths += sorted(p for p in (ROOT / "examples").rglob("*") if p.suffix in {".md", ".py"})
    paths += sorted((ROOT / "src" / "stepwatch").rglob("*.py"))
    for path in paths:
        yield str(path.relative_to(ROOT)), path.read_text()


SERVE_PATTERNS = (
    r"serve\(\s*port=(\d+)",
    r"--serve[ =](\d+)",
    r"stepwatch (?:top|health) https?://[\w.-]+:(\d+)",
    r"[\w.-]+:(\d+)/(?:healthz|livez|readyz|events|executions|summary|alerts)\b",
)


def _collector_uses(uses: Uses) -> None:
    for name in ("agent.yaml", "gateway.yaml"):
        config: dict[str, Any] = yaml.safe_load((CONFIG / name).read_text())
        extensions = config.get("extensions", {})
        for component, settings in extensions.items():
            kind = component.split("/")[0]
            if kind == "health_check":
                uses[_port(settings["endpoint"])].add((HEALTH_CHECK, name))
            elif kind in {"pprof", "zpages"}:
                uses[_port(settings["endpoint"])].add((DEBUGGING, name))
        for protocol in config["receivers"]["otlp"]["protocols"].values():
            uses[_port(protocol["endpoint"])].add((OTLP, name))
        for component, settings in config["exporters"].items():
            kind = component.split("/")[0]
            if kind == "prometheus":
                uses[_port(settings["endpoint"])].add((GATEWAY_PROMETHEUS, name))
            elif kind == "loadbalancing":
                uses[int(settings["resolver"]["dns"]["port"])].add((OTLP, name))
            elif kind == "otlp" and "gateway" in component:
                uses[_port(settings["endpoint"])].add((OTLP, name))
        for reader in config["service"]["telemetry"]["metrics"]["readers"]:
            port = reader["pull"]["exporter"]["prometheus"]["port"]
            uses[int(port)].add((COLLECTOR_METRICS, name))


def _prometheus_uses(uses: Uses) -> None:
    config = yaml.safe_load((CONFIG / "prometheus" / "prometheus.yml").read_text())
    jobs = {
        "stepwatch-gateway": GATEWAY_PROMETHEUS,
        COLLECTOR_JOB: COLLECTOR_METRICS,
        ENGINES_JOB: ENGINE_PROMETHEUS,
    }
    for job in config["scrape_configs"]:
        role = jobs[job["job_name"]]
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                uses[_port(target)].add((role, f"prometheus.yml {job['job_name']}"))
        for discovery in job.get("dns_sd_configs", []):
            uses[int(discovery["port"])].add((role, f"prometheus.yml {job['job_name']}"))


def _ports_table_uses(uses: Uses) -> None:
    """collector-config/README.md's table of ports: each row's port, by what it says."""
    text = (CONFIG / "README.md").read_text()
    table = text.split("## Ports", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:-1] for line in table.splitlines() if re.match(r"\|\s*\w", line)]
    classify = (
        ("monitor.serve()", SERVE),
        ("OTEL_METRICS_EXPORTER=prometheus", ENGINE_PROMETHEUS),
        ("health_check", HEALTH_CHECK),
        ("own metrics", COLLECTOR_METRICS),
        ("OTLP", OTLP),
        ("Prometheus scrape endpoint", GATEWAY_PROMETHEUS),
        ("pprof", DEBUGGING),
    )
    for where, ports, what in rows[1:]:  # the first row is the header
        if set(ports.strip()) <= {"-"}:
            continue
        role = next((role for key, role in classify if key in what), None)
        assert role is not None, f"the Ports table's row {where!r} says an unknown job: {what}"
        for port in re.findall(r"\d{3,5}", ports.replace("127.0.0.1", "")):
            uses[int(port)].add((role, f"collector-config/README.md Ports ({where.strip()})"))


def _all_uses() -> Uses:
    uses: Uses = defaultdict(set)
    for name, text in _texts():
        for pattern in SERVE_PATTERNS:
            for match in re.finditer(pattern, text):
                uses[int(match.group(1))].add((SERVE, name))
        for match in re.finditer(r"OTEL_EXPORTER_PROMETHEUS_PORT\", \"(\d+)\"", text):
            uses[int(match.group(1))].add((ENGINE_PROMETHEUS, name))
        for match in re.finditer(r"OTEL_EXPORTER_PROMETHEUS_HOST:PORT`, default `\w+:(\d+)", text):
            uses[int(match.group(1))].add((ENGINE_PROMETHEUS, name))
    _collector_uses(uses)
    _prometheus_uses(uses)
    _ports_table_uses(uses)
    return uses


def test_no_port_is_used_for_two_things_across_docs_and_configs() -> None:
    uses = _all_uses()
    clashes = {
        port: sorted(found) for port, found in uses.items() if len({role for role, _ in found}) > 1
    }
    assert clashes == {}


def test_the_port_survey_reads_every_kind_of_source() -> None:
    """The survey finds what it is meant to (else the check above proves nothing)."""
    roles: dict[str, set[int]] = defaultdict(set)
    places: dict[str, set[str]] = defaultdict(set)
    for port, found in _all_uses().items():
        for role, where in found:
            roles[role].add(port)
            places[role].add(where.split(" ")[0])
    assert set(roles) == {
        SERVE,
        ENGINE_PROMETHEUS,
        GATEWAY_PROMETHEUS,
        COLLECTOR_METRICS,
        OTLP,
        HEALTH_CHECK,
        DEBUGGING,
    }
    # monitor.serve()'s documented port, in the README, the docs and a docstring
    assert {"README.md", "docs/http-and-cli.md", "src/stepwatch/http.py"} <= places[SERVE]
    assert ENGINE_PROMETHEUS in {role for role, _ in _all_uses()[9464]}
    assert 9464 not in roles[SERVE]  # the OpenTelemetry Prometheus exporter's default
