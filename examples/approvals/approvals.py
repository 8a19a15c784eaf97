"""Executions that wait for a human approval: approved or rejected, with the wait measured."""

from __future__ import annotations

import asyncio

import stepwatch

monitor = stepwatch.configure(service_name="approvals")
decisions = {"deploy-1": ("alice", True), "deploy-2": ("bob", False), "deploy-3": ("alice", True)}


async def human(execution_id: str, decided: asyncio.Event, verdict: dict[str, bool]) -> None:
    await asyncio.sleep(0.05)  # somebody reads the request and presses a button
    verdict[execution_id] = decisions[execution_id][1]
    decided.set()


async def deploy(execution_id: str) -> None:
    async with stepwatch.execution("deploy", execution_id=execution_id, total_steps=2) as ex:
        async with ex.step("plan", step_type="compute"):
            await asyncio.sleep(0.01)
        decided, verdict = asyncio.Event(), dict[str, bool]()
        ex.request_approval(approver="release-managers", change=execution_id)
        reviewer = asyncio.create_task(human(execution_id, decided, verdict))
        await decided.wait()
        await reviewer
        who = decisions[execution_id][0]
        if verdict[execution_id]:
            ex.approve(by=who)
            async with ex.step("apply", step_type="k8s"):
                await asyncio.sleep(0.01)
        else:
            ex.reject(by=who, reason="change freeze")
            ex.fail("rejected by a human")


async def main() -> None:
    await asyncio.gather(*(deploy(execution_id) for execution_id in decisions))


asyncio.run(main())
for event in monitor.events():
    if event.type.value.startswith("approval."):
        print(
            event.execution_id,
            event.type.value,
            {k: v for k, v in event.data.items() if k != "name"},
        )
rejected = monitor.progress("deploy-2")
assert rejected is not None and rejected.state == "failure"
summary = monitor.summary()
assert summary.outcomes["success"] == 2 and summary.outcomes["failure"] == 1
assert len(monitor.events(event_type="approval.approved")) == 2
assert len(monitor.events(event_type="approval.rejected")) == 1
monitor.shutdown()
print("2 approved and deployed, 1 rejected; approval waits recorded")
