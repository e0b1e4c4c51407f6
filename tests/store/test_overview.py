"""The overview's aggregates (store/overview.py) on SQLite and PostgreSQL: each number equals the
count the action center's own query gives for the same filter (source, incident and error code
included), time to contain is measured from the request to the last playbook step completed, and
migration 0015 adds the columns and indexes and takes them away again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import insert, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.db import migrate
from clampdown.db.database import create_engine
from clampdown.db.migrate import upgrade
from clampdown.db.tables import actions, containments
from clampdown.model import ActionFilter, ActionSource, ActionStatus, StepRole
from clampdown.store.actions import ActionStore
from clampdown.store.overview import OverviewStore, percentile

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY, WEEK = NOW - timedelta(days=1), NOW - timedelta(days=7)
CODES = ("provider_error", "not_found", "attempt_timeout")


def _action(n: int, **values: Any) -> dict[str, Any]:
    status = tuple(ActionStatus)[n % 6]
    at = NOW - timedelta(hours=n * 5)  # 200 actions over about 41 days
    row = {
        "type": "okta.suspend_user",
        "provider": "okta",
        "target": f"user{n % 7}",
        "requested_by": "ana",
        "reason": "INC-1",
        "status": status.value,
        "attempts": 0,
        "requested_at": at,
        "available_at": at,
        "finished_at": at + timedelta(seconds=30) if status.is_final else None,
        "history": [],
        "approval_rules": [],
        "instance": "okta" if n % 5 else "emea-okta",
        "source": tuple(ActionSource)[n % 8].value,
        "incident": f"INC-{n % 4}" if n % 2 else None,
        "error_code": CODES[(n // 6) % 3] if status is ActionStatus.FAILED else None,
        "batch_id": f"rule-batch-{n // 40}" if tuple(ActionSource)[n % 8] is ActionSource.RULE else None,
    }
    return {**row, **values}


async def _insert(engine: AsyncEngine, table: Any, rows: list[dict[str, Any]]) -> list[int]:
    async with engine.begin() as conn:
        found = await conn.execute(insert(table).returning(table.c.id), rows)
        return [int(i) for i in found.scalars()]


async def _count(store: ActionStore, flt: ActionFilter) -> int:
    return sum((await store.count_by_status(flt)).values())


async def test_every_number_is_the_count_of_the_action_centers_filter(engine: AsyncEngine) -> None:
    await upgrade(engine)
    await _insert(engine, actions, [_action(n) for n in range(200)])
    overview, center = OverviewStore(engine), ActionStore(engine)
    for scope in (None, frozenset({"emea-okta"})):
        for since in (DAY, WEEK):
            by_status = await overview.actions_by_status(since, scope)
            assert sum(by_status.values()) == await _count(center, ActionFilter(since=since, instances=scope))
            assert by_status  # each window holds actions
            for status in ActionStatus:
                flt = ActionFilter(statuses=(status,), since=since, instances=scope)
                assert by_status.get(status, 0) == await _count(center, flt), (since, status)
        failures = await overview.failures_by_reason(WEEK, scope)
        assert failures and [n for _, n in failures] == sorted((n for _, n in failures), reverse=True)
        for code, n in failures:
            flt = ActionFilter(statuses=(ActionStatus.FAILED,), error_code=code, since=WEEK, instances=scope)
            assert n == await _count(center, flt) == len(await center.list_actions(flt, limit=1000))
        total, firings = await overview.rule_firings(WEEK, scope)
        assert total == await _count(
            center, ActionFilter(source=ActionSource.RULE, since=WEEK, instances=scope)
        )
        assert total and firings
        for firing in firings:
            assert firing.actions == await _count(
                center, ActionFilter(batch_id=firing.batch_id, instances=scope)
            )
    incident = ActionFilter(incident="INC-3")
    assert [a.incident for a in await center.list_actions(incident)] == ["INC-3"] * 50


async def test_time_to_contain_is_from_the_request_to_the_last_playbook_step(engine: AsyncEngine) -> None:
    await upgrade(engine)
    store = OverviewStore(engine)
    seconds = [40, 75, 90, 120, 600]
    for n, took in enumerate(seconds):
        created = NOW - timedelta(hours=n + 1)
        [cid] = await _insert(engine, containments, [{
            "person": f"p{n}", "playbook": "contain", "requested_by": "ana", "reason": "INC-9",
            "state": "active", "created_at": created, "accounts": [], "incident": "INC-9",
        }])  # fmt: skip
        steps = [
            _action(0, status="completed", requested_at=created, available_at=created,
                    finished_at=created + timedelta(seconds=took // 2), containment_id=cid,
                    containment_role=StepRole.STEP.value, source=ActionSource.PLAYBOOK.value),
            _action(0, status="completed", requested_at=created, available_at=created,
                    finished_at=created + timedelta(seconds=took), containment_id=cid,
                    containment_role=StepRole.STEP.value, source=ActionSource.PLAYBOOK.value),
            # the watch applied a step again much later: not part of the time to contain
            _action(0, status="completed", requested_at=created, available_at=created,
                    finished_at=created + timedelta(hours=5), containment_id=cid,
                    containment_role=StepRole.STEP.value, source=ActionSource.WATCH.value),
        ]  # fmt: skip
        await _insert(engine, actions, steps)
    # Not contained (yet): a step failed; and one requested before the window.
    for created, status in ((NOW - timedelta(hours=1), "failed"), (NOW - timedelta(days=9), "completed")):
        [cid] = await _insert(engine, containments, [{
            "person": "late", "playbook": "contain", "requested_by": "ana", "reason": "x",
            "state": "active", "created_at": created, "accounts": [],
        }])  # fmt: skip
        await _insert(engine, actions, [_action(0, status=status, requested_at=created, available_at=created,
                      finished_at=created + timedelta(seconds=5), containment_id=cid,
                      containment_role=StepRole.STEP.value, source=ActionSource.PLAYBOOK.value)])  # fmt: skip
    timings = await store.containment_timings(WEEK)
    assert sorted(t.seconds for t in timings) == seconds
    assert percentile([t.seconds for t in timings], 0.95) == 600
    assert percentile([float(s) for s in range(1, 101)], 0.95) == 95
    assert percentile([], 0.5) is None
    assert await store.open_containments() == 7
    assert await store.containment_timings(WEEK, frozenset({"corp-ad"})) == []  # none in that scope


def _alembic(connection: Connection, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrate.__file__).with_name("migrations")))
    cfg.attributes["connection"] = connection
    command.downgrade(cfg, revision)


def _shape(connection: Connection) -> tuple[set[str], set[str], set[str]]:
    found = inspect(connection)
    return (
        {str(c["name"]) for c in found.get_columns("actions")},
        {str(c["name"]) for c in found.get_columns("containments")},
        {str(i["name"]) for i in found.get_indexes("actions")},
    )


async def test_migration_0015_upgrades_and_downgrades(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine, "0014")
        old = {k: v for k, v in _action(1).items() if k not in ("source", "incident")}
        async with engine.begin() as conn:
            await conn.execute(insert(actions), [old])
        async with engine.connect() as conn:
            before = await conn.run_sync(_shape)
        await upgrade(engine)
        async with engine.connect() as conn:
            cols, ccols, indexes = await conn.run_sync(_shape)
            stored = (await conn.execute(select(actions.c.source, actions.c.incident))).one()
        assert cols == before[0] | {"source", "incident"} and ccols == before[1] | {"incident"}
        added = {"ix_actions_incident_id", "ix_actions_source_id", "ix_actions_requested_at_status"}
        assert indexes == (before[2] - {"ix_actions_requested_at"}) | added
        sqlite = engine.dialect.name == "sqlite"
        declared = {i.name for i in actions.indexes} - (set() if sqlite else {"ix_actions_requested_by_id"})
        assert declared <= indexes  # tables.py declares what the migrations make
        assert tuple(stored) == ("manual", None)  # an action from before: where it came from is unknown
        [action] = await ActionStore(engine).list_actions(ActionFilter(source=ActionSource.MANUAL))
        assert action.source is ActionSource.MANUAL and action.incident is None
        async with engine.connect() as conn:
            await conn.run_sync(_alembic, "0014")
            await conn.commit()
        async with engine.connect() as conn:
            assert await conn.run_sync(_shape) == before
    finally:
        await engine.dispose()
