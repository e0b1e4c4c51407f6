"""The action center at scale: every filter of the console and the API, its first page and a deep
page, and the counts the console shows beside them, on a table of millions of actions.

`generate` fills a database (schema by the project's migrations, at `--revision`) with N actions,
set-based in SQL (PostgreSQL generate_series, SQLite a recursive CTE), with the indexes dropped
during the load and rebuilt from their own definitions after it, as a bulk load does. The same
deterministic formulas on both databases give both the same rows:

- directories: corp-ad 50%, corp-entra 30%, corp-okta 17%, emea-ad 3%; 25 action types, skewed;
- statuses: over the year, 93% completed, 5.5% failed, 1.4% cancelled, 0.1% queued (timed
  releases); the newest 2,000 actions 40% queued, 10% running, 10% awaiting approval;
- 5,000 people (targets, and account ids per directory); requesters: 30% svc-detections, 5%
  soc-lead, the rest over 2,000 analysts; 30% of actions in bulk batches of 500;
- requested over a year ending at 2026-12-01 (the bench's "now"), ids in time order.

`time` times, through `ActionService` and the real store (what the API and the console call),
p50 and p95 of each filter's first page and deep page (the page after min(500,000, half of its
matches) of its matches, as a client following cursors gets there), and of the counts the console
shows (the Pending count, a batch's progress). With `--upgrade` it first migrates to head (the
index build is timed) and then times. Results are appended to bench/results/action_center_scale.jsonl.

    .venv/bin/python bench/action_center_scale.py generate --database postgresql --actions 1000000
    flock /tmp/clampdown-bench.lock .venv/bin/python bench/action_center_scale.py time \
        --database postgresql --actions 1000000
    flock /tmp/clampdown-bench.lock .venv/bin/python bench/action_center_scale.py time \
        --database postgresql --actions 1000000 --upgrade
    .venv/bin/python bench/action_center_scale.py drop --database postgresql --actions 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.recorder import EventRecorder
from clampdown.auth.principal import Principal
from clampdown.db import migrate
from clampdown.db.database import create_engine
from clampdown.db.migrate import current_revision, upgrade
from clampdown.db.tables import actions
from clampdown.model import ActionFilter, ActionSource, ActionStatus
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore

PG_ADMIN = os.environ.get("CLAMPDOWN_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
SQLITE_FOLDER = Path(os.environ.get("CLAMPDOWN_BENCH_SQLITE", "/tmp"))
RESULTS = Path(__file__).parent / "results" / "action_center_scale.jsonl"
NOW = datetime(2026, 12, 1, tzinfo=UTC)
YEAR = 365 * 86400
PAGE = 100  # the console's page
DEEP = 500_000
PENDING = (ActionStatus.AWAITING_APPROVAL, ActionStatus.QUEUED, ActionStatus.RUNNING)
HISTORY = (ActionStatus.COMPLETED, ActionStatus.FAILED, ActionStatus.CANCELLED)
RECENT = 2_000  # the newest actions, where the queue's live work is

# Per-row pseudo-random draws in [0, 1000), the same integer formula on both databases.
_P1, _P2 = 1_000_003, 999_983
_MIX = {"inst": (618_034, 7_919), "type": (414_213, 104_729), "person": (732_050, 15_485),
        "who": (236_067, 32_452), "analyst": (302_775, 49_979), "status": (577_215, 86_028)}  # fmt: skip


def _draw(name: str, modulo: int = 1000) -> str:
    a, b = _MIX[name]
    return f"((((n * {a}) % {_P1}) * {b} + n) % {_P2} % {modulo})"


def _case(draw: str, choices: list[tuple[int, str]]) -> str:
    """CASE picking the value of the first bucket whose upper bound the draw is under."""
    parts = " ".join(f"WHEN {draw} < {upto} THEN {value}" for upto, value in choices[:-1])
    return f"CASE {parts} ELSE {choices[-1][1]} END"


INSTANCES = [(500, "'corp-ad'"), (800, "'corp-entra'"), (970, "'corp-okta'"), (1000, "'emea-ad'")]
TYPES = {
    "ad": [(60, "disable_user"), (80, "force_password_reset"), (92, "remove_privileged_groups"),
           (97, "enable_user"), (99, "restore_privileged_groups"), (100, "clear_password_reset")],
    "entra": [(35, "revoke_sessions"), (60, "suspend_user"), (75, "mark_compromised"),
              (85, "force_password_reset"), (92, "remove_auth_methods"), (96, "disable_devices"),
              (98, "enable_user"), (100, "dismiss_user_risk")],
    "okta": [(40, "suspend_user"), (65, "clear_sessions"), (80, "revoke_grants"), (88, "reset_factors"),
             (94, "universal_logout"), (97, "unsuspend_user"), (100, "expire_password")],
}  # fmt: skip


def _insert_sql(dialect: str, first: int, last: int, total: int) -> str:
    """INSERT ... SELECT of the actions numbered first..last (their ids) of `total`."""
    sqlite = dialect == "sqlite"
    cat = " || "
    inst = _draw("inst")
    provider = _case(inst, [(500, "'ad'"), (800, "'entra'"), (970, "'okta'"), (1000, "'ad'")])
    type_draw = _draw("type", 100)
    type_case = "CASE " + " ".join(
        f"WHEN {provider} = '{kind}' THEN {_case(type_draw, [(u, repr(kind + '.' + t)) for u, t in choices])}"
        for kind, choices in TYPES.items()
    ) + " END"  # fmt: skip
    person = _draw("person", 5000)
    who = _draw("who")
    requested_by = (
        f"CASE WHEN {who} < 300 THEN 'svc-detections' WHEN {who} < 350 THEN 'soc-lead' "
        f"ELSE 'analyst' {cat} {_draw('analyst', 2000)} END"
    )
    s = _draw("status")
    old = _case(s, [(930, "'completed'"), (985, "'failed'"), (999, "'cancelled'"), (1000, "'queued'")])
    new = _case(
        s, [(400, "'queued'"), (500, "'running'"), (600, "'awaiting_approval'"), (1000, "'completed'")]
    )
    status = f"CASE WHEN n > {total - RECENT} THEN {new} ELSE {old} END"
    start = (NOW - timedelta(seconds=YEAR)).replace(tzinfo=None)
    step = YEAR / total
    if sqlite:
        at = f"strftime('%Y-%m-%d %H:%M:%f', '{start.isoformat()}', '+' || (n * {step}) || ' seconds')"
        later = f"strftime('%Y-%m-%d %H:%M:%f', '{start.isoformat()}', '+' || (n * {step} + 2) || ' seconds')"
        obj = "json_object"
        series = f"WITH RECURSIVE g(n) AS (SELECT {first} UNION ALL SELECT n + 1 FROM g WHERE n < {last}) "
        source = "FROM g"
    else:
        at = f"(TIMESTAMP '{start.isoformat()}' + make_interval(secs => n * {step}))"
        later = f"(TIMESTAMP '{start.isoformat()}' + make_interval(secs => n * {step} + 2))"
        obj = "json_build_object"
        series = ""
        source = f"FROM generate_series({first}::bigint, {last}::bigint) AS g(n)"
    name = f"'user' {cat} {person} {cat} '@example.test'"
    account_id = f"'id-' {cat} {_case(inst, INSTANCES)} {cat} '-' {cat} {person}"
    final = "IN ('completed', 'failed', 'cancelled')"
    account = (
        f"{obj}('provider', {provider}, 'id', {account_id}, 'name', {name}, 'attributes', "
        f"{obj}('displayName', 'User ' {cat} {person}, 'department', 'Finance'), 'linked_by', NULL, "
        f"'instance', {_case(inst, INSTANCES)})"
    )
    array = "json_array()" if sqlite else "json_build_array()"
    result = f"{obj}('changed', true, 'message', 'done', 'warnings', {array}, 'details', {obj}())"
    state = f"{obj}('enabled', true, 'status', 'ACTIVE', 'values', {obj}())"
    columns = (
        "id, type, provider, target, account, account_id, requested_by, reason, batch_id, status, attempts, "
        "requested_at, started_at, finished_at, available_at, result, error_code, error_message, "
        "state_before, history, approval_rules, instance"
    )
    return f"""{series}INSERT INTO actions ({columns})
