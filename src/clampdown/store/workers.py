"""The workers table: who is working the queue, since when, last seen when, holding what.

A worker registers when it starts, heartbeats with its lease renewal (`touch`, called by the queue
in the same transaction) and deletes its row when it stops cleanly. Every time here is the
database's, so liveness means the same to every reader: a worker is live while `expires_at` (its
last heartbeat plus its lease) is ahead of the database's clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from clampdown.db.tables import actions, workers
from clampdown.model import ActionStatus
from clampdown.store.database_time import database_now

# A dead worker's row is kept this long, so `clampdown workers` shows what died lately.
KEEP_DEAD = timedelta(days=1)


@dataclass(frozen=True)
class WorkerRecord:
    """A registered worker, as the database saw it when read."""

    id: str
    host: str
    pid: int
    kind: str  # embedded or standalone
    started_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    inflight: int  # actions in flight at its last heartbeat
    live: bool  # heartbeat within its lease, by the database's clock
    holds: tuple[int, ...] = ()  # the actions running under its lease now


async def touch(
    conn: AsyncConnection, worker_id: str, now: datetime, lease_seconds: float, inflight: int
) -> bool:
    """Record a heartbeat of a registered worker; False if it has no row (it must register again)."""
    result = await conn.execute(
        update(workers)
        .where(workers.c.id == worker_id)
        .values(last_seen_at=now, expires_at=now + timedelta(seconds=lease_seconds), inflight=inflight)
    )
    return bool(result.rowcount)


class WorkerRegistry:
    """Registration, heartbeats and the list of workers."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def register(self, worker_id: str, host: str, pid: int, kind: str, lease_seconds: float) -> None:
        """Say this worker is alive (again); rows of workers dead for a day go."""
        async with self.engine.begin() as conn:
            now = await database_now(conn)
            await conn.execute(delete(workers).where(workers.c.expires_at < now - KEEP_DEAD))
            await conn.execute(delete(workers).where(workers.c.id == worker_id))
            await conn.execute(
                insert(workers).values(
                    id=worker_id, host=host, pid=pid, kind=kind, started_at=now, last_seen_at=now,
                    expires_at=now + timedelta(seconds=lease_seconds), inflight=0,
                )
            )  # fmt: skip

    async def deregister(self, worker_id: str) -> None:
        """A clean stop: the worker holds nothing and is gone."""
        async with self.engine.begin() as conn:
            await conn.execute(delete(workers).where(workers.c.id == worker_id))

    async def live_count(self) -> int:
        """How many workers heartbeat within their lease now."""
        async with self.engine.connect() as conn:
            now = await database_now(conn)
            found = await conn.execute(
                select(func.count()).select_from(workers).where(workers.c.expires_at > now)
            )
            return int(found.scalar_one())

    async def list_workers(self) -> list[WorkerRecord]:
        """Every registered worker, live ones first, each with the actions it holds now."""
        async with self.engine.connect() as conn:
            now = await database_now(conn)
            rows = (
                (await conn.execute(select(workers).order_by(workers.c.started_at, workers.c.id)))
                .mappings()
                .all()
            )
            held = (
                await conn.execute(
                    select(actions.c.lease_owner, actions.c.id)
                    .where(actions.c.status == ActionStatus.RUNNING.value, actions.c.lease_owner.is_not(None))
                    .order_by(actions.c.id)
                )
            ).all()
        holds: dict[str, list[int]] = {}
        for owner, action_id in held:
            holds.setdefault(owner, []).append(int(action_id))
        found = [
            WorkerRecord(
                id=r["id"], host=r["host"], pid=int(r["pid"]), kind=r["kind"], started_at=r["started_at"],
                last_seen_at=r["last_seen_at"], expires_at=r["expires_at"], inflight=int(r["inflight"]),
                live=r["expires_at"] > now, holds=tuple(holds.get(r["id"], ())),
            )
            for r in rows
        ]  # fmt: skip
        return sorted(found, key=lambda w: not w.live)
