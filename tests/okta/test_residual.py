"""Residual access of Okta accounts against the emulator: what still works after the actions ran,
and until when; every request and answer checked against Okta's OpenAPI documents (make_connector
validates the connector's, `raw` the emulator's own)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from clampdown.connectors.base import ResidualAccessReader
from clampdown.connectors.okta import OktaConnector
from clampdown.model import ResidualAccess, ResidualStatus
from clampdown_lab.okta_emulator.component import LAB_AUTHORIZATION_SERVER
from clampdown_lab.okta_emulator.state import OrgState, stable_id
from tests.okta.contract import Exchange, validate
from tests.okta.org import API_TOKEN, CLIENT_ID, Org, context

ALICE = "alice.martin@lab.example.test"
BOB = "bob.nguyen@lab.example.test"
_SERVERS = "/api/v1/authorizationServers"


def _server(name: str, *rules: tuple[str, int, str], status: str = "ACTIVE", policy: str = "ACTIVE") -> dict:
    return {
        "name": name,
        "status": status,
        "policies": [
            {
                "name": f"{name} policy",
                "status": policy,
                "rules": [{"name": n, "accessTokenLifetimeMinutes": m, "status": s} for n, m, s in rules],
            }
        ],
    }


def _kinds(answer: list[ResidualAccess]) -> dict[str, ResidualAccess]:
    kinds = {a.kind: a for a in answer}
    assert list(kinds) == ["sessions", "access_tokens", "app_sessions", "grants", "factors"]
    assert all(a.provider == "okta" for a in answer)
    return kinds


def _recent() -> datetime:
    """A cut a few minutes ago, whole seconds: the tokens issued before it still live."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)


def _reads(exchanges: list[Exchange]) -> list[str]:
    return [urlsplit(e.url).path for e in exchanges if urlsplit(e.url).path.startswith(_SERVERS)]


async def test_access_tokens_live_until_the_cut_plus_the_longest_active_rule(
    org: Org, connector: OktaConnector, check_contract: list[Exchange]
) -> None:
    org.state.add_authorization_server(LAB_AUTHORIZATION_SERVER)  # the lab's: 120 min
    org.state.add_authorization_server(_server("payments", ("short", 30, "ACTIVE"), ("off", 600, "INACTIVE")))
    org.state.add_authorization_server(_server("retired", ("long", 1440, "ACTIVE"), status="INACTIVE"))
    org.state.add_authorization_server(_server("paused", ("long", 1000, "ACTIVE"), policy="INACTIVE"))
    account = await connector.resolve_user(ALICE)
    await connector.clear_sessions(account, context())
    assert (org.user(ALICE).sessions, org.user(ALICE).oauth_tokens) == (0, 0)
    cut = _recent()
    assert isinstance(connector, ResidualAccessReader)
    kinds = _kinds(await connector.residual_access(account, {"okta.clear_sessions": cut}))
    tokens = kinds["access_tokens"]
    assert tokens.status is ResidualStatus.UNTIL and tokens.until == cut + timedelta(minutes=120)
    assert tokens.account == ALICE
    assert (
        "stay valid until" in tokens.detail
        and "at apps that validate them locally" in tokens.detail
        and "longest lifetime 120 min: authorization server 'default', rule 'Default Policy Rule'"
        in tokens.detail
        and "token introspection answers inactive at once (okta.clear_sessions revoked them)" in tokens.detail
    )
    assert (
        kinds["sessions"].status is ResidualStatus.ENDED and "okta.clear_sessions" in kinds["sessions"].detail
    )
    # Read once: the servers, the policies of the three active ones, the rules of the two active policies.
    reads = _reads(check_contract)
    assert len(reads) == 1 + 3 + 2 and not [r for r in reads if "retired" in r]
    again = await connector.residual_access(account, {"okta.clear_sessions": cut})
    assert _kinds(again)["access_tokens"] == tokens and len(_reads(check_contract)) == len(reads)  # cached
    # A lifetime since passed: the tokens issued before the cut have all expired.
    old = cut - timedelta(hours=3)
    expired = _kinds(await connector.residual_access(account, {"okta.clear_sessions": old}))["access_tokens"]
    assert expired.status is ResidualStatus.ENDED and expired.until == old + timedelta(minutes=120)
    assert "expired by" in expired.detail


