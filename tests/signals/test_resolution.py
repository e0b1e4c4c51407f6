"""Subjects resolved to people through strong anchors only (memory directories standing in for AD,
Entra ID and Okta); anything else is marked unresolved with the reason, never guessed."""

from __future__ import annotations

from typing import Any

import pytest

from clampdown.config import SsfReceiverSettings
from clampdown.connectors.base import Connector
from clampdown.connectors.memory import MemoryConnector, MemorySettings
from clampdown.signals.resolution import resolve_subject
from clampdown.signals.subjects import parse_subject

ISSUER = "https://partner.example.test/"
SETTINGS = SsfReceiverSettings(issuer=ISSUER, audience="clampdown", bearer="b" * 32,
                               subject_issuers=["https://okta.example.test"])  # fmt: skip


@pytest.fixture
def connectors() -> dict[str, Connector]:
    return {
        p: MemoryConnector(MemorySettings(provider=p, users=["alice", "bob"]))  # type: ignore[misc]
        for p in ("ad", "entra", "okta")
    }


def _email(address: str) -> dict[str, Any]:
    return {"format": "email", "email": address}


@pytest.mark.parametrize(
    ("sub_id", "upn"),
    [
        (_email("alice@memory.test"), "alice@memory.test"),
        ({"format": "iss_sub", "iss": ISSUER, "sub": "bob@memory.test"}, "bob@memory.test"),
        ({"format": "iss_sub", "iss": "https://okta.example.test", "sub": "alice@memory.test"},
         "alice@memory.test"),
        ({"format": "complex", "user": _email("bob@memory.test"), "device": {"format": "opaque", "id": "d1"}},
         "bob@memory.test"),
        ({"format": "aliases", "identifiers": [_email("alice@memory.test"),
                                               {"format": "phone_number", "phone_number": "+1 555"}]},
         "alice@memory.test"),
    ],
)  # fmt: skip
async def test_a_subject_with_a_strong_anchor_resolves_to_the_person(
    connectors: dict[str, Connector], sub_id: dict[str, Any], upn: str
) -> None:
    found = await resolve_subject(connectors, parse_subject(sub_id), SETTINGS)
    assert found.resolved, found.note
    assert found.upn == upn
    user = upn.split("@")[0]
    assert set(found.account_ids) == {f"{p}:id-{user}@memory.test" for p in ("ad", "entra", "okta")}


@pytest.mark.parametrize(
    ("sub_id", "why"),
    [
        (_email("carol@memory.test"), "no directory account is 'carol@memory.test'"),
        ({"format": "iss_sub", "iss": "https://elsewhere.test/", "sub": "alice@memory.test"},
         "names no account here"),
        ({"format": "opaque", "id": "alice@memory.test"}, "format opaque: no strong anchor"),
        ({"format": "phone_number", "phone_number": "+1 206 555 0123"}, "no strong anchor"),
        ({"format": "complex", "device": {"format": "opaque", "id": "d1"}}, "names no user"),
        ({"format": "aliases", "identifiers": [_email("alice@memory.test"), _email("bob@memory.test")]},
         "ambiguous: the aliases name different people"),
    ],
)  # fmt: skip
async def test_an_unknown_or_ambiguous_subject_stays_unresolved(
    connectors: dict[str, Connector], sub_id: dict[str, Any], why: str
) -> None:
    found = await resolve_subject(connectors, parse_subject(sub_id), SETTINGS)
    assert not found.resolved and found.upn is None and found.account_ids == ()
    assert why in found.note, found.note


async def test_a_reference_matched_only_by_a_weak_identifier_stays_unresolved(
    connectors: dict[str, Connector],
) -> None:
    """The memory AD finds `alice` by sAMAccountName: not a sign-in name, so not resolved."""
    weak = parse_subject({"format": "iss_sub", "iss": ISSUER, "sub": "alice"})
    found = await resolve_subject(connectors, weak, SETTINGS)
    assert not found.resolved and "matched no userPrincipalName, login, its id" in found.note, found.note
