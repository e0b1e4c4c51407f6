"""A large keyed bulk request, written in chunks: how long the whole insert takes, how soon its first
actions are visible to the workers, and how long a single request made meanwhile waits.

Requests N targets as one keyed bulk (`okta.suspend_user`, audited as in production) while a probe
requests one action every 50 ms through the same database; before chunking, the probe waited for
the whole bulk (one transaction holding the SQLite connection and the audit chain).

    .venv/bin/python bench/bulk_chunks.py --targets 100000 --database sqlite
    .venv/bin/python bench/bulk_chunks.py --targets 100000 --database postgresql
    .venv/bin/python bench/bulk_chunks.py --targets 100000 --chunk 100000   # as before: one transaction
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from sqlalchemy import func, select

from clampdown.audit.recorder import EventRecorder
from clampdown.auth.principal import Principal
from clampdown.connectors.memory import MemoryConnector, MemorySettings
from clampdown.db.database import create_engine
from clampdown.db.migrate import upgrade
from clampdown.db.tables import actions
from clampdown.limits import BULK_CHUNK
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore

BENCH = Principal.from_roles("bench", frozenset({GLOBAL_ADMINISTRATOR}), {})
PG_ADMIN = os.environ.get("CLAMPDOWN_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
RESULTS = Path(__file__).parent / "results" / "bulk_chunks.jsonl"


def _url(database: str, folder: Path) -> str:
    if database == "sqlite":
        return f"sqlite:///{folder / 'bench.db'}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "bench_bulk_chunks" WITH (FORCE)')
        conn.execute('CREATE DATABASE "bench_bulk_chunks"')
    return PG_ADMIN.rsplit("/", 1)[0] + "/bench_bulk_chunks"


async def run(targets: int, database: str, chunk: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(_url(database, Path(tmp)))
        await upgrade(engine)
        service = ActionService(
            ActionStore(engine, EventRecorder()),
            {"okta": MemoryConnector(MemorySettings(provider="okta"))},
            bulk_chunk=chunk,
        )
        names = [f"user{n:06d}" for n in range(targets)]
        probes: list[float] = []
        first_visible: list[float] = []
        done = asyncio.Event()
        started = time.perf_counter()

        async def probe() -> None:
            n = 0
            while not done.is_set():
                t = time.perf_counter()
                await service.request("okta.suspend_user", f"probe{n}", "probe", BENCH)
                probes.append(time.perf_counter() - t)
                if not first_visible:
                    async with engine.connect() as conn:
                        seen = (
                            await conn.execute(select(func.count()).where(actions.c.batch_id.is_not(None)))
                        ).scalar_one()
                    if seen:
                        first_visible.append(time.perf_counter() - started)
                n += 1
                await asyncio.sleep(0.05)

        prober = asyncio.create_task(probe())
        bulk = await service.request_bulk("okta.suspend_user", names, "bench", BENCH, idempotency_key="bench")
        total = time.perf_counter() - started
        done.set()
        await prober
        await engine.dispose()
    assert len(bulk.actions) == targets
    return {
        "benchmark": "bulk_chunks",
        "database": database,
        "targets": targets,
        "chunk": chunk,
        "total_seconds": round(total, 2),
        "first_chunk_visible_seconds": round(first_visible[0], 2) if first_visible else None,
        "probe_requests": len(probes),
        "probe_median_seconds": round(statistics.median(probes), 3) if probes else None,
        "probe_max_seconds": round(max(probes), 3) if probes else None,
        "load_average": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--targets", type=int, default=100_000)
    parser.add_argument("--database", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--chunk", type=int, default=BULK_CHUNK, help="a chunk as large as the bulk: one transaction"
    )
    args = parser.parse_args()
    result = asyncio.run(run(args.targets, args.database, args.chunk))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with RESULTS.open("a", encoding="utf-8") as out:
        out.write(json.dumps(result) + "\n")
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    main()
