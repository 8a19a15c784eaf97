"""SSE clients: what ten ``/events`` streams cost the engine, one process.

Run: ``python benchmarks/bench_sse.py [--batches N] [--json]``.

Two Monitors are built alike and both serve HTTP on 127.0.0.1; ten
Server-Sent Events clients, in a separate process (as a dashboard or
``stepwatch top`` would be), stream ``/events`` from one of them. Batches of
executions of 5 steps run with each Monitor installed in turn, interleaved,
so the ratio (the median over batches of the ratio within a batch) is the
engine's cost with ten clients against none: the
server's threads serialize each event once and write it to ten sockets,
competing with the engine for the interpreter. Target from issue #12: <= 2x.

The clients count the events they receive; the figure is printed only when
every client got events (a stream that delivers nothing would cost nothing).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import textwrap
import time

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

import stepwatch

CLIENTS = 10
STEPS = 5
TARGET = 2.0

# The clients: one process, ten sockets, read until stdin closes and nothing
# more arrives for 2 s; prints how many ``data:`` lines each received.
_CLIENT = textwrap.dedent(
    """
    import selectors, socket, sys, threading
    host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    selector = selectors.DefaultSelector()
    received = {}
    for index in range(count):
        connection = socket.create_connection((host, port))
        connection.sendall(b"GET /events HTTP/1.1\\r\\nHost: bench\\r\\n\\r\\n")
        connection.setblocking(False)
        selector.register(connection, selectors.EVENT_READ, index)
        received[index] = 0
    print("connected", flush=True)
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    while True:
        ready = selector.select(timeout=2.0)
        if not ready and done.is_set():
            break  # told to stop, and what was in flight has been read
        for key, _ in ready:
            data = key.fileobj.recv(1 << 16)
            received[key.data] += data.count(b"\\ndata:") + data.startswith(b"data:")
    print(" ".join(str(received[index]) for index in range(count)), flush=True)
    """
)


def monitor() -> stepwatch.Monitor:
    return stepwatch.Monitor(
        tracer_provider=TracerProvider(),
        meter_provider=MeterProvider(metric_readers=[InMemoryMetricReader()]),
    )


def run(steps: int) -> None:
    with stepwatch.execution("bench", total_steps=steps):
        for _ in range(steps):
            with stepwatch.step("work", step_type="bench"):
                pass


def batch(watched: stepwatch.Monitor, repeat: int) -> float:
    """ns per execution of 5 steps with ``watched`` installed."""
    watched.install()
    try:
        start = time.perf_counter_ns()
        for _ in range(repeat):
            run(STEPS)
        return (time.perf_counter_ns() - start) / repeat
    finally:
        watched.uninstall()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--batches", type=int, default=15)
    parser.add_argument("--repeat", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    quiet, streamed = monitor(), monitor()
    quiet_server, streamed_server = quiet.serve(), streamed.serve()
    host, port = streamed_server.url.removeprefix("http://").split(":")
    clients = subprocess.Popen(
        [sys.executable, "-c", _CLIENT, host, port, str(CLIENTS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert clients.stdin is not None and clients.stdout is not None
    try:
        if clients.stdout.readline().strip() != "connected":
            raise SystemExit("the SSE clients did not connect")
        samples: dict[str, list[float]] = {"none": [], "ten": []}
        for _ in range(args.batches):
            samples["none"].append(batch(quiet, args.repeat))
            samples["ten"].append(batch(streamed, args.repeat))
    finally:
        clients.stdin.close()
        received = [int(n) for n in clients.stdout.readline().split()]
        clients.wait(timeout=30)
        quiet_server.close()
        streamed_server.close()
    none, ten = statistics.median(samples["none"]), statistics.median(samples["ten"])
    # The median of the ratios within a batch: drift between batches cancels out.
    ratio = statistics.median(t / n for t, n in zip(samples["ten"], samples["none"], strict=True))
    published = args.batches * args.repeat * (2 + 2 * STEPS)
    if len(received) != CLIENTS or min(received) == 0:
        raise SystemExit(f"a client received nothing: {received}")
    result = {
        "no_clients_ns": round(none),
        "ten_clients_ns": round(ten),
        "ratio": round(ratio, 3),
        "target": TARGET,
        "met": ratio <= TARGET,
        "events_published": published,
        "events_received_per_client_min": min(received),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"execution of {STEPS} steps, no SSE client   {none:>12,.0f} ns")
    print(f"execution of {STEPS} steps, {CLIENTS} SSE clients  {ten:>12,.0f} ns")
    verdict = "met" if result["met"] else "missed"
    print(f"ratio {ratio:.3f} (target <= {TARGET}): {verdict}")
    print(f"events published {published:,}; fewest received by a client {min(received):,}")


if __name__ == "__main__":
    main()
