"""People search in Active Directory: ambiguous name resolution and substring filters.

`anr` is AD's own type-ahead: it matches the fragment as a prefix of displayName, givenName, sn,
sAMAccountName, the name part of userPrincipalName, mail and more (and "alice mart" as a first and
last name). The substring terms add "anywhere in" for the names a person reads and types. Every
value is escaped per RFC 4515 (`*`, brackets, backslash and controls never reach the DC raw).
"""

from __future__ import annotations

from typing import Any

import ldap3  # type: ignore[import-untyped]

from clampdown.connectors.ad.failures import SUCCESS, operation_failure
from clampdown.connectors.ad.pool import Connection, DirectoryPool
from clampdown.connectors.ad.references import USER_FILTER, escape_filter_value
from clampdown.connectors.base import FoundUser

SIZE_LIMIT_EXCEEDED = 4
SEARCHED = ("displayName", "sAMAccountName", "userPrincipalName", "mail")
_SEARCH_ATTRIBUTES = [
    "objectGUID", "objectSid", "sIDHistory", "sAMAccountName", "userPrincipalName", "displayName", "mail"
]  # fmt: skip


def search_filter(text: str) -> str:
    """The LDAP filter for users matching `text` by ANR or anywhere in their names and mail."""
    value = escape_filter_value(text)
    contains = "".join(f"({attribute}=*{value}*)" for attribute in SEARCHED)
    return f"(&{USER_FILTER}(|(anr={value}){contains}))"


async def search_users(pool: DirectoryPool, base: str, text: str, limit: int) -> list[FoundUser]:
    """At most `limit` users under `base` matching `text`."""
    query = search_filter(text)

    def search(conn: Connection) -> list[dict[str, Any]]:
        conn.search(base, query, ldap3.SUBTREE, attributes=_SEARCH_ATTRIBUTES, size_limit=limit)
        if conn.result["result"] not in (SUCCESS, SIZE_LIMIT_EXCEEDED):
            raise operation_failure(conn.result, "search for users", base)
        return [e for e in conn.response or [] if e.get("type") == "searchResEntry"]

    from clampdown.connectors.ad.connector import _account, _first

    found = []
    for entry in (await pool.run(search))[:limit]:
        account = _account(entry)
        attributes = entry["attributes"]
        name = _first(attributes.get("displayName")) or account.name
        found.append(FoundUser(account, name, _first(attributes.get("mail")) or None))
    return found
