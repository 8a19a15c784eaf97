"""cloudpickle by value: a decorated function of __main__ runs, decorated, in another process.

Usage:
    python -m tests.engines.cloudpickle_engine dump FILE   # pickles main_job by value into FILE
    python -m tests.engines.cloudpickle_engine run FILE    # configure(), load FILE, call it

``dump`` runs this module as ``__main__``, so cloudpickle pickles the
function by value (as dask and other distributed engines do); ``run`` is a
process that never defined it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import cloudpickle

import stepwatch


@stepwatch.execution("by-value", execution_id=lambda n: f"value-{n}")
def main_job(number: int) -> int:
    with stepwatch.step("inner", step_type="compute"):
        return number + 1


def main() -> None:
    mode, path = sys.argv[1], Path(sys.argv[2])
    if mode == "dump":
        path.write_bytes(cloudpickle.dumps(main_job))
        return
    monitor = stepwatch.configure(service_name="cloudpickle-runner")
    loaded: Any = cloudpickle.loads(path.read_bytes())
    print(loaded(41), flush=True)
    monitor.shutdown()


if __name__ == "__main__":
    main()
