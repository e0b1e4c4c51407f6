"""Where every event goes: the audit chain and the webhook outbox in the caller's transaction
(so an event commits with what caused it), then syslog once committed."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncConnection

from clampdown.audit.chain import AuditEvent, append_in
from clampdown.audit.syslog import SyslogSender
from clampdown.config import WebhookSettings
from clampdown.db.tables import webhook_deliveries

_AUDIT_LOCK = 7_241_977  # a PostgreSQL advisory lock: appends to the chain go one at a time


class EventRecorder:
    """Records events durably with their cause, and fans them out."""

    def __init__(self, webhooks: Sequence[WebhookSettings] = (), syslog: SyslogSender | None = None) -> None:
        self.webhooks = list(webhooks)
        self.syslog = syslog

    def _subscribers(self, event: str) -> list[str]:
        return [w.name for w in self.webhooks if any(fnmatch.fnmatchcase(event, p) for p in w.events)]

    async def record_in(self, conn: AsyncConnection, events: Sequence[AuditEvent]) -> None:
        """Append to the audit chain and queue webhook deliveries, inside `conn`'s transaction."""
        if not events:
            return
        if conn.dialect.name == "postgresql":
            await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _AUDIT_LOCK})
        await append_in(conn, events)
        await self.emit_in(conn, events)

    async def emit_in(self, conn: AsyncConnection, events: Sequence[AuditEvent]) -> None:
        """Queue webhook deliveries only: for events about the chain (a checkpoint), not in it."""
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

    def after_commit(self, events: Sequence[AuditEvent]) -> None:
        """Best-effort copies that need no transaction (syslog)."""
        if self.syslog is not None:
            for event in events:
                self.syslog.send(event)
