"""People search in the real Samba AD DC: ambiguous name resolution, contains, escaping."""

from __future__ import annotations

from collections.abc import Callable

from clampdown.connectors.ad import ADConnector
from clampdown.connectors.ad.search import search_filter
from tests.ad.ad_checks import ScratchUser


async def test_a_fragment_finds_alice_by_the_start_of_her_surname(ad: ADConnector) -> None:
    found = await ad.search_users("mart", 10)
    alice = [f for f in found if f.account.attributes["sAMAccountName"] == "alice.martin"]
    assert len(alice) == 1
    assert alice[0].display_name == "Alice Martin"
    assert alice[0].account.attributes["objectSid"].startswith("S-1-5-21-")  # an anchor to link by
    assert alice[0].account.name == "alice.martin@lab.example.test"


async def test_a_fragment_inside_a_name_is_found(ad: ADConnector) -> None:
    """'artin' starts no name part: only the substring terms find it."""
    found = await ad.search_users("artin", 10)
    assert "alice.martin" in {f.account.attributes["sAMAccountName"] for f in found}


async def test_first_and_last_name_together(ad: ADConnector) -> None:
    found = await ad.search_users("alice mart", 10)
    assert [f.account.attributes["sAMAccountName"] for f in found] == ["alice.martin"]


async def test_the_limit_is_kept(ad: ADConnector, make_user: Callable[..., ScratchUser]) -> None:
    for _ in range(3):
        make_user(prefix="srch")
    assert len(await ad.search_users("srch-", 2)) == 2
    assert len(await ad.search_users("srch-", 10)) >= 3


async def test_filter_characters_are_escaped(ad: ADConnector) -> None:
    """An unescaped '*' would match everyone; escaped, it matches nobody (and `)(` cannot inject)."""
    assert "(anr=\\2a)" in search_filter("*")
    assert await ad.search_users("*", 10) == []
    assert await ad.search_users("*)(objectClass=*", 10) == []
    assert await ad.search_users("nobody-by-this-name", 10) == []
