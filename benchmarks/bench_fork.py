"""What a forked child pays for exporting each execution before a possible ``os._exit``.

Run: ``python benchmarks/bench_fork.py [--batches N] [--calls N]``.

In a forked child stepwatch flushes the spans and metrics of every execution
when it ends (a fork-per-job worker may ``os._exit`` right after). This
measures, inside one forked child, an execution of one step:

- ``no flush``: the child's pipeline with the per-execution flush switched
  off (the baseline: the same execution, the same providers and exporters);
- ``flush``: as stepwatch runs in a forked child, exporting over OTLP/HTTP to
  a receiver on 127.0.0.1 that answers 200 at once.

Batches of the two setups are interleaved. The parent pays nothing: it never
flushes per execution. Prints median microseconds per execution and the ratio.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import stepwatch
from stepwatch import _telemetry  # the benchmark switches the flush off for its baseline


class _Accept(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@stepwatch.execution("bench-job", total_steps=1)
def job() -> None:
    with stepwatch.step("work", step_type="compute"):
        pass


def _time(calls: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(calls):
        job()
    return (time.perf_counter_ns() - start) / calls / 1000


def _child(batches: int, calls: int, write: int) -> None:
    flushing = _telemetry.current()
    quiet = dataclasses.replace(flushing, flush=None)
    results: dict[str, list[float]] = {"flush": [], "no flush": []}
    for _ in range(batches):
        _telemetry.install(quiet)
        results["no flush"].append(_time(calls))
        _telemetry.install(flushing)
        results["flush"].append(_time(calls))
    os.write(write, json.dumps(results).encode())
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=11)
    parser.add_argument("--calls", type=int, default=50)
    options = parser.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Accept)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{server.server_address[1]}"
    monitor = stepwatch.configure(service_name="bench-fork")
    job()  # warm the parent's pipeline up
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        _child(options.batches, options.calls, write)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.waitpid(pid, 0)
    results = json.loads(b"".join(chunks))
    base = statistics.median(results["no flush"])
    flush = statistics.median(results["flush"])
    print(f"{'setup':<12} {'median us/execution':>20} {'x no flush':>11}")
    print(f"{'no flush':<12} {base:>20.1f} {1.0:>11.2f}")
    print(f"{'flush':<12} {flush:>20.1f} {flush / base:>11.2f}")
    monitor.shutdown()
    server.shutdown()


if __name__ == "__main__":
    main()
