"""The sample engine behind ``stepwatch demo``: an asyncio order pipeline, instrumented.

A producer ``enqueue``s executions onto an ``asyncio.Queue``; ``concurrency``
workers take them and run a five-step pipeline (validate, fetch, transform,
approve, store) with varied durations and step types. Some fetches fail, some
time out (``asyncio.wait_for``), large orders wait for a human approval, and a
few are rejected. Everything is recorded through stepwatch's public API.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import stepwatch

__all__ = ["DemoConfig", "Order", "run_engine"]

PIPELINE = "order-pipeline"
STEPS = 5


@dataclass(frozen=True, slots=True)
class DemoConfig:
    """How the demo engine behaves."""

    executions: int = 24
    concurrency: int = 4
    failure_rate: float = 0.15
    seed: int = 7
    speed: float = 1.0
    """Multiplier on every sleep (lower is faster; tests use a small one)."""


@dataclass(slots=True)
class Order:
    """One unit of work on the queue."""

    number: int
    amount: float
    carrier: dict[str, str] = field(default_factory=dict)

    @property
    def execution_id(self) -> str:
        return f"order-{self.number:03d}"


class FetchError(RuntimeError):
    """The upstream service refused the order."""


class ApprovalRejected(RuntimeError):
    """A human said no."""


async def _nap(config: DemoConfig, rng: random.Random, low: float, high: float) -> None:
    await asyncio.sleep(rng.uniform(low, high) * config.speed)


@stepwatch.step("validate", step_type="check")
async def validate(order: Order) -> None:
    await asyncio.sleep(0.02)


@stepwatch.step("fetch", step_type="http")
async def fetch(order: Order, config: DemoConfig, rng: random.Random) -> None:
    roll = rng.random()
    if roll < config.failure_rate * 0.5:
        await _nap(config, rng, 0.05, 0.15)
        raise FetchError(f"upstream refused order {order.number}")
    slow = roll < config.failure_rate
    await asyncio.wait_for(
        _nap(config, rng, 0.5, 0.8) if slow else _nap(config, rng, 0.05, 0.3),
        timeout=0.4 * config.speed,
    )


@stepwatch.step("transform", step_type="compute")
async def transform(order: Order, config: DemoConfig, rng: random.Random) -> None:
    step = stepwatch.current_step()
    chunks = 8
    for done in range(1, chunks + 1):
        await _nap(config, rng, 0.02, 0.08)
        if step is not None:
            step.progress(done=done, total=chunks, message=f"chunk {done}/{chunks}")


@stepwatch.step("approve", step_type="human")
async def approve(order: Order, config: DemoConfig, rng: random.Random) -> None:
    execution = stepwatch.current_execution()
    step = stepwatch.current_step()
    if order.amount < 500:
        if step is not None:
            step.skip("below the approval threshold")
        return
    if execution is not None:
        execution.request_approval(approver="ops", amount=order.amount)
    await _nap(config, rng, 0.2, 0.6)
    if rng.random() < 0.2:
        if execution is not None:
            execution.reject(by="alice", reason="amount too high")
        raise ApprovalRejected(f"order {order.number} rejected")
    if execution is not None:
        execution.approve(by="alice")


@stepwatch.step("store", step_type="db")
async def store(order: Order, config: DemoConfig, rng: random.Random) -> None:
    await _nap(config, rng, 0.03, 0.12)


async def process(order: Order, config: DemoConfig, rng: random.Random) -> None:
    """Run one order's pipeline as a stepwatch execution continued from its carrier."""
    async with stepwatch.execution(
        PIPELINE, execution_id=order.execution_id, total_steps=STEPS, sla=2.5, carrier=order.carrier
    ):
        await validate(order)
        await fetch(order, config, rng)
        await transform(order, config, rng)
        await approve(order, config, rng)
        await store(order, config, rng)


async def run_engine(config: DemoConfig, ended: dict[str, int] | None = None) -> dict[str, int]:
    """Run the whole demo workload; returns counts of how orders ended.

    Args:
        config: How the engine behaves.
        ended: Filled with the counts as orders end (a live view reads it).
    """
    rng = random.Random(config.seed)
    work: asyncio.Queue[Order | None] = asyncio.Queue()
    for number in range(1, config.executions + 1):
        order = Order(number, round(rng.uniform(20, 1_000), 2))
        order.carrier = stepwatch.enqueue(PIPELINE, execution_id=order.execution_id, queue="orders")
        work.put_nowait(order)
    for _ in range(config.concurrency):
        work.put_nowait(None)
    if ended is None:
        ended = {}
    ended.update(success=0, failure=0, timeout=0)
    counts = ended

    async def worker() -> None:
        while (order := await work.get()) is not None:
            try:
                await process(order, config, rng)
                counts["success"] += 1
            except TimeoutError:
                counts["timeout"] += 1
            except (FetchError, ApprovalRejected):
                counts["failure"] += 1

    await asyncio.gather(*(worker() for _ in range(config.concurrency)))
    return counts
