"""Fork while other threads record: every child must finish (no lock inherited mid-acquire).

Usage: python -m tests.engines.fork_load_engine [FORKS]

Four threads run executions with steps in a loop while the main thread forks
FORKS children (default 32). Each child runs one execution with a step and
leaves with ``os._exit(0)``. The parent waits for each child for at most 20 s,
kills the ones still running, and prints one JSON line:
``{"forks": N, "hung": H, "exit_codes": [...]}``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time

import stepwatch

_CHILD_DEADLINE = 20.0


def _record_forever(stop: threading.Event, number: int) -> None:
    while not stop.is_set():
        with stepwatch.execution("busy", total_steps=1) as ex, ex.step("spin", step_type="cpu"):
            pass


def _child(number: int) -> None:
    with (
        stepwatch.execution("forked", execution_id=f"forked-{number}") as ex,
        ex.step("work", step_type="cpu"),
    ):
        pass
    os._exit(0)


def _wait(pid: int) -> int | None:
    """The child's exit code, or None if it was still running at the deadline (then killed)."""
    deadline = time.monotonic() + _CHILD_DEADLINE
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.01)  # polling a child's exit: no event to wait on across fork
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None


def main() -> None:
    forks = int(sys.argv[1]) if len(sys.argv) > 1 else 32
    monitor = stepwatch.configure(service_name="fork-load", exporter="none")
    stop = threading.Event()
    threads = [threading.Thread(target=_record_forever, args=(stop, n)) for n in range(4)]
    for thread in threads:
        thread.start()
    codes: list[int | None] = []
    for number in range(forks):
        pid = os.fork()
        if pid == 0:
            _child(number)
        codes.append(_wait(pid))
    stop.set()
    for thread in threads:
        thread.join()
    monitor.shutdown()
    print(json.dumps({"forks": forks, "hung": codes.count(None), "exit_codes": codes}), flush=True)


if __name__ == "__main__":
    main()
