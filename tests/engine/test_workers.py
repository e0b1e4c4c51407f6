"""Workers register, heartbeat and deregister in the database; leases run on the database's clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.principal import Principal
from clampdown.clock import SYSTEM_CLOCK, SystemClock
from clampdown.config import EngineSettings
from clampdown.connectors.memory import MemoryConnector, MemorySettings
from clampdown.db.tables import workers as workers_table
from clampdown.engine.worker import EMBEDDED, Worker
from clampdown.model import ActionStatus
from clampdown.services.actions import ActionService
from clampdown.services.workers import NO_WORKER, WorkerService
from clampdown.store.actions import ActionStore
from clampdown.store.queue import ActionQueue
from clampdown.store.workers import WorkerRegistry

FAST = EngineSettings(
    poll_interval_seconds=0.05, backoff_base_seconds=0.01, backoff_max_seconds=0.05, lease_seconds=0.6
)
SKEW = timedelta(minutes=10)


async def _until(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


def _skew(monkeypatch: pytest.MonkeyPatch, by: timedelta) -> None:
    """This machine's clock is off by `by`: every reader of the system clock sees it."""
    monkeypatch.setattr(SYSTEM_CLOCK, "now", lambda: SystemClock().now() + by)


async def test_a_worker_registers_heartbeats_holds_and_deregisters(
    engine: AsyncEngine, admin: Principal
) -> None:
    store = ActionStore(engine)
    slow = MemoryConnector(MemorySettings(provider="okta", delay_seconds=1.5))
    service = ActionService(store, {"okta": slow})
    workers = WorkerService(engine, service)
    assert await workers.list_workers(admin) == [] and await workers.no_worker_warning() == NO_WORKER
    action = await service.request("okta.suspend_user", "ann", "INC-1", admin)

    worker = Worker(store, {"okta": slow}, FAST, kind=EMBEDDED)
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop))

    async def holding() -> bool:
        found = await workers.list_workers(admin)
        return bool(found) and found[0].holds == (action.id,) and found[0].inflight == 1

    await _until(holding)  # the heartbeat wrote the in-flight count; holds come from lease_owner
    [seen] = await workers.list_workers(admin)
    assert seen.id == worker.id and seen.kind == "embedded" and seen.live and seen.pid > 0
    assert seen.last_seen_at > seen.started_at and seen.expires_at > seen.last_seen_at
    assert await workers.no_worker_warning() is None and await workers.live_workers() == 1
    await _until(lambda: _status(store, action.id, ActionStatus.COMPLETED))
    stop.set()
    await asyncio.wait_for(run, 10)
    assert await workers.list_workers(admin) == []  # a clean stop deregisters


async def _status(store: ActionStore, action_id: int, status: ActionStatus) -> bool:
    return (await store.get(action_id)).status is status


async def test_a_worker_not_seen_for_its_lease_is_dead_and_its_holds_are_listed(
    engine: AsyncEngine, admin: Principal
) -> None:
    """A worker that died (registered, claimed, never heard of again) is listed dead after its lease."""
    store = ActionStore(engine)
    service = ActionService(store, {"okta": MemoryConnector(MemorySettings(provider="okta"))})
    action = await service.request("okta.suspend_user", "bo", "INC-2", admin)
    await WorkerRegistry(engine).register("host:1:dead", "host", 1, "standalone", 60)
    [(claimed, _)] = await ActionQueue(engine).claim_next_actions("host:1:dead", 10, 60)
    workers = WorkerService(engine, service)
    [alive] = await workers.list_workers(admin)
    assert alive.live and alive.holds == (claimed.id,) == (action.id,)
    async with engine.begin() as conn:  # its lease passes without a heartbeat (no sleep: no timing)
        await conn.execute(update(workers_table).values(expires_at=datetime(2000, 1, 1, tzinfo=UTC)))
    [dead] = await workers.list_workers(admin)
    assert not dead.live and dead.holds == (action.id,)
    assert await workers.no_worker_warning() == NO_WORKER


