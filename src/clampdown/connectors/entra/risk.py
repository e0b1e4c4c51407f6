"""Identity Protection's view of users, read sparingly: its API allows about one request per
second per tenant, so a bulk run must not spend one request per user or even per group."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from clampdown.connectors.entra.client import GraphClient
from clampdown.connectors.entra.graph_errors import graph_error
from clampdown.errors import ProviderError

RISKY_USERS = "/identityProtection/riskyUsers"
AT_RISK_STATES = frozenset({"atRisk", "confirmedCompromised"})
AT_RISK_FILTER = "riskState eq 'atRisk' or riskState eq 'confirmedCompromised'"
SELECT = "id,riskLevel,riskState,riskDetail"
NO_RISK = {"riskLevel": "none", "riskState": "none"}


def _id_in(ids: set[str]) -> Callable[[dict[str, Any]], bool]:
    return lambda record: record.get("id") in ids


class RiskView:
    """Risk records by user id: the tenant's at-risk users (one paged list, cached briefly and
    shared by concurrent callers) for state snapshots, or exact records for chosen users."""

    def __init__(self, graph: GraphClient, client_id: str, batch_size: int, ttl_seconds: float) -> None:
        self.graph = graph
        self.client_id = client_id
        self.batch_size = batch_size
        self.ttl_seconds = ttl_seconds
        self._cache: dict[str, dict[str, Any]] | None = None
        self._read_at = 0.0
        self._lock = asyncio.Lock()
        self.filters_supported = True

    async def _list(self, query: str, keep: Callable[[dict[str, Any]], bool]) -> dict[str, dict[str, Any]]:
        """Records matching OData `query` ($filter). Should the tenant refuse the filter (400),
        read the whole list once and keep what `keep` accepts, and stop sending such filters."""
        params = {"$select": SELECT, "$top": "500"}
        if self.filters_supported:
            params["$filter"] = query
        found: dict[str, dict[str, Any]] = {}
        path: str | None = RISKY_USERS
        while path:
            reply = await self.graph.send("GET", path, params=params, identity_protection=True)
            if reply.status == 400 and "$filter" in params:
                self.filters_supported = False
                return await self._list(query, keep)
            if not reply.ok:
                raise graph_error(
                    reply.status, reply.body, reply.headers, "read_risk", "risky users", self.client_id
                )
            found.update({r["id"]: r for r in reply.body.get("value", []) if keep(r)})
            next_link = reply.body.get("@odata.nextLink")
            # nextLink is absolute and complete; followed only on the configured Graph URL.
            path = self.graph.follow(str(next_link)) if next_link else None
            params = {}
        return found

    async def at_risk(self) -> dict[str, dict[str, Any]] | None:
        """Users currently at risk or confirmed compromised; None when risk cannot be read
        (no permission, no Entra ID P2, throttled past patience): a snapshot then omits risk."""
        async with self._lock:
            if self._cache is not None and time.monotonic() - self._read_at < self.ttl_seconds:
                return self._cache
            try:
                self._cache = await self._list(AT_RISK_FILTER, lambda r: r.get("riskState") in AT_RISK_STATES)
            except ProviderError:
                return None
            self._read_at = time.monotonic()
            return self._cache

    async def of(self, user_ids: list[str]) -> dict[str, dict[str, Any]]:
        """The exact risk record of each user (NO_RISK for a user never flagged), read now."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(user_ids), self.batch_size):
            chunk = user_ids[start : start + self.batch_size]
            ids = ",".join(f"'{i}'" for i in chunk)
            found.update(await self._list(f"id in ({ids})", _id_in(set(chunk))))
        return {i: found.get(i, NO_RISK) for i in user_ids}

    def record(self, user_id: str, level: str, state: str) -> None:
        """Keep the cached list true after our own change."""
        if self._cache is not None:
            if state in AT_RISK_STATES:
                self._cache[user_id] = {"id": user_id, "riskLevel": level, "riskState": state}
            else:
                self._cache.pop(user_id, None)
