"""An append-only audit log chained by SHA-256: any edited, deleted or reordered row shows.

Each row's hash covers the previous row's hash and the row's own content. `prev_hash` is unique
in the table, so concurrent writers cannot fork the chain: the loser of a race retries on top of
the winner. `verify` walks the rows in sequence order and names every break.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from clampdown.db.tables import audit_log

GENESIS = "0" * 64
_APPEND_TRIES = 20


@dataclass(frozen=True)
class AuditEvent:
    """Something that happened: who did what to what, with details."""

    at: datetime
    actor: str
    event: str  # action.requested, action.completed, approval.approved, access.denied, signin...
    subject: str | None
    data: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "actor": self.actor,
            "event": self.event,
            "subject": self.subject,
            "data": self.data,
        }


def row_hash(prev_hash: str, event: AuditEvent) -> str:
    """The hash of one row: the previous hash and the event's canonical JSON."""
    canonical = json.dumps(event.to_json(), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{prev_hash}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class Break:
    """One place where the chain does not hold."""

    seq: int
    problem: str


@dataclass(frozen=True)
class ChainReport:
    """What a walk of the chain found: how many rows it checked and every break."""

    entries: int
    breaks: list[Break]

    @property
    def ok(self) -> bool:
        return not self.breaks


async def _head(conn: AsyncConnection) -> str:
    query = select(audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
    return (await conn.execute(query)).scalar_one_or_none() or GENESIS


async def append_in(conn: AsyncConnection, events: Sequence[AuditEvent]) -> None:
    """Append within the caller's transaction (so the event commits with its cause)."""
    prev = await _head(conn)
    rows = []
    for event in events:
        digest = row_hash(prev, event)
        rows.append(
            {
                "at": event.at,
                "actor": event.actor,
                "event": event.event,
                "subject": event.subject,
                "data": event.data,
                "prev_hash": prev,
                "hash": digest,
            }
        )
        prev = digest
    if rows:
        await conn.execute(insert(audit_log), rows)


class AuditLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def append(self, events: Sequence[AuditEvent]) -> None:
        """Append events in order, retrying when another writer extended the chain first."""
        if not events:
            return
        for _ in range(_APPEND_TRIES):
            try:
                async with self.engine.begin() as conn:
                    await append_in(conn, events)
                return
            except IntegrityError:
                continue
        raise RuntimeError("the audit log is contended: could not append after several tries")

    async def rows(self) -> AsyncIterator[dict[str, Any]]:
        """Every row in sequence order, as stored."""
        async with self.engine.connect() as conn:
            result = await conn.stream(select(audit_log).order_by(audit_log.c.seq))
            async for row in result.mappings():
                yield dict(row)

    async def verify(self) -> ChainReport:
        """The rows checked and every break found: edited content, deleted or reordered rows."""
        breaks: list[Break] = []
        prev, count = GENESIS, 0
        async for row in self.rows():
            count += 1
            event = AuditEvent(row["at"], row["actor"], row["event"], row["subject"], row["data"] or {})
            if row["prev_hash"] != prev:
                breaks.append(
                    Break(
                        row["seq"],
                        "does not follow the row before it: a row was deleted or rows were reordered",
                    )
                )
            if row_hash(row["prev_hash"], event) != row["hash"]:
                breaks.append(Break(row["seq"], "its content does not match its hash: the row was edited"))
            prev = row["hash"]
        return ChainReport(count, breaks)
