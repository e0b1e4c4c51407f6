"""Where every event goes: the audit chain, the webhook outbox and the recorder's outputs (the syslog
outbox, the Shared Signals announcer), all in the caller's transaction (so an event commits with what
caused it, or not at all); once committed, the outputs are notified (their senders woken). Nothing
here waits on a receiver."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from typing import Protocol

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from clampdown.audit.chain import AuditEvent, append_in
from clampdown.config import WebhookSettings
from clampdown.db.tables import webhook_deliveries


class EventOutput(Protocol):
    """Somewhere events go besides the chain: what it writes is written in the cause's transaction,
    and it is told once that transaction has committed."""

    async def queue_in(self, conn: AsyncConnection, events: Sequence[AuditEvent]) -> None:
        """Write what the events make this output send, inside `conn`'s transaction."""
        ...

    def notify(self) -> None:
        """What was written is committed: wake the sender (never blocks, never fails)."""
        ...


class EventRecorder:
    """Records events durably with their cause, and fans them out."""

    def __init__(
        self,
        webhooks: Sequence[WebhookSettings] = (),
        syslog: EventOutput | None = None,
        outputs: Sequence[EventOutput] = (),
    ) -> None:
        self.webhooks = list(webhooks)
        self.outputs: list[EventOutput] = [*([syslog] if syslog is not None else []), *outputs]

    def _subscribers(self, event: str) -> list[str]:
        return [w.name for w in self.webhooks if any(fnmatch.fnmatchcase(event, p) for p in w.events)]

    async def record_in(self, conn: AsyncConnection, events: Sequence[AuditEvent]) -> None:
        """Append to the audit chain and queue webhook deliveries, inside `conn`'s transaction."""
        if not events:
            return
        # First: on PostgreSQL the append takes the chain's lock, held to the commit, so the outputs
        # below read what every transaction recorded before this one committed (the announcer counts
        # on it to see a containment's other steps that ended concurrently).
        await append_in(conn, events)
        await self.emit_in(conn, events)

    async def emit_in(self, conn: AsyncConnection, events: Sequence[AuditEvent]) -> None:
        """Queue webhook deliveries and the outputs' messages only: for events about the chain (a
        checkpoint), not in it."""
        deliveries = [
            {
                "webhook": name,
                "event": e.event,
                "payload": e.to_json(),
                "status": "pending",
                "attempts": 0,
                "next_attempt_at": e.at,
                "created_at": e.at,
            }
            for e in events
            for name in self._subscribers(e.event)
        ]
        if deliveries:
            await conn.execute(insert(webhook_deliveries), deliveries)
        for output in self.outputs:
            await output.queue_in(conn, events)

    def after_commit(self, events: Sequence[AuditEvent]) -> None:
        """The events are committed: wake the outputs' senders (they never block the caller)."""
        if events:
            for output in self.outputs:
                output.notify()
