"""The built-in alert rules as Prometheus alerting rules, for a fleet of engine processes.

Usage::

    stepwatch rules > stepwatch-rules.yaml
    stepwatch rules --config rules.toml

    from stepwatch.prometheus import rules_yaml
    print(rules_yaml(stepwatch.Rules(failure_rate=0.1)))

The rules carry the in-process names, thresholds, severities and
minimum-volume gating, computed over the metric names Prometheus sees after
the OpenTelemetry-to-Prometheus translation (``opentelemetry-exporter-prometheus``
or the Collector's ``prometheus`` exporter): dots become underscores, the
unit ``s`` becomes ``_seconds``, counters get ``_total``; ``{execution}``
units add nothing. Where the fleet view differs from the in-process one it
is said next to the rule:

- ``StuckExecutions``: Prometheus does not see individual executions; the
  rule fires for a name that has executions running but none finished in
  ``stuck_after``.
- ``ComponentDown``: component checks are in-process; the fleet rule fires
  when a scrape target (an engine process) is down.
- ``TelemetryExportFailing``: fires on the Collector's own export failure counters.
- ``QueueBacklog``: the pending count summed over the fleet is clamped at 0.
  Each process exports its own side of a queue (the producer's +1 at
  enqueue, the worker's -1 at start), at its own export interval, so the sum
  can dip below zero for an interval or two (export skew), or for good when
  a producer's series expired while its workers' did not.
- ``ExecutionsLost``: counts ``outcome=lost``, which only a surviving member
  of a process group records (see ``docs/process-group.md``); a fleet
  without a shared directory never sees ``lost``: the killed process's spans
  are never ended and its series stop when the Collector expires them.

A killed instance's last ``workflow.execution.active`` values stop counting
once its series disappear: the Collector's ``prometheus`` exporter drops a
series not updated for ``metric_expiration`` (5 minutes in the shipped
``gateway.yaml``), after which Prometheus marks it stale.
"""

from __future__ import annotations

import json
import re
from typing import Any

from stepwatch import semconv
from stepwatch.health import BURN_RATES, Rules

__all__ = ["PROMETHEUS_NAMES", "alerting_rules", "rules_yaml", "to_yaml"]


