"""Cancelling an action while an attempt of it runs: the attempt finishes, what it changed stands,
and the action is not retried; a worker that takes over an interrupted attempt cancels it."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.recorder import EventRecorder
from clampdown.auth.principal import Principal
from clampdown.config import EngineSettings
from clampdown.connectors.memory import MemoryConnector, MemorySettings
from clampdown.db.tables import audit_log
from clampdown.engine.worker import Worker
from clampdown.errors import TransientError
from clampdown.model import Account, ActionContext, ActionOutcome, ActionStatus
from clampdown.permissions import GLOBAL_ADMINISTRATOR, SECURITY_ADMINISTRATOR
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore
from clampdown.store.queue import ActionQueue

ANALYST = Principal.from_roles("analyst", frozenset({SECURITY_ADMINISTRATOR}), {})
LEAD = Principal.from_roles("lead", frozenset({GLOBAL_ADMINISTRATOR}), {})
FAST = EngineSettings(poll_interval_seconds=0.02, backoff_base_seconds=0.01, backoff_max_seconds=0.02)


class GatedConnector(MemoryConnector):
    """Each suspend waits for the gate, then fails transiently or goes through."""

    def __init__(self, fail: bool) -> None:
        super().__init__(MemorySettings(provider="okta"))
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.fail = fail
        self.attempts = 0

    async def suspend_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        self.attempts += 1
        self.started.set()
        await self.gate.wait()
        if self.fail:
            raise TransientError("Okta answered 503", code="http_503")
        return await super().suspend_user(account, context)


async def _cancel_during_attempt(engine: AsyncEngine, fail: bool) -> tuple[GatedConnector, ActionStore, int]:
    store = ActionStore(engine, EventRecorder())
    okta = GatedConnector(fail)
    service = ActionService(store, {"okta": okta})
    action = await service.request("okta.suspend_user", "grace", "INC-51", ANALYST)
    worker = asyncio.create_task(Worker(store, {"okta": okta}, FAST).run(until_drained=True))
    await asyncio.wait_for(okta.started.wait(), 10)
    asked = await service.cancel(action.id, LEAD)
    assert asked.status is ActionStatus.RUNNING and asked.cancel_requested_by == "lead"
    again = await service.cancel(action.id, LEAD)  # asked twice: the same answer, one event
    assert again.status is ActionStatus.RUNNING and again.cancel_requested_by == "lead"
    okta.gate.set()
    await asyncio.wait_for(worker, 10)
    return okta, store, action.id


async def _events(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(select(audit_log.c.event).order_by(audit_log.c.seq))).scalars())


async def test_a_failed_attempt_is_not_retried_once_cancel_was_asked(engine: AsyncEngine) -> None:
    okta, store, action_id = await _cancel_during_attempt(engine, fail=True)
    done = await store.get(action_id)
    assert done.status is ActionStatus.CANCELLED and okta.attempts == 1
    assert done.error_message == "cancelled by lead after a failed attempt: Okta answered 503"
    assert [h.error_code for h in done.history] == ["http_503"]
    events = await _events(engine)
    assert events.count("action.cancel_requested") == 1 and events[-1] == "action.cancelled"


async def test_an_attempt_that_succeeds_stands(engine: AsyncEngine) -> None:
    okta, store, action_id = await _cancel_during_attempt(engine, fail=False)
    done = await store.get(action_id)
    assert done.status is ActionStatus.COMPLETED and done.cancel_requested_by == "lead"
    assert (await okta.read_state(done.account)).enabled is False  # type: ignore[arg-type]
    assert (await _events(engine))[-2:] == ["action.cancel_requested", "action.completed"]


async def test_an_interrupted_attempt_is_cancelled_not_run_again(engine: AsyncEngine) -> None:
    store = ActionStore(engine)
    okta = MemoryConnector(MemorySettings(provider="okta"))
    service = ActionService(store, {"okta": okta})
    action = await service.request("okta.suspend_user", "heidi", "INC-52", ANALYST)
    # A worker takes it and dies at once: its lease (0 s) has expired when the next worker looks.
    [(claimed, _)] = await ActionQueue(engine).claim_next_actions("host:1:dead", 1, 0.0)
    assert claimed.id == action.id
    assert (await service.cancel(action.id, LEAD)).status is ActionStatus.RUNNING
    await Worker(store, {"okta": okta}, FAST).run(until_drained=True)
    done = await store.get(action.id)
    assert done.status is ActionStatus.CANCELLED and okta.calls == 0
    assert done.error_message == "cancelled by lead while an attempt ran; that attempt was interrupted"
