"""The overview (issue 19) at scale: its aggregates over a table of millions of actions, and the
action center's new filters (source, incident, error code) its links open.

Runs on the database `bench/action_center_scale.py generate` made (same rows, same "now",
2026-12-01), at revision 0015 or later. `prepare` marks some of those actions as what the overview
counts: 1 in 100 requested by a detection rule (in batches of 20, as a rule's run is one batch),
1 in 50 with an incident (INC-0 .. INC-499), and adds 2,000 containments over the last month whose
three steps completed (times to contain of seconds to minutes). `time` times, p50 and p95 over
`--runs` calls: each query of the overview (as services/overview.py makes them: a day's and a week's
actions by status, the week's failures by reason, rules that fired, times to contain, active
containments) and the first page of each link it offers. Results are appended to
bench/results/overview_scale.jsonl.

    .venv/bin/python bench/action_center_scale.py generate --database sqlite --actions 1000000 --revision 0015
    .venv/bin/python bench/overview_scale.py prepare --database sqlite --actions 1000000
    flock -x /tmp/clampdown-bench.lock .venv/bin/python bench/overview_scale.py time \
        --database sqlite --actions 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from clampdown.audit.recorder import EventRecorder
from clampdown.auth.principal import Principal
from clampdown.db.database import create_engine
from clampdown.db.migrate import current_revision
from clampdown.db.tables import actions, containments
from clampdown.model import ActionFilter, ActionSource, ActionStatus
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore
from clampdown.store.overview import OverviewStore

sys.path.insert(0, str(Path(__file__).parent))
from action_center_scale import NOW, PAGE, _analyze, _names, _timed

RESULTS = Path(__file__).parent / "results" / "overview_scale.jsonl"
DAY, WEEK = NOW - timedelta(days=1), NOW - timedelta(days=7)
CONTAINMENTS = 2_000


async def prepare(database: str, count: int) -> None:
    url, _ = _names(database, count)
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text(
            "UPDATE actions SET source = 'rule', batch_id = 'rule-' || (id / 2000), "
            "reason = 'detection rule ''spray ' || (id / 2000 % 7) || '''' WHERE id % 100 = 0"
        ))  # fmt: skip
        await conn.execute(text("UPDATE actions SET incident = 'INC-' || (id / 50 % 500) WHERE id % 50 = 7"))
        await conn.execute(text("DELETE FROM actions WHERE containment_id IS NOT NULL"))
        await conn.execute(text("DELETE FROM containments"))
        rows, steps = [], []
        for n in range(CONTAINMENTS):
            at = NOW - timedelta(minutes=21 * n + 1)  # over about a month
            state = "active" if n % 4 else "released"
            rows.append({"id": n + 1, "person": f"user{n}@example.test", "playbook": "contain",
                         "requested_by": "analyst1", "reason": "INC", "state": state,
                         "created_at": at, "accounts": []})  # fmt: skip
            for k in range(3):
                done = at + timedelta(seconds=(n % 97) * (k + 1) + 2)
                steps.append({"type": "ad.disable_user", "provider": "ad", "target": f"user{n}@example.test",
                              "requested_by": "analyst1", "reason": "INC", "status": "completed",
                              "attempts": 1, "requested_at": at, "available_at": at, "finished_at": done,
                              "history": [], "approval_rules": [], "instance": "corp-ad",
                              "containment_id": n + 1, "containment_role": "step",
                              "source": "playbook"})  # fmt: skip
        await conn.execute(insert(containments), rows)
        await conn.execute(insert(actions), steps)
        if database == "postgresql":
            await conn.execute(
                text("SELECT setval('containments_id_seq', (SELECT max(id) FROM containments))")
            )
    await _analyze(engine)  # as after a load: autovacuum's statistics, or ANALYZE on SQLite
    await engine.dispose()


async def time_all(database: str, count: int, runs: int, budget: float) -> dict[str, Any]:
    url, _ = _names(database, count)
    engine = create_engine(url)
    revision = await current_revision(engine)
    store = OverviewStore(engine)
    service = ActionService(ActionStore(engine, EventRecorder()), {})
    admin = Principal.from_roles("bench", frozenset({GLOBAL_ADMINISTRATOR}), {})
    scope = frozenset({"corp-okta", "emea-ad"})
    queries: dict[str, Callable[[], Awaitable[object]]] = {
        "actions by status, 24h": partial(store.actions_by_status, DAY),
        "actions by status, 7d": partial(store.actions_by_status, WEEK),
        "actions by status, 7d (scoped)": partial(store.actions_by_status, WEEK, scope),
        "failures by reason, 7d": partial(store.failures_by_reason, WEEK),
        "rules that fired, 7d": partial(store.rule_firings, WEEK),
        "time to contain, 7d": partial(store.containment_timings, WEEK),
        "active containments": store.open_containments,
    }
    week = {"since": WEEK}
    links = {
        "link: status=failed 7d": ActionFilter(statuses=(ActionStatus.FAILED,), **week),  # type: ignore[arg-type]
        "link: failed + error_code 7d": ActionFilter(
            statuses=(ActionStatus.FAILED,), error_code="provider_error", since=WEEK
        ),
        "link: source=rule 7d": ActionFilter(source=ActionSource.RULE, since=WEEK),
        "link: a rule's batch": ActionFilter(batch_id=f"rule-{count // 2000 - 3}"),
        "filter: incident": ActionFilter(incident="INC-123"),
        "filter: source=watch (none)": ActionFilter(source=ActionSource.WATCH),
        "filter: source=manual (most)": ActionFilter(
            statuses=(ActionStatus.COMPLETED,), source=ActionSource.MANUAL
        ),
    }
    rows: list[dict[str, Any]] = []
    for name, call in queries.items():
        found = await call()
        row = {"case": name, "answer": _short(found), "timing": await _timed(call, runs, budget)}
        rows.append(row)
        print(
            f"{name:44} {row['timing']['p50']:9.2f} {row['timing']['p95']:9.2f}  {row['answer']}",
            file=sys.stderr,
        )
    for name, flt in links.items():
        matches = sum((await service.count_by_status(flt, admin)).values())
        page = partial(service.list_actions, flt, admin, limit=PAGE)
        row = {"case": name, "matches": matches, "timing": await _timed(page, runs, budget)}
        rows.append(row)
        print(
            f"{name:44} {row['timing']['p50']:9.2f} {row['timing']['p95']:9.2f}  {matches:,}", file=sys.stderr
        )
    await engine.dispose()
    return {
        "benchmark": "overview_scale",
        "database": database,
        "actions": count,
        "revision": revision,
        "runs": runs,
        "rows": rows,
        "load_average": round(os.getloadavg()[0], 2),
        "at": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def _short(found: object) -> str:
    if isinstance(found, dict):
        return ", ".join(f"{getattr(k, 'value', k)} {v}" for k, v in found.items())
    if isinstance(found, list):
        return f"{len(found)} rows"
    if isinstance(found, tuple):
        return f"{found[0]} actions, {len(found[1])} firings"
    return str(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("command", choices=("prepare", "time"))
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--actions", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--budget", type=float, default=10.0)
    args = parser.parse_args()
    if args.command == "prepare":
        asyncio.run(prepare(args.database, args.actions))
        return
    result = asyncio.run(time_all(args.database, args.actions, args.runs, args.budget))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