SELECT n, type, provider, name, account, account_id, requested_by, reason, batch_id, status,
  CASE WHEN status {final} THEN 1 ELSE 0 END, at,
  CASE WHEN status {final} OR status = 'running' THEN at END, CASE WHEN status {final} THEN later END,
  at, CASE WHEN status = 'completed' THEN result END,
  CASE WHEN status = 'failed' THEN 'provider_error' END,
  CASE WHEN status = 'failed' THEN 'the provider answered 500' END,
  CASE WHEN status = 'completed' THEN state END, '[]', '[]', instance
FROM (SELECT n, {type_case} AS type, {provider} AS provider, {name} AS name, {account} AS account,
  {account_id} AS account_id, {requested_by} AS requested_by,
  'INC-' {cat} (n / 200) {cat} ': phishing campaign' AS reason,
  CASE WHEN (n / 500) % 10 < 3 THEN 'batch-' {cat} (n / 500) END AS batch_id, {status} AS status,
  {at} AS at, {later} AS later, {result} AS result, {state} AS state, {_case(inst, INSTANCES)} AS instance
  {source}) AS rows"""


def _names(database: str, count: int) -> tuple[str, str]:
    """The database's URL and its name (PostgreSQL) or file (SQLite)."""
    label = f"bench_scale_{count // 1_000_000}m" if count >= 1_000_000 else f"bench_scale_{count}"
    if database == "sqlite":
        path = SQLITE_FOLDER / f"{label}.db"
        return f"sqlite:///{path}", str(path)
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + label, label


