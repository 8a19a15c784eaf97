"""A spawn ProcessPoolExecutor running decorated functions, pickled by reference.

Usage: python -m tests.engines.spawn_pool_engine   (OTEL_* variables point at a receiver)

The parent never configures stepwatch; each worker does in its initializer.
Workers leave with os._exit (multiprocessing's way), so they rely on
configure()'s flush at multiprocessing exit. Prints the results as JSON.
"""

from __future__ import annotations

import json
import multiprocessing
from concurrent.futures import ProcessPoolExecutor

import stepwatch


@stepwatch.step("square", step_type="compute")
def square(number: int) -> int:
    return number * number


@stepwatch.execution("pool-job", execution_id=lambda number: f"pool-{number}", total_steps=1)
def pool_job(number: int) -> int:
    return square(number)


def start_worker() -> None:
    stepwatch.configure(service_name="spawn-pool")


def main() -> None:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(2, mp_context=context, initializer=start_worker) as pool:
        results = list(pool.map(pool_job, range(6)))
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
