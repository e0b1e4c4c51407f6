"""The action center for a user scoped to some directories: how long a page and the status counts
take when the user's directories hold few of many actions.

Fills a fresh database with N actions (bulk inserts into the migrated schema; statuses mixed,
directories 90% corp-ad, 8.5% corp-okta, 1% emea-ad, 0.5% emea-okta, none in apac-ad), then times,
through `ActionService` and the real store: the first page (100, newest first), a page deep in the
history (`before_id` at a tenth of the ids), `count_by_status`, and the console's history tab (a
page of final actions) and its Pending count; for an unscoped user and users scoped to a common
directory, a rare one, two rare ones, two common ones and one that has no actions. Each row also
carries the database's plans for the scoped users' queries (SQLite EXPLAIN QUERY PLAN, PostgreSQL
EXPLAIN).

    .venv/bin/python bench/scoped_listing.py --database sqlite
    .venv/bin/python bench/scoped_listing.py --database postgresql
    .venv/bin/python bench/scoped_listing.py --database sqlite --drop-index   # without the index
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import psycopg
from sqlalchemy import event, insert, inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.recorder import EventRecorder
from clampdown.auth.principal import Principal
from clampdown.db.database import create_engine
from clampdown.db.migrate import upgrade
from clampdown.db.tables import actions
from clampdown.model import ActionFilter, ActionStatus
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore

PG_ADMIN = os.environ.get("CLAMPDOWN_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
RESULTS = Path(__file__).parent / "results" / "scoped_listing.jsonl"
INDEX = "ix_actions_instance_id"
PAGE = 100
T = TypeVar("T")

# Where the actions ran (cumulative weights) and how they ended.
INSTANCES = (("corp-ad", 0.90), ("corp-okta", 0.985), ("emea-ad", 0.995), ("emea-okta", 1.0))
STATUSES = (
    (ActionStatus.COMPLETED, 0.88),
    (ActionStatus.FAILED, 0.94),
    (ActionStatus.CANCELLED, 0.96),
    (ActionStatus.QUEUED, 0.98),
    (ActionStatus.RUNNING, 0.99),
    (ActionStatus.AWAITING_APPROVAL, 1.0),
)
OUTCOME = {"changed": True, "message": "done", "warnings": [], "details": {}}
STATE_BEFORE = {"enabled": True, "status": "ACTIVE", "values": {}}
PENDING = (ActionStatus.AWAITING_APPROVAL, ActionStatus.QUEUED, ActionStatus.RUNNING)
HISTORY = (ActionStatus.COMPLETED, ActionStatus.FAILED, ActionStatus.CANCELLED)
QUERIES = ("first_page", "deep_page", "count_by_status", "history_tab", "pending_count")
SCOPES: dict[str, frozenset[str] | None] = {
    "unscoped": None,
    "common {corp-ad}": frozenset({"corp-ad"}),
    "rare {emea-ad}": frozenset({"emea-ad"}),
    "two rare {emea-ad, emea-okta}": frozenset({"emea-ad", "emea-okta"}),
    "two common {corp-ad, corp-okta}": frozenset({"corp-ad", "corp-okta"}),
    "empty {apac-ad}": frozenset({"apac-ad"}),
}


def _url(database: str, folder: Path) -> str:
    if database == "sqlite":
        return f"sqlite:///{folder / 'bench.db'}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "bench_scoped_listing" WITH (FORCE)')
        conn.execute('CREATE DATABASE "bench_scoped_listing"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/bench_scoped_listing"


def _pick(choices: tuple[tuple[T, float], ...], draw: float) -> T:
    return next(value for value, upto in choices if draw < upto)


def _rows(start: int, count: int, rng: random.Random, at: datetime) -> list[dict[str, Any]]:
    """Rows shaped as the service writes them: account, outcome and state before, so a scan reads
    rows of a realistic width."""
    rows: list[dict[str, Any]] = []
    for n in range(start, start + count):
        instance = _pick(INSTANCES, rng.random())
        status = _pick(STATUSES, rng.random())
        provider = instance.split("-")[1]
        name = f"user{n:07d}@{instance}.example.test"
        done = status.is_final
        rows.append(
            {
                "type": f"{provider}.{'disable_user' if provider == 'ad' else 'suspend_user'}",
                "provider": provider,
                "target": name,
                "account": {
                    "provider": provider,
                    "id": f"id-{n:07d}",
                    "name": name,
                    "attributes": {"displayName": f"User {n}", "department": "Finance"},
                    "linked_by": None,
                    "instance": instance,
                },
                "account_id": f"id-{n:07d}",
                "requested_by": "analyst",
                "reason": f"INC-{n // 500}: phishing campaign",
                "batch_id": f"batch-{n // 500}",
                "status": status.value,
                "attempts": 1 if done else 0,
                "requested_at": at + timedelta(seconds=n),
                "started_at": at + timedelta(seconds=n) if done else None,
                "finished_at": at + timedelta(seconds=n + 1) if done else None,
                "available_at": at + timedelta(seconds=n),
                "result": OUTCOME if done else None,
                "state_before": STATE_BEFORE if done else None,
                "history": [],
                "approval_rules": [],
                "instance": instance,
            }
        )
    return rows


async def _fill(engine: AsyncEngine, count: int, seed: int) -> None:
    rng = random.Random(seed)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    chunk = 5_000
    for start in range(0, count, chunk):
        async with engine.begin() as conn:
            await conn.execute(insert(actions), _rows(start, min(chunk, count - start), rng, at))
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:  # what autovacuum does after such a load
            await conn.execute(text("ANALYZE actions"))


async def _has_index(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        names = await conn.run_sync(lambda c: {i["name"] for i in inspect(c).get_indexes("actions")})
    return INDEX in names


async def _timed(call: Callable[[], Awaitable[object]], runs: int) -> float:
    await call()  # warm: the connection, the statement cache, the pages
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        await call()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


async def _plan(engine: AsyncEngine, call: Callable[[], Awaitable[object]]) -> list[str]:
    """The database's plan for the statement(s) `call` sends, as the store sends them."""
    sent: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        await call()
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    lines = []
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    async with engine.connect() as conn:
        for statement, parameters in sent:
            if not statement.lstrip().upper().startswith(("SELECT", "WITH")):
                continue
            rows = (await conn.exec_driver_sql(prefix + statement, parameters)).all()
            lines += [str(r[-1]) for r in rows]
    return lines