async def _indexes(engine: AsyncEngine) -> list[tuple[str, str]]:
    """(name, CREATE INDEX statement) of the actions table's indexes, but the primary key's."""
    async with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = await conn.exec_driver_sql(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'actions' "
                "AND sql IS NOT NULL"
            )
        else:
            rows = await conn.exec_driver_sql(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'actions' "
                "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
            )
        return [(str(n), str(s)) for n, s in rows.all()]


async def generate(database: str, count: int, revision: str) -> dict[str, Any]:
    url, name = _names(database, count)
    if database == "sqlite":
        for suffix in ("", "-wal", "-shm"):
            Path(name + suffix).unlink(missing_ok=True)
    else:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    engine = create_engine(url)
    await upgrade(engine, revision)
    indexes = await _indexes(engine)
    started = time.perf_counter()
    async with engine.begin() as conn:
        for index, _ in indexes:
            await conn.exec_driver_sql(f"DROP INDEX {index}")
        if database == "postgresql":  # the unique key of requested_by and idempotency_key is a constraint
            await conn.exec_driver_sql(
                "ALTER TABLE actions DROP CONSTRAINT uq_actions_requested_by_idempotency_key"
            )
    chunk = 1_000_000
    for first in range(1, count + 1, chunk):
        async with engine.begin() as conn:
            await conn.exec_driver_sql(_insert_sql(database, first, min(first + chunk - 1, count), count))
        print(
            f"  {min(first + chunk - 1, count):,} rows, {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
        )
    loaded = time.perf_counter() - started
    async with engine.begin() as conn:
        for _, statement in indexes:
            await conn.exec_driver_sql(statement)
        if database == "postgresql":
            await conn.exec_driver_sql(
                "ALTER TABLE actions ADD CONSTRAINT uq_actions_requested_by_idempotency_key "
                "UNIQUE (requested_by, idempotency_key)"
            )
            await conn.exec_driver_sql(f"SELECT setval('actions_id_seq', {count})")
    indexed = time.perf_counter() - started - loaded
    await _analyze(engine)
    await engine.dispose()
    return {"load_seconds": round(loaded, 1), "index_seconds": round(indexed, 1)}


async def _analyze(engine: AsyncEngine) -> None:
    """What autovacuum (PostgreSQL) or `PRAGMA optimize` (SQLite) does after a load."""
    if engine.dialect.name == "postgresql":
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.exec_driver_sql("VACUUM ANALYZE actions")
    else:
        async with engine.begin() as conn:
            await conn.exec_driver_sql("ANALYZE")


