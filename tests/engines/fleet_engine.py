"""An engine that exposes its metrics for Prometheus and serves its own Monitor.

Usage: python -m tests.engines.fleet_engine NAME FAILURE_EVERY METRICS_PORT

Runs executions of NAME in batches of five until standard input closes; in each
batch the first FAILURE_EVERY executions fail (0: none, 2: 40%). Metrics are exposed through
opentelemetry-exporter-prometheus on 127.0.0.1:METRICS_PORT; the Monitor is
served on a free port, printed as ``monitor <url>`` on the first line.
"""

from __future__ import annotations

import sys
import threading
import time

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client import start_http_server

import stepwatch


class JobError(Exception):
    """The engine's own failure."""


def main() -> None:
    name, failing, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    start_http_server(port, addr="127.0.0.1")
    meter_provider = MeterProvider(metric_readers=[PrometheusMetricReader()])
    monitor = stepwatch.configure(service_name=f"fleet-{name}", meter_provider=meter_provider)
    monitor.start(interval=1.0)
    handle = monitor.serve()
    print(f"monitor {handle.url}", flush=True)

    stop = threading.Event()

    def wait_for_stdin_to_close() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_stdin_to_close, daemon=True).start()
    count = 0
    while not stop.is_set():
        for position in range(5):
            try:
                with stepwatch.execution(name), stepwatch.step("work", step_type="compute"):
                    if position < failing:
                        raise JobError("failed on purpose")
            except JobError:
                pass
            count += 1
        time.sleep(0.2)  # pacing: the workload spreads over Prometheus's scrapes
    handle.close()
    monitor.shutdown()
    print(f"ran {count}", flush=True)


if __name__ == "__main__":
    main()