async def test_a_heartbeat_registers_a_worker_whose_row_was_lost(engine: AsyncEngine) -> None:
    store = ActionStore(engine)
    worker = Worker(store, {}, FAST)
    stop = asyncio.Event()
    run = asyncio.create_task(worker.run(stop))
    registry = WorkerRegistry(engine)
    await _until(lambda: _count(registry, 1))
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM workers"))
    await _until(lambda: _count(registry, 1))  # the next heartbeat found no row and registered again
    stop.set()
    await asyncio.wait_for(run, 10)
    assert await registry.list_workers() == []


async def _count(registry: WorkerRegistry, n: int) -> bool:
    return len([w for w in await registry.list_workers() if w.live]) == n


async def test_a_worker_whose_clock_runs_ahead_cannot_take_over_a_valid_lease(
    engine: AsyncEngine, admin: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ActionStore(engine)
    okta = MemoryConnector(MemorySettings(provider="okta"))
    action = await ActionService(store, {"okta": okta}).request("okta.suspend_user", "cy", "INC-3", admin)
    [(held, _)] = await ActionQueue(engine).claim_next_actions("honest:1:a", 10, 60)  # a 60 s lease

    _skew(monkeypatch, SKEW)  # the second worker's machine is 10 minutes ahead
    await Worker(store, {"okta": okta}, FAST).run(until_idle=True)
    after = await store.get(action.id)
    assert after.status is ActionStatus.RUNNING and after.attempts == held.attempts == 1
    assert okta.calls == 0  # it never ran a second time
    async with engine.connect() as conn:
        owner = (await conn.execute(text(f"SELECT lease_owner FROM actions WHERE id = {action.id}"))).scalar()
    assert owner == "honest:1:a"


async def test_a_worker_whose_clock_runs_behind_takes_over_an_expired_lease_and_holds_it_for_its_lease(
    engine: AsyncEngine, admin: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ActionStore(engine)
    okta = MemoryConnector(MemorySettings(provider="okta"))
    action = await ActionService(store, {"okta": okta}).request("okta.suspend_user", "di", "INC-4", admin)
    await ActionQueue(engine).claim_next_actions("crashed:1:a", 10, 0.2)  # its worker died
    await asyncio.sleep(0.4)

    _skew(monkeypatch, -SKEW)  # the machine taking over is 10 minutes behind
    queue = ActionQueue(engine)
    [(taken, _)] = await queue.claim_next_actions("late:1:b", 10, 60)
    assert taken.id == action.id and taken.attempts == 2
    # Its lease runs 60 s from the database's now, not from its own clock's 10 minutes ago.
    await WorkerRegistry(engine).register("other:1:c", "other", 1, "standalone", 60)
    assert await queue.claim_next_actions("other:1:c", 10, 60) == []
    async with engine.connect() as conn:
        lease = (
            await conn.execute(text(f"SELECT available_at FROM actions WHERE id = {action.id}"))
        ).scalar()
        started = (await conn.execute(text("SELECT started_at FROM workers"))).scalar()
    assert lease is not None and started is not None
    assert timedelta(seconds=55) < _stamp(lease) - _stamp(started) < timedelta(seconds=65)


def _stamp(raw: Any) -> datetime:
    """A naive UTC time as raw SQL returns it (text on SQLite)."""
    return datetime.fromisoformat(raw) if isinstance(raw, str) else raw


async def test_an_action_requested_on_a_machine_whose_clock_runs_ahead_is_due_at_once(
    engine: AsyncEngine, admin: Principal, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ActionStore(engine)
    okta = MemoryConnector(MemorySettings(provider="okta"))
    _skew(monkeypatch, SKEW)  # the API host is 10 minutes ahead of the database
    action = await ActionService(store, {"okta": okta}).request("okta.suspend_user", "al", "INC-5", admin)
    monkeypatch.undo()
    # Due by the database's clock, which a worker's claim compares with: not 10 minutes from now.
    [(taken, _)] = await ActionQueue(engine).claim_next_actions("w:1:a", 10, 60)
    assert taken.id == action.id
