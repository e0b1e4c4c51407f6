"""Benchmark: N `ad.disable_user` through Clampdown's AD connector vs a raw ldap3 loop, same Samba DC.

Both sides bind as the lab's delegated action account over verified LDAPS and do the same work
per user: find it by sAMAccountName, read userAccountControl, write it back with ACCOUNTDISABLE.
Clampdown runs the users concurrently (bounded by the connector's pool); the raw loop runs them
one by one on a single connection. Two Clampdown paths are timed: the connector alone, and the
full engine (bulk request -> SQLite actions table -> embedded worker -> connector -> completed,
which also reads each account's state before acting, for undo). Prints one JSON result row;
ratio = raw time / Clampdown time (>= 1 means Clampdown is at least as fast).

    sudo .venv/bin/python bench/ad_disable.py [--users 1000] [--concurrency 8 16] [--lab-dir .lab]

Several concurrencies are measured in one run, round-robin within each round (one raw loop per
round, shared), with one result row each: their ratios are then side by side under the same load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import ssl
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import ldap3
from sqlalchemy import func, select

from clampdown.auth.principal import Principal
from clampdown.catalog import RESPONSE_MANAGE
from clampdown.config import EngineSettings
from clampdown.connectors.ad import ADConnector, ADSettings
from clampdown.db.database import create_engine
from clampdown.db.migrate import upgrade
from clampdown.db.tables import actions
from clampdown.engine.worker import Worker
from clampdown.model import ActionContext
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore
from clampdown_lab.people import DEMO_PEOPLE
from clampdown_lab.samba import SambaLab, SambaLabComponent
from clampdown_lab.samba.seed import MANAGED_OU

BENCH_OU = f"OU=Bench,{MANAGED_OU}"  # inside the delegated OU: the action account may act here
NORMAL_NO_PASSWORD = 0x200 | 0x20  # enabled, PASSWD_NOTREQD: created fast, without password hashing


def prepare_users(admin: Any, count: int) -> list[str]:
    """bench-00001... in OU=Bench (created once), all enabled; their sAMAccountNames."""
    admin.search(MANAGED_OU, "(ou=Bench)", ldap3.LEVEL)
    if not admin.response:
        admin.add(BENCH_OU, ["top", "organizationalUnit"])
    names = [f"bench-{i:05d}" for i in range(1, count + 1)]
    found = admin.extend.standard.paged_search(BENCH_OU, "(objectClass=user)", ldap3.LEVEL,
                                               attributes=["sAMAccountName"], generator=False)
    existing = {e["attributes"]["sAMAccountName"][0] for e in found if e.get("type") == "searchResEntry"}
    for name in names:
        if name not in existing:
            admin.add(f"CN={name},{BENCH_OU}", ["top", "person", "organizationalPerson", "user"],
                      {"sAMAccountName": name, "userAccountControl": str(NORMAL_NO_PASSWORD)})
    enable_all(admin, names)
    return names


def enable_all(admin: Any, names: list[str]) -> None:
    """Reset every bench user to enabled (untimed)."""
    for name in names:
        admin.modify(f"CN={name},{BENCH_OU}",
                     {"userAccountControl": [(ldap3.MODIFY_REPLACE, [str(NORMAL_NO_PASSWORD)])]})


def count_disabled(admin: Any) -> int:
    found = admin.extend.standard.paged_search(BENCH_OU, "(userAccountControl:1.2.840.113556.1.4.803:=2)",
                                               ldap3.LEVEL, attributes=["cn"], generator=False)
    return sum(1 for e in found if e.get("type") == "searchResEntry")


async def run_clampdown(settings: ADSettings, names: list[str], concurrency: int) -> float:
    """Seconds for resolve + disable of every user through the connector."""
    connector = ADConnector(settings)
    await connector.check()  # bind before the clock starts, as a running worker would be
    limit = asyncio.Semaphore(concurrency)
    ctx = ActionContext(action_id=0, reason="benchmark", requested_by="bench")

    async def one(name: str) -> None:
        async with limit:
            account = await connector.resolve_user(name)
            await connector.disable_user(account, ctx)

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in names))
    elapsed = time.perf_counter() - started
    await connector.aclose()
    return elapsed


async def run_engine(settings: ADSettings, names: list[str], concurrency: int) -> float:
    """Seconds from the bulk request to the last `completed`, through the worker on SQLite."""
    with tempfile.TemporaryDirectory() as tmp:
        db = create_engine(f"sqlite:///{tmp}/bench.db")  # the watcher below reads it too
        await upgrade(db)
        store = ActionStore(db)
        connector = ADConnector(settings)
        await connector.check()
        engine_settings = EngineSettings(poll_interval_seconds=0.05, provider_concurrency={"ad": concurrency})
        worker = Worker(store, {"ad": connector}, engine_settings)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        await asyncio.sleep(0.2)
        started = time.perf_counter()
        analyst = Principal("bench", frozenset(), frozenset({RESPONSE_MANAGE}), channel="cli")
        path = Path(tmp) / "bench.db"
        watching = asyncio.create_task(asyncio.to_thread(wait_until_ended, path, len(names)))
        await ActionService(store, {"ad": connector}).request_bulk("ad.disable_user", names, "bench", analyst)
        ended = await watching
        elapsed = ended - started
        stop.set()
        await task
        await connector.aclose()
        async with db.connect() as conn:
            rows = dict((await conn.execute(
                select(actions.c.status, func.count()).group_by(actions.c.status))).all())
        await db.dispose()
        assert rows.get("completed") == len(names), f"not all completed: {rows}"
        return elapsed


def wait_until_ended(path: Path, count: int) -> float:
    """perf_counter() when `count` actions have ended, polled every 10 ms on a connection of its
    own: an onlooker (a console, a CLI in another process), kept off the engine's one SQLite
    connection and, in C, off the interpreter while the query runs."""
    conn = sqlite3.connect(path)
    try:
        while True:
            (ended,) = conn.execute(
                "SELECT count(*) FROM actions WHERE status IN ('completed', 'failed')"
            ).fetchone()
            if ended >= count:
                return time.perf_counter()
            time.sleep(0.01)
    finally:
        conn.close()


def run_raw(lab: SambaLab, settings: ADSettings, names: list[str]) -> float:
    """Seconds for the same work in a plain ldap3 loop on one connection."""
    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(lab.ca_file))
    server = ldap3.Server("127.0.0.1", port=636, use_ssl=True, tls=tls, get_info=ldap3.NONE)
    password = settings.bind_password.get_secret_value() if settings.bind_password else ""
    conn = ldap3.Connection(server, user=settings.bind_user, password=password, auto_bind=True)
    started = time.perf_counter()
    for name in names:
        conn.search(settings.base_dn, f"(&(objectClass=user)(sAMAccountName={name}))",
                    attributes=["userAccountControl"])
        entry = conn.response[0]
        uac = int(entry["attributes"]["userAccountControl"][0])
        conn.modify(entry["dn"], {"userAccountControl": [(ldap3.MODIFY_REPLACE, [str(uac | 2)])]})
    elapsed = time.perf_counter() - started
    conn.unbind()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[8])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lab-dir", type=Path, default=Path(".lab"))
    parser.add_argument("--no-engine", action="store_true", help="time the connector path only")
    parser.add_argument("--record", type=Path, default=Path("bench/results/ad_disable.jsonl"),
                        help="append the result row to this file")
    args = parser.parse_args()

    service = SambaLabComponent().up(args.lab_dir, DEMO_PEOPLE)
    lab = SambaLab(Path(service.details["samba_dir"]))
    base_settings = ADSettings.model_validate(service.provider_config)
    admin = lab.directory.connect()
    names = prepare_users(admin, args.users)

    clampdown_times: dict[int, list[float]] = {n: [] for n in args.concurrency}
    engine_times: dict[int, list[float]] = {n: [] for n in args.concurrency}
    raw_times: list[float] = []
    for _ in range(args.rounds):
        for n in args.concurrency:
            settings = base_settings.model_copy(update={"pool_size": n})
            enable_all(admin, names)
            clampdown_times[n].append(asyncio.run(run_clampdown(settings, names, n)))
            assert count_disabled(admin) == len(names), "Clampdown did not disable every user"
            if not args.no_engine:
                enable_all(admin, names)
                engine_times[n].append(asyncio.run(run_engine(settings, names, n)))
                assert count_disabled(admin) == len(names), "the engine did not disable every user"
        enable_all(admin, names)
        raw_times.append(run_raw(lab, base_settings, names))
        assert count_disabled(admin) == len(names), "the raw loop did not disable every user"
    enable_all(admin, names)
    admin.unbind()
    for n in args.concurrency:
        row = result_row(names, n, args.rounds, raw_times, clampdown_times[n], engine_times[n])
        print(row)
        if args.record:
            args.record.parent.mkdir(parents=True, exist_ok=True)
            with args.record.open("a", encoding="utf-8") as out:
                out.write(row + "\n")


def result_row(
    names: list[str], concurrency: int, rounds: int, raw_times: list[float],
    clampdown_times: list[float], engine_times: list[float],
) -> str:
    """One JSON row for one concurrency; ratio = raw time / Clampdown time."""
    clampdown, raw = statistics.median(clampdown_times), statistics.median(raw_times)
    engine = statistics.median(engine_times) if engine_times else None
    return json.dumps({
        "benchmark": "ad_disable",
        "users": len(names),
        "concurrency": concurrency,
        "rounds": rounds,
        "clampdown_seconds": round(clampdown, 3),
        "raw_ldap3_seconds": round(raw, 3),
        "clampdown_per_second": round(len(names) / clampdown, 1),
        "raw_per_second": round(len(names) / raw, 1),
        "ratio": round(raw / clampdown, 3),
        "engine_seconds": round(engine, 3) if engine else None,
        "engine_per_second": round(len(names) / engine, 1) if engine else None,
        "engine_ratio": round(raw / engine, 3) if engine else None,
        # Each round times them back to back: its own ratio is the least disturbed by whatever
        # else the machine is doing.
        "round_ratios": [round(r / c, 3) for r, c in zip(raw_times, clampdown_times, strict=True)],
        "round_engine_ratios": [round(r / e, 3) for r, e in zip(raw_times, engine_times, strict=False)],
        "runs": {"clampdown": clampdown_times, "engine": engine_times, "raw": raw_times},
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })

if __name__ == "__main__":
    main()