async def test_every_page_of_servers_is_read(
    org: Org, connector: OktaConnector, check_contract: list[Exchange]
) -> None:
    for n in range(200):  # a first page of 200 inactive servers, then the one that counts
        org.state.add_authorization_server(_server(f"old{n:03d}", ("r", 1440, "ACTIVE"), status="INACTIVE"))
    last = max(org.state.authorization_servers)  # pages go by id: the active one's must come after
    name = next(f"zz{n}" for n in range(1000) if stable_id("aus", f"authorization server zz{n}") > last)
    org.state.add_authorization_server(_server(name, ("long", 240, "ACTIVE")))
    account = await connector.resolve_user(BOB)
    cut = _recent()
    tokens = _kinds(await connector.residual_access(account, {"okta.deactivate_user": cut}))["access_tokens"]
    pages = [e for e in check_contract if urlsplit(e.url).path == _SERVERS]
    assert len(pages) == 2 and "after=" in pages[1].url
    assert tokens.until == cut + timedelta(minutes=240) and f"authorization server '{name}'" in tokens.detail


async def test_without_custom_servers_the_org_servers_hour_bounds_the_tokens(
    org: Org, connector: OktaConnector, check_contract: list[Exchange]
) -> None:
    account = await connector.resolve_user(BOB)
    await connector.suspend_user(account, context())
    cut = _recent()
    tokens = _kinds(await connector.residual_access(account, {"okta.suspend_user": cut}))["access_tokens"]
    assert tokens.status is ResidualStatus.UNTIL and tokens.until == cut + timedelta(minutes=60)
    assert "longest lifetime 60 min: Okta's org authorization server, fixed at one hour" in tokens.detail
    assert "no active custom authorization server rule" in tokens.detail and "assumed" not in tokens.detail
    assert _reads(check_contract) == [_SERVERS]


async def test_custom_rules_shorter_than_an_hour_leave_the_org_servers_hour(
    org: Org, connector: OktaConnector, check_contract: list[Exchange]
) -> None:
    org.state.add_authorization_server(_server("default", ("Default Policy Rule", 30, "ACTIVE")))
    account = await connector.resolve_user(BOB)
    cut = _recent()
    tokens = _kinds(await connector.residual_access(account, {"okta.revoke_grants": cut}))["access_tokens"]
    assert tokens.until == cut + timedelta(minutes=60)
    assert "no custom server's rule is longer (30 min: authorization server 'default'" in tokens.detail


async def test_without_the_scope_the_hour_is_assumed_and_the_scope_named(
    org: Org, make_connector: Callable[..., OktaConnector], check_contract: list[Exchange]
) -> None:
    org.state.add_authorization_server(LAB_AUTHORIZATION_SERVER)
    connector = make_connector(client_id=CLIENT_ID, private_key=org.private_key)  # users scopes only
    account = await connector.resolve_user(ALICE)
    cut = _recent()
    tokens = _kinds(await connector.residual_access(account, {"okta.universal_logout": cut}))["access_tokens"]
    assert tokens.status is ResidualStatus.UNTIL and tokens.until == cut + timedelta(minutes=60)
    assert "assumed" in tokens.detail and "okta.authorizationServers.read" in tokens.detail
    assert "E0000006" in tokens.detail and "up to one day" in tokens.detail
    (refused,) = [e for e in check_contract if urlsplit(e.url).path == _SERVERS]
    assert (refused.status, json.loads(refused.response_body)["errorCode"]) == (403, "E0000006")


async def test_nothing_applied_everything_remains(
    org: Org, connector: OktaConnector, check_contract: list[Exchange]
) -> None:
    account = await connector.resolve_user(ALICE)
    kinds = _kinds(await connector.residual_access(account, {}))
    assert {k: a.status for k, a in kinds.items()} == dict.fromkeys(kinds, ResidualStatus.REMAINS)
    assert kinds["access_tokens"].until is None and "nothing revoked them" in kinds["access_tokens"].detail
    assert "Universal Logout" in kinds["app_sessions"].detail
    assert _reads(check_contract) == []  # no cut: no lifetime to read


