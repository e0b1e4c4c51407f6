"""Reading many users in one LDAP search, for the engine's batches (BatchingConnector).

A bulk containment of hundreds of users would otherwise cost one search per user for the state
read before acting and one more for the userAccountControl read right before writing it.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import ldap3  # type: ignore[import-untyped]

from clampdown.connectors.ad.failures import SUCCESS, operation_failure
from clampdown.connectors.ad.pool import Connection
from clampdown.connectors.ad.references import escape_filter_bytes, guid_from_bytes
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


def missing(account: Account, base_dn: str) -> AccountNotFound:
    """The error for an account the batch read did not find."""
    return AccountNotFound(f"{account.name} (objectGUID {account.id}) no longer exists under {base_dn}")