def _prometheus_label(attribute: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", attribute)


ENGINES_JOB = "stepwatch-engines"
"""The Prometheus scrape job of the engine processes (``ComponentDown`` watches its ``up``)."""
COLLECTOR_JOB = "otelcol"
"""The scrape job of the Collectors' own metrics (``TelemetryExportFailing`` reads them)."""
NAME = _prometheus_label(semconv.WORKFLOW_DEFINITION_NAME)
STATE = _prometheus_label(semconv.WORKFLOW_EXECUTION_STATE)
OUTCOME = _prometheus_label(semconv.WORKFLOW_EXECUTION_OUTCOME)
PROMETHEUS_NAMES = {
    "executions": "workflow_execution_duration_seconds_count",
    "active": "workflow_execution_active",
    "queue_depth": "workflow_execution_queue_depth",
    "sla_violations": "workflow_execution_sla_violations_total",
}
"""How stepwatch's metrics are named in Prometheus (see the module docstring)."""


def _duration(seconds: float) -> str:
    """A Prometheus duration literal (``300s`` -> ``5m``)."""
    whole = round(seconds)
    for unit, size in (("h", 3600), ("m", 60)):
        if whole >= size and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{max(whole, 1)}s"


def _number(value: float) -> str:
    return f"{value:g}"


def alerting_rules(rules: Rules | None = None) -> dict[str, Any]:
    """The Prometheus rule file (as a dict) equivalent to ``rules``.

    .. versionadded:: 0.1.0
    """
    rules = rules or Rules()
    executions = PROMETHEUS_NAMES["executions"]
    window = _duration(rules.window)
    by_name = f"sum by ({NAME}) "
    ran = f'{executions}{{{STATE}="executing"}}'
    gate = f"{by_name}(increase({ran}[{window}])) >= {rules.min_executions}"

    def ratio(outcome: str) -> str:
        return (
            f'{by_name}(increase({executions}{{{STATE}="executing",{OUTCOME}="{outcome}"}}[{window}]))\n'
            f"  / {by_name}(increase({ran}[{window}]))"
        )

    hold = _duration(rules.for_seconds) if rules.for_seconds else "0s"
    result: list[dict[str, Any]] = [
        {
            "alert": semconv.RULE_HIGH_FAILURE_RATE,
            "expr": f"(\n  {ratio('failure')}\n) > {_number(rules.failure_rate)}\nand {gate}",
            "for": hold,
            "labels": {"severity": "critical"},
            "annotations": {
                "summary": "High failure rate of {{ $labels.workflow_definition_name }}",
                "description": (
                    "{{ $value | humanizePercentage }} of the executions of "
                    "{{ $labels.workflow_definition_name }} failed over the last "
                    f"{window} (threshold {rules.failure_rate:.0%})."
                ),
            },
        },
        {
            "alert": semconv.RULE_HIGH_TIMEOUT_RATE,
            "expr": f"(\n  {ratio('timeout')}\n) > {_number(rules.timeout_rate)}\nand {gate}",
            "for": hold,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "High timeout rate of {{ $labels.workflow_definition_name }}",
                "description": (
                    "{{ $value | humanizePercentage }} of the executions of "
                    "{{ $labels.workflow_definition_name }} timed out over the last "
                    f"{window} (threshold {rules.timeout_rate:.0%})."
                ),
            },
        },
        {
            "alert": semconv.RULE_QUEUE_BACKLOG,
            "expr": (
                f"(\n  sum({PROMETHEUS_NAMES['queue_depth']})\n"
                f'  or clamp_min(sum({PROMETHEUS_NAMES["active"]}{{{STATE}="pending"}}), 0)\n'
                f") > {rules.queue_depth}"
            ),
            "for": hold,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Queue backlog",
                "description": (
                    f"{{{{ $value }}}} executions are queued (threshold {rules.queue_depth})."
                ),
            },
        },
        {
            "alert": semconv.RULE_STUCK_EXECUTIONS,
            "expr": (
                f'{by_name}({PROMETHEUS_NAMES["active"]}{{{STATE}="executing"}}) > 0\n'
                f"unless {by_name}(increase({ran}[{_duration(rules.stuck_after)}])) > 0"
            ),
            "for": hold,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Stuck executions of {{ $labels.workflow_definition_name }}",
                "description": (
                    "{{ $value }} executions of {{ $labels.workflow_definition_name }} are "
                    f"running and none has finished in {_duration(rules.stuck_after)}."
                ),
            },
        },
    ]
    result.append(
        {
            "alert": semconv.RULE_EXECUTIONS_LOST,
            "expr": (
                f'{by_name}(increase({executions}{{{STATE}="executing",'
                f'{OUTCOME}="{semconv.Outcome.LOST.value}"}}[{window}])) > 0'
            ),
            "for": hold,
            "labels": {"severity": "warning"},
            "annotations": {
                "summary": "Executions of {{ $labels.workflow_definition_name }} lost",
                "description": (
                    "{{ $value }} executions of {{ $labels.workflow_definition_name }} were "
                    f"lost over the last {window}: their process died while they ran."
                ),
            },
        }
    )
    budget = 1.0 - rules.sla_objective
    for label, severity, factor, long_window, short_window in BURN_RATES:

        def burn(seconds: float) -> str:
            span = _duration(seconds)
            return (
                f"{by_name}(increase({PROMETHEUS_NAMES['sla_violations']}[{span}]))\n"
                f"  / {by_name}(increase({ran}[{span}]))"
            )

        threshold = _number(factor * budget)
        result.append(
            {
                "alert": semconv.RULE_SLA_BURN_RATE,
                "expr": (
                    f"(\n  {burn(long_window)}\n) > {threshold}\n"
                    f"and (\n  {burn(short_window)}\n) > {threshold}\n"
                    f"and {by_name}(increase({ran}[{_duration(long_window)}])) "
                    f">= {rules.min_executions}"
                ),
                "labels": {"severity": severity.value, "burn": label},
                "annotations": {
                    "summary": "SLA error budget burning fast"
                    if label == "fast"
                    else "SLA error budget burning steadily",
                    "description": (
                        "{{ $labels.workflow_definition_name }} burns its SLA error budget "
                        f"more than {_number(factor)}x over {_duration(long_window)} and "
                        f"{_duration(short_window)} (objective {rules.sla_objective:.2%})."
                    ),
                },
            }
        )
    result.extend(
        [
            {
                "alert": semconv.RULE_COMPONENT_DOWN,
                "expr": f'up{{job="{ENGINES_JOB}"}} == 0',
                "for": hold,
                "labels": {"severity": "critical"},
                "annotations": {
                    "summary": "Engine process down",
                    "description": "{{ $labels.instance }} cannot be scraped.",
                },
            },
            {
                "alert": semconv.RULE_TELEMETRY_EXPORT_FAILING,
                "expr": (
                    "sum by (job, instance, exporter) "
                    "(rate(otelcol_exporter_send_failed_spans_total[5m])) > 0\n"
                    "or sum by (job, instance, exporter) "
                    "(rate(otelcol_exporter_send_failed_metric_points_total[5m])) > 0\n"
                    f'or up{{job="{COLLECTOR_JOB}"}} == 0'
                ),
                "for": "5m",
                "labels": {"severity": "warning"},
                "annotations": {
                    "summary": "Telemetry export failing",
                    "description": (
                        "{{ $labels.instance }}: the Collector fails to export "
                        "({{ $labels.exporter }}), or its own metrics cannot be scraped."
                    ),
                },
            },
        ]
    )
    return {"groups": [{"name": "stepwatch", "rules": result}]}


# ------------------------------------------------------------------ YAML output
def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(value)
    return json.dumps(str(value))  # a JSON string is a valid YAML double-quoted scalar


def _lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{key}:")
                lines.extend(_lines(item, indent + 2))
            elif isinstance(item, str) and "\n" in item:
                lines.append(f"{pad}{key}: |-")
                lines.extend(f"{pad}  {line}" for line in item.splitlines())
            else:
                lines.append(f"{pad}{key}: {_scalar(item)}")
        return lines
    for item in value:
        nested = _lines(item, indent + 2)
        first = nested[0].lstrip()
        lines.append(f"{pad}- {first}")
        lines.extend(nested[1:])
    return lines


def to_yaml(document: dict[str, Any]) -> str:
    """Render nested dicts, lists, strings and numbers as block-style YAML."""
    return "\n".join(_lines(document, 0)) + "\n"


def rules_yaml(rules: Rules | None = None) -> str:
    """The Prometheus rule file for ``rules`` as YAML text, with a header comment.

    .. versionadded:: 0.1.0
    """
    header = (
        "# Generated by `stepwatch rules` from stepwatch.Rules; do not edit by hand.\n"
        "# Check with: promtool check rules stepwatch-rules.yaml\n"
    )
    return header + to_yaml(alerting_rules(rules))
