"""People search in Entra ID: Graph's `$search` on users, an advanced query.

`$search="displayName:mart"` matches the fragment as the start of any word of the display name
(Graph tokenizes displayName: spaces, punctuation, lower-to-upper case changes); on
userPrincipalName and mail it matches the start of the value. Graph answers `$search` on directory
objects only with the `ConsistencyLevel: eventual` header (else 400 Request_UnsupportedQuery), and
counts the matches with `$count=true`. Within a quoted clause `"` and `\\` are escaped with `\\`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clampdown.connectors.base import FoundUser
from clampdown.connectors.entra.client import GraphClient, GraphReply
from clampdown.errors import ProviderError
from clampdown.model import Account

SEARCHED = ("displayName", "userPrincipalName", "mail")
ADVANCED_QUERY = {"ConsistencyLevel": "eventual"}


def search_expression(text: str) -> str:
    """The `$search` value: one quoted clause per searched property, joined by OR."""
    value = text.replace("\\", "\\\\").replace('"', '\\"')
    return " OR ".join(f'"{prop}:{value}"' for prop in SEARCHED)


async def search_users(
    graph: GraphClient,
    select: str,
    text: str,
    limit: int,
    account: Callable[[dict[str, Any]], Account],
    error: Callable[[GraphReply, str, str], ProviderError],
) -> list[FoundUser]:
    """At most `limit` users of the tenant matching `text` (one page of `$top`)."""
    params = {
        "$search": search_expression(text),
        "$select": f"{select},mail",
        "$top": str(max(1, min(limit, 999))),
        "$count": "true",
    }
    reply = await graph.send("GET", "/users", params=params, headers=ADVANCED_QUERY)
    if not reply.ok:
        raise error(reply, "search_users", text)
    found = []
    for user in reply.body.get("value", [])[:limit]:
        name = str(user.get("displayName") or user["userPrincipalName"])
        found.append(FoundUser(account(user), name, str(user["mail"]) if user.get("mail") else None))
    return found
