"""Privileged group memberships: which groups count, taking a user out of them, putting them back.

A group is privileged when it is one of the configured groups (well-known ones resolved by SID or
domain RID, so a renamed or localized "Domain Admins" is still found), has adminCount=1 (what
SDProp marks as protected, nested groups included on Windows), or is nested into one of those
(LDAP_MATCHING_RULE_IN_CHAIN): leaving a group that sits inside Domain Admins is leaving Domain
Admins. Only direct memberships are changed, and each change is one `member` delete or add on
the group, so the action account needs Write Property on `member` of each group.
"""

from __future__ import annotations

from dataclasses import dataclass

import ldap3  # type: ignore[import-untyped]

from clampdown.connectors.ad.failures import SUCCESS, operation_failure
from clampdown.connectors.ad.pool import Connection
from clampdown.connectors.ad.references import escape_filter_value, sid_from_bytes
from clampdown.errors import PermanentError, ProviderError

IN_CHAIN = "1.2.840.113556.1.4.1941"
NEEDS_MEMBER = (
    "Write Property on member of that group. For a group protected by AdminSDHolder (adminCount=1: "
    "Domain Admins, Administrators, the Operators groups ...) SDProp overwrites rights delegated on "
    "the group itself within the hour, so the grant must be on CN=AdminSDHolder,CN=System of the "
    "domain (it then applies to every protected object), or the action run by a privileged account"
)


@dataclass(frozen=True)
class Domain:
    """The domain's naming context and SID."""

    naming: str
    sid: str


@dataclass(frozen=True)
class Group:
    """One group, as found just now."""

    dn: str
    sid: str
    name: str


def spec_filter(spec: str, domain_sid: str) -> str:
    """The LDAP filter clause for one configured group: `S-1-...`, `RID:<n>` in the domain's SID,
    a DN, or a sAMAccountName."""
    spec = spec.strip()
    if spec.upper().startswith("RID:"):
        rid = spec[4:].strip()
        if not rid.isdigit():
            raise PermanentError(f"privileged group {spec!r}: RID:<number> expected", code="config")
        return f"(objectSid={domain_sid}-{rid})"
    if spec.upper().startswith("S-1-"):
        return f"(objectSid={escape_filter_value(spec)})"
    if "=" in spec:
        return f"(distinguishedName={escape_filter_value(spec)})"
    return f"(sAMAccountName={escape_filter_value(spec)})"


def read_domain(conn: Connection) -> Domain:
    """The domain's naming context and SID, from the rootDSE."""
    conn.search("", "(objectClass=*)", ldap3.BASE, attributes=["defaultNamingContext"])
    if conn.result["result"] != SUCCESS or not conn.response:
        raise operation_failure(conn.result, "read the rootDSE", "the rootDSE")
    naming = str(_one(conn.response[0]["attributes"].get("defaultNamingContext")))
    conn.search(naming, "(objectClass=domain)", ldap3.BASE, attributes=["objectSid"])
    if conn.result["result"] != SUCCESS or not conn.response:
        raise operation_failure(conn.result, "read the domain's SID", naming)
    return Domain(naming, sid_from_bytes(conn.response[0]["raw_attributes"]["objectSid"][0]))


def privileged_groups(conn: Connection, domain: Domain, specs: list[str], admin_count: bool) -> list[Group]:
    """Every group that counts as privileged by itself (configured, or adminCount=1)."""
    clauses = [spec_filter(spec, domain.sid) for spec in specs]
    if admin_count:
        clauses.append("(adminCount=1)")
    if not clauses:
        return []
    return _groups(conn, domain.naming, f"(&(objectClass=group)(|{''.join(clauses)}))")


def privileged_among(
    conn: Connection,
    domain: Domain,
    privileged: list[Group],
    member: str | None,
    dns: list[str] | None = None,
) -> list[Group]:
    """The groups that are privileged or nested into one, among the direct groups of `member`
    (or among `dns`), in DN order."""
    if not privileged or dns == []:
        return []
    either = "".join(
        f"(distinguishedName={escape_filter_value(g.dn)})(memberOf:{IN_CHAIN}:={escape_filter_value(g.dn)})"
        for g in privileged
    )
    among = f"(member={escape_filter_value(member)})" if member else ""
    if dns:
        among += "(|" + "".join(f"(distinguishedName={escape_filter_value(dn)})" for dn in dns) + ")"
    flt = f"(&(objectClass=group){among}(|{either}))"
    return sorted(_groups(conn, domain.naming, flt), key=lambda g: g.dn.lower())


def read_groups(conn: Connection, domain: Domain, dns: list[str]) -> dict[str, Group]:
    """The groups of `dns` that still exist, by DN (lower case)."""
    if not dns:
        return {}
    either = "".join(f"(distinguishedName={escape_filter_value(dn)})" for dn in dns)
    return {g.dn.lower(): g for g in _groups(conn, domain.naming, f"(&(objectClass=group)(|{either}))")}


def change_memberships(conn: Connection, user_dn: str, groups: list[Group], add: bool) -> None:
    """Delete (or add) `user_dn` from each group's `member`, all or none: on the first refusal the
    groups already changed are changed back, and the refusal is raised with the DC's message."""
    done: list[Group] = []
    operation = ldap3.MODIFY_ADD if add else ldap3.MODIFY_DELETE
    for group in groups:
        if conn.modify(group.dn, {"member": [(operation, [user_dn])]}):
            done.append(group)
            continue
        doing = f"{'add' if add else 'remove'} {user_dn} {'to' if add else 'from'} the group"
        error = operation_failure(conn.result, doing, group.dn, needs=NEEDS_MEMBER)
        said = str(conn.result.get("message") or "").strip()
        undone = _undo(conn, user_dn, done, add)
        detail = f"; the directory said: {said}" if said else ""
        raise _with_message(error, f"{error.message}{detail}{undone}") from None


def _undo(conn: Connection, user_dn: str, done: list[Group], add: bool) -> str:
    back = ldap3.MODIFY_DELETE if add else ldap3.MODIFY_ADD
    failed = [g.dn for g in done if not conn.modify(g.dn, {"member": [(back, [user_dn])]})]
    if not done:
        return "; nothing was changed"
    if failed:
        return f"; changed back all but {', '.join(failed)}, which could not be restored: check it by hand"
    return f"; the {len(done)} group(s) already changed were changed back, so nothing was changed"


def _with_message(error: ProviderError, message: str) -> ProviderError:
    """The same kind of error (and code), with the whole story as its message."""
    return type(error)(message, code=error.code)


def _groups(conn: Connection, base: str, flt: str) -> list[Group]:
    conn.search(base, flt, ldap3.SUBTREE, attributes=["objectSid", "sAMAccountName"])
    if conn.result["result"] != SUCCESS:
        raise operation_failure(conn.result, "search for groups", base)
    found = []
    for entry in conn.response or []:
        if entry.get("type") != "searchResEntry":
            continue
        sid = sid_from_bytes(entry["raw_attributes"]["objectSid"][0])
        found.append(Group(entry["dn"], sid, str(_one(entry["attributes"].get("sAMAccountName")))))
    return found


def _one(value: object) -> object:
    return value[0] if isinstance(value, list) and value else value
