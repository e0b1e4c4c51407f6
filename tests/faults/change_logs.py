"""What the providers themselves recorded, read back to count changes: Samba's replication
metadata (one version per originating write of an attribute) and the Okta org's System Log."""

from __future__ import annotations

import struct
from collections import Counter
from typing import Any

import httpx
import ldap3

# Attribute ids (ATTIDs) of the prefix map every AD forest starts with: 1.2.840.113556.1.4.x.
USER_ACCOUNT_CONTROL = 0x00090008
PWD_LAST_SET = 0x00090060
_HEADER = struct.Struct("<IIII")  # replPropertyMetaDataBlob: version, reserved, count, reserved
_ENTRY = struct.Struct("<IIQ16sQQ")  # attid, version, change time, invocation id, originating, local USN


def write_versions(conn: Any, dn: str) -> dict[int, int]:
    """attid -> version from the object's replPropertyMetaData, read as Administrator. The version
    goes up with every write that changes the attribute on this DC (a write of the value it already
    holds leaves it). Samba answers the constructed msDS-ReplAttributeMetaData empty, so the blob is
    decoded here."""
    conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["replPropertyMetaData"])
    raw = conn.response[0]["raw_attributes"]["replPropertyMetaData"][0]
    version, _, count, _ = _HEADER.unpack_from(raw, 0)
    assert version == 1, f"replPropertyMetaData of {dn} has version {version}"
    versions = {}
    for n in range(count):
        attid, attr_version, *_ = _ENTRY.unpack_from(raw, _HEADER.size + n * _ENTRY.size)
        versions[attid] = attr_version
    return versions


def okta_events(org_url: str, api_token: str, event_type: str) -> Counter[str]:
    """How many System Log events of `event_type` each user (by id) is the target of, read
    through the org's own /api/v1/logs, following its `next` links."""
    headers = {"Authorization": f"SSWS {api_token}", "Accept": "application/json"}
    params: dict[str, str] | None = {"filter": f'eventType eq "{event_type}"', "limit": "1000"}
    url: str | None = f"{org_url}/api/v1/logs"
    targets: Counter[str] = Counter()
    with httpx.Client(headers=headers, timeout=30) as client:
        while url is not None:
            answer = client.get(url, params=params)
            answer.raise_for_status()
            events = answer.json()
            if not events:
                break
            targets.update(t["id"] for e in events for t in e["target"] if t["type"] == "User")
            # The next link carries the query: params given again would replace it.
            url, params = answer.links.get("next", {}).get("url"), None
    return targets


def versions_per_write(conn: Any, dn: str, changes: dict[int, tuple[str, str]]) -> dict[int, int]:
    """By how much one LDAP modify (a replace, as the AD connector sends) raises each attribute's
    version, measured on `dn`: attid -> (attribute name, value to write). Samba raises
    userAccountControl's by 2 (its samldb module writes the attribute a second time), pwdLastSet's
    by 1; the counts are measured, not assumed."""
    step = {}
    for attid, (name, value) in changes.items():
        before = write_versions(conn, dn)[attid]
        conn.modify(dn, {name: [(ldap3.MODIFY_REPLACE, [value])]})
        assert conn.result["result"] == 0, conn.result
        step[attid] = write_versions(conn, dn)[attid] - before
        assert step[attid] >= 1, f"writing {name} did not raise its version"
    return step
