"""Finding and reading many users in one LDAP search, for the engine's batches (BatchingConnector,
BatchResolver).

A bulk containment of hundreds of users would otherwise cost one search per user to find it, one
more for the state read before acting and one more for the userAccountControl read right before
writing it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import ldap3  # type: ignore[import-untyped]

from clampdown.connectors.ad.failures import SUCCESS, operation_failure
from clampdown.connectors.ad.pool import Connection
from clampdown.connectors.ad.references import USER_FILTER, UserQuery, escape_filter_bytes, guid_from_bytes
from clampdown.errors import AccountNotFound
from clampdown.model import Account


def read_many(
    conn: Connection, base_dn: str, accounts: Sequence[Account], attributes: list[str]
) -> dict[str, tuple[str, dict[str, list[str]]]]:
    """objectGUID -> (dn, attribute values) for the accounts found under base_dn, in one search."""
    terms = "".join(f"(objectGUID={escape_filter_bytes(uuid.UUID(a.id).bytes_le)})" for a in accounts)
    conn.search(
        base_dn, f"(&(objectClass=user)(|{terms}))", ldap3.SUBTREE, attributes=[*attributes, "objectGUID"]
    )
    if conn.result["result"] != SUCCESS:
        raise operation_failure(conn.result, "read the users", base_dn)
    found: dict[str, tuple[str, dict[str, list[str]]]] = {}
    for entry in conn.response or []:
        if entry.get("type") != "searchResEntry":
            continue
        guid = guid_from_bytes(entry["raw_attributes"]["objectGUID"][0])
        values = {k: [str(v) for v in vs] for k, vs in entry["attributes"].items() if k != "objectGUID"}
        found[guid] = (entry["dn"], values)
    return found


def find_many(
    conn: Connection, base_dn: str, queries: Sequence[UserQuery], attributes: list[str]
) -> list[list[dict[str, Any]]] | None:
    """For each query, the entries it names, in one search (ldap3's entry dicts). None when the DC
    returned an entry no query claims (it matched a name otherwise than `UserQuery.matches`):
    then each must be looked up alone."""
    terms = "".join(q.condition for q in queries)
    conn.search(base_dn, f"(&{USER_FILTER}(|{terms}))", ldap3.SUBTREE, attributes=attributes)
    if conn.result["result"] != SUCCESS:
        raise operation_failure(conn.result, "search for users", base_dn)
    entries = [e for e in conn.response or [] if e.get("type") == "searchResEntry"]
    found: list[list[dict[str, Any]]] = [[] for _ in queries]
    for entry in entries:
        claimed = False
        for i, query in enumerate(queries):
            if query.matches(entry["raw_attributes"], entry["attributes"]):
                found[i].append(entry)
                claimed = True
        if not claimed:
            return None
    return found


def missing(account: Account, base_dn: str) -> AccountNotFound:
    """The error for an account the batch read did not find."""
    return AccountNotFound(f"{account.name} (objectGUID {account.id}) no longer exists under {base_dn}")
