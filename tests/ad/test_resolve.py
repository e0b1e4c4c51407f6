"""Resolving users by every identifier, and hostile references that must resolve to nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from clampdown.connectors.ad import ADConnector
from clampdown.connectors.ad.references import (
    escape_filter_value,
    sid_from_bytes,
    sid_to_bytes,
    user_query,
)
from clampdown.errors import AccountNotFound
from clampdown_lab.people import DEMO_PEOPLE
from tests.ad.ad_checks import ScratchUser, read_int

HOSTILE = [
    "*",
    "*)(objectClass=*",
    "alice.martin)(|(sAMAccountName=*",
    "alice*",
    "*@lab.example.test",
    "LAB\\*",
    "LAB\\alice.martin)(cn=*",
    "alice.martin\x00",
    "\x00*",
    "al\\2aice",
    "\\",
    "()\\*\x00",
    "S-1-5-21-*",
    "*)(|(objectGUID=*",
    "a" * 300,
]


def test_escaping_follows_rfc_4515() -> None:
    assert escape_filter_value("a*b(c)d\\e\x00") == "a\\2ab\\28c\\29d\\5ce\\00"
    assert escape_filter_value("Zoë") == "Zoë"
    sid = "S-1-5-21-3792221769-2810280809-3365816595-1104"
    assert sid_from_bytes(sid_to_bytes(sid)) == sid
    query = user_query("*)(objectClass=*", "LAB").ldap_filter
    assert query.count("(") == query.count(")") == 4 and "*" not in query


@pytest.mark.samba
async def test_resolve_by_every_identifier(ad: ADConnector, lab: Any) -> None:
    alice = DEMO_PEOPLE[0]
    account = await ad.resolve_user(alice.username)
    assert account.provider == "ad" and account.name == alice.upn
    ids = account.attributes
    assert ids["dn"].startswith("CN=Alice Martin,OU=Managed,")
    for reference in (
        f"LAB\\{alice.username}",
        f"lab\\{alice.username}",
        alice.upn,
        ids["objectSid"],
        ids["objectGUID"],
        "{" + ids["objectGUID"].upper() + "}",
        f"  {alice.username} ",
    ):
        assert (await ad.resolve_user(reference)).id == account.id, reference


@pytest.mark.samba
async def test_unknown_and_foreign_domain_references_are_not_found(ad: ADConnector) -> None:
    for reference in (
        "nobody.here",
        "OTHERDOM\\alice.martin",
        "nobody@lab.example.test",
        "S-1-5-21-1-2-3-4",
        "00000000-0000-0000-0000-000000000000",
    ):
        with pytest.raises(AccountNotFound):
            await ad.resolve_user(reference)


@pytest.mark.samba
@pytest.mark.parametrize("reference", HOSTILE)
async def test_hostile_references_resolve_to_nothing(ad: ADConnector, reference: str) -> None:
    with pytest.raises(AccountNotFound):
        await ad.resolve_user(reference)


@pytest.mark.samba
async def test_hostile_references_change_nothing(
    ad: ADConnector, admin: Any, make_user: Callable[..., ScratchUser]
) -> None:
    user = make_user(prefix="inj")
    for reference in [*HOSTILE, f"{user.sam[:5]}*", f"{user.sam})(cn=*"]:
        with pytest.raises(AccountNotFound):
            await ad.resolve_user(reference)
    assert read_int(admin, user.dn, "userAccountControl") == 0x200
