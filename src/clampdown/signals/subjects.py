"""Subject identifiers (RFC 9493) and SSF 1.0 complex subjects, parsed from a SET's `sub_id`.

A simple subject is an object with a `format` and the members that format requires; a complex
subject (SSF 1.0 section 3.3) has `format: complex` and one or more simple subjects under
member names such as `user`, `device`, `session`, `tenant`. Unknown formats are kept (a
proprietary format agreed between the parties is allowed) but never resolve to a person.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clampdown.errors import InvalidInput

INVALID_REQUEST = "invalid_request"
MAX_MEMBER = 1024  # characters in one member value: far above any real identifier

# RFC 9493 section 3.2: the members each registered format requires.
REQUIRED_MEMBERS: dict[str, tuple[str, ...]] = {
    "account": ("uri",),
    "email": ("email",),
    "iss_sub": ("iss", "sub"),
    "opaque": ("id",),
    "phone_number": ("phone_number",),
    "did": ("url",),
    "uri": ("uri",),
    "jwt_id": ("iss", "jti"),  # SSF 1.0 section 3.6.1
    "saml_assertion_id": ("issuer", "assertion_id"),  # SSF 1.0 section 3.6.2
}
ALIASES = "aliases"
COMPLEX = "complex"


def refused(message: str) -> InvalidInput:
    """The error for a malformed SET: RFC 8935's `invalid_request`."""
    return InvalidInput(message, code=INVALID_REQUEST)


@dataclass(frozen=True)
class SubjectId:
    """One simple subject identifier: its format and its members as given."""

    format: str
    members: dict[str, str]
    aliases: tuple[SubjectId, ...] = ()  # for the `aliases` format: the identifiers it lists

    def get(self, member: str) -> str | None:
        return self.members.get(member)


@dataclass(frozen=True)
class Subject:
    """A SET's primary subject: a simple identifier, or a complex subject's members by name."""

    format: str
    simple: SubjectId | None = None
    members: dict[str, SubjectId] = field(default_factory=dict)

    @property
    def user(self) -> SubjectId | None:
        """The identifier that names the person: the simple subject, or a complex one's `user`."""
        return self.simple if self.format != COMPLEX else self.members.get("user")

    def describe(self) -> str:
        """The subject in a few words, for the audit trail."""
        ident = self.user
        if ident is None:
            return f"{self.format} subject without a user"
        values = ", ".join(f"{k}={v}" for k, v in sorted(ident.members.items()))
        return f"{ident.format}: {values}" if values else ident.format


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_MEMBER or "\x00" in value:
        raise refused(f"{where} must be a non-empty string of at most {MAX_MEMBER} characters")
    return value


def parse_subject_id(value: Any, where: str = "sub_id") -> SubjectId:
    """A simple subject identifier (RFC 9493 section 3); InvalidInput (invalid_request) when it is
    not an object with a format and that format's required members."""
    if not isinstance(value, dict):
        raise refused(f"{where} must be a JSON object with a format")
    fmt = _text(value.get("format"), f"{where}.format")
    if fmt == ALIASES:
        listed = value.get("identifiers")
        if not isinstance(listed, list) or not listed:
            raise refused(f"{where}: an aliases subject lists its identifiers")
        inner = tuple(parse_subject_id(v, f"{where}.identifiers[{n}]") for n, v in enumerate(listed))
        if any(i.format == ALIASES for i in inner):
            raise refused(f"{where}: an aliases subject cannot nest another")
        return SubjectId(fmt, {}, inner)
    members: dict[str, str] = {}
    for name in REQUIRED_MEMBERS.get(fmt, ()):
        if name not in value:
            raise refused(f"{where}: the {fmt} format needs the member {name!r}")
        members[name] = _text(value[name], f"{where}.{name}")
    for name, member in value.items():  # other members: kept when they are strings
        if name != "format" and name not in members and isinstance(member, str) and len(member) <= MAX_MEMBER:
            members[name] = member
    if fmt == "email" and "@" not in members["email"]:
        raise refused(f"{where}.email is not an email address")
    return SubjectId(fmt, members)


def parse_subject(value: Any, where: str = "sub_id") -> Subject:
    """The primary subject of a SET: a simple subject identifier or an SSF complex subject."""
    if isinstance(value, dict) and value.get("format") == COMPLEX:
        members = {
            name: parse_subject_id(member, f"{where}.{name}")
            for name, member in value.items()
            if name != "format"
        }
        if not members:
            raise refused(f"{where}: a complex subject has at least one member")
        return Subject(COMPLEX, members=members)
    simple = parse_subject_id(value, where)
    return Subject(simple.format, simple=simple)
