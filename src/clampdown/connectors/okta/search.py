"""People search in Okta: the Users API's `search` expression.

`co` (contains) is allowed on profile.firstName, lastName, email and login only, and is the
widest match Okta has (it holds every `sw`): one `co` term per property, joined by `or`; two
words are also tried as first and last name. Property
names are case-sensitive, values not. In a quoted value `"` and `\\` are escaped with `\\`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from clampdown.connectors.base import FoundUser
from clampdown.connectors.okta.client import OktaClient
from clampdown.connectors.okta.failures import failure
from clampdown.model import Account

SEARCHED = ("profile.firstName", "profile.lastName", "profile.login", "profile.email")
MAX_LIMIT = 200  # the Users API's page size


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def search_expression(text: str) -> str:
    """The `search` value: `co` on every searchable name property; for "alice mar", also a first
    name starting with the first word and a last name with the rest (no one property holds both)."""
    terms = [f"{prop} co {_quoted(text)}" for prop in SEARCHED]
    first, _, rest = text.partition(" ")
    if rest.strip():
        terms.append(
            f"(profile.firstName sw {_quoted(first)} and profile.lastName sw {_quoted(rest.strip())})"
        )
    return " or ".join(terms)


async def search_users(
    client: OktaClient, text: str, limit: int, account: Callable[[dict[str, Any]], Account]
) -> list[FoundUser]:
    """At most `limit` users of the org matching `text` (one page)."""
    params = {"search": search_expression(text), "limit": str(max(1, min(limit, MAX_LIMIT)))}
    answer = await client.request("GET", "/api/v1/users", params=params)
    if answer.status != 200:
        raise failure(answer, f"search Okta users for '{text}'")
    found = []
    for body in list(answer.body or [])[:limit]:
        profile = body.get("profile") or {}
        first, last = profile.get("firstName") or "", profile.get("lastName") or ""
        name = f"{first} {last}".strip() or str(profile.get("login") or body["id"])
        found.append(FoundUser(account(body), name, str(profile["email"]) if profile.get("email") else None))
    return found
