"""Webhook delivery from the outbox: HMAC-signed, retried with backoff across receiver outages.

Each delivery carries `X-Clampdown-Delivery` (stable across retries, so a receiver can drop
repeats), `X-Clampdown-Event`, `X-Clampdown-Timestamp` and `X-Clampdown-Signature: sha256=<hex>`,
the HMAC-SHA256 of "<timestamp>.<body>" under the webhook's secret.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.clock import SYSTEM_CLOCK, Clock
from clampdown.config import WebhookSettings
from clampdown.db.tables import webhook_deliveries
from clampdown.retry import RetryPolicy

log = logging.getLogger(__name__)
LEASE = timedelta(seconds=60)
POLICY = RetryPolicy(max_attempts=15, base_seconds=1.0, max_seconds=600.0)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The value of X-Clampdown-Signature for a body sent at `timestamp`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


async def deliveries_by_status(engine: AsyncEngine) -> list[tuple[str, int]]:
    """(status, how many) over the outbox, for metrics."""
    query = select(webhook_deliveries.c.status, func.count()).group_by(webhook_deliveries.c.status)
    async with engine.connect() as conn:
        return [(str(s), int(n)) for s, n in (await conn.execute(query)).all()]


class WebhookDispatcher:
    """Delivers due webhook events; any number may run against one database."""

    def __init__(
        self, engine: AsyncEngine, webhooks: list[WebhookSettings], clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self.engine = engine
        self.webhooks = {w.name: w for w in webhooks}
        self.clock = clock
        self._clients: dict[str, httpx.AsyncClient] = {}

    def _client(self, hook: WebhookSettings) -> httpx.AsyncClient:
        if hook.name not in self._clients:
            self._clients[hook.name] = httpx.AsyncClient(verify=hook.ca_file or True, timeout=10)
        return self._clients[hook.name]

    async def run(self, stop: asyncio.Event, interval: float = 0.5) -> None:
        """Deliver until `stop` is set."""
        while not stop.is_set():
            try:
                delivered = await self.deliver_due()
            except Exception as exc:  # the database blinked: try again next round
                log.warning("webhook delivery round failed: %s", exc)
                delivered = 0
            if not delivered:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), interval)
        for client in self._clients.values():
            await client.aclose()

    async def _claim(self, limit: int) -> list[dict[str, Any]]:
        now = self.clock.now()
        c = webhook_deliveries.c
        due = select(c.id).where(c.status == "pending", c.next_attempt_at <= now).order_by(c.id).limit(limit)
        if self.engine.dialect.name == "postgresql":
            due = due.with_for_update(skip_locked=True)
        stmt = (
            update(webhook_deliveries)
            .where(c.id.in_(due.scalar_subquery()))
            .values(next_attempt_at=now + LEASE, attempts=c.attempts + 1)
            .returning(*webhook_deliveries.c)
        )
        async with self.engine.begin() as conn:
            return [dict(r) for r in (await conn.execute(stmt)).mappings()]

    async def deliver_due(self, limit: int = 50) -> int:
        """Deliver what is due now; returns how many were attempted."""
        claimed = await self._claim(limit)
        if not claimed:
            return 0
        results = await asyncio.gather(*(self._deliver(row) for row in claimed))
        now = self.clock.now()
        updates = []
        for row, error in zip(claimed, results, strict=True):
            if error is None:
                updates.append(
                    {"b_id": row["id"], "b_status": "delivered", "b_next": now, "b_at": now, "b_err": None}
                )
                continue
            attempts = int(row["attempts"])
            final = not POLICY.should_retry(attempts)
            retry_at = now + timedelta(seconds=POLICY.delay(attempts))
            updates.append(
                {"b_id": row["id"], "b_status": "failed" if final else "pending", "b_next": retry_at,
                 "b_at": None, "b_err": error}
            )  # fmt: skip
        async with self.engine.begin() as conn:
            await conn.execute(
                update(webhook_deliveries)
                .where(webhook_deliveries.c.id == bindparam("b_id"))
                .values(
                    status=bindparam("b_status"),
                    next_attempt_at=bindparam("b_next"),
                    delivered_at=bindparam("b_at"),
                    last_error=bindparam("b_err"),
                ),
                updates,
            )
        return len(claimed)

    async def _deliver(self, row: dict[str, Any]) -> str | None:
        """None when delivered, else why not."""
        hook = self.webhooks.get(row["webhook"])
        if hook is None:
            return f"webhook '{row['webhook']}' is no longer configured"
        body = json.dumps({"id": row["id"], "event": row["event"], **row["payload"]}, default=str).encode()
        timestamp = str(int(self.clock.now().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "X-Clampdown-Delivery": str(row["id"]),
            "X-Clampdown-Event": row["event"],
            "X-Clampdown-Timestamp": timestamp,
            "X-Clampdown-Signature": signature(hook.secret.get_secret_value(), timestamp, body),
        }
        try:
            response = await self._client(hook).post(hook.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        return f"the receiver answered {response.status_code}"
