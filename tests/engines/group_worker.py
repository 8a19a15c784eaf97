"""A worker process of a process group, driven line by line on stdin.

Usage: python -m tests.engines.group_worker DIR WORKER [CARRIER_JSON]

Joins the group in DIR (publishing every 0.5 s), starts one execution
``WORKER-running`` (from CARRIER_JSON when given: the producer's enqueue)
that finishes its first step of four and reports half of the second, prints
``READY`` and waits. Commands:

- ``end``: finish that execution, then run three quick ones (the second
  fails), print ``DONE``;
- ``exit``: shut the Monitor down (a last publish) and leave.
"""

from __future__ import annotations

import json
import sys
import threading

import stepwatch


def main() -> None:
    directory, worker = sys.argv[1], sys.argv[2]
    carrier = json.loads(sys.argv[3]) if len(sys.argv) > 3 else None
    monitor = stepwatch.Monitor(multiprocess_dir=directory, publish_interval=0.5).install()
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        execution_id = None if carrier else f"{worker}-running"
        with stepwatch.execution(
            "held", execution_id=execution_id, total_steps=4, carrier=carrier
        ) as ex:
            with ex.step("first"):
                pass
            with ex.step("second") as step:
                step.progress(0.5)
                started.set()
                release.wait(120)

    holder = threading.Thread(target=hold)
    holder.start()
    started.wait(60)
    print("READY", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "end":
            release.set()
            holder.join()
            for number in range(3):
                try:
                    with stepwatch.execution("quick", execution_id=f"{worker}-quick-{number}"):
                        if number == 1:
                            raise RuntimeError("the second one fails")
                except RuntimeError:
                    pass
            print("DONE", flush=True)
        elif command == "exit":
            break
    monitor.shutdown()


if __name__ == "__main__":
    main()
