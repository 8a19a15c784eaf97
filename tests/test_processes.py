"""Across processes: pickling, spawn pools, cloudpickle by value, fork per job, fork under load."""

from __future__ import annotations

import json
import pickle
import pickletools
import subprocess
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

import stepwatch
from stepwatch.testing import Harness
from tests.helpers import ROOT, clean_environment, run_engine
from tests.otlp_receivers import Received, http_receiver


# ------------------------------------------------------------------------ pickling
@stepwatch.execution("pickled-job")
def module_job(number: int) -> int:
    return module_step(number)


@stepwatch.step(step_type="compute")
def module_step(number: int) -> int:
    return number * 2


def plain_function(number: int) -> int:
    return number


class Worker:
    @stepwatch.step
    def method(self, number: int) -> int:
        return number + 1

    @stepwatch.step
    @classmethod
    def class_method(cls, number: int) -> int:
        return number + 2

    @stepwatch.step
    @staticmethod
    def static_method(number: int) -> int:
        return number + 3


def _globals(data: bytes) -> list[Any]:
    """The (module, name) pairs a pickle refers to: what "by reference" writes."""
    strings = [arg for op, arg, _ in pickletools.genops(data) if isinstance(arg, str)]
    return strings


def test_decorated_functions_pickle_by_reference_like_plain_ones(sw: Harness) -> None:
    decorated = pickle.dumps(module_job)
    plain = pickle.dumps(plain_function)
    # The same opcodes as the plain function's: module and qualified name, nothing else.
    assert _globals(decorated) == [__name__, "module_job"]
    assert _globals(plain) == [__name__, "plain_function"]
    assert [op.name for op, _, _ in pickletools.genops(decorated)] == [
        op.name for op, _, _ in pickletools.genops(plain)
    ]
    assert pickle.loads(decorated) is module_job
    assert pickle.loads(decorated)(4) == 8
    assert {s.name for s in sw.spans()} == {"execution pickled-job", "step module_step"}


def test_methods_classmethods_staticmethods_pickle(sw: Harness) -> None:
    worker = Worker()
    for protocol in range(2, pickle.HIGHEST_PROTOCOL + 1):
        assert pickle.loads(pickle.dumps(worker.method, protocol))(1) == 2
        assert pickle.loads(pickle.dumps(Worker.class_method, protocol))(1) == 3
        assert pickle.loads(pickle.dumps(Worker.static_method, protocol))(1) == 4
        assert pickle.loads(pickle.dumps(Worker.method, protocol))(worker, 1) == 2
    names = [s.name for s in sw.spans()]
    assert names.count("step Worker.class_method") == pickle.HIGHEST_PROTOCOL - 1


def test_local_functions_refuse_plain_pickle_as_the_plain_function_does() -> None:
    def make() -> Any:
        @stepwatch.step("local")
        def local() -> int:
            return 1

        return local

    def plain() -> int:
        return 1

    with pytest.raises((pickle.PicklingError, AttributeError)) as decorated_error:
        pickle.dumps(make())
    with pytest.raises((pickle.PicklingError, AttributeError)) as plain_error:
        pickle.dumps(plain)
    assert type(decorated_error.value) is type(plain_error.value)


def test_cloudpickle_by_value_keeps_the_decoration(sw: Harness) -> None:
    def make() -> Any:
        @stepwatch.execution("by-value", execution_id="v-1")
        def local(number: int) -> int:
            return number + 1

        return local

    restored = cloudpickle.loads(cloudpickle.dumps(make()))
    assert restored(1) == 2
    assert restored.__name__ == "local"
    assert sw.attributes("execution by-value")["workflow.execution.id"] == "v-1"
    # By reference where cloudpickle pickles the plain function by reference.
    assert cloudpickle.loads(cloudpickle.dumps(module_job)) is module_job


def test_cloudpickle_takes_a_step_of_an_execution_and_a_scope_with_a_block_open(
    sw: Harness,
) -> None:
    """What pickles as a plain function still does: a scope travels as its settings only."""
    scope = stepwatch.execution("open", execution_id="o-1")
    with scope as ex:

        def make() -> Any:
            @ex.step("bound-step")
            def local(number: int) -> int:
                return number + 1

            return local

        restored = cloudpickle.loads(cloudpickle.dumps(make()))
        copy = cloudpickle.loads(cloudpickle.dumps(scope))  # a ``with`` of it is open here
        assert restored(1) == 2  # its execution: the one in the caller's context
    with copy as again:
        pass
    assert again.id == "o-1" and copy.name == "open"
    steps = [s for s in sw.spans() if s.name == "step bound-step"]
    assert len(steps) == 1 and steps[0].parent is not None
    assert steps[0].parent.span_id == sw.spans("execution open")[0].context.span_id
    assert sw.monitor.active_executions() == []


# ------------------------------------------------------------ across real processes
def _execution_ids(received: Received, name: str) -> list[str]:
    return sorted(
        str(s.attributes["workflow.execution.id"]) for s in received.spans if s.name == name
    )


