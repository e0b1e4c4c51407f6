"""Group commit (engine/writer.py): concurrent completions share transactions, each caller
returns once its row is durable, failures are retried or reach every caller, stop() flushes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.principal import Principal
from clampdown.clock import SYSTEM_CLOCK
from clampdown.connectors.memory import MemoryConnector, MemorySettings
from clampdown.engine import writer as writer_module
from clampdown.engine.writer import GroupWriter
from clampdown.model import Action, ActionStatus
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore
from clampdown.store.queue import ActionQueue, Completion

WORKER = "w1"


class StoreDown(Exception):
    pass


class CountingQueue(ActionQueue):
    """The real queue, counting `finish` transactions; the first `failures` of them fail."""

    def __init__(self, engine: AsyncEngine, failures: int = 0, delay: float = 0.0) -> None:
        super().__init__(engine)
        self.failures = failures
        self.delay = delay
        self.batches: list[int] = []

    async def finish(self, worker: str, items: Sequence[Completion], now: datetime) -> None:
        self.batches.append(len(items))
        await asyncio.sleep(self.delay)
        if len(self.batches) <= self.failures:
            raise StoreDown("the database blinked")
        await super().finish(worker, items, now)


async def _claimed(engine: AsyncEngine, admin: Principal, n: int) -> tuple[ActionStore, list[Action]]:
    store = ActionStore(engine)
    service = ActionService(store, {"okta": MemoryConnector(MemorySettings(provider="okta"))})
    await service.request_bulk("okta.suspend_user", [f"u{i}" for i in range(n)], "INC-1", admin)
    now = SYSTEM_CLOCK.now()
    claimed = await ActionQueue(engine).claim_next_actions(WORKER, n, 300, now)
    assert len(claimed) == n
    return store, [action for action, _ in claimed]


def _done(action: Action) -> Completion:
    return Completion(action.id, action.attempts, ActionStatus.COMPLETED, result={"message": f"{action.id}"})


async def test_concurrent_completions_share_few_transactions_and_are_durable_on_return(
    engine: AsyncEngine, admin: Principal
) -> None:
    store, actions = await _claimed(engine, admin, 40)
    queue = CountingQueue(engine)
    writer = GroupWriter(queue, WORKER, SYSTEM_CLOCK)
    writer.start()

    async def complete(action: Action) -> ActionStatus:
        await writer.record_completion(_done(action))
        return (await store.get(action.id)).status  # read back the moment the caller returns

    try:
        statuses = await asyncio.gather(*(complete(a) for a in actions))
    finally:
        await writer.stop()
    assert statuses == [ActionStatus.COMPLETED] * 40
    assert sum(queue.batches) == 40 and len(queue.batches) <= 2, queue.batches


async def test_a_transient_store_failure_is_retried(engine: AsyncEngine, admin: Principal) -> None:
    store, actions = await _claimed(engine, admin, 3)
    queue = CountingQueue(engine, failures=1)
    writer = GroupWriter(queue, WORKER, SYSTEM_CLOCK)
    writer.start()
    try:
        await asyncio.gather(*(writer.record_completion(_done(a)) for a in actions))
    finally:
        await writer.stop()
    assert queue.batches == [3, 3]
    assert [(await store.get(a.id)).status for a in actions] == [ActionStatus.COMPLETED] * 3


async def test_a_store_down_for_many_tries_is_waited_for_while_the_lease_holds(
    engine: AsyncEngine, admin: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A PostgreSQL restart takes seconds: the write lands once it is back, the action is not rerun.
    monkeypatch.setattr(writer_module, "_FIRST_BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(writer_module, "_MAX_BACKOFF_SECONDS", 0.02)
    store, actions = await _claimed(engine, admin, 3)
    queue = CountingQueue(engine, failures=25)
    writer = GroupWriter(queue, WORKER, SYSTEM_CLOCK, patience_seconds=30)
    writer.start()
    try:
        await asyncio.gather(*(writer.record_completion(_done(a)) for a in actions))
    finally:
        await writer.stop()
    assert queue.batches == [3] * 26
    assert [(await store.get(a.id)).status for a in actions] == [ActionStatus.COMPLETED] * 3


async def test_a_permanent_failure_reaches_every_waiting_caller(
    engine: AsyncEngine, admin: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "_FIRST_BACKOFF_SECONDS", 0.2)  # real time: one retry fits
    store, actions = await _claimed(engine, admin, 3)
    queue = CountingQueue(engine, failures=100)
    writer = GroupWriter(queue, WORKER, SYSTEM_CLOCK, patience_seconds=0.1)
    writer.start()
    try:
        results = await asyncio.gather(
            *(writer.record_completion(_done(a)) for a in actions), return_exceptions=True
        )
    finally:
        await writer.stop()
    assert [type(r) for r in results] == [StoreDown] * 3
    assert queue.batches == [3, 3]
    assert [(await store.get(a.id)).status for a in actions] == [ActionStatus.RUNNING] * 3


async def test_stop_flushes_what_is_pending(
    engine: AsyncEngine, admin: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(writer_module, "_LINGER_SECONDS", 60.0)  # the loop would not flush in time
    store, actions = await _claimed(engine, admin, 5)
    queue = CountingQueue(engine)
    writer = GroupWriter(queue, WORKER, SYSTEM_CLOCK)
    writer.start()
    waiting = [asyncio.create_task(writer.record_completion(_done(a))) for a in actions]
    await asyncio.sleep(0.05)
    assert not any(t.done() for t in waiting) and queue.batches == []
    await writer.stop()
    await asyncio.wait_for(asyncio.gather(*waiting), timeout=5)
    assert queue.batches == [5]
    assert [(await store.get(a.id)).status for a in actions] == [ActionStatus.COMPLETED] * 5


async def test_stop_during_a_flush_still_answers_its_callers(engine: AsyncEngine, admin: Principal) -> None:
    store, actions = await _claimed(engine, admin, 2)
    queue = CountingQueue(engine, delay=0.5)
    writer = GroupWriter(queue, WORKER, SYSTEM_CLOCK)
    writer.start()
    waiting = [asyncio.create_task(writer.record_completion(_done(a))) for a in actions]
    await asyncio.sleep(0.1)
    assert queue.batches == [2]  # the flush is in progress
    await writer.stop()
    done, _ = await asyncio.wait(waiting, timeout=2)
    for task in waiting:
        task.cancel()
    assert len(done) == 2
    assert [(await store.get(a.id)).status for a in actions] == [ActionStatus.COMPLETED] * 2


async def test_one_unstorable_row_fails_alone_not_the_group(engine: AsyncEngine, admin: Principal) -> None:
    store, actions = await _claimed(engine, admin, 8)
    queue = CountingQueue(engine)
    writer = GroupWriter(queue, WORKER, SYSTEM_CLOCK)
    writer.start()
    bad = actions[5]
    completions = [
        Completion(a.id, a.attempts, ActionStatus.COMPLETED, result={"details": {"x": object()}})
        if a is bad
        else _done(a)
        for a in actions
    ]
    try:
        results = await asyncio.gather(
            *(writer.record_completion(c) for c in completions), return_exceptions=True
        )
    finally:
        await writer.stop()
    failed = [a.id for a, r in zip(actions, results, strict=True) if isinstance(r, Exception)]
    assert failed == [bad.id]
    statuses = {a.id: (await store.get(a.id)).status for a in actions}
    assert statuses.pop(bad.id) is ActionStatus.RUNNING
    assert set(statuses.values()) == {ActionStatus.COMPLETED}
    assert queue.batches[0] == 8 and len(queue.batches) < 16  # split in parts, not tried row by row