async def test_grants_and_factors_are_listed_until_revoked_and_reset(
    org: Org, connector: OktaConnector, check_contract: list[Exchange]
) -> None:
    account = await connector.resolve_user(ALICE)
    record = org.user(ALICE)
    org.state.add_grant(record, "0oaattackerapp000001", "okta.users.manage.self")
    planted = org.state.enroll_factor(record, "token:software:totp", "GOOGLE")
    push = record.factors[0]
    before = _kinds(await connector.residual_access(account, {}))
    assert before["grants"].status is ResidualStatus.REMAINS and before["grants"].items == (
        "0oaattackerapp000001: okta.users.manage.self",
        "0oalabportal00000001: okta.users.read.self",
    )
    assert "okta.revoke_grants revokes them" in before["grants"].detail
    assert before["factors"].status is ResidualStatus.REMAINS and before["factors"].items == (
        f"push (OKTA, {push['id']})",
        f"token:software:totp (GOOGLE, {planted['id']})",
    )
    await connector.revoke_grants(account, context())
    await connector.reset_factors(account, context())
    await connector.clear_sessions(account, context())
    assert (org.user(ALICE).grants, org.user(ALICE).factors, org.user(ALICE).sessions) == ([], [], 0)
    done = _recent()
    applied = {"okta.revoke_grants": done, "okta.reset_factors": done, "okta.clear_sessions": done}
    after = _kinds(await connector.residual_access(account, applied))
    assert after["grants"].status is ResidualStatus.ENDED and after["grants"].items == ()
    assert after["grants"].detail.startswith("no consent grant left: okta.revoke_grants revoked them at")
    assert after["factors"].status is ResidualStatus.ENDED and after["factors"].items == ()
    assert after["factors"].detail.startswith("no enrolled MFA factor left: okta.reset_factors reset them at")
    assert after["sessions"].status is ResidualStatus.ENDED
    # One enrolled since the reset shows again, and says so.
    org.state.enroll_factor(org.user(ALICE), "sms", "OKTA")
    again = _kinds(await connector.residual_access(account, applied))["factors"]
    assert again.status is ResidualStatus.REMAINS and "enrolled since okta.reset_factors" in again.detail


async def test_suspend_alone_ends_sessions_only_when_it_clears_them(
    org: Org, make_connector: Callable[..., OktaConnector], check_contract: list[Exchange]
) -> None:
    plain = make_connector(clear_sessions=False)
    account = await plain.resolve_user(BOB)
    await plain.suspend_user(account, context())
    assert org.user(BOB).sessions == 1  # Okta was not asked to end them
    cut = _recent()
    sessions = _kinds(await plain.residual_access(account, {"okta.suspend_user": cut}))["sessions"]
    assert sessions.status is ResidualStatus.REMAINS
    assert "can't sign in, not that suspending ends the Okta sessions already open" in sessions.detail
    tokens = _kinds(await plain.residual_access(account, {"okta.suspend_user": cut}))["access_tokens"]
    assert "they were not revoked" in tokens.detail
    clearing = make_connector()  # clear_sessions = true, the default
    sessions = _kinds(await clearing.residual_access(account, {"okta.suspend_user": cut}))["sessions"]
    assert sessions.status is ResidualStatus.ENDED and "providers.okta.clear_sessions" in sessions.detail
    # An action that always ends them is said instead, without the condition.
    later = {"okta.suspend_user": cut, "okta.clear_sessions": cut + timedelta(seconds=2)}
    sessions = _kinds(await clearing.residual_access(account, later))["sessions"]
    assert sessions.detail.startswith("Okta sessions ended at") and "(okta.clear_sessions)" in sessions.detail
    assert "providers.okta" not in sessions.detail
    expiring = make_connector(expire_with_temp_password=True)
    sessions = _kinds(await expiring.residual_access(account, {"okta.expire_password": cut}))["sessions"]
    assert sessions.status is ResidualStatus.ENDED and "expire_with_temp_password" in sessions.detail


async def test_universal_logout_and_deactivation_reach_into_the_apps_only_partly(
    org: Org, connector: OktaConnector, check_contract: list[Exchange]
) -> None:
    account = await connector.resolve_user(BOB)
    await connector.universal_logout(account, context())
    cut = _recent()
    kinds = _kinds(await connector.residual_access(account, {"okta.universal_logout": cut}))
    apps = kinds["app_sessions"]
    assert apps.status is ResidualStatus.REMAINS
    assert "ended the sessions of the apps that support Universal Logout" in apps.detail
    assert "apps without it keep the sessions they made themselves" in apps.detail
    assert kinds["sessions"].status is ResidualStatus.ENDED
    deactivated = _kinds(await connector.residual_access(account, {"okta.deactivate_user": cut}))
    assert deactivated["sessions"].status is ResidualStatus.ENDED
    assert "deprovisioned the user from its assigned apps" in deactivated["app_sessions"].detail


async def test_a_kind_that_cannot_be_read_is_unknown_and_the_others_answer(
    org: Org, connector: OktaConnector, check_contract: list[Exchange]
) -> None:
    gone = org.add("gone@lab.example.test")
    org.state.users.pop(gone.id)
    kinds = _kinds(await connector.residual_access(gone, {"okta.clear_sessions": _recent()}))
    assert kinds["grants"].status is ResidualStatus.UNKNOWN and "Okta has no user" in kinds["grants"].detail
    assert kinds["factors"].status is ResidualStatus.UNKNOWN
    assert kinds["sessions"].status is ResidualStatus.ENDED
    assert kinds["access_tokens"].status is ResidualStatus.UNTIL


