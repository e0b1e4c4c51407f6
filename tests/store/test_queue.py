"""The queue's lease protocol (store/queue.py): every write after a claim is fenced by its lease."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.principal import Principal
from clampdown.connectors.memory import MemoryConnector, MemorySettings
from clampdown.model import AccountState, ActionStatus
from clampdown.permissions import SECURITY_ADMINISTRATOR
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore
from clampdown.store.queue import ActionQueue, Completion, Resolution

ANALYST = Principal.from_roles("analyst", frozenset({SECURITY_ADMINISTRATOR}), {})


def _setup(engine: AsyncEngine) -> tuple[ActionStore, ActionQueue, ActionService]:
    store = ActionStore(engine)
    okta = MemoryConnector(MemorySettings(provider="okta"))
    return store, ActionQueue(engine), ActionService(store, {"okta": okta})


async def test_a_worker_that_lost_its_lease_cannot_write(engine: AsyncEngine) -> None:
    store, queue, service = _setup(engine)
    action = await service.request("okta.suspend_user", "ivan", "x", ANALYST)
    now = service.clock.now()
    [(claimed, _)] = await queue.claim_next_actions("w1", 10, 1, now)
    later = now + timedelta(seconds=5)  # w1's lease expired: w2 takes the action over
    [(taken, _)] = await queue.claim_next_actions("w2", 10, 60, later)
    assert taken.id == claimed.id and taken.attempts == 2
    stale = Completion(
        claimed.id, claimed.attempts, ActionStatus.FAILED, error_code="x", error_message="stale"
    )
    await queue.finish("w1", [stale], later)
    current = await store.get(action.id)
    assert current.status is ActionStatus.RUNNING and current.lease_owner == "w2"


async def test_a_worker_never_takes_again_an_action_it_is_running(engine: AsyncEngine) -> None:
    """Its heartbeat came late and the lease expired while it still runs the action: a claim by the
    same worker leaves it (a second execution beside the first), another worker may take it over."""
    _, queue, service = _setup(engine)
    await service.request("okta.suspend_user", "kim", "x", ANALYST)
    now = service.clock.now()
    [(claimed, _)] = await queue.claim_next_actions("w1", 10, 1, now)
    later = now + timedelta(seconds=5)
    assert await queue.claim_next_actions("w1", 10, 1, later, running={claimed.id}) == []
    [(taken, _)] = await queue.claim_next_actions("w2", 10, 60, later)
    assert taken.id == claimed.id and taken.attempts == 2


async def test_state_before_is_kept_from_the_first_attempt(engine: AsyncEngine) -> None:
    store, queue, service = _setup(engine)
    action = await service.request("okta.suspend_user", "judy", "x", ANALYST)
    now = service.clock.now()
    [(claimed, _)] = await queue.claim_next_actions("w1", 1, 1, now)
    account = claimed.account
    assert account is not None
    await queue.record_resolutions("w1", [Resolution(action.id, 1, account, AccountState(enabled=True))])
    later = now + timedelta(seconds=5)
    await queue.claim_next_actions("w2", 1, 60, later)
    await queue.record_resolutions("w2", [Resolution(action.id, 2, account, AccountState(enabled=False))])
    assert (await store.get(action.id)).state_before == AccountState(enabled=True)
