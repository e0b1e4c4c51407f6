"""The Okta eviction actions against the emulator, each effect read back in the org's state, and
every request and answer checked against Okta's OpenAPI documents (make_connector validates)."""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
import yaml

from clampdown.catalog import all_actions, get_action
from clampdown.connectors.links import next_link
from clampdown.connectors.okta import OktaConnector
from clampdown.connectors.okta.auth import ApiTokenAuth
from clampdown.connectors.okta.eviction import FACTORS_GONE_WARNING
from clampdown.errors import AccountNotFound, ActionAccountError, PermanentError
from clampdown.model import SEALED_DETAIL, AccountState
from clampdown.sealing import new_sealing_key, open_sealed
from clampdown.services.actions import hands_secret
from tests.okta.contract import (
    CONTRACTS,
    SSF_OPERATIONS,
    SUBSET_OPERATIONS,
    Exchange,
    management_document,
    validate,
)
from tests.okta.org import API_TOKEN, CLIENT_ID, Org, context

ALICE = "alice.martin@lab.example.test"
BOB = "bob.nguyen@lab.example.test"


def _sent(exchanges: list[Exchange], method: str, path_end: str) -> list[Exchange]:
    return [e for e in exchanges if e.method == method and urlsplit(e.url).path.endswith(path_end)]


async def test_clear_sessions_ends_sessions_and_revokes_oauth_tokens(
    org: Org, connector: OktaConnector, check_contract: list[Exchange]
) -> None:
    account = await connector.resolve_user(ALICE)
    assert (org.user(ALICE).sessions, org.user(ALICE).oauth_tokens) == (1, 1)
    outcome = await connector.clear_sessions(account, context())
    assert outcome.changed and outcome.details == {"sessions_cleared": True, "oauth_revoked": True}
    assert (org.user(ALICE).sessions, org.user(ALICE).oauth_tokens) == (0, 0)
    assert len(org.events("user.session.clear", account.id)) == 1
    (sent,) = _sent(check_contract, "DELETE", "/sessions")
    assert dict(parse_qsl(urlsplit(sent.url).query)) == {"oauthTokens": "true"}


async def test_revoke_grants_reads_every_page_then_revokes_them_all(
    org: Org, connector: OktaConnector, check_contract: list[Exchange]
) -> None:
    account = await connector.resolve_user(BOB)
    record = org.user(BOB)
    for n in range(204):  # with the seeded one: 205, two pages of 200
        org.state.add_grant(record, f"0oaapp{n:014d}", "okta.users.read.self", save=False)
    outcome = await connector.revoke_grants(account, context())
    assert outcome.changed and outcome.details["grants_revoked"] == 205
    assert "0oalabportal00000001" in outcome.details["grant_clients"]
    assert org.user(BOB).grants == []
    assert len(org.events("app.oauth2.as.consent.revoke", account.id)) == 205
    pages = _sent(check_contract, "GET", "/grants")
    assert len(pages) == 2 and "after=" in pages[1].url  # the second page came from rel="next"
    again = await connector.revoke_grants(account, context())
    assert not again.changed and again.details["grants_revoked"] == 0
    assert len(_sent(check_contract, "DELETE", "/grants")) == 2  # revoked again all the same


async def test_reset_factors_lists_what_it_removed(
    org: Org, connector: OktaConnector, check_contract: list[Exchange]
) -> None:
    account = await connector.resolve_user(ALICE)
    record = org.user(ALICE)
    planted = org.state.enroll_factor(record, "token:software:totp", "GOOGLE")
    push = record.factors[0]
    outcome = await connector.reset_factors(account, context())
    assert outcome.changed and FACTORS_GONE_WARNING in outcome.warnings
    assert outcome.details["factors_removed"] == [
        f"push (OKTA, {push['id']})",
        f"token:software:totp (GOOGLE, {planted['id']})",
    ]
    assert org.user(ALICE).factors == []
    assert len(org.events("user.mfa.factor.reset_all", account.id)) == 1
    again = await connector.reset_factors(account, context())
    assert not again.changed and "no enrolled MFA factor" in again.message
    assert len(_sent(check_contract, "POST", "/lifecycle/reset_factors")) == 1


async def test_expire_password(org: Org, connector: OktaConnector, check_contract: list[Exchange]) -> None:
    account = await connector.resolve_user(ALICE)
    before = await connector.read_state(account)
    outcome = await connector.expire_password(account, context(state_before=before))
    assert outcome.changed and outcome.details["status"] == "PASSWORD_EXPIRED"
    assert org.user(ALICE).status == "PASSWORD_EXPIRED"
    assert len(org.events("user.account.expire_password", account.id)) == 1
    expired = await connector.read_state(account)
    again = await connector.expire_password(account, context(state_before=expired))
    assert not again.changed and org.user(ALICE).status == "PASSWORD_EXPIRED"
    assert not hands_secret(connector, get_action("okta.expire_password"))


