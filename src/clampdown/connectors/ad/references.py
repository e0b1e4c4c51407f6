"""User references to LDAP filters: every value escaped per RFC 4515, binary ids byte by byte."""

from __future__ import annotations

import re
import struct
import uuid
from dataclasses import dataclass

USER_FILTER = "(objectCategory=person)(objectClass=user)"

_SID_RE = re.compile(r"^S-1-(\d+)((?:-\d+){1,15})$", re.IGNORECASE)
_GUID_RE = re.compile(r"^\{?[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}\}?$")
# The characters RFC 4515 requires escaping inside an assertion value.
_FILTER_SPECIALS = frozenset("*()\\\x00")


def escape_filter_value(value: str) -> str:
    """`value` as an RFC 4515 assertion value: `*()\\` and NUL (and other controls) become `\\xx`."""
    out: list[str] = []
    for char in value:
        if char in _FILTER_SPECIALS or ord(char) < 0x20:
            out.extend(f"\\{byte:02x}" for byte in char.encode("utf-8"))
        else:
            out.append(char)
    return "".join(out)


def escape_filter_bytes(value: bytes) -> str:
    """Binary `value` (objectSid, objectGUID) with every byte escaped, as AD filters expect."""
    return "".join(f"\\{byte:02x}" for byte in value)


def sid_to_bytes(sid: str) -> bytes:
    """The binary form of a string SID `S-1-5-21-...`; ValueError if it is not one."""
    match = _SID_RE.match(sid.strip())
    if not match:
        raise ValueError(f"not a SID: {sid!r}")
    authority = int(match.group(1))
    subs = [int(part) for part in match.group(2).split("-")[1:]]
    if authority >= 1 << 48 or any(sub >= 1 << 32 for sub in subs):
        raise ValueError(f"not a SID: {sid!r}")
    return bytes([1, len(subs)]) + authority.to_bytes(6, "big") + struct.pack(f"<{len(subs)}I", *subs)


def sid_from_bytes(raw: bytes) -> str:
    """The string form `S-1-5-21-...` of a binary SID."""
    count = raw[1]
    authority = int.from_bytes(raw[2:8], "big")
    subs = struct.unpack(f"<{count}I", raw[8 : 8 + 4 * count])
    return f"S-{raw[0]}-{authority}" + "".join(f"-{sub}" for sub in subs)


def guid_from_bytes(raw: bytes) -> str:
    """objectGUID bytes as the usual string (little-endian in the first three groups)."""
    return str(uuid.UUID(bytes_le=raw))


@dataclass(frozen=True)
class UserQuery:
    """How to find one user: an LDAP filter, and what a person should read in 'not found'."""

    ldap_filter: str
    described: str


def user_query(reference: str, netbios_domain: str | None) -> UserQuery:
    """The query for a sAMAccountName, DOMAIN\\name, UPN, objectSid or objectGUID reference.

    ValueError when the reference cannot name a user of this domain (another NetBIOS domain).
    """
    ref = reference.strip()
    if any(ord(char) < 0x20 for char in ref):
        # No AD name holds control characters, and Samba ends an assertion value at an escaped NUL
        # (`alice\00` matches alice): such a reference must not reach the directory at all.
        raise ValueError("a user reference has no control characters")
    if _SID_RE.match(ref):
        try:
            # A migrated account carries the SID it had in its old domain in sIDHistory.
            sid = escape_filter_bytes(sid_to_bytes(ref))
            return _query(f"(|(objectSid={sid})(sIDHistory={sid}))", f"objectSid or sIDHistory {ref}")
        except ValueError:
            pass  # not a valid SID after all: look it up as a name, which finds nothing
    if _GUID_RE.match(ref):
        raw = uuid.UUID(ref.strip("{}")).bytes_le
        return _query(f"(objectGUID={escape_filter_bytes(raw)})", f"objectGUID {ref.strip('{}')}")
    if ref.count("\\") == 1 and not ref.startswith("\\"):
        domain, name = ref.split("\\")
        if netbios_domain is not None and domain.upper() != netbios_domain.upper():
            raise ValueError(f"'{domain}' is not this directory's domain ({netbios_domain})")
        return _query(f"(sAMAccountName={escape_filter_value(name)})", f"sAMAccountName {name}")
    if "@" in ref:
        return _query(f"(userPrincipalName={escape_filter_value(ref)})", f"userPrincipalName {ref}")
    return _query(f"(sAMAccountName={escape_filter_value(ref)})", f"sAMAccountName {ref}")


def _query(condition: str, described: str) -> UserQuery:
    return UserQuery(f"(&{USER_FILTER}{condition})", described)