@dataclass(frozen=True)
class Case:
    """One console or API filter."""

    name: str
    flt: ActionFilter
    face: str  # console (a tab: statuses set) or api


def cases(count: int) -> list[Case]:
    """Every filter the console and the API offer, alone, and a few combinations."""
    batch = f"batch-{count // 5000 * 10 - 10}"  # a bulk of 500 near the newest
    history, pending = ActionFilter(statuses=HISTORY), ActionFilter(statuses=PENDING)
    day = timedelta(days=1)
    out = [
        Case("history tab", history, "console"),
        Case("pending tab", pending, "console"),
        Case("status=failed", ActionFilter(statuses=(ActionStatus.FAILED,)), "console"),
        Case("status=cancelled", ActionFilter(statuses=(ActionStatus.CANCELLED,)), "console"),
        Case("status=queued", ActionFilter(statuses=(ActionStatus.QUEUED,)), "console"),
        Case("status=awaiting_approval", ActionFilter(statuses=(ActionStatus.AWAITING_APPROVAL,)), "console"),
        Case("type common (ad.disable_user)", replace(history, type="ad.disable_user"), "console"),
        Case("type rare (okta.expire_password)", replace(history, type="okta.expire_password"), "console"),
        Case("type none (okta.set_risk)", replace(history, type="okta.set_risk"), "console"),
        Case("provider=okta", replace(history, provider="okta"), "console"),
        Case(
            "requested_by common (svc-detections)", replace(history, requested_by="svc-detections"), "console"
        ),
        Case("requested_by one analyst", replace(history, requested_by="analyst77"), "console"),
        Case("target as given", replace(history, target="user1234@example.test"), "console"),
        Case("target account id", replace(history, target="id-corp-okta-1234"), "console"),
        Case("target none", replace(history, target="nobody@example.test"), "console"),
        Case("batch", replace(history, batch_id=batch), "console"),
        Case("since 1h", replace(history, since=NOW - timedelta(hours=1)), "console"),
        Case("since 24h", replace(history, since=NOW - day), "console"),
        Case("since 7d", replace(history, since=NOW - 7 * day), "console"),
        Case("since 30d", replace(history, since=NOW - 30 * day), "console"),
        Case("pending + provider=ad", replace(pending, provider="ad"), "console"),
        Case(
            "failed + type rare + 30d",
            replace(
                history, statuses=(ActionStatus.FAILED,), type="okta.expire_password", since=NOW - 30 * day
            ),
            "console",
        ),
        Case(
            "analyst + type + 7d",
            replace(history, requested_by="analyst77", type="ad.disable_user", since=NOW - 7 * day),
            "console",
        ),
        # Issue 19 (after bench/overview_scale.py prepare: 1 in 100 by a rule, 1 in 50 with an incident).
        Case("source=rule", replace(history, source=ActionSource.RULE), "console"),
        Case("incident", replace(history, incident="INC-123"), "console"),
        Case(
            "failed + error_code",
            replace(history, statuses=(ActionStatus.FAILED,), error_code="provider_error"),
            "console",
        ),
        Case("all (api)", ActionFilter(), "api"),
        Case("instance=emea-ad (api)", ActionFilter(instance="emea-ad"), "api"),
        Case("until a month ago (api)", ActionFilter(until=NOW - 30 * day), "api"),
        Case("since..until one day (api)", ActionFilter(since=NOW - 100 * day, until=NOW - 99 * day), "api"),
        Case(
            "target + failed (api)",
            ActionFilter(statuses=(ActionStatus.FAILED,), target="user1234@example.test"),
            "api",
        ),
    ]
    return out


SCOPED = Case("scoped {corp-okta, emea-ad}: history tab", ActionFilter(statuses=HISTORY), "console")


async def _timed(call: Callable[[], Awaitable[object]], runs: int, budget: float) -> dict[str, Any]:
    """p50 and p95 in ms over `runs` calls after a warm one; fewer when a call takes seconds."""
    t = time.perf_counter()
    await call()  # warm: the connection, the statement cache, the pages
    first = time.perf_counter() - t
    n = max(3, min(runs, int(budget / max(first, 1e-6))))
    times = []
    for _ in range(n):
        t = time.perf_counter()
        await call()
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
    return {"p50": round(statistics.median(times), 2), "p95": round(p95, 2), "runs": n}


