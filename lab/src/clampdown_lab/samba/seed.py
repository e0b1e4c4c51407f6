"""Seed a lab domain over LDAPS as Administrator: the demo people in OU=Managed, others in OU=Other."""

from __future__ import annotations

import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ldap3  # type: ignore[import-untyped]

from clampdown.connectors.ad.references import escape_filter_value, guid_from_bytes, sid_from_bytes
from clampdown_lab.people import LAB, DemoPerson, LabDomain

BASE_DN = LAB.base_dn
MANAGED_OU = f"OU=Managed,{BASE_DN}"
OTHER_OU = f"OU=Other,{BASE_DN}"
# Users outside the action account's OU, for least-privilege checks and demos.
OTHER_PEOPLE: tuple[DemoPerson, ...] = (
    DemoPerson("olivia.other", "Olivia", "Other", "Facilities", "Facilities Manager"),
    DemoPerson("oscar.other", "Oscar", "Other", "Executive", "Chief Executive"),
)
NORMAL_ACCOUNT = 0x200


def managed_ou(domain: LabDomain) -> str:
    """The OU the action account of `domain` is delegated on."""
    return f"OU=Managed,{domain.base_dn}"


def other_ou(domain: LabDomain) -> str:
    return f"OU=Other,{domain.base_dn}"


@dataclass(frozen=True)
class Directory:
    """How to reach a lab DC as Administrator."""

    url: str
    ca_file: Path
    admin_password: str
    domain: LabDomain = LAB

    def connect(self) -> Any:
        """A bound Administrator connection over verified LDAPS."""
        host, _, port = self.url.removeprefix("ldaps://").partition(":")
        tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(self.ca_file))
        server = ldap3.Server(host, port=int(port or 636), use_ssl=True, tls=tls, get_info=ldap3.NONE)
        admin = f"Administrator@{self.domain.domain}"
        conn = ldap3.Connection(server, user=admin, password=self.admin_password, raise_exceptions=True)
        conn.bind()
        return conn


def user_ids(conn: Any, username: str, domain: LabDomain = LAB) -> dict[str, str] | None:
    """dn, objectSid, objectGUID, sAMAccountName, upn and netbios name of a user in `domain`
    (and sIDHistory if it has one), or None if absent."""
    conn.search(domain.base_dn, f"(&(objectClass=user)(sAMAccountName={escape_filter_value(username)}))",
                attributes=["objectSid", "objectGUID", "userPrincipalName", "sIDHistory"])
    entries = [e for e in conn.response if e.get("type") == "searchResEntry"]
    if not entries:
        return None
    raw = entries[0]["raw_attributes"]
    ids = {
        "dn": entries[0]["dn"],
        "objectSid": sid_from_bytes(raw["objectSid"][0]),
        "objectGUID": guid_from_bytes(raw["objectGUID"][0]),
        "sAMAccountName": username,
        "upn": "".join(entries[0]["attributes"].get("userPrincipalName") or []),
        "netbios": f"{domain.netbios}\\{username}",
    }
    if raw.get("sIDHistory"):
        ids["sIDHistory"] = " ".join(sid_from_bytes(sid) for sid in raw["sIDHistory"])
    return ids


def create_user(
    conn: Any, person: DemoPerson, ou: str, password: str, domain: LabDomain = LAB
) -> dict[str, str]:
    """Create an enabled user with `password` in `ou` of `domain` unless it exists; its ids either way."""
    existing = user_ids(conn, person.username, domain)
    if existing is not None:
        return existing
    dn = f"CN={ldap3.utils.dn.escape_rdn(person.display_name)},{ou}"
    conn.add(dn, ["top", "person", "organizationalPerson", "user"], {
        "sAMAccountName": person.username,
        "userPrincipalName": person.upn,
        "givenName": person.given_name,
        "sn": person.surname,
        "displayName": person.display_name,
        "department": person.department,
        "title": person.title,
        "mail": person.upn,
        "unicodePwd": f'"{password}"'.encode("utf-16-le"),
        "userAccountControl": str(NORMAL_ACCOUNT),
    })
    ids = user_ids(conn, person.username, domain)
    assert ids is not None
    return ids


def seed_people(
    directory: Directory, people: tuple[DemoPerson, ...], password: str
) -> dict[str, dict[str, str]]:
    """The demo people in OU=Managed and OTHER_PEOPLE in OU=Other; ids of all, by username."""
    conn = directory.connect()
    domain = directory.domain
    try:
        ids = {p.username: create_user(conn, p, managed_ou(domain), password, domain) for p in people}
        others = other_ou(domain)
        ids.update({p.username: create_user(conn, p, others, password, domain) for p in OTHER_PEOPLE})
        return ids
    finally:
        conn.unbind()


# The lab's Kerberos ticket policy, unlike Windows' defaults (10 h, 7 days, 600 min) so a test
# can tell it was read. Samba's own KDC keeps its smb.conf lifetimes (it applies GPOs only
# through samba-gpupdate); what is checked here is that Clampdown reads the domain's policy.
LAB_KERBEROS_POLICY = {"MaxTicketAge": 4, "MaxRenewAge": 2, "MaxServiceAge": 120, "MaxClockSkew": 5}
DEFAULT_DOMAIN_POLICY = "{31B2F340-016D-11D2-945F-00C04FB984F9}"


def seed_kerberos_policy(sysvol: Path, domain: LabDomain = LAB) -> Path:
    """Write the Default Domain Policy's GptTmpl.inf with LAB_KERBEROS_POLICY, UTF-16 as Windows
    writes it (provisioning leaves it out); its path."""
    folder = sysvol / domain.domain / "Policies" / DEFAULT_DOMAIN_POLICY / "MACHINE" / "Microsoft"
    folder = folder / "Windows NT" / "SecEdit"
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["[Unicode]", "Unicode=yes", "[Version]", 'signature="$CHICAGO$"', "Revision=1"]
    lines.append("[Kerberos Policy]")
    lines += [f"{key} = {value}" for key, value in LAB_KERBEROS_POLICY.items()]
    path = folder / "GptTmpl.inf"
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode("utf-16"))
    return path


def new_password() -> str:
    """A random password meeting AD complexity, for lab accounts."""
    return f"Lab-{uuid.uuid4().hex[:16]}-Pw9"