async def test_temporary_password_is_sealed_for_the_requester_only(
    org: Org, make_connector: Callable[..., OktaConnector], check_contract: list[Exchange]
) -> None:
    connector = make_connector(expire_with_temp_password=True, hand_temp_password_to_caller=True)
    assert hands_secret(connector, get_action("okta.expire_password"))
    account = await connector.resolve_user(BOB)
    key = new_sealing_key()
    outcome = await connector.expire_password(account, context(action_id=41, seal_to=key.public))
    record = org.user(BOB)
    assert outcome.changed and (record.status, record.sessions) == ("PASSWORD_EXPIRED", 0)
    temporary = open_sealed(key.private, str(outcome.details[SEALED_DETAIL]), "action:41")
    assert record.check_password(temporary)  # the one Okta set, and only sealed in the outcome
    stored = json.dumps(outcome.to_json())
    assert temporary not in stored and temporary not in outcome.message
    (sent,) = _sent(check_contract, "POST", "/lifecycle/expire_password_with_temp_password")
    assert dict(parse_qsl(urlsplit(sent.url).query)) == {"revokeSessions": "true"}
    with pytest.raises(Exception, match="secret_key"):
        open_sealed(new_sealing_key().private, str(outcome.details[SEALED_DETAIL]), "action:41")


async def test_temporary_password_handed_to_nobody_is_not_kept(
    org: Org, make_connector: Callable[..., OktaConnector], check_contract: list[Exchange]
) -> None:
    connector = make_connector(expire_with_temp_password=True)
    assert not hands_secret(connector, get_action("okta.expire_password"))
    account = await connector.resolve_user(BOB)
    outcome = await connector.expire_password(account, context(seal_to=new_sealing_key().public))
    assert SEALED_DETAIL not in outcome.details and "handed to nobody" in outcome.message
    (answer,) = _sent(check_contract, "POST", "/lifecycle/expire_password_with_temp_password")
    temporary = json.loads(answer.response_body)["tempPassword"]
    assert org.user(BOB).check_password(temporary) and temporary not in json.dumps(outcome.to_json())


@pytest.mark.parametrize(("before", "restored"), [("MEDIUM", "MEDIUM"), ("LOW", "LOW"), (None, "LOW")])
async def test_set_risk_high_then_undo_restores_the_level_before(
    org: Org,
    make_connector: Callable[..., OktaConnector],
    check_contract: list[Exchange],
    before: str | None,
    restored: str,
) -> None:
    connector = make_connector(user_risk=True)
    account = await connector.resolve_user(ALICE)
    if before is not None:  # as Identity Threat Protection's own detections left it
        org.user(ALICE).risk_level, org.user(ALICE).risk_reason = before, "threat.detected"
    state_before = await connector.read_state(account)
    assert state_before.values["riskLevel"] == (before or "NONE")
    outcome = await connector.set_risk(account, context(action_id=7, state_before=state_before))
    record = org.user(ALICE)
    assert outcome.changed and (record.risk_level, record.risk_reason) == (
        "HIGH",
        "Clampdown action 7, marked compromised",
    )
    assert (await connector.read_state(account)).values["riskLevel"] == "HIGH"
    undo = await connector.clear_risk(account, context(action_id=8, restore_state=state_before))
    assert undo.changed and org.user(ALICE).risk_level == restored
    assert len(org.events("user.risk.change", account.id)) == 2
    puts = _sent(check_contract, "PUT", "/risk")
    assert [json.loads(p.request_body)["riskLevel"] for p in puts] == ["HIGH", restored]
    assert [p.status for p in puts] == ([200, 200] if before else [201, 200])  # 201: created


async def test_set_risk_on_a_user_already_high_and_its_undo_change_nothing(
    org: Org, make_connector: Callable[..., OktaConnector], check_contract: list[Exchange]
) -> None:
    connector = make_connector(user_risk=True)
    account = await connector.resolve_user(BOB)
    await connector.set_risk(account, context())
    high = await connector.read_state(account)
    again = await connector.set_risk(account, context(state_before=high))
    assert not again.changed and org.user(BOB).risk_level == "HIGH"
    undo = await connector.clear_risk(account, context(restore_state=high))
    assert not undo.changed and org.user(BOB).risk_level == "HIGH"
    assert len(_sent(check_contract, "PUT", "/risk")) == 1


async def test_undo_without_a_recorded_risk_sets_low(org: Org, connector: OktaConnector) -> None:
    account = await connector.resolve_user(BOB)
    state = await connector.read_state(account)
    assert "riskLevel" not in state.values  # user_risk off: the risk is not read with the state
    await connector.set_risk(account, context(state_before=state))
    undo = await connector.clear_risk(account, context(restore_state=state))
    assert undo.changed and "not read" in undo.message and org.user(BOB).risk_level == "LOW"


