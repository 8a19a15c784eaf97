# ruff: noqa: E501  (the table of entry points reads best one case per line)
"""The shape the architecture promises (docs/architecture.md), checked on the code itself.

- Decorating and calling loads only the OpenTelemetry API, never the SDK.
- No module reads or writes another module's private (underscore) names,
  ours or OpenTelemetry's; ``_otel_internals`` is the one exception.
- Every public entry point refuses every invalid argument the same way: the
  wrong type raises ``TypeError``, a value out of range ``ValueError``, and
  the message names the argument.
"""

from __future__ import annotations

import ast
import math
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.trace import TracerProvider

import stepwatch
from stepwatch import _checks
from stepwatch.http import make_wsgi_app
from stepwatch.reader import HealthMetricReader

SOURCE = Path(stepwatch.__file__).parent
INTERNALS_MODULE = "_otel_internals.py"
DOCUMENTED_PRIVATE = {"sys._getframe"}
"""Underscored names their library documents for use (the ``sys`` module's docs)."""


# ------------------------------------------------------------ decorating needs only the API
def test_decorating_and_calling_loads_no_sdk_module() -> None:
    program = """
import sys
import stepwatch

@stepwatch.execution("job", total_steps=1)
def job():
    with stepwatch.step("only") as st:
        st.progress(0.5)
    return 7

assert job() == 7
loaded = sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk"))
print(",".join(loaded) or "none")
"""
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.strip() == "none"


def test_sdk_bound_names_still_resolve_lazily() -> None:
    assert stepwatch.Monitor.__name__ == "Monitor"
    assert callable(stepwatch.configure)
    assert stepwatch.Rules().window == 300.0
    with pytest.warns(DeprecationWarning, match="HealthMetricReader"):
        assert stepwatch.HealthReader is HealthMetricReader
    with pytest.raises(AttributeError, match="nope"):
        stepwatch.nope  # noqa: B018


