"""Migration 0012 (issue 17): actions made before provider instances are attributed to the one
directory of their kind, named after it, and a worker of today runs them there."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from clampdown.config import EngineSettings
from clampdown.connectors.memory import MemoryConnector, MemorySettings
from clampdown.db.database import create_engine
from clampdown.db.migrate import upgrade
from clampdown.engine.worker import Worker
from clampdown.model import ActionStatus
from clampdown.store.actions import ActionStore

AT = datetime(2026, 12, 1, 9, 0, tzinfo=UTC).replace(tzinfo=None)
FAST = EngineSettings(poll_interval_seconds=0.02)


async def test_actions_made_before_instances_are_attributed_to_their_directory(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine, "0011")
        async with engine.begin() as conn:
            for target, status in (("u1", "completed"), ("u2", "queued")):
                await conn.execute(
                    text(
                        "INSERT INTO actions (type, provider, target, requested_by, reason, status,"
                        " attempts, requested_at, available_at)"
                        " VALUES ('okta.suspend_user', 'okta', :t, 'lead', 'INC-1', :s, 0, :at, :at)"
                    ),
                    {"t": target, "s": status, "at": AT},
                )
        await upgrade(engine)
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT target, instance FROM actions ORDER BY id"))).all()
        assert [tuple(r) for r in rows] == [("u1", "okta"), ("u2", "okta")]
        store = ActionStore(engine)
        okta = MemoryConnector(MemorySettings(provider="okta"))
        await Worker(store, {"okta": okta}, FAST).run(until_drained=True)
        ran = await store.get(2)
        assert ran.status is ActionStatus.COMPLETED and ran.instance == "okta"
        assert okta.calls == 1
    finally:
        await engine.dispose()
