"""A prefork pool sharing one process group: the parent serves the whole pool's view over HTTP.

The parent calls ``configure(multiprocess_dir=...)``, serves its Monitor on
127.0.0.1 and forks three workers. Each worker (a new telemetry source and a
member of the group of its own) holds one long job open, then runs two quick
ones (one fails) and leaves with ``os._exit``, as prefork workers do. The
parent's HTTP answers show every worker's running job, then the pool's
summary: no worker serves anything.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.request
from typing import Any

import stepwatch

WORKERS = 3


def fetch(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def work(number: int, ready: int, go: int) -> None:
    """One worker: a held job, then two quick ones; then leave as prefork workers do."""
    with stepwatch.execution("render", execution_id=f"w{number}-long", total_steps=2) as ex:
        with ex.step("fetch"):
            pass
        with ex.step("render") as step:
            step.progress(0.5)
            os.write(ready, b"r")
            os.read(go, 1)
    for job in range(2):
        try:
            with stepwatch.execution("render", execution_id=f"w{number}-quick-{job}"):
                if job == 1 and number == 0:
                    raise RuntimeError("a broken page")
        except RuntimeError:
            pass
    os._exit(0)


def until(condition: Any, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


def main() -> None:
    directory = tempfile.mkdtemp(prefix="stepwatch-group-")
    monitor = stepwatch.configure(service_name="render-pool", multiprocess_dir=directory)
    server = monitor.serve()
    ready_read, ready_write = os.pipe()
    pids, gates = [], []
    for number in range(WORKERS):
        go_read, go_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            work(number, ready_write, go_read)
        pids.append(pid)
        gates.append(go_write)
    for _ in range(WORKERS):
        os.read(ready_read, 1)

    def running() -> list[dict[str, Any]]:
        listed = fetch(f"{server.url}/executions")["executions"]
        # A worker publishes when its job starts (0%), then every second.
        found = [e for e in listed if e["state"] == "executing" and e["percent"] > 0]
        return found if len(found) == WORKERS else []

    for execution in sorted(until(running), key=lambda e: e["execution_id"]):
        print(f"running in the pool: {execution['execution_id']} {execution['percent']:.0f}%")
    for gate in gates:
        os.write(gate, b"g")
    for pid in pids:
        os.waitpid(pid, 0)
    summary = until(lambda: (s := fetch(f"{server.url}/summary"))["total"] == 3 * WORKERS and s)
    print(
        f"pool summary: {summary['total']} executions, "
        f"{summary['outcomes']['failure']} failed, nothing running: "
        f"{fetch(f'{server.url}/executions')['executions'] == []}"
    )
    print("healthz:", fetch(f"{server.url}/healthz")["status"])
    server.close()
    monitor.shutdown()
    shutil.rmtree(directory)


if __name__ == "__main__":
    main()