async def test_risk_without_its_scopes_names_them(
    org: Org, make_connector: Callable[..., OktaConnector], check_contract: list[Exchange]
) -> None:
    connector = make_connector(client_id=CLIENT_ID, private_key=org.private_key)
    account = await connector.resolve_user(ALICE)
    with pytest.raises(ActionAccountError, match=r"Identity Threat Protection.*okta\.userRisk\.manage"):
        await connector.set_risk(account, context())
    assert org.user(ALICE).risk_level == "NONE"
    # read_state with user_risk records an unreadable risk as None instead of failing the action.
    reader = make_connector(client_id=CLIENT_ID, private_key=org.private_key, user_risk=True)
    assert (await reader.read_state(account)).values["riskLevel"] is None


async def test_universal_logout(org: Org, connector: OktaConnector, check_contract: list[Exchange]) -> None:
    account = await connector.resolve_user(ALICE)
    outcome = await connector.universal_logout(account, context())
    assert outcome.changed and (org.user(ALICE).sessions, org.user(ALICE).oauth_tokens) == (0, 0)
    assert len(org.events("user.authentication.universal_logout", account.id)) == 1
    (sent,) = _sent(check_contract, "POST", "/oauth2/v1/global-token-revocation")
    assert json.loads(sent.request_body) == {"sub_id": {"format": "opaque", "id": account.id}}
    gone = org.add("gone@lab.example.test")
    org.state.users.pop(gone.id)
    with pytest.raises(PermanentError, match="may not offer Universal Logout") as refused:
        await connector.universal_logout(gone, context())
    assert refused.value.code == "universal_logout_refused"


async def test_eviction_actions_on_a_deleted_user(
    org: Org, connector: OktaConnector, check_contract: list
) -> None:
    gone = org.add("deleted@lab.example.test")
    org.state.users.pop(gone.id)
    for method in ("clear_sessions", "revoke_grants", "reset_factors", "expire_password", "set_risk"):
        with pytest.raises(AccountNotFound):
            await getattr(connector, method)(gone, context())


async def test_repeated_deactivate_is_done_not_missing(
    org: Org, connector: OktaConnector, check_contract: list[Exchange]
) -> None:
    account = org.add("former@lab.example.test", status="DEPROVISIONED")
    again = await connector.deactivate_user(account, context())
    assert not again.changed and "already deactivated" in again.message
    # The first attempt's answer was lost: the state read before it says this action did it.
    active = AccountState(enabled=True, status="ACTIVE")
    retried = await connector.deactivate_user(account, context(state_before=active))
    assert retried.changed and "earlier attempt" in retried.message
    # Deprovisioned between the read and the request: Okta's 404, then the read tells it is done.
    changed, _ = await connector._transition(account, context(), "deactivate", None, "DEPROVISIONED")
    assert changed is False
    (refused,) = _sent(check_contract, "POST", "/lifecycle/deactivate")
    assert (refused.status, json.loads(refused.response_body)["errorCode"]) == (404, "E0000007")


class _SchemeOnly(ApiTokenAuth):
    """A malformed header: the scheme and no credential."""

    async def header(self, http: httpx.AsyncClient) -> str:
        return "Bearer"


async def test_missing_or_malformed_authorization_is_403_e0000005(
    org: Org, make_connector: Callable[..., OktaConnector], check_contract: list[Exchange]
) -> None:
    connector = make_connector()
    connector.client.auth = _SchemeOnly(API_TOKEN)
    account = org.add("someone@lab.example.test")
    with pytest.raises(ActionAccountError, match="credentials") as bad:
        await connector.read_state(account)
    assert "admin role" not in bad.value.message and "E0000005" in bad.value.message
    async with httpx.AsyncClient(base_url=org.url) as raw:
        for header in ({}, {"Authorization": "Basic abc"}, {"Authorization": f"SSWS{API_TOKEN}"}):
            answer = await raw.get(f"/api/v1/users/{account.id}", headers=header)
            assert (answer.status_code, answer.json()["errorCode"]) == (403, "E0000005"), header
        wrong = await raw.get(f"/api/v1/users/{account.id}", headers={"Authorization": "SSWS wrong"})
        assert (wrong.status_code, wrong.json()["errorCode"]) == (401, "E0000011")


