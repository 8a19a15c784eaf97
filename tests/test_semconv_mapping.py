"""The CI/CD mapping table in docs/telemetry.md names only real CI/CD conventions.

Every ``cicd.*`` name in the table must exist in the installed
``opentelemetry-semantic-conventions`` (attributes or metrics), and every
value it lists for a CI/CD enum must be one of that enum's values, so the
table cannot drift from the conventions it claims to map to.
"""

from __future__ import annotations

import re
from pathlib import Path

from opentelemetry.semconv._incubating.attributes import cicd_attributes
from opentelemetry.semconv._incubating.metrics import cicd_metrics

from stepwatch import Outcome, semconv

DOC = Path(__file__).resolve().parent.parent / "docs" / "telemetry.md"


def _table() -> str:
    text = DOC.read_text()
    return text[text.index("## Against the CI/CD conventions") :]


def _known() -> set[str]:
    return {
        value
        for module in (cicd_attributes, cicd_metrics)
        for name, value in vars(module).items()
        if name.isupper() and isinstance(value, str)
    }


def test_every_cicd_name_in_the_table_exists() -> None:
    named = set(re.findall(r"`(cicd\.[a-z_.]+)`", _table()))
    assert len(named) >= 10
    assert named <= _known(), named - _known()


def test_outcomes_differ_from_the_pipeline_result_only_as_the_table_says() -> None:
    results = {v.value for v in cicd_attributes.CicdPipelineResultValues}
    ours = {o.value for o in Outcome}
    assert ours - results == {"retry", "lost"}
    assert results - ours == {"error"}
    states = {v.value for v in cicd_attributes.CicdPipelineRunStateValues}
    assert states - {
        semconv.ExecutionState.PENDING.value,
        semconv.ExecutionState.EXECUTING.value,
    } == {"finalizing"}


def _draft_rows() -> list[list[str]]:
    text = DOC.read_text()
    section = text[text.index("## Against the draft workflow conventions") :]
    section = section[: section.index("\n\n", section.index("| stepwatch |"))]
    rows = [line.split(" | ") for line in section.splitlines() if line.startswith("| `")]
    assert len(rows) >= 5
    return rows


def test_the_draft_table_names_only_stepwatchs_own_names_on_its_side() -> None:
    ours = {
        value
        for name, value in vars(semconv).items()
        if name.isupper() and isinstance(value, str) and value.startswith("workflow.")
    }
    named = {
        name
        for row in _draft_rows()
        for name in re.findall(r"`(workflow\.[a-z_.]+)`", row[0])
        if not name.endswith(".")
    }
    assert named and named <= ours, named - ours


def test_the_draft_table_lists_stepwatchs_outcomes_and_states() -> None:
    rows = {re.findall(r"`([a-z_.]+)`", row[0])[0]: row[0] for row in _draft_rows()}
    outcomes = set(re.findall(r"`([a-z]+)`", rows[semconv.WORKFLOW_EXECUTION_OUTCOME]))
    assert outcomes == {o.value for o in Outcome}
    states = set(re.findall(r"`([a-z]+)`", rows[semconv.WORKFLOW_EXECUTION_STATE]))
    assert states == {s.value for s in semconv.ExecutionState}
