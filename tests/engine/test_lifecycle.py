"""An action's life in the engine: retries, permanent failures, undo, cancel, idempotency."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.principal import Principal
from clampdown.config import EngineSettings
from clampdown.connectors.memory import MemoryConnector, MemorySettings
from clampdown.engine.worker import Worker
from clampdown.errors import Conflict, PermanentError
from clampdown.model import Account, ActionContext, ActionOutcome, ActionStatus
from clampdown.permissions import GLOBAL_ADMINISTRATOR, SECURITY_ADMINISTRATOR
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore

ANALYST = Principal.from_roles("analyst", frozenset({SECURITY_ADMINISTRATOR}), {})
LEAD = Principal.from_roles("lead", frozenset({GLOBAL_ADMINISTRATOR}), {})
FAST = EngineSettings(poll_interval_seconds=0.02, backoff_base_seconds=0.01, backoff_max_seconds=0.02)


def _setup(engine: AsyncEngine, **memory: object) -> tuple[ActionStore, MemoryConnector, ActionService]:
    store = ActionStore(engine)
    okta = MemoryConnector(MemorySettings(provider="okta", **memory))  # type: ignore[arg-type]
    return store, okta, ActionService(store, {"okta": okta})


async def _drain(store: ActionStore, okta: MemoryConnector, settings: EngineSettings = FAST) -> None:
    await Worker(store, {"okta": okta}, settings).run(until_drained=True)


async def test_transient_failures_are_retried_with_history(engine: AsyncEngine) -> None:
    store, okta, service = _setup(engine, transient_failures=2)
    action = await service.request("okta.suspend_user", "alice", "INC-3", ANALYST)
    await _drain(store, okta)
    done = await store.get(action.id)
    assert done.status is ActionStatus.COMPLETED and done.attempts == 3
    assert [h.error_code for h in done.history] == ["transient_error", "transient_error"]
    assert (await okta.read_state(done.account)).enabled is False  # type: ignore[arg-type]


async def test_too_many_transient_failures_end_visibly_failed(engine: AsyncEngine) -> None:
    store, okta, service = _setup(engine, transient_failures=10)
    action = await service.request("okta.suspend_user", "alice", "INC-3", ANALYST)
    await _drain(store, okta, FAST.model_copy(update={"max_attempts": 3}))
    done = await store.get(action.id)
    assert done.status is ActionStatus.FAILED and done.attempts == 3
    assert done.error_message == "the directory is busy (gave up after 3 attempts)"
    assert len(done.history) == 3


class RefusingConnector(MemoryConnector):
    async def suspend_user(self, account: Account, context: ActionContext) -> ActionOutcome:
        raise PermanentError("Okta refused: user is DEPROVISIONED", code="E0000001")


async def test_permanent_failure_fails_at_once(engine: AsyncEngine) -> None:
    store = ActionStore(engine)
    okta = RefusingConnector(MemorySettings(provider="okta"))
    action = await ActionService(store, {"okta": okta}).request("okta.suspend_user", "bob", "x", ANALYST)
    await _drain(store, okta)
    done = await store.get(action.id)
    assert done.status is ActionStatus.FAILED and done.attempts == 1
    assert (done.error_code, done.error_message) == ("E0000001", "Okta refused: user is DEPROVISIONED")


async def test_already_in_state_is_success_and_cannot_be_undone(engine: AsyncEngine) -> None:
    store, okta, service = _setup(engine)
    first = await service.request("okta.suspend_user", "carol", "x", ANALYST)
    second = await service.request("okta.suspend_user", "carol", "again", ANALYST)
    await _drain(store, okta)
    a, b = await store.get(first.id), await store.get(second.id)
    assert (a.status, a.changed) == (ActionStatus.COMPLETED, True)
    assert (b.status, b.changed) == (ActionStatus.COMPLETED, False)
    assert b.result and b.result["message"].startswith("Already in the requested state")
    with pytest.raises(Conflict, match="nothing to undo"):
        await service.undo(b.id, ANALYST)


async def test_undo_restores_and_links_to_the_original(engine: AsyncEngine) -> None:
    store, okta, service = _setup(engine)
    action = await service.request("okta.suspend_user", "dave", "x", ANALYST)
    await _drain(store, okta)
    undo = await service.undo(action.id, LEAD)
    assert await service.undo(action.id, LEAD) == undo  # asking twice gives the same undo
    await _drain(store, okta)
    done = await store.get(undo.id)
    assert done.type == "okta.unsuspend_user" and done.undoes_action_id == action.id
    assert done.status is ActionStatus.COMPLETED and done.changed
    assert done.reason == f"undo of action {action.id}: x"
    assert (await store.get_restore_state(undo.id)) == (await store.get(action.id)).state_before
    assert (await okta.read_state(done.account)).enabled is True  # type: ignore[arg-type]


async def test_irreversible_and_unfinished_actions_cannot_be_undone(engine: AsyncEngine) -> None:
    store, okta, service = _setup(engine)
    deactivate = await service.request("okta.deactivate_user", "erin", "malicious", ANALYST)
    suspend = await service.request("okta.suspend_user", "frank", "x", ANALYST)
    with pytest.raises(Conflict, match="only a completed action"):
        await service.undo(suspend.id, ANALYST)
    await _drain(store, okta)
    with pytest.raises(Conflict, match="cannot be undone"):
        await service.undo(deactivate.id, ANALYST)


async def test_cancel_only_while_queued(engine: AsyncEngine) -> None:
    store, okta, service = _setup(engine)
    action = await service.request("okta.suspend_user", "grace", "x", ANALYST)
    cancelled = await service.cancel(action.id, LEAD)
    assert cancelled.status is ActionStatus.CANCELLED and cancelled.error_message == "cancelled by lead"
    await _drain(store, okta)
    assert okta.calls == 0
    with pytest.raises(Conflict, match="only a queued action can be cancelled"):
        await service.cancel(action.id, LEAD)


async def test_idempotency_key_returns_the_same_action(engine: AsyncEngine) -> None:
    _, _, service = _setup(engine)
    one = await service.request("okta.suspend_user", "heidi", "x", ANALYST, idempotency_key="soar-123")
    two = await service.request("okta.suspend_user", "heidi", "x", ANALYST, idempotency_key="soar-123")
    assert one.id == two.id
    bulk1 = await service.request_bulk(
        "okta.suspend_user", ["u1", "u2", "u1"], "x", ANALYST, idempotency_key="k"
    )
    bulk2 = await service.request_bulk("okta.suspend_user", ["u1", "u2"], "x", ANALYST, idempotency_key="k")
    assert len(bulk1.actions) == 2  # duplicates in one bulk are one action
    assert [a.id for a in bulk1.actions] == [a.id for a in bulk2.actions]
    assert bulk1.batch_id == bulk2.batch_id


def test_secrets_in_an_outcome_are_never_stored() -> None:
    outcome = ActionOutcome(
        changed=True, message="reset", details={"new_password": "Tr0ub4dor&3", "dn": "CN=x"}
    )
    stored = outcome.to_json()
    assert stored["details"] == {"new_password": "[withheld]", "dn": "CN=x"}
    assert "Tr0ub4dor" not in str(stored)