async def test_link_headers_are_sent_apart_and_read_together(org: Org, connector: OktaConnector) -> None:
    async with httpx.AsyncClient(base_url=org.url, headers={"Authorization": f"SSWS {API_TOKEN}"}) as raw:
        page = await raw.get("/api/v1/users", params={"limit": "2"})
    links = page.headers.get_list("link")
    assert len(links) == 2 and 'rel="self"' in links[0] and 'rel="next"' in links[1]
    following = next_link(links)
    assert following is not None and "after=" in following
    assert next_link([", ".join(links)]) == following  # one joined header reads the same
    assert next_link(links[:1]) is None
    assert next_link(['<https://o.test/a>; title="x"; rel=next']) == "https://o.test/a"
    seen = []
    path: str | None = "/api/v1/users?limit=2"
    while path:
        answer = await connector.client.request("GET", path)
        seen += [u["id"] for u in answer.body]
        found = next_link(answer.headers.get_list("link"))
        path = connector.client.follow(found) if found else None
    assert sorted(seen) == sorted(org.ids.values())


def test_the_extended_subset_keeps_the_shared_operations_unchanged() -> None:
    shared = yaml.safe_load((CONTRACTS / "okta-management-subset.yaml").read_text(encoding="utf-8"))
    extended = yaml.safe_load(management_document().read_text(encoding="utf-8"))
    for spec in SUBSET_OPERATIONS:
        path, _, methods = spec.rpartition(":")
        for method in methods.split(","):
            assert extended["paths"][path][method] == shared["paths"][path][method], spec
    assert set(extended["paths"]) - set(shared["paths"]) == {
        "/api/v1/users/{id}/lifecycle/expire_password_with_temp_password",
        "/api/v1/users/{userId}/factors",
        "/api/v1/users/{userId}/grants",
        "/api/v1/users/{userId}/risk",
        "/api/v1/authorizationServers",
        "/api/v1/authorizationServers/{authServerId}/policies",
        "/api/v1/authorizationServers/{authServerId}/policies/{policyId}/rules",
        *(spec.rpartition(":")[0] for spec in SSF_OPERATIONS),
    }


_RISK = "/api/v1/users/00uegxrccBwV3GnQwBQx/risk"
_USERS = "/api/v1/users/00uegxrccBwV3GnQwBQx"
_REVOKE = "/oauth2/v1/global-token-revocation"
_OPAQUE = b'{"sub_id":{"format":"opaque","id":"00u1"}}'
_BREAKS = {
    "risk level Okta does not have": ("GET", _RISK, 200, b"", {"riskLevel": "SEVERE"}),
    "risk PUT of NONE": ("PUT", _RISK, 200, b'{"riskLevel":"NONE"}', {"riskLevel": "HIGH"}),
    "risk reason with ;": (
        "PUT",
        _RISK,
        200,
        b'{"riskLevel":"HIGH","riskReason":"a;b"}',
        {"riskLevel": "HIGH"},
    ),
    "factor status": (
        "GET",
        f"{_USERS}/factors",
        200,
        b"",
        [{"id": "x", "factorType": "push", "status": "ON"}],
    ),
    "grant without issuer": ("GET", f"{_USERS}/grants", 200, b"", [{"id": "x", "scopeId": "s"}]),
    "revocation subject format": ("POST", _REVOKE, 204, b'{"sub_id":{"format":"x"}}', None),
    "revocation 400 with a body": ("POST", _REVOKE, 400, _OPAQUE, {"a": 1}),
}


@pytest.mark.parametrize("case", sorted(_BREAKS))
def test_the_validator_rejects_eviction_exchanges_that_break_the_contract(case: str) -> None:
    method, path, status, request_body, answer = _BREAKS[case]
    headers = {"authorization": f"SSWS {API_TOKEN}", "accept": "application/json"}
    if request_body:
        headers["content-type"] = "application/json"
    body = json.dumps(answer).encode() if answer is not None else b""
    exchange = Exchange(
        method, f"http://127.0.0.1:1{path}", headers, request_body, status,
        {"content-type": "application/json"}, body,
    )  # fmt: skip
    with pytest.raises(AssertionError, match=r"breaks the contract|where none is documented"):
        validate(exchange)


def test_the_console_offers_eviction_only_where_it_takes_something() -> None:
    from clampdown.web.person_view import _applies

    def offered(status: str, risk: str | None) -> set[str]:
        state = AccountState(enabled=status == "ACTIVE", status=status, values={"riskLevel": risk})
        return {d.id for d in all_actions() if d.provider == "okta" and _applies(d, state)}

    active = offered("ACTIVE", "NONE")
    assert {"okta.clear_sessions", "okta.revoke_grants", "okta.reset_factors", "okta.set_risk"} <= active
    assert "okta.clear_risk" not in active and "okta.set_risk" not in offered("ACTIVE", "HIGH")
    assert "okta.clear_risk" in offered("ACTIVE", "HIGH")
    gone = offered("DEPROVISIONED", "NONE")
    assert not gone & {
        "okta.clear_sessions",
        "okta.reset_factors",
        "okta.expire_password",
        "okta.deactivate_user",
    }
