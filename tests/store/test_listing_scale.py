"""The action center's listing (store/actions.py) after the indexes of migration 0014 (issue 18):
every filter of the console and the API lists exactly its matches, newest first, page by page;
keyset paging loses and repeats nothing while actions are added between pages; the migration
upgrades and downgrades. Correctness only: the timing is bench/action_center_scale.py."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import insert, inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

import clampdown.store.actions as store_actions
from clampdown.db import migrate
from clampdown.db.database import create_engine
from clampdown.db.migrate import upgrade
from clampdown.db.tables import actions
from clampdown.model import ActionFilter, ActionSource, ActionStatus
from clampdown.store.actions import ActionStore

START = datetime(2026, 11, 1, tzinfo=UTC)
TYPES = ("ad.disable_user", "entra.revoke_sessions", "okta.suspend_user", "okta.expire_password")
INSTANCES = ("corp-ad", "corp-entra", "corp-okta", "emea-ad")
STATUSES = tuple(ActionStatus)
SOURCES = tuple(ActionSource)
ERROR_CODES = ("provider_error", "not_found", "cancelled")


@dataclass(frozen=True)
class Row:
    """What a filter looks at, for the expected answer."""

    id: int
    type: str
    provider: str
    instance: str
    target: str
    account_id: str
    requested_by: str
    batch_id: str | None
    status: ActionStatus
    requested_at: datetime
    source: ActionSource
    incident: str | None
    error_code: str | None


def _row(n: int) -> dict[str, Any]:
    kind = TYPES[n % 4]
    instance = INSTANCES[(n * 7) % 4]
    return {
        "type": kind,
        "provider": kind.split(".")[0],
        "target": f"user{n % 13}@example.test",
        "account_id": f"id-{instance}-{n % 13}",
        "requested_by": "svc-detections" if n % 3 else f"analyst{n % 5}",
        "reason": "INC-1",
        "batch_id": f"batch-{n // 20}" if (n // 20) % 2 else None,
        "status": STATUSES[(n * 5) % 6].value,
        "attempts": 0,
        "requested_at": START + timedelta(hours=n),
        "available_at": START + timedelta(hours=n),
        "history": [],
        "approval_rules": [],
        "instance": instance,
        "source": SOURCES[(n * 3) % 8].value,
        "incident": f"INC-{n % 9}" if n % 4 == 1 else None,
        "error_code": ERROR_CODES[(n // 6) % 3] if STATUSES[(n * 5) % 6].is_final else None,
    }


async def _fill(engine: AsyncEngine, first: int, count: int, *, before_0015: bool = False) -> None:
    rows = [_row(n) for n in range(first, first + count)]
    if before_0015:  # the columns migration 0015 adds are not there yet
        rows = [{k: v for k, v in r.items() if k not in ("source", "incident")} for r in rows]
    async with engine.begin() as conn:
        await conn.execute(insert(actions), rows)


def _matches(flt: ActionFilter, a: Row) -> bool:
    return (
        (not flt.statuses or a.status in flt.statuses)
        and flt.type in (None, a.type)
        and flt.provider in (None, a.provider)
        and flt.instance in (None, a.instance)
        and (flt.instances is None or a.instance in flt.instances)
        and (flt.target is None or flt.target in (a.target, a.account_id))
        and flt.requested_by in (None, a.requested_by)
        and flt.batch_id in (None, a.batch_id)
        and (flt.since is None or a.requested_at >= flt.since)
        and (flt.until is None or a.requested_at < flt.until)
        and flt.source in (None, a.source)
        and flt.incident in (None, a.incident)
        and flt.error_code in (None, a.error_code)
    )


async def _all_rows(engine: AsyncEngine) -> list[Row]:
    c = actions.c
    columns = (c.id, c.type, c.provider, c.instance, c.target, c.account_id, c.requested_by, c.batch_id)
    async with engine.connect() as conn:
        found = (
            await conn.execute(select(*columns, c.status, c.requested_at, c.source, c.incident, c.error_code))
        ).all()
    return [Row(*r[:8], ActionStatus(r[8]), r[9], ActionSource(r[10]), r[11], r[12]) for r in found]


async def _paged(store: ActionStore, flt: ActionFilter, limit: int) -> list[int]:
    ids: list[int] = []
    before = None
    while True:
        page = await store.list_actions(flt, limit=limit, before_id=before)
        ids += [a.id for a in page]
        if len(page) < limit:
            return ids
        before = page[-1].id


PENDING = (ActionStatus.AWAITING_APPROVAL, ActionStatus.QUEUED, ActionStatus.RUNNING)
HISTORY = (ActionStatus.COMPLETED, ActionStatus.FAILED, ActionStatus.CANCELLED)
FILTERS = {
    "all": ActionFilter(),
    "history tab": ActionFilter(statuses=HISTORY),
    "pending tab": ActionFilter(statuses=PENDING),
    "one status": ActionFilter(statuses=(ActionStatus.CANCELLED,)),
    "type": ActionFilter(type="okta.expire_password"),
    "type none": ActionFilter(type="okta.set_risk"),
    "provider": ActionFilter(statuses=HISTORY, provider="okta"),
    "instance": ActionFilter(instance="emea-ad"),
    "scope of two": ActionFilter(statuses=HISTORY, instances=frozenset({"corp-okta", "emea-ad"})),
    "target as given": ActionFilter(target="user4@example.test"),
    "target account id": ActionFilter(target="id-corp-okta-4"),
    "target none": ActionFilter(target="nobody"),
    "requested_by busy": ActionFilter(statuses=HISTORY, requested_by="svc-detections"),
    "requested_by one": ActionFilter(requested_by="analyst2"),
    "batch": ActionFilter(batch_id="batch-3"),
    "since": ActionFilter(statuses=HISTORY, since=START + timedelta(hours=150)),
    "until": ActionFilter(until=START + timedelta(hours=60)),
    "since and until": ActionFilter(since=START + timedelta(hours=40), until=START + timedelta(hours=90)),
    "source": ActionFilter(source=ActionSource.RULE),
    "source and status": ActionFilter(statuses=HISTORY, source=ActionSource.WATCH),
    "incident": ActionFilter(incident="INC-5"),
    "incident none": ActionFilter(incident="INC-404"),
    "error code": ActionFilter(statuses=(ActionStatus.FAILED,), error_code="not_found"),
    "combined": ActionFilter(
        statuses=(ActionStatus.COMPLETED, ActionStatus.FAILED),
        type="ad.disable_user",
        requested_by="svc-detections",
        since=START + timedelta(hours=30),
    ),
}


@pytest.mark.parametrize("narrow_time", [True, False], ids=["narrow time range", "wide time range"])
async def test_every_filter_lists_exactly_its_matches_page_by_page(
    engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch, narrow_time: bool
) -> None:
    if not narrow_time:  # SQLite then walks the primary key for a time range, not its index
        monkeypatch.setattr(store_actions, "NARROW_TIME", 3)
    store = ActionStore(engine)
    await _fill(engine, 0, 240)
    rows = await _all_rows(engine)
    assert len(rows) == 240
    for name, flt in FILTERS.items():
        expected = sorted((a.id for a in rows if _matches(flt, a)), reverse=True)
        assert expected or name.endswith("none"), name  # each filter matches something, but these
        assert await _paged(store, flt, 7) == expected, name
        assert [a.id for a in await store.list_actions(flt, limit=5)] == expected[:5], name
        counts = await store.count_by_status(flt)
        want = {s: n for s in STATUSES if (n := sum(1 for a in rows if _matches(flt, a) and a.status is s))}
        assert counts == want, name


async def test_keyset_paging_loses_and_repeats_nothing_while_actions_are_added(engine: AsyncEngine) -> None:
    store = ActionStore(engine)
    await _fill(engine, 0, 120)
    for flt in (ActionFilter(), FILTERS["history tab"], FILTERS["type"], FILTERS["target as given"]):
        before_any = sorted((a.id for a in await _all_rows(engine) if _matches(flt, a)), reverse=True)
        seen: list[int] = []
        page = await store.list_actions(flt, limit=6)
        added = 0
        while page:
            seen += [a.id for a in page]
            await _fill(engine, 1000 + added, 10)  # newer actions, some matching, between pages
            added += 10
            page = await store.list_actions(flt, limit=6, before_id=page[-1].id) if len(page) == 6 else []
        assert seen == before_any  # in order, none lost, none twice
        now = sorted((a.id for a in await _all_rows(engine) if _matches(flt, a)), reverse=True)
        assert [a.id for a in await store.list_actions(flt, limit=6)] == now[:6]  # the new ones: on top


def _alembic(connection: Connection, revision: str, down: bool) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(migrate.__file__).with_name("migrations")))
    cfg.attributes["connection"] = connection
    (command.downgrade if down else command.upgrade)(cfg, revision)


async def _count_of_type(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        found = await conn.execute(select(actions.c.id).where(actions.c.type == "okta.expire_password"))
        return len(found.all())


def _index_names(connection: Connection) -> set[str]:
    return {str(i["name"]) for i in inspect(connection).get_indexes("actions")}


async def test_migration_0014_upgrades_and_downgrades(database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        await upgrade(engine, "0013")
        await _fill(engine, 0, 30, before_0015=True)
        async with engine.connect() as conn:
            before = await conn.run_sync(_index_names)
        await upgrade(engine, "0014")
        sqlite = engine.dialect.name == "sqlite"
        added = {"ix_actions_status_id", "ix_actions_type_id", "ix_actions_target"}
        added |= {"ix_actions_requested_by_id"} if sqlite else set()
        async with engine.connect() as conn:
            after = await conn.run_sync(_index_names)
        assert after == (before - {"ix_actions_status_requested_at"}) | added
        assert await _count_of_type(engine) == 7  # (the store reads columns of 0015: not yet here)
        async with engine.connect() as conn:
            await conn.run_sync(_alembic, "0013", True)
            assert await conn.run_sync(_index_names) == before
            await conn.commit()
        assert await _count_of_type(engine) == 7
        await upgrade(engine, "0014")  # and up again
        async with engine.connect() as conn:
            assert await conn.run_sync(_index_names) == after
    finally:
        await engine.dispose()


def test_the_filters_here_are_every_field_of_action_filter() -> None:
    """A field added to ActionFilter gets a case here (and in the bench)."""
    used = {f for flt in FILTERS.values() for f, v in flt.__dict__.items() if v not in (None, ())}
    assert used == set(ActionFilter.__dataclass_fields__)
