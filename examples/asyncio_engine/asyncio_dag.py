"""An asyncio DAG engine with parallel steps, retries and a timeout, serving HTTP while it runs."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import stepwatch

monitor = stepwatch.configure(service_name="asyncio-dag")
server = monitor.serve()  # 127.0.0.1, a free port


class Flaky(Exception):
    """A transient upstream error: retried."""


@stepwatch.step(step_type="http")
async def fetch(source: str, attempt: int, fail_first: bool) -> str:
    await asyncio.sleep(0.02)
    if fail_first and attempt == 0:
        raise Flaky(f"{source} timed out upstream")
    return f"data from {source}"


async def fetch_with_retry(source: str, fail_first: bool) -> str:
    for attempt in range(3):
        try:
            return await fetch(source, attempt, fail_first)
        except Flaky:
            await asyncio.sleep(0.01)
    raise RuntimeError(f"{source}: out of retries")


@stepwatch.step(step_type="compute")
async def merge(parts: list[str], slow: bool) -> str:
    await asyncio.wait_for(asyncio.sleep(0.5 if slow else 0.01), timeout=0.1)
    return " + ".join(parts)


@stepwatch.step(step_type="io")
async def publish(result: str) -> None:
    await asyncio.sleep(0.01)


@stepwatch.execution("dag", total_steps=4, execution_id=lambda n: f"dag-{n}")
async def run_dag(n: int) -> str:
    parts = await asyncio.gather(
        fetch_with_retry("a", fail_first=n % 2 == 0), fetch_with_retry("b", fail_first=False)
    )
    result = await merge(list(parts), slow=n == 3)
    await publish(result)
    return result


def get(path: str) -> dict[str, Any]:
    with urllib.request.urlopen(server.url + path, timeout=10) as response:
        data: dict[str, Any] = json.loads(response.read())
        return data


async def main() -> dict[str, str]:
    outcomes: dict[str, str] = {}
    tasks = {n: asyncio.create_task(run_dag(n)) for n in range(5)}
    await asyncio.sleep(0.005)
    running = await asyncio.to_thread(get, "/executions")
    print("running mid-run:", [e["execution_id"] for e in running["executions"]])
    for n, task in tasks.items():
        try:
            await task
            outcomes[f"dag-{n}"] = "success"
        except TimeoutError:
            outcomes[f"dag-{n}"] = "timeout"
    return outcomes


outcomes = asyncio.run(main())
summary = monitor.summary()
health = get("/healthz")
print("outcomes:", outcomes)
print("summary:", summary.outcomes, "retried fetches:", summary.steps["http"].outcomes)
print("healthz:", health["status"])
assert list(outcomes.values()).count("timeout") == 1
assert summary.total == 5
assert summary.steps["http"].outcomes.get("failure", 0) >= 1  # retries are visible
server.close()
monitor.shutdown()
