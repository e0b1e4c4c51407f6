"""A person's recent events from the hunting store (sign-ins, logons, directory changes), for the
user page; read through the hunting service, so hunting:read is checked as for any hunt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Request

from clampdown.api.auth import runtime
from clampdown.api.hunting import hunting
from clampdown.errors import ClampdownError
from clampdown.permissions import HUNTING_READ
from clampdown.services.people import Person
from clampdown.signals.health import SignalsHealthService
from clampdown.web.access import Viewer
from clampdown.web.signals_page import event_name

RECENT_EVENTS = 15
# Account attributes that name the person in the event tables.
_IDENTIFIERS = ("upn", "userPrincipalName", "login", "email", "objectSid", "sAMAccountName")


@dataclass(frozen=True)
class RecentEvents:
    """The rows to show, or why there are none (no right to hunt, or the store failed)."""

    columns: list[str]
    rows: list[list[Any]]
    problem: str | None = None


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def events_query(values: list[str], account_ids: list[str] | None = None) -> str:
    """One read-only SQL query over the event tables for any of `values`; Shared Signals received
    about the person (SecuritySignals) by their UPN or by `account_ids` (directory:id)."""
    names = ", ".join(_literal(v) for v in values)
    ids = ", ".join(_literal(v) for v in account_ids or []) or "''"
    return f"""SELECT * FROM (
  SELECT Timestamp, 'sign-in' AS Event, Provider AS Source, ActionType, Application AS Detail,
         IPAddress, concat_ws(', ', City, Country) AS Location
  FROM CloudSignInEvents WHERE AccountUpn IN ({names}) OR AccountObjectId IN ({names})
  UNION ALL
  SELECT Timestamp, 'logon', 'ad', ActionType, concat_ws(' ', Protocol, LogonType), IPAddress, DeviceName
  FROM IdentityLogonEvents
  WHERE AccountUpn IN ({names}) OR AccountSid IN ({names}) OR AccountName IN ({names})
  UNION ALL
  SELECT Timestamp, 'directory', Application, ActionType, concat('by ', coalesce(AccountUpn, AccountName)),
         IPAddress, DeviceName
  FROM IdentityDirectoryEvents
  WHERE TargetAccountUpn IN ({names}) OR TargetAccountObjectId IN ({names}) OR TargetAccountSid IN ({names})
  UNION ALL
  SELECT Timestamp, 'signal received', Transmitter, EventName, concat('from ', Issuer), NULL, NULL
  FROM SecuritySignals
  WHERE AccountUpn IN ({names}) OR list_has_any(string_split(coalesce(AccountObjectIds, ''), ','), [{ids}])
) ORDER BY Timestamp DESC LIMIT {RECENT_EVENTS}"""


async def recent_events(request: Request, person: Person, who: Viewer) -> RecentEvents | None:
    """The newest events naming any of the person's accounts; None if the viewer may not hunt."""
    if not who.may_hunt:
        return None
    values: list[str] = []
    for linked in person.accounts:
        account = linked.account
        values += [account.id, account.name]
        values += [v for k, v in account.attributes.items() if k in _IDENTIFIERS]
    values = list(dict.fromkeys(v for v in values if v))
    account_ids = [f"{linked.account.where}:{linked.account.id}" for linked in person.accounts]
    query = events_query(values, account_ids)
    try:
        result = await hunting(request).query(who.principal, query, max_rows=RECENT_EVENTS)
    except ClampdownError as exc:
        return RecentEvents([], [], exc.message)
    ids = [linked.account.id for linked in person.accounts]
    rows = result.rows + await _signals_sent(request, who, values, ids)
    rows.sort(key=lambda row: _moment(row[0]), reverse=True)
    return RecentEvents(result.columns, rows[:RECENT_EVENTS])


def _moment(value: Any) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def _signals_sent(request: Request, who: Viewer, names: list[str], ids: list[str]) -> list[list[Any]]:
    """The SETs Clampdown sent about the person, as timeline rows. Only for a viewer who sees every
    directory (the outbox spans them); one the outbox does not answer for shows the rest."""
    if who.principal.scope is not None:
        return []
    try:
        sent = await SignalsHealthService(runtime(request)).sent_about(
            who.principal, HUNTING_READ, names, ids
        )
    except ClampdownError:
        return []
    return [[
        s.at.isoformat(), "signal sent", s.stream_id, ", ".join(event_name(t) for t in s.event_types),
        s.status + (f", containment {s.containment_id}" if s.containment_id else ""), None, None,
    ] for s in sent]  # fmt: skip