async def run(count: int, database: str, runs: int, drop_index: bool, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(_url(database, Path(tmp)))
        await upgrade(engine)
        if drop_index:
            async with engine.begin() as conn:
                await conn.execute(text(f"DROP INDEX IF EXISTS {INDEX}"))
        started = time.perf_counter()
        await _fill(engine, count, seed)
        fill_seconds = time.perf_counter() - started
        service = ActionService(ActionStore(engine, EventRecorder()), {})
        deep_id = count // 10
        flt = ActionFilter()
        history = ActionFilter(statuses=HISTORY)  # the console's tabs, and its Pending count
        pending = ActionFilter(statuses=PENDING)
        timings: dict[str, dict[str, Any]] = {}
        plans: dict[str, dict[str, list[str]]] = {}
        for label, scope in SCOPES.items():
            who = Principal.from_roles("bench", frozenset({GLOBAL_ADMINISTRATOR}), {}, scope=scope)
            calls: dict[str, Callable[[], Awaitable[object]]] = {
                "first_page": partial(service.list_actions, flt, who, limit=PAGE),
                "deep_page": partial(service.list_actions, flt, who, limit=PAGE, before_id=deep_id),
                "count_by_status": partial(service.count_by_status, flt, who),
                "history_tab": partial(service.list_actions, history, who, limit=PAGE),
                "pending_count": partial(service.count_by_status, pending, who),
            }
            first = await service.list_actions(flt, who, limit=PAGE)
            deep_rows = await service.list_actions(flt, who, limit=PAGE, before_id=deep_id)
            timings[label] = {
                "rows_first_page": len(first),
                "rows_deep_page": len(deep_rows),
                "actions_seen": sum((await service.count_by_status(flt, who)).values()),
            }
            for name, call in calls.items():
                timings[label][f"{name}_ms"] = round(await _timed(call, runs) * 1000, 3)
            if scope is not None:
                plans[label] = {name: await _plan(engine, call) for name, call in calls.items()}
        base = timings["unscoped"]
        for row in timings.values():
            for name in QUERIES:
                row[f"{name}_ratio"] = round(row[f"{name}_ms"] / base[f"{name}_ms"], 2)
        indexed = await _has_index(engine)
        await engine.dispose()
    return {
        "benchmark": "scoped_listing",
        "database": database,
        "actions": count,
        "runs": runs,
        "index": INDEX if indexed else None,
        "deep_before_id": deep_id,
        "fill_seconds": round(fill_seconds, 1),
        "timings": timings,
        "plans": plans,
        "load_average": round(os.getloadavg()[0], 2),
        "at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--actions", type=int, default=200_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--runs", type=int, default=20, help="timed calls per query and user (median)")
    parser.add_argument("--drop-index", action="store_true", help=f"without {INDEX}, as before it")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--label", default=None, help="recorded with the row (e.g. the code measured)")
    args = parser.parse_args()
    result = asyncio.run(run(args.actions, args.database, args.runs, args.drop_index, args.seed))
    if args.label:
        result["label"] = args.label
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(json.dumps(result) + "\n")
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
