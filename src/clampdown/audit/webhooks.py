"""Webhook delivery from the outbox: HMAC-signed, retried with backoff across receiver outages.

Each delivery carries `X-Clampdown-Delivery` (stable across retries, so a receiver can drop
repeats), `X-Clampdown-Event`, `X-Clampdown-Timestamp` and `X-Clampdown-Signature: sha256=<hex>`,
the HMAC-SHA256 of "<timestamp>.<body>" under the webhook's secret.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.outbox import DELIVERED, Attempt, OutboxSender, count_by_status
from clampdown.clock import SYSTEM_CLOCK, Clock
from clampdown.config import WebhookSettings
from clampdown.db.tables import webhook_deliveries
from clampdown.retry import RetryPolicy

POLICY = RetryPolicy(max_attempts=15, base_seconds=1.0, max_seconds=600.0)


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The value of X-Clampdown-Signature for a body sent at `timestamp`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={mac}"


async def deliveries_by_status(engine: AsyncEngine) -> list[tuple[str, int]]:
    """(status, how many) over the outbox, for metrics."""
    return await count_by_status(engine, webhook_deliveries)


class WebhookDispatcher(OutboxSender):
    """Delivers due webhook events; any number may run against one database."""

    table = webhook_deliveries
    name = "webhook"

    def __init__(
        self, engine: AsyncEngine, webhooks: list[WebhookSettings], clock: Clock = SYSTEM_CLOCK
    ) -> None:
        super().__init__(engine, POLICY, clock)
        self.webhooks = {w.name: w for w in webhooks}
        self._clients: dict[str, httpx.AsyncClient] = {}

    def _client(self, hook: WebhookSettings) -> httpx.AsyncClient:
        if hook.name not in self._clients:
            self._clients[hook.name] = httpx.AsyncClient(verify=hook.ca_file or True, timeout=10)
        return self._clients[hook.name]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients = {}

    async def _deliver(self, row: dict[str, Any]) -> Attempt:
        hook = self.webhooks.get(row["webhook"])
        if hook is None:
            return Attempt(f"webhook '{row['webhook']}' is no longer configured")
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
            return Attempt(f"{type(exc).__name__}: {exc}")
        if 200 <= response.status_code < 300:
            return DELIVERED
        return Attempt(f"the receiver answered {response.status_code}")
