"""Just enough of a binary security descriptor's DACL to tell whether a token holds a DS right.

[MS-DTYP] 2.4.6 (self-relative SECURITY_DESCRIPTOR), 2.4.5 (ACL), 2.4.4 (ACEs). Only the ACE
types a directory object's DACL uses are read: access allowed/denied, and their object forms.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from clampdown.connectors.ad.references import sid_from_bytes

ACCESS_ALLOWED = 0x00
ACCESS_DENIED = 0x01
ACCESS_ALLOWED_OBJECT = 0x05
ACCESS_DENIED_OBJECT = 0x06

CONTAINER_INHERIT = 0x02
INHERIT_ONLY = 0x08

RIGHT_DS_WRITE_PROP = 0x20
RIGHT_DS_CONTROL_ACCESS = 0x100

_OBJECT_TYPE_PRESENT = 0x1
_INHERITED_OBJECT_TYPE_PRESENT = 0x2


@dataclass(frozen=True)
class Ace:
    """One access control entry."""

    type: int
    flags: int
    mask: int
    sid: str
    object_type: str | None = None  # the property, property set or extended right it is limited to
    inherited_object_type: str | None = None  # the child class it is inherited by

    @property
    def allows(self) -> bool:
        return self.type in (ACCESS_ALLOWED, ACCESS_ALLOWED_OBJECT)


def parse_dacl(descriptor: bytes) -> list[Ace]:
    """The DACL's ACEs in order; an empty list when the descriptor carries no DACL."""
    offset_dacl = struct.unpack_from("<I", descriptor, 16)[0]
    if not offset_dacl:
        return []
    ace_count = struct.unpack_from("<H", descriptor, offset_dacl + 4)[0]
    aces: list[Ace] = []
    pos = offset_dacl + 8
    for _ in range(ace_count):
        ace_type, ace_flags, ace_size = struct.unpack_from("<BBH", descriptor, pos)
        body = descriptor[pos + 4 : pos + ace_size]
        pos += ace_size
        if ace_type in (ACCESS_ALLOWED, ACCESS_DENIED):
            aces.append(Ace(ace_type, ace_flags, struct.unpack_from("<I", body)[0], sid_from_bytes(body[4:])))
        elif ace_type in (ACCESS_ALLOWED_OBJECT, ACCESS_DENIED_OBJECT):
            mask, present = struct.unpack_from("<II", body)
            at = 8
            object_type = inherited = None
            if present & _OBJECT_TYPE_PRESENT:
                object_type, at = str(uuid.UUID(bytes_le=body[at : at + 16])), at + 16
            if present & _INHERITED_OBJECT_TYPE_PRESENT:
                inherited, at = str(uuid.UUID(bytes_le=body[at : at + 16])), at + 16
            aces.append(Ace(ace_type, ace_flags, mask, sid_from_bytes(body[at:]), object_type, inherited))
    return aces


def _grants(ace: Ace, mask: int, object_types: Iterable[str]) -> bool:
    if not ace.mask & mask:
        return False
    return ace.object_type is None or ace.object_type in object_types


def has_right(aces: list[Ace], token: set[str], mask: int, object_types: Iterable[str]) -> bool:
    """Whether an object's own DACL gives `token` the right; the first matching ACE decides."""
    wanted = set(object_types)
    for ace in aces:
        if ace.flags & INHERIT_ONLY or ace.sid not in token or not _grants(ace, mask, wanted):
            continue
        return ace.allows
    return False


def inherits_right(
    aces: list[Ace], token: set[str], mask: int, object_types: Iterable[str], child_class: str
) -> bool:
    """Whether objects of `child_class` created under a container with this DACL get the right."""
    inheritable = [
        Ace(a.type, a.flags & ~INHERIT_ONLY, a.mask, a.sid, a.object_type)
        for a in aces
        if a.flags & CONTAINER_INHERIT and a.inherited_object_type in (None, child_class)
    ]
    return has_right(inheritable, token, mask, object_types)
