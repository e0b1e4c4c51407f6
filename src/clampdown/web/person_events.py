"""A person's recent events from the hunting store (sign-ins, logons, directory changes), for the
user page; read through the hunting service, so hunting:read is checked as for any hunt."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request

from clampdown.api.hunting import hunting
from clampdown.errors import ClampdownError
from clampdown.services.people import Person
from clampdown.web.access import Viewer

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


def events_query(values: list[str]) -> str:
    """One read-only SQL query over the three event tables for any of `values`."""
    names = ", ".join(_literal(v) for v in values)
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
    try:
        result = await hunting(request).query(who.principal, events_query(values), max_rows=RECENT_EVENTS)
    except ClampdownError as exc:
        return RecentEvents([], [], exc.message)
    return RecentEvents(result.columns, result.rows)
