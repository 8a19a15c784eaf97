"""Packaging metadata: classifiers, engine ranges stated once, extras that match them."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement

from stepwatch import package
from stepwatch.instrumentation import StepwatchInstrumentor
from stepwatch.integrations.celery import CeleryInstrumentor
from stepwatch.integrations.dramatiq import DramatiqInstrumentor
from stepwatch.integrations.huey import HueyInstrumentor
from stepwatch.integrations.rq import RQInstrumentor

ROOT = Path(__file__).resolve().parent.parent
PROJECT: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_classifiers_name_opentelemetry_pytest_and_every_tested_python() -> None:
    classifiers = set(PROJECT["classifiers"])
    assert {
        "Framework :: OpenTelemetry",
        "Framework :: OpenTelemetry :: Instrumentations",
        "Framework :: Pytest",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Typing :: Typed",
    } <= classifiers
    assert PROJECT["classifiers"] == sorted(PROJECT["classifiers"])
    assert "urls" not in PROJECT  # no public home yet: no invented URL


@pytest.mark.parametrize(
    ("extra", "instrumentor", "instruments"),
    [
        ("celery", CeleryInstrumentor, package._instruments_celery),
        ("rq", RQInstrumentor, package._instruments_rq),
        ("dramatiq", DramatiqInstrumentor, package._instruments_dramatiq),
        ("huey", HueyInstrumentor, package._instruments_huey),
    ],
)
def test_each_engine_range_is_stated_once_and_its_extra_matches(
    extra: str, instrumentor: type[Any], instruments: tuple[str, ...]
) -> None:
    assert tuple(instrumentor().instrumentation_dependencies()) == instruments
    (declared,) = instruments
    (required,) = PROJECT["optional-dependencies"][extra]
    assert Requirement(required).specifier == Requirement(declared).specifier
    assert Requirement(required).name == Requirement(declared).name == extra


def test_the_core_instrumentor_needs_no_library_and_no_instruments_extra_exists() -> None:
    # The auto-instrumentation checks an `instruments` extra for the whole
    # distribution: listing the engines there would skip every stepwatch
    # instrumentor (this one too) wherever one engine is missing.
    assert tuple(StepwatchInstrumentor().instrumentation_dependencies()) == ()
    assert "instruments" not in PROJECT["optional-dependencies"]
    assert "instruments-any" not in PROJECT["optional-dependencies"]
