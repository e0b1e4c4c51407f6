"""Several processes appending to one audit chain: every event is kept, the chain stays whole, and no
writer sees an error (on SQLite the writers queue for the lock; on PostgreSQL for the chain's lock)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import time

from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.chain import AuditLog

EVENTS_PER_PROCESS = 300
PROCESSES = 2

# One OS process with its own engine: appends sign-in failures one by one, each its own transaction
# (the path of a failed sign-in), after a common start time so that the processes overlap.
_WRITER = textwrap.dedent(
    """
    import asyncio, json, sys, time
    from datetime import UTC, datetime
    from clampdown.audit.chain import AuditEvent
    from clampdown.audit.recorder import EventRecorder
    from clampdown.db.database import create_engine
    from clampdown.store.auth import AuthStore

    async def main(url, name, count, start):
        engine = create_engine(url)
        store = AuthStore(engine, EventRecorder())
        errors = []
        while time.time() < start:
            await asyncio.sleep(0.005)
        for i in range(count):
            event = AuditEvent(datetime.now(UTC), name, "signin.failed", name, {"n": i})
            try:
                await store.record_events([event])
            except Exception as exc:
                errors.append(type(exc).__name__)
        await engine.dispose()
        print(json.dumps(errors))

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
    """
)


async def test_processes_appending_at_once_lose_nothing(engine: AsyncEngine, database_url: str) -> None:
    start = f"{time.time() + 3.0:.3f}"  # all imported and connected by then
    args = [[sys.executable, "-c", _WRITER, database_url, f"p{n}", str(EVENTS_PER_PROCESS), start]
            for n in range(PROCESSES)]  # fmt: skip
    writers = [subprocess.Popen(a, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for a in args]
    results = await asyncio.gather(*(asyncio.to_thread(w.communicate, timeout=240) for w in writers))
    for writer, (out, err) in zip(writers, results, strict=True):
        assert writer.returncode == 0, err
        assert json.loads(out) == [], f"a writer saw errors: {out} {err[-2000:]}"
    log = AuditLog(engine)
    rows = [row async for row in log.rows()]
    for n in range(PROCESSES):  # each writer's events all there, in its own order
        mine = [r["data"]["n"] for r in rows if r["actor"] == f"p{n}"]
        assert mine == list(range(EVENTS_PER_PROCESS))
    report = await log.verify()
    assert report.ok, report.breaks
    assert report.entries == PROCESSES * EVENTS_PER_PROCESS
