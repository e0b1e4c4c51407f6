"""Queue throughput: actions per second from request to `completed`, with a no-op connector.

Runs N actions through the real path (bulk request -> actions table -> worker claim -> connector
-> group-committed completion) on SQLite with the embedded worker, and on PostgreSQL with 1 and
4 worker processes. Prints one markdown row per setup (median of --repeat runs).

    .venv/bin/python bench/queue_throughput.py --actions 10000 --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import tomli_w
from sqlalchemy import func, select

from clampdown.audit.recorder import EventRecorder
from clampdown.auth.principal import Principal
from clampdown.config import EngineSettings
from clampdown.connectors.memory import MemoryConnector, MemorySettings
from clampdown.db.database import create_engine
from clampdown.db.migrate import upgrade
from clampdown.db.tables import actions
from clampdown.engine.worker import Worker
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore

BENCH = Principal.from_roles("bench", frozenset({GLOBAL_ADMINISTRATOR}), {})
PG_ADMIN = os.environ.get("CLAMPDOWN_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
NAMES = {"sqlite": "SQLite, embedded worker", "pg1": "PostgreSQL, 1 worker", "pg4": "PostgreSQL, 4 workers"}
NOOP = {"connector": "clampdown.connectors.memory:MemoryConnector", "provider": "okta"}


def fresh_pg(name: str) -> str:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/" + name


async def _finished_span(store: ActionStore, started: float) -> tuple[float, float]:
    """(seconds from the request to the last completion, median request->completed latency)."""
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(actions.c.requested_at, actions.c.finished_at))).all()
    last = max(f for _, f in rows)
    latencies = [(f - r).total_seconds() for r, f in rows]
    return last.timestamp() - started, statistics.median(latencies)


async def _wait_completed(store: ActionStore, n: int) -> None:
    while True:
        async with store.engine.connect() as conn:
            done = (
                await conn.execute(select(func.count()).where(actions.c.status == "completed"))
            ).scalar_one()
        if done >= n:
            return
        await asyncio.sleep(0.05)


async def run_embedded(url: str, n: int) -> tuple[float, float]:
    """One worker in this process, as `clampdown serve` runs it on SQLite."""
    engine = create_engine(url)
    await upgrade(engine)
    store = ActionStore(engine, EventRecorder())  # as in production: every event audited
    noop = MemoryConnector(MemorySettings(provider="okta"))
    worker = Worker(store, {"okta": noop}, EngineSettings(poll_interval_seconds=0.05))
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    await asyncio.sleep(0.2)
    started = time.time()
    await ActionService(store, {"okta": noop}).request_bulk(
        "okta.suspend_user", [f"user{i}" for i in range(n)], "bench", BENCH
    )
    await _wait_completed(store, n)
    stop.set()
    await task
    result = await _finished_span(store, started)
    await engine.dispose()
    return result


async def run_processes(url: str, n: int, workers: int, config_dir: Path) -> tuple[float, float]:
    """`workers` separate `clampdown worker` processes sharing the database."""
    engine = create_engine(url)
    await upgrade(engine)
    store = ActionStore(engine, EventRecorder())
    config = config_dir / "bench.toml"
    config.write_text(
        tomli_w.dumps(
            {"database": {"url": url}, "engine": {"poll_interval_seconds": 0.05}, "providers": {"okta": NOOP}}
        )
    )
    env = {**os.environ, "CLAMPDOWN_CONFIG": str(config)}
    procs = [
        subprocess.Popen([sys.executable, "-m", "clampdown", "worker"], env=env, stderr=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    await asyncio.sleep(3)  # let them import and start polling: we measure the queue, not start-up
    started = time.time()
    noop = MemoryConnector(MemorySettings(provider="okta"))
    await ActionService(store, {"okta": noop}).request_bulk(
        "okta.suspend_user", [f"user{i}" for i in range(n)], "bench", BENCH
    )
    await _wait_completed(store, n)
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        p.wait(30)
    result = await _finished_span(store, started)
    await engine.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--actions", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["sqlite", "pg1", "pg4"], action="append")
    args = parser.parse_args()
    setups = args.only or ["sqlite", "pg1", "pg4"]
    print("| setup | actions | median actions/s | median request->completed latency (s) | runs (actions/s) |")
    print("|---|---|---|---|---|")
    for setup in setups:
        rates, latencies = [], []
        for run in range(args.repeat):
            with tempfile.TemporaryDirectory() as tmp:
                if setup == "sqlite":
                    span, latency = asyncio.run(run_embedded(f"sqlite:///{tmp}/bench.db", args.actions))
                else:
                    db = f"clampdown_bench_{os.getpid()}_{run}"
                    url = fresh_pg(db)
                    span, latency = asyncio.run(run_processes(url, args.actions, int(setup[2:]), Path(tmp)))
                    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                        conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            rates.append(args.actions / span)
            latencies.append(latency)
        print(
            f"| {NAMES[setup]} | {args.actions} | {statistics.median(rates):,.0f} | "
            f"{statistics.median(latencies):.2f} | {', '.join(f'{r:,.0f}' for r in rates)} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
