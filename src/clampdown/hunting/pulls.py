"""Incremental pulls from the Okta System Log and the Entra ID sign-in log, one cursor per source."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from clampdown.connectors.base import Connector
from clampdown.connectors.entra import EntraConnector
from clampdown.connectors.entra.client import GraphClient
from clampdown.connectors.links import next_link
from clampdown.connectors.okta import OktaConnector
from clampdown.connectors.okta.client import OktaClient
from clampdown.errors import ProviderError, TransientError
from clampdown.hunting.cloud import entra_sign_in_row, okta_event_row
from clampdown.hunting.enrichment import enrich_rows, load_index
from clampdown.hunting.schema import CLOUD_SIGN_IN_EVENTS
from clampdown.hunting.store import Batch, EventStore, Row
from clampdown.hunting.windows import parse_time

OKTA_CURSOR = "okta:logs"
ENTRA_CURSOR = "entra:signins"
FIRST_PULL_LOOKBACK = timedelta(days=7)
# Sign-ins can reach Graph's log minutes after they happened: each pull re-reads this much.
ENTRA_OVERLAP = timedelta(minutes=15)


@dataclass(frozen=True)
class PullReport:
    source: str
    pages: int
    read: int
    added: int


def _cursor_key(key: str, kind: str, instance: str) -> str:
    """Each directory's own cursor; the one named after its kind keeps the key it always had."""
    return key if instance == kind else f"{key}:{instance}"


class OktaLogSource:
    """GET /api/v1/logs oldest first; the cursor is the `next` link after the last stored page."""

    def __init__(
        self, store: EventStore, client: OktaClient, page_size: int = 500, instance: str = "okta"
    ) -> None:
        self.store, self.client, self.page_size = store, client, page_size
        self.instance, self.cursor_key = instance, _cursor_key(OKTA_CURSOR, "okta", instance)

    async def pull(self, max_pages: int | None = None) -> PullReport:
        """Read pages until the log is caught up (a short page) or `max_pages` were read."""
        cursor = await asyncio.to_thread(self.store.cursor, self.cursor_key)
        if cursor is None:
            since = (datetime.now(UTC) - FIRST_PULL_LOOKBACK).strftime("%Y-%m-%dT%H:%M:%S.000Z")
            params: dict[str, str] | None = {
                "since": since,
                "sortOrder": "ASCENDING",
                "limit": str(self.page_size),
            }
            path = "/api/v1/logs"
        else:
            params, path = None, cursor
        pages = read = added = 0
        index = await asyncio.to_thread(load_index, self.store)
        while max_pages is None or pages < max_pages:
            answer = await self.client.request("GET", path, params=params)
            if answer.status != 200 or not isinstance(answer.body, list):
                needs = " (the app needs the okta.logs.read scope)" if answer.status in (401, 403) else ""
                raise ProviderError(f"Okta System Log: {answer.error_text}{needs}", code="okta_logs")
            found = next_link(answer.headers.get_list("link"))
            rows: dict[str, list[Row]] = {}
            for event in answer.body:
                mapped = okta_event_row(event, self.instance)
                if mapped is not None:
                    rows.setdefault(mapped[0], []).append(mapped[1])
            enrich_rows(rows, index)
            try:
                following = self.client.follow(found) if found else path
            except ProviderError:
                # The page is kept, the cursor stays: the next pull reads it again and stops again.
                await asyncio.to_thread(self.store.append, Batch(rows, {}))
                raise
            added += await asyncio.to_thread(self.store.append, Batch(rows, {self.cursor_key: following}))
            pages += 1
            read += len(answer.body)
            path, params = following, None
            if len(answer.body) < self.page_size or not found:
                break
        return PullReport(self.cursor_key, pages, read, added)


class EntraSignInSource:
    """GET /auditLogs/signIns since the watermark (less an overlap), following @odata.nextLink."""

    def __init__(
        self, store: EventStore, graph: GraphClient, page_size: int = 500, instance: str = "entra"
    ) -> None:
        self.store, self.graph, self.page_size = store, graph, page_size
        self.instance, self.cursor_key = instance, _cursor_key(ENTRA_CURSOR, "entra", instance)

    async def pull(self, max_pages: int | None = None) -> PullReport:
        """Read every page since the watermark; the watermark moves only when all were stored."""
        cursor = await asyncio.to_thread(self.store.cursor, self.cursor_key)
        start = parse_time(cursor) - ENTRA_OVERLAP if cursor else datetime.now(UTC) - FIRST_PULL_LOOKBACK
        params: dict[str, str] | None = {
            "$filter": f"createdDateTime ge {start.strftime('%Y-%m-%dT%H:%M:%SZ')}",
            "$top": str(self.page_size),
        }
        path = "/auditLogs/signIns"
        newest = parse_time(cursor) if cursor else None
        pages = read = added = 0
        index = await asyncio.to_thread(load_index, self.store)
        while True:
            if max_pages is not None and pages >= max_pages:
                return PullReport(self.cursor_key, pages, read, added)  # cut short: the watermark stays
            reply = await self.graph.send("GET", path, params=params)
            if reply.status in (401, 403):
                raise ProviderError(
                    f"Graph refused the sign-in log (HTTP {reply.status}): the app needs AuditLog.Read.All",
                    code="graph_signins",
                )
            if not reply.ok or not isinstance(reply.body, dict):
                raise TransientError(f"Graph sign-in log answered HTTP {reply.status}", code="graph_signins")
            entries = [e for e in reply.body.get("value") or [] if isinstance(e, dict)]
            rows = [entra_sign_in_row(e, self.instance) for e in entries]
            enrich_rows({CLOUD_SIGN_IN_EVENTS.name: rows}, index)
            for row in rows:
                newest = row["Timestamp"] if newest is None else max(newest, row["Timestamp"])
            added += await asyncio.to_thread(self.store.append, Batch({CLOUD_SIGN_IN_EVENTS.name: rows}, {}))
            pages += 1
            read += len(entries)
            following = reply.body.get("@odata.nextLink")
            if not following:
                break
            path, params = self.graph.follow(str(following)), None
        if newest is not None:
            await asyncio.to_thread(self.store.append, Batch({}, {self.cursor_key: newest.isoformat()}))
        return PullReport(self.cursor_key, pages, read, added)


def api_sources(
    store: EventStore, connectors: Mapping[str, Connector], page_size: int = 500
) -> list[OktaLogSource | EntraSignInSource]:
    """A source for each configured Okta org and Entra tenant; its events' Source is its name."""
    sources: list[OktaLogSource | EntraSignInSource] = []
    for name, connector in connectors.items():
        if isinstance(connector, OktaConnector):
            sources.append(OktaLogSource(store, connector.client, page_size, name))
        elif isinstance(connector, EntraConnector):
            sources.append(EntraSignInSource(store, connector.graph, page_size, name))
    return sources