# ----------------------------------------------------------------- no reaching into private state
def _defined_names(tree: ast.Module) -> set[str]:
    """Every name a module defines: functions, classes, variables, self attributes, slots."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id in ("self", "cls")
        ):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__slots__" for t in node.targets
        ):
            names.update(
                c.value
                for c in ast.walk(node.value)
                if isinstance(c, ast.Constant) and isinstance(c.value, str)
            )
    return names


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _violations(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    defined = _defined_names(tree)
    for node in ast.walk(tree):
        where = f"{path.name}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Attribute) and _private(node.attr):
            owner = node.value
            if isinstance(owner, ast.Name) and owner.id in ("self", "cls"):
                continue
            if node.attr not in defined and ast.unparse(node) not in DOCUMENTED_PRIVATE:
                yield f"{where} {ast.unparse(node)}"
        elif isinstance(node, ast.Call) and getattr(node.func, "id", None) in (
            "getattr",
            "setattr",
        ):
            key = node.args[1] if len(node.args) >= 2 else None
            if (
                isinstance(key, ast.Constant)
                and isinstance(key.value, str)
                and _private(key.value)
                and key.value not in _module_level_private(tree)
            ):
                yield f"{where} {ast.unparse(node)}"
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            # _typeshed: the type checkers' stub-only module (read under TYPE_CHECKING).
            outside = not module.startswith(("stepwatch", "_typeshed")) and node.level == 0
            if outside and any(_private(part) for part in module.split(".")):
                yield f"{where} from {module} import ..."
            for alias in node.names:
                if _private(alias.name) and (outside or not module.startswith("stepwatch")):
                    yield f"{where} import {alias.name}"


def _module_level_private(tree: ast.Module) -> set[str]:
    return {name for name in _defined_names(tree) if _private(name)}


def test_no_module_reads_another_modules_private_names() -> None:
    found = [
        violation
        for path in sorted(SOURCE.rglob("*.py"))
        if path.name != INTERNALS_MODULE
        for violation in _violations(path)
    ]
    assert found == []


def test_the_check_would_catch_a_reach_into_private_state(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from opentelemetry.metrics._internal import _ProxyMeterProvider\n"
        "def f(execution, exporter):\n"
        "    execution._lock = None\n"
        "    return getattr(exporter, '_preferred_temporality')\n"
    )
    found = list(_violations(sample))
    assert len(found) == 4, found


# ------------------------------------------------------------------- argument checks, everywhere
class _Thing:
    """An object of no type any argument accepts."""


_NON_NUMBERS = st.one_of(
    st.text(max_size=5),
    st.booleans(),
    st.lists(st.integers(), max_size=2),
    st.builds(_Thing),
    st.binary(max_size=3),
)
_NON_STRINGS = st.one_of(
    st.integers(),
    st.floats(allow_nan=False),
    st.booleans(),
    st.lists(st.text(max_size=2), max_size=2),
    st.builds(_Thing),
    st.binary(max_size=3),
)


@dataclass(frozen=True)
class Kind:
    """How to make wrong-type and out-of-range values for one kind of argument."""

    wrong_type: st.SearchStrategy[Any]
    out_of_range: st.SearchStrategy[Any]


def _seconds(*, allow_zero: bool = False, at_least: float = 0.0, optional: bool = False) -> Kind:
    if at_least > 0:
        too_low = st.floats(max_value=at_least, exclude_max=True)
    elif allow_zero:
        too_low = st.floats(max_value=-1e-9)
    else:
        too_low = st.floats(max_value=0.0)
    return Kind(
        wrong_type=_NON_NUMBERS if optional else st.one_of(_NON_NUMBERS, st.none()),
        out_of_range=st.one_of(
            st.sampled_from([math.nan, math.inf, -math.inf]),
            st.floats(min_value=_checks.MAX_SECONDS, exclude_min=True, allow_infinity=False),
            too_low,
            st.integers(max_value=-1),
        ),
    )


def _count(minimum: int, *, or_callable: bool = False, optional: bool = False) -> Kind:
    """Counts: floats and bools are the wrong type; ``None`` too unless optional or callable."""
    wrong: st.SearchStrategy[Any] = st.one_of(
        st.floats(allow_nan=False),
        st.booleans(),
        st.text(max_size=3),
        st.builds(_Thing),
        st.lists(st.integers(), max_size=2),
    )
    if not optional and not or_callable:
        wrong = st.one_of(wrong, st.none())
    return Kind(wrong_type=wrong, out_of_range=st.integers(max_value=minimum - 1))


def _ratio(*, include_one: bool = True) -> Kind:
    return Kind(
        wrong_type=st.one_of(_NON_NUMBERS, st.none()),
        out_of_range=st.one_of(
            st.just(math.nan),
            st.floats(max_value=0.0),
            st.floats(min_value=1.0, exclude_min=include_one),
        ),
    )


def _name(*, optional: bool = True) -> Kind:
    wrong = _NON_STRINGS if optional else st.one_of(_NON_STRINGS, st.none())
    return Kind(wrong_type=wrong, out_of_range=st.sampled_from(["", " ", "\t\n"]))


_NOTHING: st.SearchStrategy[Any] = st.nothing()
CALLABLE = Kind(
    wrong_type=st.one_of(_NON_STRINGS, st.text(max_size=3), st.none()), out_of_range=_NOTHING
)
CALLABLE_OPTIONAL = Kind(
    wrong_type=st.one_of(_NON_STRINGS, st.text(max_size=3)), out_of_range=_NOTHING
)
INSTANCE = Kind(wrong_type=st.one_of(_NON_STRINGS, st.text(max_size=3)), out_of_range=_NOTHING)


def _choice(valid: list[str], *, optional: bool = True) -> Kind:
    wrong = _NON_STRINGS if optional else st.one_of(_NON_STRINGS, st.none())
    return Kind(wrong_type=wrong, out_of_range=st.text(max_size=8).filter(lambda v: v not in valid))


@pytest.fixture(scope="module")
def monitor() -> Iterator[stepwatch.Monitor]:
    mon = stepwatch.Monitor(tracer_provider=TracerProvider(), meter_provider=MeterProvider())
    yield mon
    mon.shutdown()


Call = Callable[[stepwatch.Monitor, Any], object]

CASES: list[tuple[str, str, Kind, Call]] = [
    ("execution", "name", _name(), lambda m, v: stepwatch.execution(v)),
    ("execution", "total_steps", _count(0, or_callable=True), lambda m, v: stepwatch.execution("e", total_steps=v)),
    ("execution", "sla", _seconds(optional=True), lambda m, v: stepwatch.execution("e", sla=v)),
    ("execution", "attempt", _count(1, or_callable=True), lambda m, v: stepwatch.execution("e", attempt=v)),
    ("step", "name", _name(), lambda m, v: stepwatch.step(v)),
    ("step", "step_type", _name(), lambda m, v: stepwatch.step("s", step_type=v)),
    ("Rules", "window", _seconds(at_least=10), lambda m, v: stepwatch.Rules(window=v)),
    ("Rules", "min_executions", _count(1), lambda m, v: stepwatch.Rules(min_executions=v)),
    ("Rules", "failure_rate", _ratio(), lambda m, v: stepwatch.Rules(failure_rate=v)),
    ("Rules", "timeout_rate", _ratio(), lambda m, v: stepwatch.Rules(timeout_rate=v)),
    ("Rules", "queue_depth", _count(1), lambda m, v: stepwatch.Rules(queue_depth=v)),
    ("Rules", "stuck_after", _seconds(), lambda m, v: stepwatch.Rules(stuck_after=v)),
    ("Rules", "sla", _seconds(optional=True), lambda m, v: stepwatch.Rules(sla=v)),
    ("Rules", "sla_objective", _ratio(include_one=False), lambda m, v: stepwatch.Rules(sla_objective=v)),
    ("Rules", "for_seconds", _seconds(allow_zero=True), lambda m, v: stepwatch.Rules(for_seconds=v)),
    ("Limits", "retention", _seconds(), lambda m, v: stepwatch.Limits(retention=v)),
    ("Limits", "max_finished", _count(1), lambda m, v: stepwatch.Limits(max_finished=v)),
    ("Limits", "steps_kept", _count(1), lambda m, v: stepwatch.Limits(steps_kept=v)),
    ("Limits", "max_events", _count(1), lambda m, v: stepwatch.Limits(max_events=v)),
    ("Limits", "max_series", _count(1), lambda m, v: stepwatch.Limits(max_series=v)),
    ("Monitor", "clock", CALLABLE_OPTIONAL, lambda m, v: stepwatch.Monitor(clock=v)),
    ("Monitor", "rules", INSTANCE, lambda m, v: stepwatch.Monitor(rules=v)),
    ("Monitor", "limits", INSTANCE, lambda m, v: stepwatch.Monitor(limits=v)),
    ("Monitor.start", "interval", _seconds(), lambda m, v: m.start(v)),
    ("Monitor.summary", "window", _seconds(optional=True), lambda m, v: m.summary(v)),
    ("Monitor.summary", "name", _name(), lambda m, v: m.summary(name=v)),
    ("Monitor.alerts", "limit", _count(0), lambda m, v: m.alerts(limit=v)),
    ("Monitor.alerts", "severity", _choice(["info", "warning", "critical"]), lambda m, v: m.alerts(v)),
    ("Monitor.events", "limit", _count(0, optional=True), lambda m, v: m.events(limit=v)),
    ("Monitor.events", "since", _count(0, optional=True), lambda m, v: m.events(since=v)),
    ("Monitor.events", "execution_id", _name(), lambda m, v: m.events(execution_id=v)),
    ("Monitor.subscribe", "callback", CALLABLE, lambda m, v: m.subscribe(v)),
    ("Monitor.add_check", "name", _name(optional=False), lambda m, v: m.add_check(v, bool)),
    ("Monitor.add_check", "check", CALLABLE, lambda m, v: m.add_check("c", v)),
    ("Monitor.add_check", "timeout", _seconds(), lambda m, v: m.add_check("c", bool, timeout=v)),
    ("Monitor.observe_queue_depth", "callback", CALLABLE, lambda m, v: m.observe_queue_depth(v)),
    ("Monitor.observe_queue_depth", "queue", _name(optional=False), lambda m, v: m.observe_queue_depth(float, queue=v)),
    ("make_wsgi_app", "token", _name(), lambda m, v: make_wsgi_app(m, token=v)),
    ("make_wsgi_app", "heartbeat", _seconds(), lambda m, v: make_wsgi_app(m, heartbeat=v)),
    ("make_wsgi_app", "max_sse_clients", _count(1, optional=True), lambda m, v: make_wsgi_app(m, max_sse_clients=v)),
    ("configure", "service_name", _name(), lambda m, v: stepwatch.configure(service_name=v, exporter="none", set_global=False)),
    ("configure", "exporter", _choice(["otlp", "console", "none"]), lambda m, v: stepwatch.configure(exporter=v, set_global=False)),
    ("configure", "rules", INSTANCE, lambda m, v: stepwatch.configure(rules=v, exporter="none", set_global=False)),
    ("configure", "limits", INSTANCE, lambda m, v: stepwatch.configure(limits=v, exporter="none", set_global=False)),
    ("HealthMetricReader", "max_series", _count(1), lambda m, v: HealthMetricReader(max_series=v)),
    ("HealthMetricReader", "fine_slot", _seconds(), lambda m, v: HealthMetricReader(fine_slot=v)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("entry", "argument", "kind", "call"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES]
)
def test_every_invalid_argument_names_itself(
    monitor: stepwatch.Monitor, entry: str, argument: str, kind: Kind, call: Call
) -> None:
    def refused(value: object, expected: type[Exception]) -> None:
        with pytest.raises(expected) as caught:
            call(monitor, value)
        assert type(caught.value) is expected
        assert argument in str(caught.value), str(caught.value)

    @settings(max_examples=25, deadline=None, database=None)
    @given(value=kind.wrong_type)
    def wrong_type(value: object) -> None:
        refused(value, TypeError)

    wrong_type()
    if kind.out_of_range is not _NOTHING:

        @settings(max_examples=25, deadline=None, database=None)
        @given(value=kind.out_of_range)
        def out_of_range(value: object) -> None:
            refused(value, ValueError)

        out_of_range()
    monitor.stop()