async def _deep_cursor(engine: AsyncEngine, service: ActionService, who: Principal, flt: ActionFilter,
                       count: int) -> tuple[int | None, int]:  # fmt: skip
    """The cursor after min(DEEP, half of the matches) of `flt`'s matches, and the matches."""
    matches = sum((await service.count_by_status(flt, who)).values())
    depth = min(DEEP, matches // 2)
    if depth < PAGE:
        return None, matches
    scoped = service.scoped_filter(flt, who)
    query = service.store._newest(scoped, 1, None).offset(depth - 1).with_only_columns(actions.c.id)
    async with engine.connect() as conn:
        found = (await conn.execute(query)).scalar()
    return (int(found) if found is not None else None), matches


async def _migrate(engine: AsyncEngine, revision: str) -> None:
    """Up or down to `revision` (down: to time the same rows without the newer indexes)."""
    if revision == "head" or int(revision) > int(await current_revision(engine) or 0):
        await upgrade(engine, revision)
        return

    def down(connection: Connection) -> None:
        cfg = Config()
        cfg.set_main_option("script_location", str(Path(migrate.__file__).with_name("migrations")))
        cfg.attributes["connection"] = connection
        command.downgrade(cfg, revision)

    async with engine.connect() as conn:
        await conn.run_sync(down)
        await conn.commit()


async def time_all(
    database: str, count: int, runs: int, budget: float, to: str | None, only: str | None
) -> dict[str, Any]:
    url, _ = _names(database, count)
    engine = create_engine(url)
    built = None
    if to is not None:
        t = time.perf_counter()
        await _migrate(engine, to)
        await _analyze(engine)
        built = round(time.perf_counter() - t, 1)
    revision = await current_revision(engine)
    service = ActionService(ActionStore(engine, EventRecorder()), {})
    admin = Principal.from_roles("bench", frozenset({GLOBAL_ADMINISTRATOR}), {})
    scoped = Principal.from_roles("bench", frozenset({GLOBAL_ADMINISTRATOR}), {},
                                  scope=frozenset({"corp-okta", "emea-ad"}))  # fmt: skip
    rows: list[dict[str, Any]] = []
    todo = [(c, admin) for c in cases(count)] + [(SCOPED, scoped)]
    for case, who in todo:
        if only and only not in case.name:
            continue
        deep, matches = await _deep_cursor(engine, service, who, case.flt, count)
        row: dict[str, Any] = {"case": case.name, "face": case.face, "matches": matches}

        def page(before: int | None, flt: ActionFilter = case.flt, who: Principal = who) -> Awaitable[object]:
            return service.list_actions(flt, who, limit=PAGE, before_id=before)

        row["first"] = await _timed(lambda: page(None), runs, budget)
        if deep is not None:
            row["deep"] = await _timed(partial(page, deep), runs, budget)
            row["deep_before_id"] = deep
        rows.append(row)
        print(_line(row), file=sys.stderr)
    queued_running = ActionFilter(statuses=(ActionStatus.QUEUED, ActionStatus.RUNNING))
    counts = {
        "pending count": (ActionFilter(statuses=PENDING), admin),
        "pending count (scoped)": (ActionFilter(statuses=PENDING), scoped),
        "batch progress (500)": (ActionFilter(batch_id=f"batch-{count // 5000 * 10 - 10}"), admin),
        "queued + running (worker)": (queued_running, admin),
    }
    for name, (flt, reader) in counts.items():
        if only and only not in name:
            continue
        n = sum((await service.count_by_status(flt, reader)).values())
        timed = await _timed(partial(service.count_by_status, flt, reader), runs, budget)
        row = {"case": name, "face": "count", "matches": n, "first": timed}
        rows.append(row)
        print(_line(row), file=sys.stderr)
    await engine.dispose()
    return {
        "benchmark": "action_center_scale",
        "database": database,
        "actions": count,
        "revision": revision,
        "migrate_seconds": built,
        "runs": runs,
        "rows": rows,
        "load_average": round(os.getloadavg()[0], 2),
        "at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _line(row: dict[str, Any]) -> str:
    first, deep = row["first"], row.get("deep")
    deep_text = f"{deep['p50']:9.2f} {deep['p95']:9.2f}" if deep else f"{'-':>9} {'-':>9}"
    return f"{row['case'][:44]:44} {row['matches']:>10,} {first['p50']:9.2f} {first['p95']:9.2f} {deep_text}"


def _cell(timing: dict[str, Any] | None, base: dict[str, Any] | None) -> str:
    if timing is None:
        return "-"
    text = f"{timing['p50']:.1f} / {timing['p95']:.1f}"
    return text + (f" ({timing['p95'] / base['p95']:.2f})" if base else "")


def report() -> str:
    """Markdown tables of the latest run of each database, size and revision in the results: p50 /
    p95 in ms, after the head revision the ratio of its p95 to that of the oldest revision."""
    runs: dict[tuple[str, int, str], dict[str, Any]] = {}
    for line in RESULTS.read_text().splitlines():
        run = json.loads(line)
        runs[(run["database"], run["actions"], run["revision"])] = run
    out = []
    for database in ("sqlite", "postgresql"):
        sizes = sorted({n for d, n, _ in runs if d == database})
        columns = [(n, r) for n in sizes for r in sorted({r for d, m, r in runs if d == database and m == n})]
        if not columns:
            continue
        oldest = min(r for _, _, r in runs)  # "before"
        head = " | ".join(
            f"{n // 1_000_000}M {'before' if r == oldest else 'after'} {kind}"
            for n, r in columns
            for kind in ("first", "deep")
        )
        matches_at = f"matches at {sizes[-1] // 1_000_000}M"
        rule = "|---|---|" + "---|" * (2 * len(columns))
        out += [f"{database}:", "", f"| case | {matches_at} | {head} |", rule]
        for row in runs[(database, *columns[-1])]["rows"]:
            cells = []
            for n, r in columns:
                found = {x["case"]: x for x in runs[(database, n, r)]["rows"]}.get(row["case"], {})
                before = runs.get((database, n, oldest), {"rows": []})["rows"]
                base = {x["case"]: x for x in before}.get(row["case"], {})
                for kind in ("first", "deep"):
                    cells.append(_cell(found.get(kind), base.get(kind) if r != oldest else None))
            matches = {x["case"]: x for x in runs[(database, sizes[-1], columns[-1][1])]["rows"]}
            n_text = f"{matches.get(row['case'], row)['matches']:,}"
            out.append(f"| {row['case']} | {n_text} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=("generate", "time", "drop", "report"))
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--actions", type=int, default=1_000_000)
    parser.add_argument("--revision", default="0013", help="generate: the schema to load into")
    parser.add_argument("--runs", type=int, default=20, help="timed calls per query (p50, p95)")
    parser.add_argument("--budget", type=float, default=10.0, help="seconds per query at most (fewer runs)")
    parser.add_argument("--upgrade", action="store_true", help="time: migrate to head first")
    parser.add_argument("--to", help="time: migrate up or down to this revision first")
    parser.add_argument("--only", help="time: only the cases whose name contains this")
    args = parser.parse_args()
    if args.command == "generate":
        print(json.dumps(asyncio.run(generate(args.database, args.actions, args.revision))))
        return
    if args.command == "report":
        print(report())
        return
    if args.command == "drop":
        _, name = _names(args.database, args.actions)
        if args.database == "sqlite":
            for suffix in ("", "-wal", "-shm"):
                Path(name + suffix).unlink(missing_ok=True)
        else:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return
    print(
        f"{'case':44} {'matches':>10} {'first p50':>9} {'p95':>9} {'deep p50':>9} {'p95':>9}  (ms)",
        file=sys.stderr,
    )
    to = "head" if args.upgrade else args.to
    result = asyncio.run(time_all(args.database, args.actions, args.runs, args.budget, to, args.only))
    if not args.only:
        RESULTS.parent.mkdir(exist_ok=True)
        with RESULTS.open("a") as out:
            out.write(json.dumps(result) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "rows"}))


if __name__ == "__main__":
    main()
