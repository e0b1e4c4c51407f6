"""The engine end to end in one process: queue, claim, run, record, retry, undo."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.principal import Principal
from clampdown.config import EngineSettings
from clampdown.connectors.memory import MemoryConnector, MemorySettings
from clampdown.engine.worker import Worker
from clampdown.model import Account, ActionContext, ActionOutcome, ActionStatus
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore

FAST = EngineSettings(poll_interval_seconds=0.05, backoff_base_seconds=0.01, backoff_max_seconds=0.05)


async def test_bulk_runs_to_completed(engine: AsyncEngine, admin: Principal) -> None:
    store = ActionStore(engine)
    okta = MemoryConnector(MemorySettings(provider="okta"))
    service = ActionService(store, {"okta": okta})
    bulk = await service.request_bulk("okta.suspend_user", [f"u{i}" for i in range(50)], "phish", admin)
    await Worker(store, {"okta": okta}, FAST).run(until_drained=True)
    done = await service.wait([a.id for a in bulk.actions], timeout=1)
    assert {a.status for a in done} == {ActionStatus.COMPLETED}
    assert all(a.changed for a in done)
    assert all(a.state_before and a.state_before.enabled for a in done)
    assert okta.calls == 50


class UnstorableDetails(MemoryConnector):
    """Suspends, then reports a detail no database can store (a provider's odd value)."""

    async def suspend_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        outcome = await super().suspend_user(account, context)
        if account.id.endswith("3"):
            return replace(outcome, details={"odd": object()})  # type: ignore[dict-item]
        return outcome


async def test_an_outcome_that_cannot_be_stored_ends_done_once_not_run_again(
    engine: AsyncEngine, admin: Principal
) -> None:
    store = ActionStore(engine)
    okta = UnstorableDetails(MemorySettings(provider="okta"))
    service = ActionService(store, {"okta": okta})
    bulk = await service.request_bulk("okta.suspend_user", [f"u{i}" for i in range(20)], "phish", admin)
    await Worker(store, {"okta": okta}, FAST).run(until_drained=True)
    done = await service.wait([a.id for a in bulk.actions], timeout=1)
    assert {a.status for a in done} == {ActionStatus.COMPLETED}
    odd = [a for a in done if a.target.endswith("3")]
    assert len(odd) == 2 and all("details could not be stored" in (a.result or {})["message"] for a in odd)
    assert all(a.changed for a in done)
    assert okta.calls == 20  # each suspended once: the unstorable outcome was not run again
