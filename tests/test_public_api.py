"""Every public name documents its contract; the public face is flat and sorted."""

from __future__ import annotations

import inspect

import pytest

import stepwatch
import stepwatch.testing

NOT_DOCUMENTABLE = {"__version__"}  # a plain string


def _own_doc(obj: object) -> str | None:
    doc = getattr(obj, "__doc__", None)
    if not isinstance(doc, str) or not doc.strip():
        return None
    if inspect.isclass(obj):
        inherited = {getattr(base, "__doc__", None) for base in obj.__mro__[1:]}
        if doc in inherited:
            return None
    return doc


@pytest.mark.parametrize(
    ("module", "name"),
    [(stepwatch, n) for n in stepwatch.__all__]
    + [(stepwatch.testing, n) for n in stepwatch.testing.__all__],
)
def test_public_name_has_its_own_docstring(module: object, name: str) -> None:
    if name in NOT_DOCUMENTABLE:
        return
    obj = getattr(module, name)
    doc = _own_doc(obj)
    assert doc is not None, f"{name} has no docstring of its own"
    assert len(doc.strip()) >= 20, f"{name}: a docstring should state the contract"


def test_all_is_sorted_and_complete() -> None:
    assert stepwatch.__all__ == sorted(stepwatch.__all__)
    for name in stepwatch.__all__:
        assert hasattr(stepwatch, name), name


def test_public_methods_of_handles_and_monitor_are_documented() -> None:
    for cls in (stepwatch.Monitor, stepwatch.Execution, stepwatch.Step, stepwatch.Rules):
        for name, member in inspect.getmembers(cls):
            if name.startswith("_") or not callable(member):
                continue
            assert _own_doc(member), f"{cls.__name__}.{name} has no docstring"


def test_the_monitor_receives_nothing_from_handles() -> None:
    # The observer hooks live on a private observer, not on the Monitor's public face.
    hooks = {"execution_started", "execution_ended", "step_started", "step_ended", "eta"}
    assert hooks.isdisjoint(dir(stepwatch.Monitor))


def test_one_name_per_thing() -> None:
    import stepwatch.configuration as configuration  # noqa: PLR0402 - the form users write

    assert callable(stepwatch.configure)
    assert configuration.configure is stepwatch.configure
    for handle in (stepwatch.Execution, stepwatch.Step):
        assert not hasattr(handle, "snapshot")
