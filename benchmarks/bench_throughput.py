"""Throughput: executions per second exported to a real OTLP receiver with no dropped spans.

Run with ``python benchmarks/bench_throughput.py [--seconds S] [--json]``.

An OTLP/HTTP receiver runs in its own process on 127.0.0.1 (so it does not
share the engine's interpreter lock). The engine, configured by
``stepwatch.configure()`` with the default BatchSpanProcessor settings
except a 500 ms schedule delay, runs executions of one step each at rising
target rates, each for a few seconds, paced on the wall clock. For each rate:
the rate achieved, the spans the processor dropped (counted by stepwatch),
the spans the receiver got, and whether ``health()`` shows
``TelemetryExportFailing``. The highest rate with no drop is the sustained
throughput; the first rate with drops is where the queue gives way.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RATES = (250, 500, 1_000, 2_000, 4_000, 8_000, 16_000)

RECEIVER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from tests.otlp_receivers import http_receiver
    with http_receiver() as (endpoint, received):
        print(endpoint, flush=True)
        for line in sys.stdin:
            print(len(received.spans), flush=True)
    """
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument(
        "--max-queue",
        type=int,
        help="OTEL_BSP_MAX_QUEUE_SIZE (batch size a quarter of it); default: the SDK's 2,048",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    receiver = subprocess.Popen(
        [sys.executable, "-c", RECEIVER, str(ROOT)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert receiver.stdin is not None and receiver.stdout is not None
    endpoint = receiver.stdout.readline().strip()

    def received_spans() -> int:
        assert receiver.stdin is not None and receiver.stdout is not None
        receiver.stdin.write("count\n")
        receiver.stdin.flush()
        return int(receiver.stdout.readline())

    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = "http/protobuf"
    os.environ["OTEL_BSP_SCHEDULE_DELAY"] = "500"
    if args.max_queue:
        os.environ["OTEL_BSP_MAX_QUEUE_SIZE"] = str(args.max_queue)
        os.environ["OTEL_BSP_MAX_EXPORT_BATCH_SIZE"] = str(max(1, args.max_queue // 4))
    import stepwatch  # noqa: PLC0415 - after the environment is set

    monitor = stepwatch.configure(service_name="throughput")
    flush = getattr(monitor.tracer_provider, "force_flush", lambda: True)
    results: list[dict[str, Any]] = []
    serial = 0
    for rate in RATES:
        dropped_before = monitor.export_status.dropped_spans
        flush()
        received_before = received_spans()
        monitor.health(refresh=True)  # the rule compares drops with the previous evaluation
        interval = 1.0 / rate
        started = time.perf_counter()
        deadline = started + args.seconds
        done = 0
        next_at = started
        while (now := time.perf_counter()) < deadline:
            if now < next_at:
                time.sleep(next_at - now)  # pacing to the target rate
            with (
                stepwatch.execution("throughput", execution_id=f"t-{serial}"),
                stepwatch.step("s", step_type="unit"),
            ):
                pass
            serial += 1
            done += 1
            next_at += interval
        achieved = done / (time.perf_counter() - started)
        firing = [a.rule for a in monitor.health(refresh=True).alerts]
        flush()
        results.append(
            {
                "target_per_s": rate,
                "achieved_per_s": round(achieved),
                "spans_sent": done * 2,
                "spans_dropped": monitor.export_status.dropped_spans - dropped_before,
                "spans_received": received_spans() - received_before,
                "health_alerts": firing,
            }
        )
        if achieved < rate * 0.8:
            break  # the engine itself cannot go faster: higher targets tell nothing new
    monitor.shutdown()
    receiver.stdin.close()
    receiver.wait(timeout=30)

    clean = [r for r in results if r["spans_dropped"] == 0]
    dropping = [r for r in results if r["spans_dropped"] > 0]
    summary = {
        "sustained_executions_per_s_without_drops": max(
            (r["achieved_per_s"] for r in clean), default=0
        ),
        "first_rate_with_drops": dropping[0]["achieved_per_s"] if dropping else None,
        "runs": results,
    }
    if args.json:
        print(json.dumps(summary))
        return
    print(f"{'target/s':>9}{'achieved/s':>11}{'sent':>8}{'dropped':>9}{'received':>10}  health")
    for r in results:
        print(
            f"{r['target_per_s']:>9}{r['achieved_per_s']:>11}{r['spans_sent']:>8}"
            f"{r['spans_dropped']:>9}{r['spans_received']:>10}  "
            f"{','.join(r['health_alerts']) or '-'}"
        )
    print(
        f"\nsustained without drops: {summary['sustained_executions_per_s_without_drops']} "
        f"executions/s; drops from: {summary['first_rate_with_drops']}"
    )


if __name__ == "__main__":
    main()
