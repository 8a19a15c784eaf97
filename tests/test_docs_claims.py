"""What the docs claim about behaviour and names, checked against the code."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

import stepwatch
from stepwatch import semconv
from stepwatch.testing import capture

ROOT = Path(__file__).resolve().parent.parent
METRICS = [v for v in vars(semconv).values() if isinstance(v, semconv.MetricSpec)]


@pytest.mark.parametrize("document", ["README.md", "docs/telemetry.md"])
def test_both_metric_tables_list_every_metric(document: str) -> None:
    rows = [line for line in (ROOT / document).read_text().splitlines() if line.startswith("|")]
    listed = {name for row in rows for name in re.findall(r"`(workflow\.[\w.]+)`", row)}
    assert {spec.name for spec in METRICS} <= listed


def _paragraphs(document: str) -> Iterator[str]:
    yield from (ROOT / document).read_text().split("\n\n")


def test_the_docs_give_a_closed_generator_the_outcome_the_code_gives() -> None:
    @stepwatch.execution("gen", execution_id="closed-early")
    def numbers() -> Iterator[int]:
        yield from range(10)

    with capture() as sw:
        iterator = numbers()
        next(iterator)
        iterator.close()  # type: ignore[attr-defined]
        progress = sw.monitor.progress("closed-early")
    assert progress is not None
    outcome = progress.state
    claims = [
        paragraph
        for document in ("docs/concepts.md", "docs/faq.md", "docs/telemetry.md")
        for paragraph in _paragraphs(document)
        if not paragraph.lstrip().startswith("|")  # prose, not the outcome table
        and "generator" in paragraph.lower()
        and re.search(r"\bclos(e|ed|ing)\b", paragraph)
    ]
    assert claims
    for paragraph in claims:
        named = set(re.findall(r"`(success|failure|timeout|cancellation|skip)`", paragraph))
        assert outcome in named, paragraph
        assert "cancellation" not in named or "0.1" in paragraph, paragraph


def test_the_faq_knows_the_engine_integrations_exist() -> None:
    faq = (ROOT / "docs" / "faq.md").read_text()
    assert "future work" not in faq.lower()
    integrations = sorted(
        p.stem for p in (ROOT / "src" / "stepwatch" / "integrations").glob("[!_]*.py")
    )
    assert integrations == ["celery", "dramatiq", "huey", "rq"]
    for name in ("Celery", "RQ", "Dramatiq", "Huey"):
        assert name in faq


@pytest.mark.parametrize("document", ["README.md", "docs/demo.md"])
def test_the_demo_screen_in_the_docs_has_the_demos_columns(document: str) -> None:
    from rich.console import Console

    from stepwatch import cli

    console = Console(record=True, width=120)
    console.print(cli._executions_table([]))
    header = console.export_text().split()
    screen = (ROOT / document).read_text().split("```text\n", 1)[1].split("```", 1)[0]
    first, second, *rows = screen.splitlines()
    assert re.fullmatch(r"overall [█░]+ \d+/24 executions ended", first)
    assert second.split() == header
    for row in rows[:-1]:
        words = row.split()
        assert words[0].startswith("order-") and words[1] == "order-pipeline", row
        assert re.fullmatch(r"\d+(\.\d)?s|<0\.1s|\?|\d+m\d\ds", words[-1]), row
    assert re.fullmatch(r"\d+ queued", rows[-1])
