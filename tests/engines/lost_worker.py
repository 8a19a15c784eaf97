"""A member of a process group that runs enqueued work, driven line by line on stdin.

Usage: python -m tests.engines.lost_worker DIR CARRIERS_JSON_FILE HELD

Joins the group in DIR (publishing every 0.2 s). Of the carriers in the file
(``stepwatch.enqueue`` results), the first HELD start and stay running (two
steps of three done, the third running), each on its own thread; the others
run to completion at once. Publishes, prints ``READY`` and waits. Commands:

- ``lost``: print ``LOST n``, the ``execution.lost`` events this process recorded;
- ``exit``: let the held executions end, shut the Monitor down and leave.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import stepwatch


def main() -> None:
    directory, carriers_file, held = sys.argv[1], sys.argv[2], int(sys.argv[3])
    carriers = json.loads(Path(carriers_file).read_text())
    monitor = stepwatch.Monitor(multiprocess_dir=directory, publish_interval=0.2).install()
    release = threading.Event()
    holders = []

    def hold(carrier: dict[str, str], started: threading.Event) -> None:
        with stepwatch.execution("job", total_steps=3, carrier=carrier) as ex:
            for name in ("fetch", "parse"):
                with ex.step(name):
                    pass
            with ex.step("store"):
                started.set()
                release.wait(120)

    for carrier in carriers[:held]:
        started = threading.Event()
        holder = threading.Thread(target=hold, args=(carrier, started))
        holder.start()
        started.wait(60)
        holders.append(holder)
    for carrier in carriers[held:]:
        with stepwatch.execution("job", total_steps=1, carrier=carrier):
            pass
    assert monitor.group is not None
    monitor.group.publish()
    print("READY", flush=True)
    for line in sys.stdin:
        command = line.strip()
        if command == "lost":
            print(f"LOST {len(monitor.events(event_type='execution.lost'))}", flush=True)
        elif command == "exit":
            break
    release.set()
    for holder in holders:
        holder.join()
    monitor.shutdown()


if __name__ == "__main__":
    main()
