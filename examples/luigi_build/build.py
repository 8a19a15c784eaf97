# mypy: disable-error-code="no-untyped-call, untyped-decorator"
"""Recipe: a luigi build as one stepwatch execution, each luigi task of it a step.

luigi has no stepwatch integration and needs none: its event handlers mark
each task's start and end, and ``luigi.build`` is one call to wrap. With
``workers=1`` (luigi's default) the tasks run in the calling thread, inside
the execution's context; with more workers luigi forks a process per task,
where each task is better its own execution (decorate ``run`` with
``stepwatch.execution``), see docs/integrations.md.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

try:
    import luigi
    from luigi.task import flatten
except ImportError as missing:  # `make demo` installs only the cli extra
    sys.exit(f"this example needs luigi ({missing}): pip install 'stepwatch[examples]'")

import stepwatch
from stepwatch import Step, StepScope

_open_steps: dict[str, tuple[StepScope, Step]] = {}


@luigi.Task.event_handler(luigi.Event.START)
def _task_started(task: luigi.Task) -> None:
    execution = stepwatch.current_execution()
    if execution is not None:
        scope = execution.step(task.task_family, step_type="luigi")
        _open_steps[task.task_id] = (scope, scope.__enter__())


@luigi.Task.event_handler(luigi.Event.SUCCESS)
def _task_succeeded(task: luigi.Task) -> None:
    _end_step(task, None)


@luigi.Task.event_handler(luigi.Event.FAILURE)
def _task_failed(task: luigi.Task, exception: BaseException) -> None:
    _end_step(task, exception)


def _end_step(task: luigi.Task, exc: BaseException | None) -> None:
    entry = _open_steps.pop(task.task_id, None)
    if entry is not None:
        scope, _step = entry
        scope.__exit__(None if exc is None else type(exc), exc, None)


def _graph(tasks: list[luigi.Task]) -> set[str]:
    """Every task id the build needs, not complete yet: the build's total steps."""
    seen: set[str] = set()
    stack = list(tasks)
    while stack:
        task = stack.pop()
        if task.task_id not in seen and not task.complete():
            seen.add(task.task_id)
            stack.extend(flatten(task.requires()))
    return seen


def build(tasks: list[luigi.Task], *, name: str, execution_id: str) -> bool:
    """``luigi.build`` as one execution: ``failure`` when luigi reports a failed task."""
    total = len(_graph(tasks))
    with stepwatch.execution(name, execution_id=execution_id, total_steps=total) as execution:
        ok: bool = luigi.build(tasks, local_scheduler=True, workers=1, log_level="WARNING")
        if not ok:
            execution.fail("luigi reported a failed task")
    return ok


# ------------------------------------------------------------------------- a pipeline
OUT = Path(tempfile.mkdtemp(prefix="luigi-build-"))


class Extract(luigi.Task):
    def output(self) -> Any:
        return luigi.LocalTarget(str(OUT / "extract.txt"))

    def run(self) -> None:
        with self.output().open("w") as out:
            out.write("1 2 3\n")


class Transform(luigi.Task):
    def requires(self) -> Any:
        return Extract()

    def output(self) -> Any:
        return luigi.LocalTarget(str(OUT / "transform.txt"))

    def run(self) -> None:
        with self.input().open() as source, self.output().open("w") as out:
            out.write(str(sum(int(v) for v in source.read().split())))


class Load(luigi.Task):
    def requires(self) -> Any:
        return Transform()

    def output(self) -> Any:
        return luigi.LocalTarget(str(OUT / "load.txt"))

    def run(self) -> None:
        with self.input().open() as source, self.output().open("w") as out:
            out.write(source.read())


if __name__ == "__main__":
    monitor = stepwatch.configure(service_name="luigi-build")
    ok = build([Load()], name="nightly-build", execution_id="build-1")
    progress = monitor.progress("build-1")
    assert progress is not None
    steps = ", ".join(step.name for step in progress.steps)
    print(f"build: {progress.completed_steps} of {progress.total_steps} steps, {progress.state}")
    print(f"steps in order: {steps}")
    print(f"luigi ok: {ok}, result: {(OUT / 'load.txt').read_text()}")
    monitor.shutdown()