# --- the emulator's Authorization Servers API, against Okta's document -------------------------


async def test_the_emulator_answers_the_three_reads_as_okta_documents(
    org: Org, raw: httpx.AsyncClient
) -> None:
    default = org.state.add_authorization_server(LAB_AUTHORIZATION_SERVER)
    org.state.add_authorization_server(_server("payments", ("short", 30, "ACTIVE")))
    assert org.state.add_authorization_server(LAB_AUTHORIZATION_SERVER) is default  # seeding again: kept
    listed = await raw.get(_SERVERS)
    assert listed.status_code == 200 and {s["name"] for s in listed.json()} == {"default", "payments"}
    page = await raw.get(_SERVERS, params={"limit": "1"})
    following = page.links["next"]["url"]
    rest = await raw.get(following)
    assert len(page.json()) == len(rest.json()) == 1 and "next" not in rest.links
    found = await raw.get(_SERVERS, params={"q": "api://default"})
    (server,) = found.json()
    assert server["id"] == default.id and server["issuer"] == f"{org.url}/oauth2/{default.id}"
    policies = await raw.get(f"{_SERVERS}/{default.id}/policies")
    (policy,) = policies.json()
    assert (policy["name"], policy["status"]) == ("Default Policy", "ACTIVE")
    rules = await raw.get(f"{_SERVERS}/{default.id}/policies/{policy['id']}/rules")
    (rule,) = rules.json()
    assert (
        rule["name"] == "Default Policy Rule"
        and rule["actions"]["token"]["accessTokenLifetimeMinutes"] == 120
    )
    missing = await raw.get(f"{_SERVERS}/ausnosuchserver000000/policies")
    assert (missing.status_code, missing.json()["errorCode"]) == (404, "E0000007")
    no_policy = await raw.get(f"{_SERVERS}/{default.id}/policies/00pnosuchpolicy00000/rules")
    assert (no_policy.status_code, no_policy.json()["errorCode"]) == (404, "E0000007")
    anonymous = await raw.get(_SERVERS, headers={"Authorization": ""})
    assert (anonymous.status_code, anonymous.json()["errorCode"]) == (403, "E0000005")


async def test_the_seeding_route_and_the_state_file_keep_the_servers(org: Org, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=org.url) as control:
        seeded = await control.post(
            "/_emulator/authorization-servers", json={"servers": [LAB_AUTHORIZATION_SERVER]}
        )
        again = await control.post(
            "/_emulator/authorization-servers", json={"servers": [LAB_AUTHORIZATION_SERVER]}
        )
        bad = await control.post(
            "/_emulator/authorization-servers", json={"servers": [_server("x", ("too long", 2000, "ACTIVE"))]}
        )
    assert seeded.json() == again.json() and len(org.state.authorization_servers) == 1
    assert bad.status_code == 400 and "one day" in bad.json()["error"]
    saved = OrgState(state_file=tmp_path / "state.json")
    server = saved.add_authorization_server(LAB_AUTHORIZATION_SERVER)
    loaded = OrgState.load(tmp_path / "state.json")
    assert loaded.authorization_servers == {server.id: server}
    assert loaded.authorization_servers[server.id].policies[0].rules[0].access_token_minutes == 120


_RULES = f"{_SERVERS}/aus1/policies/00p1/rules"
_BREAKS: dict[str, tuple[str, int, Any]] = {
    "lifetime as a string": (
        _RULES,
        200,
        [{"id": "r", "actions": {"token": {"accessTokenLifetimeMinutes": "2h"}}}],
    ),
    "rule status Okta does not have": (_RULES, 200, [{"id": "r", "status": "ON"}]),
    "server status Okta does not have": (_SERVERS, 200, [{"id": "aus1", "status": "DISABLED"}]),
    "policy type": (f"{_SERVERS}/aus1/policies", 200, [{"id": "00p1", "type": "ACCESS_POLICY"}]),
    "server list as an object": (_SERVERS, 200, {"id": "aus1"}),
}


@pytest.mark.parametrize("case", sorted(_BREAKS))
def test_the_validator_rejects_authorization_server_answers_that_break_the_contract(case: str) -> None:
    path, status, answer = _BREAKS[case]
    headers = {"authorization": f"SSWS {API_TOKEN}", "accept": "application/json"}
    exchange = Exchange(
        "GET", f"http://127.0.0.1:1{path}", headers, b"", status,
        {"content-type": "application/json"}, json.dumps(answer).encode(),
    )  # fmt: skip
    with pytest.raises(AssertionError, match="answer breaks the contract"):
        validate(exchange)
