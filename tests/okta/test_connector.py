"""The Okta connector against the emulator over real HTTP: each action, its inverse, repeats, refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from clampdown.connectors.okta import OktaConnector
from clampdown.connectors.okta.connector import DEACTIVATE_WARNING
from clampdown.errors import AccountNotFound, ActionAccountError, PermanentError
from clampdown.model import Account, AccountState
from clampdown_lab.okta_emulator import Fault
from clampdown_lab.okta_emulator.server import admin_actor
from tests.okta.org import API_TOKEN, CLIENT_ID, READ_ONLY_CLIENT_ID, Org, context

ALICE = "alice.martin@lab.example.test"
BOB = "bob.nguyen@lab.example.test"


async def test_resolve_by_id_login_shortname_and_email(
    org: Org, connector: OktaConnector, check_contract: list
) -> None:
    alice_id = org.ids[ALICE]
    for reference in (alice_id, ALICE, "alice.martin", ALICE.upper()):
        account = await connector.resolve_user(reference)
        assert (account.id, account.name, account.provider) == (alice_id, ALICE, "okta")
    other = org.add("c.jones@lab.example.test", email="carla.jones@corp.example")
    account = await connector.resolve_user("carla.jones@corp.example")
    assert account.id == other.id
    assert account.attributes == {"login": "c.jones@lab.example.test", "email": "carla.jones@corp.example"}


async def test_resolve_unknown_user(org: Org, connector: OktaConnector, check_contract: list) -> None:
    with pytest.raises(AccountNotFound, match=r"nobody@lab.example.test"):
        await connector.resolve_user("nobody@lab.example.test")
    with pytest.raises(AccountNotFound):
        await connector.resolve_user("00uDoesNotExist00000")


async def test_read_state_reports_status_and_etag(
    org: Org, connector: OktaConnector, check_contract: list
) -> None:
    account = await connector.resolve_user(ALICE)
    state = await connector.read_state(account)
    assert (state.status, state.enabled) == ("ACTIVE", True)
    assert state.values["login"] == ALICE
    assert str(state.values["etag"]).startswith('W/"')


async def test_suspend_then_unsuspend_with_repeats(
    org: Org, connector: OktaConnector, check_contract: list
) -> None:
    account = await connector.resolve_user(ALICE)
    outcome = await connector.suspend_user(account, context())
    record = org.user(ALICE)
    assert outcome.changed and outcome.provider_request_id
    assert (record.status, record.sessions, record.oauth_tokens) == ("SUSPENDED", 0, 0)
    [event] = org.events("user.lifecycle.suspend", account.id)
    assert event["actor"]["alternateId"] == "clampdown.action@lab.example.test"
    assert event["client"]["userAgent"]["rawUserAgent"].startswith("clampdown-okta-connector/")
    assert event["client"]["ipAddress"] == "127.0.0.1" and event["outcome"]["result"] == "SUCCESS"
    assert len(org.events("user.session.clear", account.id)) == 1

    again = await connector.suspend_user(account, context())
    assert not again.changed and "Already" in again.message
    assert len(org.events("user.lifecycle.suspend", account.id)) == 1

    state = await connector.read_state(account)
    assert (state.status, state.enabled) == ("SUSPENDED", False)

    back = await connector.unsuspend_user(account, context(restore_state=AccountState(True, "ACTIVE")))
    assert back.changed and org.user(ALICE).status == "ACTIVE"
    repeat = await connector.unsuspend_user(account, context())
    assert not repeat.changed and org.user(ALICE).status == "ACTIVE"
    assert len(org.events("user.lifecycle.unsuspend", account.id)) == 1


async def test_suspend_without_clearing_sessions(
    org: Org, make_connector: Callable[..., OktaConnector]
) -> None:
    connector = make_connector(clear_sessions=False)
    account = await connector.resolve_user(BOB)
    await connector.suspend_user(account, context())
    assert (org.user(BOB).status, org.user(BOB).sessions) == ("SUSPENDED", 1)
    assert org.events("user.session.clear") == []


async def test_undo_of_a_noop_suspend_leaves_user_suspended(org: Org, connector: OktaConnector) -> None:
    account = org.add("already.suspended@lab.example.test", status="SUSPENDED")
    outcome = await connector.unsuspend_user(account, context(restore_state=AccountState(False, "SUSPENDED")))
    assert not outcome.changed
    assert org.user(account.name).status == "SUSPENDED"


@pytest.mark.parametrize("status", ["STAGED", "PROVISIONED", "DEPROVISIONED", "LOCKED_OUT", "RECOVERY"])
async def test_suspend_refused_from_non_active_status(
    org: Org, connector: OktaConnector, status: str
) -> None:
    account = org.add(f"{status.lower()}@lab.example.test", status=status)
    with pytest.raises(PermanentError, match=f"the user is {status}.*only from ACTIVE.*E0000001") as caught:
        await connector.suspend_user(account, context())
    assert caught.value.code == "transition_refused"
    assert org.user(account.name).status == status


async def test_unsuspend_refused_for_deprovisioned_user(org: Org, connector: OktaConnector) -> None:
    account = org.add("gone@lab.example.test", status="DEPROVISIONED")
    with pytest.raises(PermanentError, match=r"the user is DEPROVISIONED.*only from SUSPENDED"):
        await connector.unsuspend_user(account, context())


async def test_deactivate_waits_for_deprovisioned_and_is_idempotent(
    org: Org, connector: OktaConnector, check_contract: list
) -> None:
    account = await connector.resolve_user(BOB)
    outcome = await connector.deactivate_user(account, context())
    record = org.user(BOB)
    assert outcome.changed and DEACTIVATE_WARNING in outcome.warnings
    assert (record.status, record.transitioning_to, record.sessions) == ("DEPROVISIONED", None, 0)
    assert outcome.details["status"] == "DEPROVISIONED"
    again = await connector.deactivate_user(account, context())
    assert not again.changed and not again.warnings
    assert len(org.events("user.lifecycle.deactivate", account.id)) == 1


async def test_deactivate_a_suspended_user(org: Org, connector: OktaConnector) -> None:
    account = org.add("suspended.one@lab.example.test", status="SUSPENDED")
    outcome = await connector.deactivate_user(account, context())
    assert outcome.changed and org.user(account.name).status == "DEPROVISIONED"


async def test_unknown_user_on_each_action(org: Org, connector: OktaConnector, check_contract: list) -> None:
    ghost = Account(provider="okta", id="00uGhostGhostGhost00", name="ghost@lab.example.test")
    for method in (connector.suspend_user, connector.unsuspend_user, connector.deactivate_user):
        with pytest.raises(AccountNotFound, match=r"ghost@lab.example.test \(00uGhostGhostGhost00\)"):
            await method(ghost, context())


async def test_bad_api_token_is_an_action_account_problem(
    org: Org, make_connector: Callable[..., OktaConnector], check_contract: list
) -> None:
    connector = make_connector(api_token="not-a-valid-token")
    with pytest.raises(ActionAccountError, match=r"action account's credentials.*E0000011"):
        await connector.check()
    account = Account(provider="okta", id=org.ids[ALICE], name=ALICE)
    with pytest.raises(ActionAccountError):
        await connector.suspend_user(account, context())
    assert org.user(ALICE).status == "ACTIVE"


async def test_oauth_service_app_caches_its_token(
    org: Org, make_connector: Callable[..., OktaConnector], check_contract: list
) -> None:
    connector = make_connector(client_id=CLIENT_ID, private_key=org.private_key)
    await connector.check()
    account = await connector.resolve_user(ALICE)
    await connector.suspend_user(account, context())
    await connector.unsuspend_user(account, context())
    assert org.user(ALICE).status == "ACTIVE"
    assert org.emulator.auth.tokens_issued == 1
    assert org.events("user.lifecycle.suspend")[0]["actor"]["id"] == CLIENT_ID


async def test_expired_oauth_token_is_refreshed(
    org: Org, make_connector: Callable[..., OktaConnector], check_contract: list
) -> None:
    connector = make_connector(client_id=CLIENT_ID, private_key=org.private_key)
    account = await connector.resolve_user(ALICE)
    issued = org.emulator.auth.tokens_issued
    org.emulator.auth.expire_access_tokens()  # Okta would now answer 401 E0000011
    await connector.suspend_user(account, context())
    assert org.user(ALICE).status == "SUSPENDED"
    assert org.emulator.auth.tokens_issued == issued + 1
    assert connector.client.stats.token_refreshes == 1
    assert org.statuses().get(401) == 1


async def test_short_lived_oauth_token_is_renewed_before_expiry(
    org: Org, make_connector: Callable[..., OktaConnector]
) -> None:
    org.emulator.auth.token_lifetime = 2
    connector = make_connector(client_id=CLIENT_ID, private_key=org.private_key)
    account = await connector.resolve_user(ALICE)
    await asyncio.sleep(1.1)  # past half the lifetime: the connector renews without a 401
    await connector.suspend_user(account, context())
    assert org.emulator.auth.tokens_issued == 2
    assert org.statuses().get(401) is None


async def test_oauth_app_with_unknown_key_is_an_action_account_problem(
    org: Org, make_connector: Callable[..., OktaConnector]
) -> None:
    connector = make_connector(client_id=CLIENT_ID, private_key=org.read_only_private_key)
    with pytest.raises(ActionAccountError, match=f"service app {CLIENT_ID}.*not valid: Signature"):
        await connector.check()


async def test_oauth_app_without_manage_scope_is_refused(
    org: Org, make_connector: Callable[..., OktaConnector]
) -> None:
    connector = make_connector(
        client_id=READ_ONLY_CLIENT_ID, private_key=org.read_only_private_key, scopes=["okta.users.read"]
    )
    account = await connector.resolve_user(ALICE)
    with pytest.raises(ActionAccountError, match=r"may not suspend.*E0000006"):
        await connector.suspend_user(account, context())
    assert org.user(ALICE).status == "ACTIVE"
    too_much = make_connector(client_id=READ_ONLY_CLIENT_ID, private_key=org.read_only_private_key)
    with pytest.raises(ActionAccountError, match=r"okta.users.manage"):
        await too_much.check()


async def test_suspension_stands_when_sessions_cannot_be_cleared(org: Org, connector: OktaConnector) -> None:
    org.emulator.faults.add(Fault(kind="status", status=403, path=r".*/sessions", method="DELETE"))
    account = await connector.resolve_user(ALICE)
    outcome = await connector.suspend_user(account, context())
    assert outcome.changed and org.user(ALICE).status == "SUSPENDED"
    assert outcome.warnings and "NOT cleared" in outcome.warnings[0] and "E0000006" in outcome.warnings[0]
    assert org.user(ALICE).sessions == 1


async def test_suspend_during_a_deactivation_is_refused_with_the_reason(
    org: Org, connector: OktaConnector
) -> None:
    account = await connector.resolve_user(BOB)
    org.state.begin_deactivate(org.user(BOB))
    with pytest.raises(PermanentError, match=r"ACTIVE \(transitioning to DEPROVISIONED\)"):
        await connector.suspend_user(account, context())


TOKEN_OWNER = "clampdown.action@lab.example.test"  # whom the tests' API token belongs to


async def test_reserved_words_never_resolve_to_the_token_owner(
    org: Org, connector: OktaConnector, check_contract: list
) -> None:
    """A planted account name `me` must not suspend Clampdown's own Okta admin: Okta reads
    /api/v1/users/me as the token's owner, and so does the emulator."""
    owner = org.state.add_user(
        {"login": TOKEN_OWNER, "firstName": "Clampdown", "lastName": "Action"},
        user_id=admin_actor(TOKEN_OWNER).id,
    )
    async with httpx.AsyncClient(headers={"Authorization": f"SSWS {API_TOKEN}"}) as raw:
        me = await raw.get(f"{org.url}/api/v1/users/me")
    assert me.status_code == 200 and me.json()["id"] == owner.id  # the trap is real
    org.emulator.request_log.clear()

    for planted in ("me", "ME", " me ", "..", ".", "me/lifecycle/suspend", "me?x=1", "me#", "%2e%2e"):
        with pytest.raises(AccountNotFound):
            await connector.resolve_user(planted)
    posing = Account(provider="okta", id="me", name="me")
    for method in (connector.suspend_user, connector.unsuspend_user, connector.deactivate_user):
        with pytest.raises(AccountNotFound, match="not an Okta user id"):
            await method(posing, context())
    assert org.user(TOKEN_OWNER).status == "ACTIVE"
    paths = [path for _, path, _ in org.emulator.request_log]
    assert paths and all(p == "/api/v1/users" for p in paths), paths  # only searches, never by path
