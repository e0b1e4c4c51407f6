"""Wake-ups instead of polling: a worker whose poll interval is an hour still claims at once what
is requested, and each playbook step as soon as the one before it ended; on PostgreSQL across
processes (here: across engines, as separate processes have) through LISTEN/NOTIFY, also after
the listening connection was killed. An approval, too, wakes the worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import psycopg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.principal import Principal
from clampdown.config import ApprovalSettings, EngineSettings, ProtectionSettings
from clampdown.connectors.memory import MemoryConnector, MemorySettings
from clampdown.db.database import create_engine
from clampdown.engine.worker import Worker
from clampdown.model import ActionStatus
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.policy import PolicyGate
from clampdown.services.actions import ActionService
from clampdown.services.approvals import ApprovalService
from clampdown.store.actions import ActionStore, NewAction
from clampdown.store.approvals import ApprovalStore
from clampdown.store.wakeup import CHANNEL

HOUR = EngineSettings(poll_interval_seconds=3600)
# Well below the hour a missed wake-up would cost, well above any pause of a loaded machine.
PATIENCE = 30.0


@pytest.fixture
async def running(engine: AsyncEngine) -> AsyncIterator[tuple[ActionService, MemoryConnector]]:
    """A worker that polls once an hour, running on `engine` until the test ends."""
    store = ActionStore(engine)
    okta = MemoryConnector(MemorySettings(provider="okta"))
    stop = asyncio.Event()
    worker = Worker(store, {"okta": okta}, HOUR)
    task = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.5)  # its first claim (of nothing) is behind it: now it waits
    yield ActionService(store, {"okta": okta}), okta
    stop.set()
    await asyncio.wait_for(task, PATIENCE)


async def _final(service: ActionService, ids: list[int]) -> list[ActionStatus]:
    done = await service.wait(ids, timeout=PATIENCE, poll=0.05)
    return [a.status for a in done]


async def test_a_request_is_claimed_without_waiting_for_the_poll(
    running: tuple[ActionService, MemoryConnector], admin: Principal
) -> None:
    service, okta = running
    for round_ in range(3):  # and again once the worker went back to waiting
        bulk = await service.request_bulk("okta.suspend_user", [f"u{round_}"], "phish", admin)
        assert await _final(service, [a.id for a in bulk.actions]) == [ActionStatus.COMPLETED]
    assert okta.calls == 3


async def test_each_step_runs_as_soon_as_the_one_before_it_ended(
    running: tuple[ActionService, MemoryConnector], admin: Principal
) -> None:
    service, okta = running
    chain = [
        NewAction("okta.suspend_user", "okta", f"s{n}", admin.username, "x", after_index=n - 1 if n else None)
        for n in range(4)
    ]
    stored = await service.store.enqueue(chain, datetime.now(UTC))
    assert await _final(service, [a.id for a in stored]) == [ActionStatus.COMPLETED] * 4
    assert okta.calls == 4


async def test_an_approved_action_is_claimed_without_waiting_for_the_poll(
    running: tuple[ActionService, MemoryConnector], admin: Principal
) -> None:
    plain, okta = running
    gate = PolicyGate(ProtectionSettings(), ApprovalSettings(expires_after_minutes=60))
    service = ActionService(plain.store, {"okta": okta}, guardrails=gate)
    waiting = await service.request("okta.suspend_user", "u9", "phish", admin, request_approval=True)
    assert waiting.status is ActionStatus.AWAITING_APPROVAL
    second = Principal.from_roles("second", frozenset({GLOBAL_ADMINISTRATOR}), {})
    await ApprovalService(service, ApprovalStore(service.store.engine)).decide(
        second, True, action_ids=[waiting.id]
    )
    assert await _final(service, [waiting.id]) == [ActionStatus.COMPLETED]
    assert okta.calls == 1


async def test_another_process_is_woken_through_notify(pg_database: str, admin: Principal) -> None:
    with psycopg.connect(pg_database, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    from clampdown.db.migrate import upgrade

    requester, working = create_engine(pg_database), create_engine(pg_database)
    try:
        await upgrade(requester)
        okta = MemoryConnector(MemorySettings(provider="okta"))
        service = ActionService(ActionStore(requester), {"okta": okta})
        stop = asyncio.Event()
        task = asyncio.create_task(Worker(ActionStore(working), {"okta": okta}, HOUR).run(stop))
        await asyncio.sleep(1.0)
        bulk = await service.request_bulk("okta.suspend_user", ["u1"], "phish", admin)
        assert await _final(service, [a.id for a in bulk.actions]) == [ActionStatus.COMPLETED]

        # The listening connection is killed (a fail-over, a network cut): it listens again.
        with psycopg.connect(pg_database, autocommit=True) as conn:
            killed = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND query ILIKE %s",
                (f"%LISTEN%{CHANNEL}%",),
            ).fetchall()
        assert killed, "no connection listened for queue notices"
        await asyncio.sleep(2.0)  # it notices the loss and connects again
        bulk = await service.request_bulk("okta.suspend_user", ["u2"], "phish", admin)
        assert await _final(service, [a.id for a in bulk.actions]) == [ActionStatus.COMPLETED]
        assert okta.calls == 2
        stop.set()
        await asyncio.wait_for(task, PATIENCE)
    finally:
        await requester.dispose()
        await working.dispose()
