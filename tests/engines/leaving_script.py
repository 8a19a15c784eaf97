"""A script that configures stepwatch, drops the result and leaves one of several ways.

Usage: python -m tests.engines.leaving_script <how>   (OTEL_* variables point at a receiver)

Runs three executions (``configure()``'s result is not kept), then:

- ``exit``: returns (a normal interpreter exit);
- ``sigterm``: prints ``ready`` and whether SIGTERM has its default action,
  then waits to be stopped by SIGTERM;
- ``own-handler``: the same, with a SIGTERM handler of its own set before
  ``configure()`` (it exits with status 3).
"""

from __future__ import annotations

import signal
import sys
import threading
from types import FrameType

import stepwatch


def _own_handler(signum: int, frame: FrameType | None) -> None:
    sys.exit(3)


def main(how: str) -> None:
    if how == "own-handler":
        signal.signal(signal.SIGTERM, _own_handler)
    stepwatch.configure(service_name="script")
    for number in range(3):
        with stepwatch.execution("script-job", execution_id=f"job-{number}"):
            pass
    if how == "exit":
        return
    # Whether SIGTERM still has its default action (stepwatch installed nothing).
    print("ready", signal.getsignal(signal.SIGTERM) is signal.SIG_DFL, flush=True)
    threading.Event().wait(120)  # until SIGTERM: the test sends it at once
    sys.exit(4)


if __name__ == "__main__":
    main(sys.argv[1])
