"""IdentityInfo kept current from the connectors: every account seen in recent events is looked up
in its provider, with whether it is enabled now, so a hunt can join events to current state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from clampdown.connectors.base import Connector
from clampdown.connectors.instances import find_instance
from clampdown.errors import ClampdownError
from clampdown.hunting.query import run_query
from clampdown.hunting.schema import IDENTITY_INFO
from clampdown.hunting.store import Batch, EventStore, Row

log = logging.getLogger(__name__)
LOOKUPS_IN_FLIGHT = 8

# Accounts seen in the last days, per provider; computer accounts (NAME$) are not people.
SEEN_ACCOUNTS = """
SELECT DISTINCT provider, reference FROM (
    SELECT 'ad' AS provider, AccountName AS reference FROM IdentityLogonEvents
        WHERE Timestamp > now() - INTERVAL {days} DAY
    UNION ALL SELECT 'ad', TargetAccountName FROM IdentityDirectoryEvents
        WHERE Application = 'Active Directory' AND Timestamp > now() - INTERVAL {days} DAY
    UNION ALL SELECT Provider, coalesce(AccountUpn, AccountObjectId) FROM CloudSignInEvents
        WHERE Timestamp > now() - INTERVAL {days} DAY
    UNION ALL SELECT 'okta', TargetAccountObjectId FROM IdentityDirectoryEvents
        WHERE Application = 'Okta' AND Timestamp > now() - INTERVAL {days} DAY
) WHERE reference IS NOT NULL AND reference <> '' AND NOT ends_with(reference, '$')
ORDER BY provider, reference
"""


def _first(attributes: Mapping[str, str], *names: str) -> str | None:
    return next((attributes[n] for n in names if attributes.get(n)), None)


async def _lookup(connector: Connector, provider: str, reference: str) -> Row | None:
    try:
        account = await connector.resolve_user(reference)
        state = await connector.read_state(account)
    except ClampdownError as exc:
        log.info("IdentityInfo: %s %s not looked up: %s", provider, reference, exc.message)
        return None
    attrs = account.attributes
    upn = _first(attrs, "userPrincipalName", "login", "email") or (
        account.name if "@" in account.name else None
    )
    extra: dict[str, Any] = {"status": state.status, "reference": reference}
    return {
        "Timestamp": datetime.now(UTC),
        "Provider": provider,
        "AccountObjectId": account.id,
        "AccountUpn": upn,
        "AccountName": _first(attrs, "sAMAccountName", "onPremisesSamAccountName", "login") or account.name,
        "AccountDomain": upn.split("@", 1)[1] if upn and "@" in upn else None,
        "OnPremSid": _first(attrs, "objectSid", "onPremisesSecurityIdentifier"),
        "AccountDisplayName": account.name,
        "IsAccountEnabled": state.enabled,
        "AdditionalFields": extra,
    }


async def refresh_identity_info(
    store: EventStore, connectors: Mapping[str, Connector], days: int = 30, limit: int = 5_000
) -> int:
    """Look up the accounts seen in the last `days` in their providers; returns rows written."""
    seen = await asyncio.to_thread(run_query, store, SEEN_ACCOUNTS.format(days=int(days)), max_rows=limit)
    slots = asyncio.Semaphore(LOOKUPS_IN_FLIGHT)

    async def one(provider: str, reference: str) -> Row | None:
        # Events name the kind; the one directory of that kind, whatever its section is called.
        where = provider if provider in connectors else find_instance(connectors, provider, None)
        connector = connectors.get(where) if where else None
        if connector is None:
            return None
        async with slots:
            return await _lookup(connector, provider, reference)

    found = await asyncio.gather(*(one(str(p), str(r)) for p, r in seen.rows))
    rows = [r for r in found if r is not None]
    if rows:
        await asyncio.to_thread(store.append, Batch({IDENTITY_INFO.name: rows}, {}))
    return len(rows)
