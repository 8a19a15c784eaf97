"""Every example runs to completion as a subprocess and checks what it claims."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = {
    "quickstart.py": ["success 100.0 True", "health: healthy"],
    "asyncio_engine/asyncio_dag.py": ["'dag-3': 'timeout'", "healthz: pass"],
    "threadpool_engine/threadpool_dag.py": ["every execution: 3 of 3 steps, success"],
    "multiprocess_queue/pipeline.py": [
        "depth read from the queue: 8",
        "every job: one trace from enqueue to finish",
    ],
    "approvals/approvals.py": ["2 approved and deployed, 1 rejected"],
    "luigi_build/build.py": [
        "build: 3 of 3 steps, success",
        "steps in order: Extract, Transform, Load",
        "luigi ok: True, result: 6",
    ],
    "dask_graph/dask_graph.py": [
        "threaded: result 780, 5 of 5 steps",
        "distributed: [0, 1, 4], in a worker process: True, decorated: True",
        "group summary: 3 x score",
    ],
    "prefork_pool/pool.py": [
        "running in the pool: w2-long 75%",
        "pool summary: 9 executions, 1 failed, nothing running: True",
    ],
}


@pytest.mark.parametrize("script", sorted(EXAMPLES))
def test_example_runs(script: str) -> None:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script)],
        capture_output=True,
        text=True,
        timeout=180,
        env=environment,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for expected in EXAMPLES[script]:
        assert expected in result.stdout, (expected, result.stdout)


def test_every_example_has_a_readme_and_a_test() -> None:
    folders = {p.parent.name for p in (ROOT / "examples").glob("*/*.py")}
    assert folders == {
        "asyncio_engine",
        "threadpool_engine",
        "multiprocess_queue",
        "approvals",
        "prefork_pool",
        "luigi_build",
        "dask_graph",
    }
    for folder in [*folders, "collector"]:
        assert (ROOT / "examples" / folder / "README.md").is_file(), folder
    scripts = {str(p.relative_to(ROOT / "examples")) for p in (ROOT / "examples").rglob("*.py")}
    assert scripts == set(EXAMPLES)


@pytest.mark.parametrize(
    ("script", "library"), [("luigi_build/build.py", "luigi"), ("dask_graph/dask_graph.py", "dask")]
)
def test_an_example_whose_engine_is_missing_says_what_to_install(
    tmp_path: Path, script: str, library: str
) -> None:
    shim = tmp_path / library
    shim.mkdir()
    (shim / "__init__.py").write_text(f"raise ImportError('No module named {library}')\n")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    environment["PYTHONPATH"] = os.pathsep.join([str(tmp_path), environment.get("PYTHONPATH", "")])
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / script)],
        capture_output=True,
        text=True,
        timeout=180,
        env=environment,
        cwd=ROOT,
        check=False,
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert library in line and "pip install 'stepwatch[examples]'" in line
    readme = (ROOT / "examples" / script).parent / "README.md"
    assert "pip install -e '.[examples]'" in readme.read_text()