def test_spawn_pool_exports_every_execution_and_step() -> None:
    with http_receiver() as (endpoint, received):
        result = run_engine(
            "tests.engines.spawn_pool_engine",
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_BSP_SCHEDULE_DELAY="60000",  # only the exit flush can deliver them
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout.strip().splitlines()[-1]) == [0, 1, 4, 9, 16, 25]
        wanted = [f"pool-{n}" for n in range(6)]
        assert received.wait_for(
            lambda r: (
                _execution_ids(r, "execution pool-job") == wanted
                and len([s for s in r.spans if s.name == "step square"]) == 6
            )
        ), sorted(s.name for s in received.spans)
        executions = {s.span_id: s for s in received.spans if s.name == "execution pool-job"}
        steps = [s for s in received.spans if s.name == "step square"]
        assert all(s.parent_span_id in executions for s in steps)
        assert {s.resource["service.name"] for s in steps} == {"spawn-pool"}


def test_cloudpickle_by_value_runs_decorated_in_another_process(tmp_path: Path) -> None:
    pickled = tmp_path / "job.pkl"
    dumped = run_engine("tests.engines.cloudpickle_engine", "dump", str(pickled))
    assert dumped.returncode == 0, dumped.stderr
    with http_receiver() as (endpoint, received):
        ran = run_engine(
            "tests.engines.cloudpickle_engine",
            "run",
            str(pickled),
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        )
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.strip().splitlines()[-1] == "42"
        assert received.wait_for(
            lambda r: {"execution by-value", "step inner"} <= r.span_names()
        ), received.span_names()
        (span,) = [s for s in received.spans if s.name == "execution by-value"]
        assert span.attributes["workflow.execution.id"] == "value-41"
        assert span.resource["service.name"] == "cloudpickle-runner"


def _executing_exports(received: Received, name: str, value: str) -> dict[str, list[float]]:
    """Per service.instance.id, in arrival order, each export's sum of ``value`` over the
    points of metric ``name`` in state ``executing``."""
    found: dict[str, list[float]] = {}
    for metric in received.metrics:
        if metric.name != name:
            continue
        found.setdefault(str(metric.resource["service.instance.id"]), []).append(
            sum(
                getattr(p["point"], value)
                for p in metric.points
                if p["attributes"].get("workflow.execution.state") == "executing"
            )
        )
    return found


def _executing_counts(received: Received) -> dict[str, int]:
    """Per instance, the latest cumulative count of executions that ran."""
    exports = _executing_exports(received, "workflow.execution.duration", "count")
    return {instance: int(max(counts)) for instance, counts in exports.items()}


def _executing_levels(received: Received) -> dict[str, float]:
    """Per instance, the last exported ``workflow.execution.active{executing}`` (an int sum)."""
    exports = _executing_exports(received, "workflow.execution.active", "as_int")
    return {instance: levels[-1] for instance, levels in exports.items()}


def test_fork_per_job_children_export_exactly_their_own() -> None:
    with http_receiver() as (endpoint, received):
        result = run_engine(
            "tests.engines.fork_job_engine",
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_BSP_SCHEDULE_DELAY="60000",
            OTEL_METRIC_EXPORT_INTERVAL="60000",
        )
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout.strip().splitlines()[-1])["exit_codes"] == [0, 0, 0, 0]
        wanted = ["child-0", "child-1", "child-2", "parent-1", "parent-2"]
        assert received.wait_for(
            lambda r: (
                _execution_ids(r, "execution job") == wanted
                and sum(_executing_counts(r).values()) >= 5
            )
        ), (_execution_ids(received, "execution job"), _executing_counts(received))
        # Exactly once each: no execution exported twice, no orphan step.
        assert _execution_ids(received, "execution job") == wanted
        executions = {s.span_id: s for s in received.spans if s.name == "execution job"}
        steps = [s for s in received.spans if s.name == "step work"]
        assert len(steps) == 5
        assert all(s.parent_span_id in executions for s in steps)
        # Each process is its own source; the fleet's histograms count what ran.
        instance_of = {
            str(s.attributes["workflow.execution.id"]): str(s.resource["service.instance.id"])
            for s in executions.values()
        }
        assert instance_of["parent-1"] == instance_of["parent-2"]
        assert len(set(instance_of.values())) == 4
        counts = _executing_counts(received)
        assert counts[instance_of["parent-1"]] == 2
        assert [counts[instance_of[f"child-{n}"]] for n in range(3)] == [1, 1, 1]
        assert sum(counts.values()) == 5
        # Nothing runs any more, fleet-wide (0.1 read 3: the parent's level re-exported).
        levels = _executing_levels(received)
        assert len(levels) == 4
        assert sum(levels.values()) == 0


def test_fork_while_threads_record_never_hangs_a_child() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tests.engines.fork_load_engine", "40"],
        capture_output=True,
        text=True,
        timeout=600,
        env=clean_environment(),
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["hung"] == 0, report
    assert report["exit_codes"] == [0] * 40
