"""People search in Entra ID through the Graph emulator: `$search` on users with the
`ConsistencyLevel: eventual` header Graph requires, every exchange checked against the contract."""

from __future__ import annotations

import pytest

from clampdown.connectors.entra import EntraConnector
from clampdown.connectors.entra.search import search_expression
from clampdown_lab.graph_emulator import Emulator
from clampdown_lab.graph_emulator.search import SearchError, parse_search, words
from clampdown_lab.graph_emulator.tenant import UserRecord, object_id
from tests.entra.contract import Recorder

pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type")


async def test_a_fragment_finds_alice_through_search(connector: EntraConnector, emulator: Emulator) -> None:
    recorder = Recorder()
    recorder.attach(connector.graph.http)
    found = await connector.search_users("mart", 10)
    assert [f.account.name for f in found] == ["alice.martin@lab.example.test"]
    assert found[0].display_name == "Alice Martin"
    assert found[0].account.attributes["userPrincipalName"] == "alice.martin@lab.example.test"  # the anchor
    sent = recorder.exchanges[-1]
    assert sent.request_headers["consistencylevel"] == "eventual"
    assert sent.query["$search"] == '"displayName:mart" OR "userPrincipalName:mart" OR "mail:mart"'
    assert sent.response_body["@odata.count"] == 1
    assert recorder.validate_all() == len(recorder.exchanges)


async def test_search_without_the_consistency_header_is_refused(
    connector: EntraConnector, emulator: Emulator
) -> None:
    recorder = Recorder()
    recorder.attach(connector.graph.http)
    reply = await connector.graph.send("GET", "/users", params={"$search": '"displayName:mart"'})
    assert reply.status == 400
    assert reply.body["error"]["code"] == "Request_UnsupportedQuery"
    assert "ConsistencyLevel: eventual" in reply.body["error"]["message"]
    bad = await connector.graph.send(
        "GET", "/users", params={"$search": "displayName:mart"}, headers={"ConsistencyLevel": "eventual"}
    )
    assert bad.status == 400  # a clause must be quoted
    assert recorder.validate_all() == 2


async def test_display_names_are_tokenized_other_properties_match_their_start(
    connector: EntraConnector, emulator: Emulator
) -> None:
    upn = "jdoe-camel@lab.example.test"
    emulator.tenant.add_user(
        UserRecord(id=object_id("user", upn), userPrincipalName=upn, displayName="JaneDoe-Smith", mail=upn)
    )
    assert [f.account.name for f in await connector.search_users("doe", 5)] == [upn]  # camel case splits
    assert [f.account.name for f in await connector.search_users("smi", 5)] == [upn]
    assert [f.account.name for f in await connector.search_users("jdoe", 5)] == [upn]  # the UPN's start
    assert await connector.search_users("camel", 5) == []  # inside the UPN: not a start


async def test_quotes_in_the_fragment_are_escaped(connector: EntraConnector, emulator: Emulator) -> None:
    assert search_expression('o"b\\x').startswith('"displayName:o\\"b\\\\x"')
    assert await connector.search_users("o'brien", 5) == []


def test_the_emulator_parses_and_refuses_like_graph() -> None:
    assert words("Alice Martin") == ["alice", "martin"]
    assert words("aliceMartin_2") == ["alice", "martin", "2"]
    both = parse_search('"displayName:ali" AND "mail:alice"')
    assert both({"displayName": "Alice Martin", "mail": "alice@x"})
    assert not both({"displayName": "Alice Martin", "mail": "bob@x"})
    for bad in ('"nosuchproperty:x"', '"displayName:x" NEAR "mail:y"', "plain words"):
        with pytest.raises(SearchError):
            parse_search(bad)
