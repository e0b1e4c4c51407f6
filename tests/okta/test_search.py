"""People search in Okta through the emulator: the Users API's `search` expression with `co`, every
exchange checked against Okta's OpenAPI document."""

from __future__ import annotations

import httpx

from clampdown.connectors.okta import OktaConnector
from clampdown.connectors.okta.search import search_expression
from tests.okta.contract import Exchange
from tests.okta.org import Org


async def test_a_fragment_finds_alice(
    connector: OktaConnector, org: Org, check_contract: list[Exchange]
) -> None:
    found = await connector.search_users("mart", 10)
    assert [f.account.name for f in found] == ["alice.martin@lab.example.test"]
    assert found[0].display_name == "Alice Martin"
    assert found[0].email == "alice.martin@lab.example.test"
    assert found[0].account.id == org.ids["alice.martin@lab.example.test"]
    sent = httpx.URL(check_contract[-1].url).params["search"]
    assert 'profile.lastName co "mart"' in sent


async def test_contains_finds_a_fragment_inside_a_name(connector: OktaConnector, org: Org) -> None:
    assert [f.display_name for f in await connector.search_users("artin", 10)] == ["Alice Martin"]
    assert len(await connector.search_users("lab.example", 3)) == 3  # the limit is kept


async def test_quotes_are_escaped(connector: OktaConnector, org: Org, check_contract: list[Exchange]) -> None:
    assert search_expression('a"b').startswith('profile.firstName co "a\\"b"')
    assert await connector.search_users('o"brien', 10) == []


async def test_co_is_refused_where_okta_refuses_it(raw: httpx.AsyncClient, org: Org) -> None:
    """Okta allows `co` on firstName, lastName, email and login only."""
    answer = await raw.get("/api/v1/users", params={"search": 'profile.department co "fin"'})
    assert answer.status_code == 400
    assert answer.json()["errorCode"] == "E0000031"
    fine = await raw.get("/api/v1/users", params={"search": 'profile.department eq "Finance"'})
    assert {u["profile"]["lastName"] for u in fine.json()} == {"Martin", "Schmidt"}


async def test_first_and_last_name_together(connector: OktaConnector, org: Org) -> None:
    """No one property holds "alice mar": the first and last name are searched together."""
    assert [f.display_name for f in await connector.search_users("alice mar", 10)] == ["Alice Martin"]
    assert await connector.search_users("mar alice", 10) == []
