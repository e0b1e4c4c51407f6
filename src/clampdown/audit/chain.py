"""An append-only audit log chained by SHA-256: any edited, deleted or reordered row shows.

Each row's hash covers the previous row's hash and the row's own content. `prev_hash` is unique
in the table, so concurrent writers cannot fork the chain: the loser of a race retries on top of
the winner. `verify` walks the rows in sequence order and names every break. A chain alone cannot
show that its newest rows were cut or that someone rewrote all of it: signed checkpoints can.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from clampdown.audit.checkpoint import Checkpoint
from clampdown.db.tables import audit_checkpoints, audit_log

GENESIS = "0" * 64
_APPEND_TRIES = 20
_CHAIN_LOCK = 7_241_977  # a PostgreSQL advisory lock: appends to the chain go one at a time


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


NOT_ANCHORED = (
    "the chain is not anchored: no [audit] checkpoint_key is configured, so deleting the newest "
    "entries or rewriting the whole chain would not show"
)


@dataclass(frozen=True)
class ChainReport:
    """What a walk of the chain found: how many rows it checked, every break, and whether a signed
    checkpoint anchors it (`checkpoint`: the latest that verified, `warnings`: what is not covered)."""

    entries: int
    breaks: list[Break]
    anchored: bool = False
    checkpoint: Checkpoint | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.breaks


async def _head(conn: AsyncConnection) -> str:
    query = select(audit_log.c.hash).order_by(audit_log.c.seq.desc()).limit(1)
    return (await conn.execute(query)).scalar_one_or_none() or GENESIS


async def append_in(conn: AsyncConnection, events: Sequence[AuditEvent]) -> None:
    """Append within the caller's transaction (so the event commits with its cause).

    Appends queue for the chain instead of racing for its head: on PostgreSQL behind an advisory
    lock held until the transaction ends; on SQLite a write transaction holds the database's write
    lock from its BEGIN IMMEDIATE (db/database.py), in every process. So the head read here is
    still the head at commit, and no path (sign-ins, denials, cancels, approvals) fails on it."""
    if not events:
        return
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHAIN_LOCK})
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
    """The chain in the database; with `key`, verified against the signed checkpoints too."""

    def __init__(self, engine: AsyncEngine, key: bytes | None = None) -> None:
        self.engine = engine
        self.key = key

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

    async def checkpoints(self) -> list[Checkpoint]:
        """The stored checkpoints, oldest first (signatures not yet checked)."""
        c = audit_checkpoints.c
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(audit_checkpoints).order_by(c.seq, c.id))).mappings().all()
        return [Checkpoint(r["seq"], r["hash"], r["entries"], r["at"], r["signature"]) for r in rows]

    async def verify(self, outside: Sequence[Checkpoint] = ()) -> ChainReport:
        """The rows checked and every break found: edited content, deleted or reordered rows, and
        (with a key) a chain that is shorter than, or differs from, a signed checkpoint. `outside`
        are checkpoints kept elsewhere (a SIEM's copy), checked like the stored ones."""
        breaks: list[Break] = []
        valid: list[Checkpoint] = []
        stored = [*await self.checkpoints(), *outside]
        if self.key is not None:
            for cp in stored:
                if cp.signature_holds(self.key):
                    valid.append(cp)
                else:
                    breaks.append(
                        Break(
                            cp.seq,
                            f"the checkpoint of {cp.at.isoformat()} at entry {cp.seq} "
                            "has a signature that does not verify: it is forged",
                        )
                    )
        valid.sort(key=lambda cp: cp.seq)
        # For each checkpoint: how many rows the chain holds up to its entry, and that entry's hash.
        held: list[int] = [0] * len(valid)
        found: list[str | None] = [None] * len(valid)
        prev, count, nxt = GENESIS, 0, 0
        async for row in self.rows():
            while nxt < len(valid) and valid[nxt].seq < row["seq"]:
                held[nxt] = count
                nxt += 1
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
            for i in range(nxt, len(valid)):
                if valid[i].seq != row["seq"]:
                    break
                found[i] = row["hash"]
            prev = row["hash"]
        for i in range(nxt, len(valid)):
            held[i] = count
        mismatches = _checkpoint_breaks(valid, held, found)
        report = _report(count, breaks + mismatches, self.key is not None, valid, stored)
        return replace(report, anchored=False) if mismatches else report


def _checkpoint_breaks(valid: list[Checkpoint], held: list[int], found: list[str | None]) -> list[Break]:
    """The latest checkpoint the chain does not match, and the earliest if that is another one (where
    the difference begins); checkpoints are many, one break per checkpoint would drown the report."""
    failing: list[Break] = []
    for cp, rows, head in zip(valid, held, found, strict=True):
        when = f"the checkpoint of {cp.at.isoformat()}"
        if rows < cp.entries:
            missing = cp.entries - rows
            failing.append(
                Break(
                    cp.seq,
                    f"{missing} entries missing: {when} covers {cp.entries} entries up "
                    f"to entry {cp.seq}, the chain holds {rows} of them",
                )
            )
        elif head != cp.hash:
            state = "is gone since" if head is None else "has another hash than in"
            failing.append(
                Break(
                    cp.seq,
                    f"entry {cp.seq} {state} {when}: entries up to it were altered (the chain was rewritten)",
                )
            )
    return failing if len(failing) <= 2 else [failing[0], failing[-1]]


def _report(
    count: int, breaks: list[Break], keyed: bool, valid: list[Checkpoint], stored: list[Checkpoint]
) -> ChainReport:
    if not keyed:
        warning = NOT_ANCHORED + (f" ({len(stored)} stored checkpoints were not checked)" if stored else "")
        return ChainReport(count, breaks, warnings=[warning])
    latest = valid[-1] if valid else None
    warnings = []
    if latest is None and count:
        warnings.append(
            "no signed checkpoint is stored yet: the chain is not anchored until the server "
            "or a worker makes one (or run `clampdown audit checkpoint`)"
        )
    elif latest is not None and count > latest.entries:
        warnings.append(
            f"{count - latest.entries} entries after the checkpoint of {latest.at.isoformat()} "
            "are not covered by a checkpoint yet"
        )
    return ChainReport(count, breaks, anchored=latest is not None, checkpoint=latest, warnings=warnings)
