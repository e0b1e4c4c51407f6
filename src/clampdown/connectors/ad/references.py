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
    """How to find one user: an LDAP filter, and what a person should read in 'not found'; for a
    search of many references at once, its condition alone and how to tell the entries it matches."""

    ldap_filter: str
    described: str
    condition: str = ""
    # What an entry must hold to match: ("objectSid", sid bytes) matches objectSid or sIDHistory,
    # ("objectGUID", bytes_le), ("sAMAccountName", name) or ("userPrincipalName", upn).
    key: tuple[str, bytes | str] | None = None

    @property
    def batchable(self) -> bool:
        """Whether `matches` tells this query's entries exactly as the DC does: ids, and names in
        ASCII (a non-ASCII name may fold case otherwise in the DC: it is looked up alone)."""
        return self.key is not None and (not isinstance(self.key[1], str) or self.key[1].isascii())

    def matches(self, raw: dict[str, list[bytes]], attrs: dict[str, object]) -> bool:
        """Whether a search entry (ldap3's raw_attributes and attributes) is the user this names.
        Names compare case-blind, as AD does: exactly so for ASCII names (see `batchable`)."""
        if self.key is None:
            return False
        attribute, wanted = self.key
        if attribute == "objectSid":
            return wanted in raw.get("objectSid", []) or wanted in raw.get("sIDHistory", [])
        if attribute == "objectGUID":
            return wanted in raw.get("objectGUID", [])
        value = attrs.get(attribute)  # the name the DC holds
        found = value[0] if isinstance(value, list) and value else value
        return isinstance(found, str) and isinstance(wanted, str) and found.lower() == wanted.lower()


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
            raw_sid = sid_to_bytes(ref)
            sid = escape_filter_bytes(raw_sid)
            return _query(
                f"(|(objectSid={sid})(sIDHistory={sid}))", f"objectSid or sIDHistory {ref}",
                ("objectSid", raw_sid),
            )  # fmt: skip
        except ValueError:
            pass  # not a valid SID after all: look it up as a name, which finds nothing
    if _GUID_RE.match(ref):
        raw = uuid.UUID(ref.strip("{}")).bytes_le
        return _query(
            f"(objectGUID={escape_filter_bytes(raw)})", f"objectGUID {ref.strip('{}')}", ("objectGUID", raw)
        )
    if ref.count("\\") == 1 and not ref.startswith("\\"):
        domain, name = ref.split("\\")
        if netbios_domain is not None and domain.upper() != netbios_domain.upper():
            raise ValueError(f"'{domain}' is not this directory's domain ({netbios_domain})")
        return _name_query("sAMAccountName", name)
    if "@" in ref:
        return _name_query("userPrincipalName", ref)
    return _name_query("sAMAccountName", ref)


def _name_query(attribute: str, name: str) -> UserQuery:
    return _query(f"({attribute}={escape_filter_value(name)})", f"{attribute} {name}", (attribute, name))


def _query(condition: str, described: str, key: tuple[str, bytes | str]) -> UserQuery:
    return UserQuery(f"(&{USER_FILTER}{condition})", described, condition, key)
