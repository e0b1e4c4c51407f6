"""Migration 0008 (issue 14 #3): keys become the requester's own, and keys of bulk actions made
before it ("<bulk key>:<target>") are found again by the same bulk request after it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from clampdown.auth.principal import Principal
from clampdown.connectors.memory import MemoryConnector, MemorySettings
from clampdown.db.database import create_engine
from clampdown.db.migrate import upgrade
from clampdown.model import ActionFilter
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore

AT = datetime(2026, 11, 30, 9, 0, tzinfo=UTC).replace(tzinfo=None)


async def test_keys_of_bulks_made_before_0008_still_answer_the_same_bulk(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine, "0005")
        async with engine.begin() as conn:
            for target in ("u1", "u2"):
                await conn.execute(
                    text(
                        "INSERT INTO actions (type, provider, target, requested_by, reason, idempotency_key,"
                        " batch_id, status, attempts, requested_at, available_at)"
                        " VALUES ('okta.suspend_user', 'okta', :t, 'lead', 'INC-1', :k, 'b-1', 'queued', 0,"
                        " :at, :at)"
                    ),
                    {"t": target, "k": f"rule-7:{target}", "at": AT},
                )
        await upgrade(engine)
        store = ActionStore(engine)
        service = ActionService(store, {"okta": MemoryConnector(MemorySettings(provider="okta"))})
        lead = Principal.from_roles("lead", frozenset({GLOBAL_ADMINISTRATOR}), {})
        again = await service.request_bulk(
            "okta.suspend_user", ["u1", "u2"], "INC-1", lead, idempotency_key="rule-7"
        )
        assert again.batch_id == "b-1" and len(await store.list_actions(ActionFilter())) == 2
        other = Principal.from_roles("other", frozenset({GLOBAL_ADMINISTRATOR}), {})
        theirs = await service.request_bulk(
            "okta.suspend_user", ["u1"], "INC-2", other, idempotency_key="rule-7"
        )
        assert theirs.batch_id != "b-1" and len(await store.list_actions(ActionFilter())) == 3
    finally:
        await engine.dispose()
