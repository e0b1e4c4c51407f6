"""Residual access in Entra ID against the Graph emulator: the access-token bound from the tenant's
token lifetime policy (or Entra's default, and why), refresh tokens, what the real eviction actions
leave of methods and devices, and the emulator's own tokens living as its policy says; every
exchange checked against the Graph contract."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from clampdown.connectors.base import ResidualAccessReader
from clampdown.connectors.entra import EntraConnector
from clampdown.connectors.entra.residual import access_token_lifetime
from clampdown.model import ActionContext, ResidualAccess, ResidualStatus
from clampdown_lab.graph_emulator import Emulator, ThreadedEmulator
from clampdown_lab.graph_emulator.tenant import Tenant, UserRecord
from tests.entra.contract import Recorder
from tests.entra.support import DIRECTORY_APP, settings_for
from tests.entra.test_emulator import token_request

pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type")

ALICE = "alice.martin@lab.example.test"
BOB = "bob.nguyen@lab.example.test"
FRANK = "frank.li@lab.example.test"  # synced from AD
POLICY = "/policies/tokenLifetimePolicies"
KINDS = ["access_tokens", "refresh_tokens", "auth_methods", "devices"]


def ctx() -> ActionContext:
    return ActionContext(action_id=1, reason="INC-16", requested_by="analyst")


def user(tenant: Tenant, upn: str) -> UserRecord:
    found = tenant.find_user(upn)
    assert found is not None
    return found


def definition(lifetime: str) -> list[str]:
    return [json.dumps({"TokenLifetimePolicy": {"Version": 1, "AccessTokenLifetime": lifetime}})]


def by_kind(found: list[ResidualAccess]) -> dict[str, ResidualAccess]:
    assert [r.kind for r in found] == KINDS
    assert all(r.provider == "entra" for r in found)
    return {r.kind: r for r in found}


def recent(minutes: float) -> datetime:
    """A known moment `minutes` ago, to the second (as the action center records it)."""
    return (datetime.now(UTC) - timedelta(minutes=minutes)).replace(microsecond=0)


@pytest.fixture
async def recorded(connector: EntraConnector) -> AsyncIterator[Recorder]:
    recorder = Recorder()
    recorder.attach(connector.graph.http)
    yield recorder
    assert recorder.validate_all() >= len(recorder.exchanges)


async def test_the_bound_is_the_cut_plus_the_organization_default_lifetime(
    connector: EntraConnector, emulator: Emulator, recorded: Recorder
) -> None:
    emulator.tenant.add_token_lifetime_policy("Two-hour tokens", definition("02:00:00"), True)
    alice = await connector.resolve_user(ALICE)
    assert isinstance(connector, ResidualAccessReader)
    await connector.suspend_user(alice, ctx())
    await connector.revoke_sessions(alice, ctx())
    suspended, revoked = recent(10), recent(5)
    batches = emulator.counters.batch_requests

    found = by_kind(
        await connector.residual_access(
            alice, {"entra.suspend_user": suspended, "entra.revoke_sessions": revoked}
        )
    )
    tokens = found["access_tokens"]
    assert tokens.status is ResidualStatus.UNTIL and tokens.until == suspended + timedelta(minutes=120)
    assert tokens.account == ALICE
    assert "lifetime 120 min" in tokens.detail and "'Two-hour tokens'" in tokens.detail
    assert suspended.strftime("%H:%M:%S") in tokens.detail and "Continuous Access Evaluation" in tokens.detail
    assert "Exchange Online, SharePoint Online, Teams, Microsoft Graph" in tokens.detail
    assert "still enabled" not in tokens.detail
    refresh = found["refresh_tokens"]
    assert refresh.status is ResidualStatus.ENDED and refresh.detail.startswith("refresh tokens and session")
    assert revoked.strftime("%Y-%m-%d %H:%M:%S UTC") in refresh.detail
    assert emulator.counters.batch_requests == batches + 1  # the user, methods and devices at once

    # The policy is read once and kept for a few minutes.
    await connector.residual_access(alice, {"entra.revoke_sessions": revoked})
    assert sum(e.path == "/v1.0" + POLICY for e in recorded.exchanges) == 1


async def test_a_bound_in_the_past_has_ended(connector: EntraConnector, emulator: Emulator) -> None:
    emulator.tenant.add_token_lifetime_policy("Two-hour tokens", definition("02:00:00"), True)
    alice = await connector.resolve_user(ALICE)
    await connector.revoke_sessions(alice, ctx())
    long_ago = recent(180)
    tokens = by_kind(await connector.residual_access(alice, {"entra.revoke_sessions": long_ago}))[
        "access_tokens"
    ]
    assert tokens.status is ResidualStatus.ENDED and tokens.until == long_ago + timedelta(hours=2)
    assert "expired by" in tokens.detail
    # Revoked but never suspended: a new sign-in still gets new tokens, and the detail says so.
    assert "still enabled" in tokens.detail and "entra.suspend_user" in tokens.detail


async def test_without_a_policy_the_documented_default_is_the_bound(
    connector: EntraConnector, emulator: Emulator, recorded: Recorder
) -> None:
    emulator.tenant.add_token_lifetime_policy("For one app", definition("01:00:00"), False)
    alice = await connector.resolve_user(ALICE)
    await connector.suspend_user(alice, ctx())
    cut = recent(1)
    tokens = by_kind(await connector.residual_access(alice, {"entra.suspend_user": cut}))["access_tokens"]
    assert tokens.status is ResidualStatus.UNTIL and tokens.until == cut + timedelta(minutes=90)
    assert "lifetime 90 min" in tokens.detail and "Entra ID's default, a random 60-90 min" in tokens.detail
    assert "no organization default" in tokens.detail


async def test_a_longer_policy_of_some_apps_is_the_bound(
    connector: EntraConnector, emulator: Emulator
) -> None:
    emulator.tenant.add_token_lifetime_policy("Default", definition("01:00:00"), True)
    emulator.tenant.add_token_lifetime_policy("Kiosk app", definition("04:00:00"), False)
    alice = await connector.resolve_user(ALICE)
    await connector.suspend_user(alice, ctx())
    cut = recent(1)
    tokens = by_kind(await connector.residual_access(alice, {"entra.suspend_user": cut}))["access_tokens"]
    assert tokens.until == cut + timedelta(hours=4) and "'Kiosk app'" in tokens.detail


async def test_without_policy_read_the_default_is_used_and_the_permission_named(
    graph_emulator: ThreadedEmulator, emulator: Emulator
) -> None:
    emulator.tenant.add_token_lifetime_policy("Two-hour tokens", definition("02:00:00"), True)
    limited = EntraConnector(settings_for(graph_emulator, client_id=DIRECTORY_APP))  # no Policy.Read.All
    recorder = Recorder()
    recorder.attach(limited.graph.http)
    try:
        alice = await limited.resolve_user(ALICE)
        await limited.suspend_user(alice, ctx())
        cut = recent(2)
        found = by_kind(await limited.residual_access(alice, {"entra.suspend_user": cut}))
    finally:
        await limited.aclose()
    tokens = found["access_tokens"]
    assert tokens.until == cut + timedelta(minutes=90) and "Policy.Read.All" in tokens.detail
    assert DIRECTORY_APP in tokens.detail and "Entra ID's default" in tokens.detail
    # Nor may it read methods or devices: those say so, and are assumed to work.
    assert found["auth_methods"].status is ResidualStatus.UNKNOWN
    assert "UserAuthenticationMethod.Read.All" in found["auth_methods"].detail
    assert found["devices"].status is ResidualStatus.UNKNOWN and "Device.Read.All" in found["devices"].detail
    assert any(e.status == 403 and e.path == "/v1.0" + POLICY for e in recorder.exchanges)
    recorder.validate_all()


async def test_nothing_applied_leaves_everything(
    connector: EntraConnector, emulator: Emulator, recorded: Recorder
) -> None:
    bob = await connector.resolve_user(BOB)
    found = by_kind(await connector.residual_access(bob, {}))
    assert found["access_tokens"].status is ResidualStatus.REMAINS and found["access_tokens"].until is None
    assert (
        found["access_tokens"].detail == "sign-in not blocked, sessions not revoked: new tokens can be issued"
    )
    assert found["refresh_tokens"].status is ResidualStatus.REMAINS
    assert "entra.revoke_sessions" in found["refresh_tokens"].detail
    # Bob registered nothing but his password, and no device.
    assert found["auth_methods"].status is ResidualStatus.ENDED
    assert found["auth_methods"].items == ("password",)
    assert "entra.remove_auth_methods not applied" in found["auth_methods"].detail
    assert found["devices"].status is ResidualStatus.ENDED and found["devices"].items == ()


async def test_a_suspend_alone_holds_only_while_the_account_stays_disabled(
    connector: EntraConnector, emulator: Emulator
) -> None:
    frank = await connector.resolve_user(FRANK)
    await connector.suspend_user(frank, ctx())
    cut = recent(1)
    found = by_kind(await connector.residual_access(frank, {"entra.suspend_user": cut}))
    assert found["access_tokens"].status is ResidualStatus.UNTIL
    refresh = found["refresh_tokens"]
    assert refresh.status is ResidualStatus.ENDED and "work again if the account is enabled" in refresh.detail
    assert "ad.disable_user" in refresh.detail  # frank is synced from AD

    emulator.tenant.directory_sync({"frank.li": True})  # AD still enabled: the sync undoes the suspend
    found = by_kind(await connector.residual_access(frank, {"entra.suspend_user": cut}))
    assert found["access_tokens"].status is ResidualStatus.REMAINS
    assert "enabled again" in found["access_tokens"].detail
    assert found["refresh_tokens"].status is ResidualStatus.REMAINS


async def test_an_attacker_key_is_listed_until_remove_auth_methods_runs(
    connector: EntraConnector, emulator: Emulator, emulator_admin: httpx.Client, recorded: Recorder
) -> None:
    seeded = emulator_admin.post(
        "/_emulator/auth-methods",
        json={"user": ALICE, "kind": "fido2Methods", "properties": {"displayName": "YubiKey 5"}},
    )
    assert seeded.status_code == 200
    key = emulator.tenant.auth_methods[user(emulator.tenant, ALICE).id][0]
    alice = await connector.resolve_user(ALICE)

    before = by_kind(await connector.residual_access(alice, {}))["auth_methods"]
    assert before.status is ResidualStatus.REMAINS
    assert before.items == (f"FIDO2 security key 'YubiKey 5' registered {key.createdDateTime}", "password")
    assert (
        "1 method(s) besides the password" in before.detail
        and "not applied: it deletes them" in before.detail
    )

    assert (await connector.remove_auth_methods(alice, ctx())).changed
    removed = recent(0)
    after = by_kind(await connector.residual_access(alice, {"entra.remove_auth_methods": removed}))[
        "auth_methods"
    ]
    assert after.status is ResidualStatus.ENDED and after.items == ("password",)
    assert f"entra.remove_auth_methods ran at {removed.strftime('%Y-%m-%d %H:%M:%S UTC')}" in after.detail
    assert "entra.force_password_reset" in after.detail


async def test_enabled_devices_are_listed_until_disabled(
    connector: EntraConnector, emulator: Emulator, recorded: Recorder
) -> None:
    tenant = emulator.tenant
    laptop = tenant.register_device(user(tenant, ALICE), "DESKTOP-7Q2X", trustType="Workplace")
    phone = tenant.register_device(user(tenant, ALICE), "Alice's iPhone", operatingSystem="iOS")
    tenant.register_device(user(tenant, ALICE), "ALICE-OLD", accountEnabled=False)
    alice = await connector.resolve_user(ALICE)

    before = by_kind(await connector.residual_access(alice, {}))["devices"]
    assert before.status is ResidualStatus.REMAINS
    assert before.items == (
        f"DESKTOP-7Q2X (Windows, Workplace, {laptop.id})",
        f"Alice's iPhone (iOS, Workplace, {phone.id})",
    )
    assert "primary refresh token" in before.detail

    await connector.disable_devices(alice, ctx())
    applied = {"entra.disable_devices": recent(0)}
    after = by_kind(await connector.residual_access(alice, applied))["devices"]
    assert after.status is ResidualStatus.REMAINS and after.items == (
        f"Alice's iPhone (iOS, Workplace, {phone.id})",
    )
    assert "Entra admin center" in after.detail

    phone.accountEnabled = False  # disabled by an administrator in the admin center
    ended = by_kind(await connector.residual_access(alice, applied))["devices"]
    assert ended.status is ResidualStatus.ENDED and ended.items == () and "3 disabled" in ended.detail


# -- the emulator's policies and tokens ---------------------------------------------------------
async def test_the_emulator_issues_tokens_for_as_long_as_its_policy_says(
    connector: EntraConnector, emulator: Emulator, emulator_admin: httpx.Client, recorded: Recorder
) -> None:
    tenant_id = emulator.tenant.tenant_id
    assert token_request(emulator_admin, tenant_id).json()["expires_in"] == 3599  # no policy
    seeded = emulator_admin.put("/_emulator/token-lifetime", json={"access_token_lifetime": "02:00:00"})
    assert seeded.status_code == 200 and seeded.json()["expires_in"] == 7200

    issued = token_request(emulator_admin, tenant_id).json()
    claims = jwt.decode(issued["access_token"], options={"verify_signature": False})
    listed = await connector.graph.send("GET", POLICY)
    (policy,) = listed.body["value"]
    lifetime = access_token_lifetime(policy)
    assert policy["isOrganizationDefault"] and lifetime == timedelta(hours=2)
    assert issued["expires_in"] == claims["exp"] - claims["iat"] == lifetime.total_seconds()

    # Through Graph: a second organization default is refused; without one, a new one rules.
    body = {"displayName": "Ninety", "definition": definition("01:30:00"), "isOrganizationDefault": True}
    refused = await connector.graph.send("POST", POLICY, json=body)
    assert refused.status == 400 and "organization default" in refused.body["error"]["message"]
    assert (
        emulator_admin.put("/_emulator/token-lifetime", json={"access_token_lifetime": None}).status_code
        == 200
    )
    created = await connector.graph.send("POST", POLICY, json=body)
    assert created.status == 201 and created.body["displayName"] == "Ninety" and created.body["id"]
    assert token_request(emulator_admin, tenant_id).json()["expires_in"] == 5400
    assert emulator_admin.get("/_emulator/token-lifetime-policies").json()[0]["displayName"] == "Ninety"
    saved = Tenant.from_json(emulator.tenant.to_json())  # the lab's state file keeps it
    assert saved.access_token_lifetime() == timedelta(minutes=90)


def test_the_emulator_checks_policies_as_graph_does(emulator_admin: httpx.Client, emulator: Emulator) -> None:
    reader = {"Authorization": f"Bearer {_token(emulator_admin, emulator, DIRECTORY_APP)}"}
    assert emulator_admin.get(f"/v1.0{POLICY}", headers=reader).status_code == 403
    writer = {"Authorization": f"Bearer {_token(emulator_admin, emulator, None)}"}
    for bad in (
        {"displayName": "x", "definition": ["not json"]},
        {"displayName": "x", "definition": definition("00:05:00")},  # under Entra's 10-minute floor
        {"displayName": "x", "definition": definition("02:00:00"), "appliesTo": []},
        {"definition": definition("02:00:00")},
    ):
        assert emulator_admin.post(f"/v1.0{POLICY}", json=bad, headers=writer).status_code == 400, bad
    assert emulator.tenant.token_lifetime_policies == {}
    bad_seed = emulator_admin.put("/_emulator/token-lifetime", json={"access_token_lifetime": "two hours"})
    assert bad_seed.status_code == 400


def _token(emulator_admin: httpx.Client, emulator: Emulator, client_id: str | None) -> str:
    form = {"client_id": client_id} if client_id else {}
    reply = token_request(emulator_admin, emulator.tenant.tenant_id, **form)
    assert reply.status_code == 200
    return str(reply.json()["access_token"])
