"""What a process group reader costs as peers grow: N copies of one busy peer's file.

Run: ``python benchmarks/bench_group_reader.py N`` (e.g. 47, 95, 190).

One member holds 1,000 running executions (5 steps declared, 2 done, one
running) and 200 finished ones, publishes its file (about 400 KiB) and
leaves; the directory then holds N copies of that file under N member names.
A reader (``publish_interval=None``) answers its first ``active_executions()``:
every file parsed and its records decoded. Printed: that query's time, how
much the reader's resident memory grew, and how many peer files it read (the
reader's limits, ``stepwatch.group.MAX_PEERS`` and ``MAX_READ_BYTES``, cap it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_group
from stepwatch import Monitor


def _rss_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("peers", type=int)
    options = parser.parse_args()
    directory = Path(tempfile.mkdtemp(prefix="stepwatch-bench-reader-"))
    try:
        writer = Monitor(multiprocess_dir=directory, publish_interval=600.0).install()
        bench_group._fill(writer)
        assert writer.group is not None
        writer.group.publish()
        data = writer.group.path.read_bytes()
        writer.shutdown()
        writer.group.path.unlink()
        for _ in range(options.peers):
            name = f"{os.getpid()}-{uuid.uuid4().hex[:12]}.stepwatch.json"
            (directory / name).write_bytes(data)
        reader = Monitor(multiprocess_dir=directory, publish_interval=None)
        assert reader.group is not None
        before = _rss_mib()
        start = time.perf_counter()
        reader.active_executions()
        took = (time.perf_counter() - start) * 1000
        grown = _rss_mib() - before
        reader.shutdown()
        print(
            f"{options.peers} peers ({len(data) // 1024} KiB each): first active_executions() "
            f"{took:.0f} ms, resident memory +{grown:.0f} MiB, "
            f"{len(reader.group.peers())} peer files read"
        )
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    main()
