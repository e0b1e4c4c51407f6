"""What the HTTP outboxes share (webhook deliveries, Shared Signals push): due rows claimed under a
lease (FOR UPDATE SKIP LOCKED on PostgreSQL, so any number of senders share one database), each sent
once per claim, the outcome written back: delivered, retried with the one retry policy (the
receiver's Retry-After first), or failed once retrying cannot help or the attempts run out.

A table served here has the columns id, status (pending, delivered, failed), attempts,
next_attempt_at, delivered_at and last_error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
from sqlalchemy import ColumnElement, Table, bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from clampdown.clock import SYSTEM_CLOCK, Clock
from clampdown.retry import RetryPolicy

log = logging.getLogger(__name__)
LEASE = timedelta(seconds=60)


@dataclass(frozen=True)
class Attempt:
    """How one sending went: delivered (no error), or why not, whether retrying can help, and
    when the receiver asked to be tried again (seconds)."""

    error: str | None = None
    final: bool = False
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.error is None


DELIVERED = Attempt()


def retry_after(response: httpx.Response, now: datetime) -> float | None:
    """A response's Retry-After in seconds (delta-seconds or an HTTP date), or None."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    with contextlib.suppress(TypeError, ValueError, IndexError):
        when = parsedate_to_datetime(value)
        return max(0.0, (when.astimezone(UTC) - now).total_seconds())
    return None


async def count_by_status(engine: AsyncEngine, table: Table) -> list[tuple[str, int]]:
    """(status, how many) over an outbox, for metrics."""
    query = select(table.c.status, func.count()).group_by(table.c.status)
    async with engine.connect() as conn:
        return [(str(s), int(n)) for s, n in (await conn.execute(query)).all()]


class OutboxSender:
    """Delivers an outbox's due rows: `_deliver` sends one; `_due` narrows what may be claimed."""

    table: Table
    name = "outbox"  # for the log

    def __init__(self, engine: AsyncEngine, policy: RetryPolicy, clock: Clock = SYSTEM_CLOCK) -> None:
        self.engine = engine
        self.policy = policy
        self.clock = clock
        self._wake = asyncio.Event()

    def notify(self) -> None:
        """Rows were committed: deliver now rather than at the next poll (never blocks)."""
        self._wake.set()

    def _due(self) -> list[ColumnElement[bool]]:
        """Conditions a due row must meet besides being pending and due."""
        return []

    async def _sweep(self, conn: AsyncConnection, now: datetime) -> None:
        """Before a claim, in its transaction: settle rows that are never to be sent."""

    async def _prepare(self, claimed: list[dict[str, Any]]) -> None:
        """Before the claimed rows are sent: read what sending them needs, all at once."""

    async def _deliver(self, row: dict[str, Any]) -> Attempt:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Close what the sender holds open (its HTTP clients)."""

    async def run(self, stop: asyncio.Event, interval: float = 0.5) -> None:
        """Deliver until `stop` is set; between rounds, wait for `notify` or `interval`."""
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    delivered = await self.deliver_due()
                except Exception as exc:  # the database blinked: try again next round
                    log.warning("%s delivery round failed: %s", self.name, exc)
                    delivered = 0
                if not delivered:
                    waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
                    try:
                        await asyncio.wait(waiters, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        for waiter in waiters:
                            waiter.cancel()
        finally:
            await self.aclose()

    async def _claim(self, limit: int) -> list[dict[str, Any]]:
        now = self.clock.now()
        c = self.table.c
        due = (
            select(c.id)
            .where(c.status == "pending", c.next_attempt_at <= now, *self._due())
            .order_by(c.id)
            .limit(limit)
        )
        if self.engine.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        stmt = (
            update(self.table)
            .where(c.id.in_(due.scalar_subquery()))
            .values(next_attempt_at=now + LEASE, attempts=c.attempts + 1)
            .returning(*self.table.c)
        )
        async with self.engine.begin() as conn:
            await self._sweep(conn, now)
            return [dict(r) for r in (await conn.execute(stmt)).mappings()]

    async def deliver_due(self, limit: int = 50) -> int:
        """Deliver what is due now; returns how many were attempted."""
        claimed = await self._claim(limit)
        if not claimed:
            return 0
        await self._prepare(claimed)
        results = await asyncio.gather(*(self._deliver(row) for row in claimed))
        now = self.clock.now()
        updates = []
        for row, attempt in zip(claimed, results, strict=True):
            if attempt.delivered:
                updates.append({"b_id": row["id"], "b_status": "delivered", "b_next": now, "b_at": now,
                                "b_err": None})  # fmt: skip
                continue
            attempts = int(row["attempts"])
            final = attempt.final or not self.policy.should_retry(attempts)
            retry_at = now + timedelta(seconds=self.policy.delay(attempts, attempt.retry_after))
            updates.append(
                {"b_id": row["id"], "b_status": "failed" if final else "pending", "b_next": retry_at,
                 "b_at": None, "b_err": attempt.error}
            )  # fmt: skip
        async with self.engine.begin() as conn:
            await conn.execute(
                update(self.table)
                .where(self.table.c.id == bindparam("b_id"))
                .values(
                    status=bindparam("b_status"),
                    next_attempt_at=bindparam("b_next"),
                    delivered_at=bindparam("b_at"),
                    last_error=bindparam("b_err"),
                ),
                updates,
            )
        return len(claimed)
