"""IdentityInfo kept current from the connectors: every account seen in recent events is looked up
in its provider, with whether it is enabled now, and in the other providers by its UPN, so a hunt
can join events to current state; each refresh joins the stored events to it again
(hunting/enrichment.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from clampdown.connectors.base import Connector
from clampdown.connectors.instances import find_instance, instances_of
from clampdown.errors import ClampdownError
from clampdown.hunting.directories import DirectoryMatcher, ad_domains
from clampdown.hunting.enrichment import IdentityIndex, Subject, load_index, reenrich, unknown_subjects
from clampdown.hunting.query import run_query
from clampdown.hunting.schema import IDENTITY_INFO
from clampdown.hunting.store import Batch, EventStore, Row

log = logging.getLogger(__name__)
LOOKUPS_IN_FLIGHT = 8

# Accounts seen in the last days, per provider, directory and (AD) the domain the event names;
# computer accounts (NAME$) are not people.
SEEN_ACCOUNTS = """
SELECT DISTINCT provider, directory, domain, reference FROM (
    SELECT 'ad' AS provider, Directory AS directory, AccountDomain AS domain, AccountName AS reference
        FROM IdentityLogonEvents WHERE Timestamp > now() - INTERVAL {days} DAY
    UNION ALL SELECT 'ad', Directory,
        CASE WHEN EventId = 4740 THEN NULL
            ELSE json_extract_string(AdditionalFields, '$.TargetDomainName') END,
        TargetAccountName FROM IdentityDirectoryEvents
        WHERE Application = 'Active Directory' AND Timestamp > now() - INTERVAL {days} DAY
    UNION ALL SELECT Provider, Directory, NULL, coalesce(AccountUpn, AccountObjectId) FROM CloudSignInEvents
        WHERE Timestamp > now() - INTERVAL {days} DAY
    UNION ALL SELECT 'okta', Directory, NULL, TargetAccountObjectId FROM IdentityDirectoryEvents
        WHERE Application = 'Okta' AND Timestamp > now() - INTERVAL {days} DAY
) WHERE reference IS NOT NULL AND reference <> '' AND NOT ends_with(reference, '$')
ORDER BY provider, directory NULLS FIRST, reference
"""
Lookup = tuple[str, str, str]  # provider, configured directory, reference


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
    store: EventStore,
    connectors: Mapping[str, Connector],
    days: int = 30,
    limit: int = 5_000,
    *,
    only_unknown: bool = False,
    misses: set[Lookup] | None = None,
) -> int:
    """Look up the accounts seen in the last `days` in their directories, and each one's UPN in the
    configured directories of the other kinds (so a DC event's account gains its Entra and Okta
    ids); then join the stored events to IdentityInfo again. Returns IdentityInfo rows written.

    Each AD account is asked of the directory of its domain (else its event's); an event of no
    known directory: the one directory of its kind, if there is only one; the row names the
    directory that answered. With `only_unknown`, only accounts the stored events name and
    IdentityInfo does not know yet are looked up, at any age, skipping those in `misses` (which
    gains the ones no directory knows): what an ingest or a schedule round does."""
    matcher = DirectoryMatcher(ad_domains(connectors))
    index = await asyncio.to_thread(load_index, store)
    if only_unknown:
        found = await asyncio.to_thread(unknown_subjects, store, index, matcher.account_directory)
        wanted = _unknown_lookups(connectors, found, misses or set())
    else:
        seen = await asyncio.to_thread(run_query, store, SEEN_ACCOUNTS.format(days=int(days)), max_rows=limit)
        wanted = _seen_lookups(connectors, seen.rows, matcher)
    lookups = list(dict.fromkeys(wanted))[:limit]
    rows = await _look_up(connectors, lookups, misses)
    linked = _linked_lookups(connectors, rows, index, only_unknown)[:limit]
    rows += await _look_up(connectors, linked, misses, True)
    if rows:
        await asyncio.to_thread(store.append, Batch({IDENTITY_INFO.name: rows}, {}))
    if rows or not only_unknown:
        fresh = await asyncio.to_thread(load_index, store)
        changed = await asyncio.to_thread(reenrich, store, fresh, matcher.account_directory)
        log.info("IdentityInfo: %d accounts written, %d event rows joined again", len(rows), changed)
    return len(rows)


def _seen_lookups(
    connectors: Mapping[str, Connector], seen: list[list[Any]], matcher: DirectoryMatcher
) -> list[Lookup]:
    out = []
    for provider, directory, domain, reference in seen:
        event_directory = None if directory is None else str(directory)
        asked = event_directory
        if provider == "ad":  # the directory of the account's domain where the event names one
            asked = matcher.account_directory(event_directory, domain) or event_directory
        where = find_instance(connectors, str(provider), asked)
        if where is not None:
            out.append((str(provider), where, str(reference)))
    return out


def _unknown_lookups(
    connectors: Mapping[str, Connector], subjects: list[Subject], misses: set[Lookup]
) -> list[Lookup]:
    out = []
    for subject in subjects:
        if subject.provider == "ad" and subject.directory is None:
            continue  # its domain is unknown: whatever a directory answered would not be joined
        where = find_instance(connectors, subject.provider, subject.directory)
        reference = subject.name or subject.sid or subject.object_id or subject.upn
        if where is not None and reference and (key := (subject.provider, where, reference)) not in misses:
            out.append(key)
    return out


def _linked_lookups(
    connectors: Mapping[str, Connector], rows: list[Row], index: IdentityIndex, only_unknown: bool
) -> list[Lookup]:
    """Each found account's UPN, in every configured directory of another kind (that does not know
    it yet, with `only_unknown`)."""
    out = []
    for row in rows:
        upn = row.get("AccountUpn")
        if not upn:
            continue
        known = {(i.provider, i.directory) for i in index.by_upn.get(str(upn).casefold(), [])}
        for kind in ("ad", "entra", "okta"):
            if kind == row["Provider"]:
                continue
            for where in instances_of(connectors, kind):
                if not (only_unknown and (kind, where) in known):
                    out.append((kind, where, str(upn)))
    return list(dict.fromkeys(out))


async def _look_up(
    connectors: Mapping[str, Connector],
    lookups: list[Lookup],
    misses: set[Lookup] | None,
    by_upn: bool = False,
) -> list[Row]:
    """IdentityInfo rows of the accounts `lookups` name; `by_upn`: only an account whose UPN (or
    Okta login) is the reference, never one found by a weaker attribute (an email)."""
    slots = asyncio.Semaphore(LOOKUPS_IN_FLIGHT)

    async def one(provider: str, where: str, reference: str) -> Row | None:
        async with slots:
            return await _lookup(connectors[where], provider, where, reference)

    found = await asyncio.gather(*(one(*key) for key in lookups))
    rows = []
    for key, row in zip(lookups, found, strict=True):
        if row is None or (by_upn and str(row.get("AccountUpn") or "").casefold() != key[2].casefold()):
            if misses is not None:
                misses.add(key)
            continue
        rows.append(row)
    return rows
