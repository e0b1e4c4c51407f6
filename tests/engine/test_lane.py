"""The lane's slots: a later step of a group under way goes before a lookup claimed after it."""

from __future__ import annotations

import asyncio

from clampdown.engine.execution import Lane


async def _take(lane: Lane, step: str, order: list[str], name: str, release: asyncio.Event) -> None:
    async with lane.slot(step):
        order.append(name)
        await release.wait()


async def test_a_waiting_later_step_takes_the_next_slot_before_waiting_lookups() -> None:
    lane, order, go = Lane("ad", 1), [], asyncio.Event()
    holder = asyncio.create_task(_take(lane, "resolve", order, "holder", go))
    await asyncio.sleep(0)
    waiting = [
        asyncio.create_task(_take(lane, step, order, name, go))
        for step, name in (
            ("resolve", "lookup-1"), ("resolve", "lookup-2"), ("perform", "act"), ("read", "read")
        )
    ]
    await asyncio.sleep(0)
    go.set()
    await asyncio.gather(holder, *waiting)
    assert order == ["holder", "act", "read", "lookup-1", "lookup-2"]


async def test_no_more_calls_in_flight_than_the_limit() -> None:
    lane, inside, most = Lane("okta", 3), [0], [0]

    async def call(step: str) -> None:
        async with lane.slot(step):
            inside[0] += 1
            most[0] = max(most[0], inside[0])
            await asyncio.sleep(0.001)
            inside[0] -= 1

    await asyncio.gather(*(call("resolve" if i % 3 else "perform") for i in range(60)))
    assert most[0] == 3


async def test_a_cancelled_waiter_leaves_no_slot_behind() -> None:
    lane, order, go = Lane("entra", 1), [], asyncio.Event()
    holder = asyncio.create_task(_take(lane, "perform", order, "holder", go))
    await asyncio.sleep(0)
    cancelled = asyncio.create_task(_take(lane, "read", order, "cancelled", go))
    after = asyncio.create_task(_take(lane, "resolve", order, "after", go))
    await asyncio.sleep(0)
    cancelled.cancel()
    go.set()
    await asyncio.gather(holder, after, cancelled, return_exceptions=True)
    assert order == ["holder", "after"]
    await asyncio.wait_for(_take(lane, "read", order, "last", go), 1)  # the one slot is free again
    assert order == ["holder", "after", "last"]
