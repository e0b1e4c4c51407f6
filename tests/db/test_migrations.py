"""Upgrading a database made by the release before containment records (schema 0003) keeps every
action, turns each earlier playbook run into a containment, and a person contained before the
upgrade can still be released after it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.principal import Principal
from clampdown.config import Settings
from clampdown.connectors.memory import MemoryConnector, MemorySettings
from clampdown.db.database import create_engine
from clampdown.db.migrate import current_revision, head_revision, upgrade
from clampdown.model import ActionFilter, ContainmentState, StepRole
from clampdown.services.actions import ActionService
from clampdown.services.playbooks import PlaybookService
from clampdown.store.actions import ActionStore
from clampdown.store.containments import ContainmentStore

AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC).replace(tzinfo=None)  # stored as naive UTC
COLUMNS = (
    "type, provider, target, account, account_id, requested_by, reason, batch_id, undoes_action_id, status, "
    "attempts, requested_at, finished_at, available_at, result, state_before, restore_state, parameters, "
    "history, after_action_id, playbook"
)


def _row(**given: object) -> dict[str, object]:
    account = {
        "provider": given["provider"],
        "id": f"id-{given['target']}",
        "name": given["target"],
        "attributes": {},
    }
    row: dict[str, object] = {
        "account": json.dumps(account), "account_id": account["id"],
        "requested_by": "lead", "reason": "INC-7",
        "batch_id": None, "undoes_action_id": None, "status": "completed", "attempts": 1, "requested_at": AT,
        "finished_at": AT, "available_at": AT, "result": json.dumps({"changed": True, "message": "done"}),
        "state_before": json.dumps({"enabled": True, "status": "enabled", "values": {}}),
        "restore_state": None,
        "parameters": "{}", "history": "[]", "after_action_id": None, "playbook": None,
    }  # fmt: skip
    row.update(given)
    return row


async def _insert(engine: AsyncEngine, row: dict[str, object]) -> int:
    names = [c.strip() for c in COLUMNS.split(",")]
    async with engine.begin() as conn:
        result = await conn.execute(
            text(
                f"INSERT INTO actions ({COLUMNS}) VALUES ({', '.join(':' + n for n in names)}) RETURNING id"
            ),
            row,
        )
        return int(result.scalar_one())


async def _made_by_the_release_before(engine: AsyncEngine) -> dict[str, int]:
    """What that release wrote: a single action, a released containment of ann, an open one of bo
    with a timed release still waiting."""
    await upgrade(engine, "0003")
    ids = {"single": await _insert(engine, _row(type="okta.suspend_user", provider="okta", target="cy"))}
    for person, batch in (("ann", "b-ann"), ("bo", "b-bo")):
        ad = await _insert(
            engine,
            _row(type="ad.disable_user", provider="ad", target=person, batch_id=batch, playbook="contain"),
        )
        okta = await _insert(
            engine,
            _row(
                type="okta.suspend_user", provider="okta", target=person, batch_id=batch, playbook="contain"
            ),
        )
        ids[f"{person}-ad"], ids[f"{person}-okta"] = ad, okta
    ids["bo-timer"] = await _insert(
        engine,
        _row(type="okta.unsuspend_user", provider="okta", target="bo", batch_id="b-bo", playbook="contain",
             undoes_action_id=ids["bo-okta"], after_action_id=ids["bo-okta"], status="queued", result=None,
             attempts=0, finished_at=None, available_at=AT + timedelta(days=1), state_before=None),
    )  # fmt: skip
    for step in ("ann-ad", "ann-okta"):
        kind = "ad.enable_user" if step.endswith("ad") else "okta.unsuspend_user"
        ids[f"release-{step}"] = await _insert(
            engine,
            _row(type=kind, provider=kind.split(".")[0], target="ann", batch_id="r-ann", playbook="release",
                 undoes_action_id=ids[step], reason="cleared"),
        )  # fmt: skip
    return ids


async def test_upgrade_keeps_every_action_and_makes_containments(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        ids = await _made_by_the_release_before(engine)
        await upgrade(engine)
        assert await current_revision(engine) == head_revision()
        store = ActionStore(engine)
        kept = {a.id: a for a in await store.list_actions(ActionFilter(), limit=1000)}
        assert set(kept) == set(ids.values())
        assert kept[ids["single"]].containment_id is None
        containments = ContainmentStore(store)
        ann = (await containments.find(account_ids=["id-ann"]))[0]
        bo = (await containments.find(account_ids=["id-bo"]))[0]
        assert (
            ann.state is ContainmentState.RELEASED and ann.ended_by == "lead" and ann.end_reason == "cleared"
        )
        assert bo.state is ContainmentState.ACTIVE and bo.until == AT.replace(tzinfo=UTC) + timedelta(days=1)
        assert kept[ids["bo-timer"]].containment_role == StepRole.TIMER
        assert kept[ids["release-ann-ad"]].containment_id == ann.id
        assert {a.containment_role for a in bo.actions} == {StepRole.STEP, StepRole.TIMER}

        # bo, contained before the upgrade, is released after it: both steps undone, the timer cancelled.
        connectors = {p: MemoryConnector(MemorySettings(provider=p)) for p in ("ad", "okta")}
        lead = Principal.from_roles("lead", frozenset({"Global Administrator"}), {})
        playbooks = PlaybookService(
            ActionService(store, dict(connectors)), Settings().playbooks, containments
        )
        released = await playbooks.run("release", "bo", "cleared after upgrade", lead)
        assert sorted(a.undoes_action_id for a in released.actions) == sorted([ids["bo-ad"], ids["bo-okta"]])
        assert (await store.get(ids["bo-timer"])).status.value == "cancelled"
    finally:
        await engine.dispose()
