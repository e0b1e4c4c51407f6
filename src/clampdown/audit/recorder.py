"""Where every event goes: the audit chain, the webhook outbox and the syslog outbox, all in the
caller's transaction (so an event commits with what caused it, or not at all); once committed, the
syslog sender is woken. Nothing here waits on a receiver."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from clampdown.audit.chain import AuditEvent, append_in
from clampdown.audit.syslog import SyslogOutput
from clampdown.config import WebhookSettings
from clampdown.db.tables import webhook_deliveries


class EventRecorder:
    """Records events durably with their cause, and fans them out."""

    def __init__(self, webhooks: Sequence[WebhookSettings] = (), syslog: SyslogOutput | None = None) -> None:
        self.webhooks = list(webhooks)
        self.syslog = syslog

    def _subscribers(self, event: str) -> list[str]:
        return [w.name for w in self.webhooks if any(fnmatch.fnmatchcase(event, p) for p in w.events)]

    async def record_in(self, conn: AsyncConnection, events: Sequence[AuditEvent]) -> None:
        """Append to the audit chain and queue webhook deliveries, inside `conn`'s transaction."""
        if not events:
            return
        await append_in(conn, events)
        await self.emit_in(conn, events)

    async def emit_in(self, conn: AsyncConnection, events: Sequence[AuditEvent]) -> None:
        """Queue webhook deliveries and syslog messages only: for events about the chain (a
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
        if self.syslog is not None:
            await self.syslog.queue_in(conn, events)

    def after_commit(self, events: Sequence[AuditEvent]) -> None:
        """The events are committed: wake the syslog sender (it never blocks the caller)."""
        if self.syslog is not None and events:
            self.syslog.notify()
