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

# Accounts seen in the last days, per provider and directory; computer accounts (NAME$) are not people.
SEEN_ACCOUNTS = """
SELECT DISTINCT provider, directory, reference FROM (
    SELECT 'ad' AS provider, Directory AS directory, AccountName AS reference FROM IdentityLogonEvents
        WHERE Timestamp > now() - INTERVAL {days} DAY
    UNION ALL SELECT 'ad', Directory, TargetAccountName FROM IdentityDirectoryEvents
        WHERE Application = 'Active Directory' AND Timestamp > now() - INTERVAL {days} DAY
    UNION ALL SELECT Provider, Directory, coalesce(AccountUpn, AccountObjectId) FROM CloudSignInEvents
        WHERE Timestamp > now() - INTERVAL {days} DAY
    UNION ALL SELECT 'okta', Directory, TargetAccountObjectId FROM IdentityDirectoryEvents
        WHERE Application = 'Okta' AND Timestamp > now() - INTERVAL {days} DAY
) WHERE reference IS NOT NULL AND reference <> '' AND NOT ends_with(reference, '$')
ORDER BY provider, directory NULLS FIRST, reference
"""


def _first(attributes: Mapping[str, str], *names: str) -> str | None:
    return next((attributes[n] for n in names if attributes.get(n)), None)


async def _lookup(connector: Connector, provider: str, directory: str, reference: str) -> Row | None:
    try:
        account = await connector.resolve_user(reference)
        state = await connector.read_state(account)
    except ClampdownError as exc:
        log.info("IdentityInfo: %s %s not looked up in %s: %s", provider, reference, directory, exc.message)
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
        "Directory": directory,
    }


async def refresh_identity_info(
    store: EventStore, connectors: Mapping[str, Connector], days: int = 30, limit: int = 5_000
) -> int:
    """Look up the accounts seen in the last `days` in their directories; returns rows written.
    Each event's directory is asked (an event of no known directory: the one directory of its
    kind, if there is only one), and the row names the directory that answered."""
    seen = await asyncio.to_thread(run_query, store, SEEN_ACCOUNTS.format(days=int(days)), max_rows=limit)
    slots = asyncio.Semaphore(LOOKUPS_IN_FLIGHT)
    lookups: dict[tuple[str, str, str], None] = {}
    for provider, directory, reference in seen.rows:
        where = find_instance(connectors, str(provider), None if directory is None else str(directory))
        if where is not None:
            lookups[(str(provider), where, str(reference))] = None

    async def one(provider: str, where: str, reference: str) -> Row | None:
        async with slots:
            return await _lookup(connectors[where], provider, where, reference)

    found = await asyncio.gather(*(one(*key) for key in lookups))
    rows = [r for r in found if r is not None]
    if rows:
        await asyncio.to_thread(store.append, Batch({IDENTITY_INFO.name: rows}, {}))
    return len(rows)
