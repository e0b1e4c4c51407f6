"""Eviction in Entra ID against the Graph emulator: a forced password change (refused for a user
synced from AD), authentication methods removed and listed, devices disabled and exactly those
enabled again by the undo (through the real worker), privileged-user protection named in the
error, every exchange checked against the Graph contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.principal import Principal
from clampdown.catalog import get_action
from clampdown.config import EngineSettings, PlaybookSettings, PlaybookStep
from clampdown.connectors.entra import EntraConnector
from clampdown.engine.worker import Worker
from clampdown.errors import ActionAccountError, PermanentError
from clampdown.model import AccountState, ActionContext, ActionStatus
from clampdown.services.actions import ActionService
from clampdown.services.playbooks import PlaybookService
from clampdown.store.actions import ActionStore
from clampdown.store.containments import ContainmentStore
from clampdown_lab.graph_emulator import Emulator, ThreadedEmulator
from clampdown_lab.graph_emulator.tenant import AppRecord, Tenant, UserRecord
from tests.entra.contract import Recorder
from tests.entra.support import DIRECTORY_APP, READ_ONLY_APP, SECRET, settings_for
from tests.entra.test_emulator import bearer

ALICE = "alice.martin@lab.example.test"
BOB = "bob.nguyen@lab.example.test"
CAROL = "carol.diaz@lab.example.test"
FRANK = "frank.li@lab.example.test"  # synced from AD
ADMIN_APP = "55555555-5555-4555-8555-555555555555"  # holds Privileged Authentication Administrator
FAST = EngineSettings(poll_interval_seconds=0.05, backoff_base_seconds=0.01, backoff_max_seconds=0.05)


def ctx(restore: AccountState | None = None) -> ActionContext:
    return ActionContext(action_id=1, reason="INC-16", requested_by="analyst", restore_state=restore)


def user(tenant: Tenant, upn: str) -> UserRecord:
    found = tenant.find_user(upn)
    assert found is not None
    return found


@pytest.fixture
async def recorded(connector: EntraConnector) -> AsyncIterator[Recorder]:
    """Every exchange of the test's connector, checked against the Graph contract at the end."""
    recorder = Recorder()
    recorder.attach(connector.graph.http)
    yield recorder
    assert recorder.validate_all() >= len(recorder.exchanges)


async def other_app(server: ThreadedEmulator, client_id: str) -> EntraConnector:
    return EntraConnector(settings_for(server, client_id=client_id))


# -- force password change ----------------------------------------------------------------------
async def test_force_password_reset(
    connector: EntraConnector, emulator: Emulator, recorded: Recorder
) -> None:
    alice = await connector.resolve_user(ALICE)
    outcome = await connector.force_password_reset(alice, ctx())
    assert outcome.changed and "must change the password" in outcome.message
    profile = user(emulator.tenant, ALICE).passwordProfile
    assert profile is not None and profile["forceChangePasswordNextSignIn"] is True
    assert profile["password"] is None


async def test_force_password_reset_refuses_a_user_synced_from_ad(
    connector: EntraConnector, emulator: Emulator
) -> None:
    frank = await connector.resolve_user(FRANK)
    with pytest.raises(PermanentError) as caught:
        await connector.force_password_reset(frank, ctx())
    assert "ad.force_password_reset" in caught.value.message and "belongs to AD" in caught.value.message
    assert user(emulator.tenant, FRANK).passwordProfile is None  # nothing was sent


async def test_force_password_reset_names_the_missing_permission(
    graph_emulator: ThreadedEmulator, emulator: Emulator
) -> None:
    limited = await other_app(graph_emulator, DIRECTORY_APP)  # can suspend, not reset passwords
    recorder = Recorder()
    recorder.attach(limited.graph.http)
    try:
        alice = await limited.resolve_user(ALICE)
        with pytest.raises(ActionAccountError) as caught:
            await limited.force_password_reset(alice, ctx())
    finally:
        await limited.aclose()
    assert "User-PasswordProfile.ReadWrite.All" in caught.value.message
    assert user(emulator.tenant, ALICE).passwordProfile is None
    recorder.validate_all()


# -- privileged-user protection -----------------------------------------------------------------
async def test_an_admin_needs_a_privileged_app_to_be_suspended_or_reset(
    graph_emulator: ThreadedEmulator, emulator: Emulator, connector: EntraConnector, recorded: Recorder
) -> None:
    emulator.tenant.assign_role(user(emulator.tenant, BOB), "Security Administrator")
    emulator.tenant.assign_role(user(emulator.tenant, BOB), "Directory Readers")  # not a privileged one
    bob = await connector.resolve_user(BOB)
    for method, doing in (("suspend_user", "disable"), ("force_password_reset", "force a password change")):
        with pytest.raises(ActionAccountError) as caught:
            await getattr(connector, method)(bob, ctx())
        message = caught.value.message
        assert doing in message and "Security Administrator" in message and "Directory Readers" not in message
        assert "Privileged Authentication Administrator" in message and "Insufficient privileges" in message
    assert user(emulator.tenant, BOB).accountEnabled is True
    assert user(emulator.tenant, BOB).passwordProfile is None
    # Alice holds no role: the same app suspends her with its application permission alone.
    assert (await connector.suspend_user(await connector.resolve_user(ALICE), ctx())).changed

    all_roles = emulator.tenant.apps[settings_for(graph_emulator).client_id].roles
    emulator.tenant.apps[ADMIN_APP] = AppRecord(
        ADMIN_APP,
        "Privileged",
        list(all_roles),
        [SECRET],
        directory_roles=["Privileged Authentication Administrator"],
    )
    privileged = await other_app(graph_emulator, ADMIN_APP)
    try:
        assert (await privileged.suspend_user(bob, ctx())).changed
        assert (await privileged.force_password_reset(bob, ctx())).changed
    finally:
        await privileged.aclose()
    assert user(emulator.tenant, BOB).accountEnabled is False
    assert (user(emulator.tenant, BOB).passwordProfile or {})["forceChangePasswordNextSignIn"] is True


async def test_a_missing_permission_is_named_when_no_privileged_role_is_involved(
    graph_emulator: ThreadedEmulator, emulator: Emulator
) -> None:
    emulator.tenant.assign_role(user(emulator.tenant, CAROL), "Directory Readers")
    reader = await other_app(graph_emulator, READ_ONLY_APP)
    try:
        with pytest.raises(ActionAccountError) as caught:
            await reader.suspend_user(await reader.resolve_user(CAROL), ctx())
    finally:
        await reader.aclose()
    assert "User.EnableDisableAccount.All" in caught.value.message
    assert "privileged" not in caught.value.message
    assert user(emulator.tenant, CAROL).accountEnabled is True


# -- authentication methods ---------------------------------------------------------------------
def seed_methods(tenant: Tenant) -> dict[str, str]:
    """Alice's methods: an old FIDO2 key and phone, and what an attacker added an hour ago."""
    alice = user(tenant, ALICE)
    month_ago = tenant.clock.now() - timedelta(days=30)
    hour_ago = tenant.clock.now() - timedelta(hours=1)
    ids = {
        "old key": tenant.add_auth_method(alice, "fido2Methods", month_ago, displayName="YubiKey 5 NFC").id,
        "old phone": tenant.add_auth_method(
            alice, "phoneMethods", month_ago, phoneNumber="+33 612345678", phoneType="mobile"
        ).id,
        "new app": tenant.add_auth_method(
            alice,
            "microsoftAuthenticatorMethods",
            hour_ago,
            displayName="Pixel 7",
            deviceTag="SoftwareTokenActivated",
        ).id,
        "new pass": tenant.add_auth_method(
            alice, "temporaryAccessPassMethods", hour_ago, isUsableOnce=False, lifetimeInMinutes=480
        ).id,
    }
    tenant.add_auth_method(user(tenant, CAROL), "fido2Methods", hour_ago, displayName="Carol's key")
    return ids


async def test_remove_auth_methods_removes_all_but_the_password_and_lists_them(
    connector: EntraConnector, emulator: Emulator, recorded: Recorder
) -> None:
    ids = seed_methods(emulator.tenant)
    alice = await connector.resolve_user(ALICE)
    outcome = await connector.remove_auth_methods(alice, ctx())
    assert outcome.changed
    assert emulator.tenant.auth_methods[user(emulator.tenant, ALICE).id] == []
    assert len(emulator.tenant.auth_methods[user(emulator.tenant, CAROL).id]) == 1  # not hers
    removed = outcome.details["removedMethods"]
    assert isinstance(removed, list) and len(removed) == 4
    lines = {line.split(" | ")[1]: line.split(" | ") for line in removed}
    assert set(lines) == set(ids.values())
    assert lines[ids["old key"]][0] == "FIDO2 security key" and lines[ids["old key"]][2] == "YubiKey 5 NFC"
    assert lines[ids["old phone"]][2] == "mobile +33 612345678"
    assert lines[ids["new app"]][0] == "Microsoft Authenticator"
    assert all(line[3].endswith("Z") for line in lines.values())  # createdDateTime as Graph gave it

    again = await connector.remove_auth_methods(alice, ctx())
    assert again.changed is False and "Already in the requested state" in again.message


async def test_remove_auth_methods_within_a_window_keeps_older_ones(
    graph_emulator: ThreadedEmulator, emulator: Emulator
) -> None:
    ids = seed_methods(emulator.tenant)
    windowed = EntraConnector(settings_for(graph_emulator, remove_auth_methods_registered_within_hours=24))
    try:
        outcome = await windowed.remove_auth_methods(await windowed.resolve_user(ALICE), ctx())
    finally:
        await windowed.aclose()
    left = {m.id for m in emulator.tenant.auth_methods[user(emulator.tenant, ALICE).id]}
    assert left == {ids["old key"], ids["old phone"]}
    assert outcome.changed and len(outcome.details["removedMethods"]) == 2  # type: ignore[arg-type]


async def test_remove_auth_methods_names_the_missing_permission(
    graph_emulator: ThreadedEmulator, emulator: Emulator
) -> None:
    seed_methods(emulator.tenant)
    limited = await other_app(graph_emulator, DIRECTORY_APP)
    try:
        with pytest.raises(ActionAccountError) as caught:
            await limited.remove_auth_methods(await limited.resolve_user(ALICE), ctx())
    finally:
        await limited.aclose()
    assert "UserAuthenticationMethod.ReadWrite.All" in caught.value.message
    assert len(emulator.tenant.auth_methods[user(emulator.tenant, ALICE).id]) == 4


def test_remove_auth_methods_is_listed_as_not_restorable() -> None:
    definition = get_action("entra.remove_auth_methods")
    assert definition.reversible is False and definition.inverse is None and definition.warning


# -- devices ------------------------------------------------------------------------------------
def seed_devices(tenant: Tenant) -> dict[str, str]:
    alice = user(tenant, ALICE)
    laptop = tenant.register_device(alice, "ALICE-LAPTOP", trustType="ServerAd")
    attacker = tenant.register_device(alice, "DESKTOP-7Q2X", trustType="Workplace")
    old = tenant.register_device(alice, "ALICE-OLD", accountEnabled=False)
    phone = tenant.register_device(
        alice, "Alice's iPhone", operatingSystem="iOS", operatingSystemVersion="17.4"
    )
    carol = tenant.register_device(user(tenant, CAROL), "CAROL-LAPTOP")
    return {"laptop": laptop.id, "attacker": attacker.id, "old": old.id, "phone": phone.id, "carol": carol.id}


async def test_disable_devices_then_enable_exactly_those(
    connector: EntraConnector, emulator: Emulator, recorded: Recorder
) -> None:
    ids = seed_devices(emulator.tenant)
    devices = emulator.tenant.devices
    alice = await connector.resolve_user(ALICE)
    outcome = await connector.disable_devices(alice, ctx())
    assert outcome.changed
    assert not devices[ids["laptop"]].accountEnabled and not devices[ids["attacker"]].accountEnabled
    assert devices[ids["phone"]].accountEnabled and devices[ids["carol"]].accountEnabled
    assert outcome.undo_with == {"disabledDevices": [ids["laptop"], ids["attacker"]]}
    assert any("Alice's iPhone" in w and "non-Windows" in w for w in outcome.warnings)
    assert any("ALICE-LAPTOP" in w and "hybrid joined" in w for w in outcome.warnings)

    again = await connector.disable_devices(alice, ctx())
    assert again.changed is False

    devices[ids["old"]].accountEnabled = False  # was disabled before: the undo must leave it
    restore = AccountState(True, "enabled", {"disabledDevices": [ids["laptop"], ids["attacker"]]})
    back = await connector.enable_devices(alice, ctx(restore))
    assert back.changed and back.details["enabledDevices"] == [ids["laptop"], ids["attacker"]]
    assert devices[ids["laptop"]].accountEnabled and devices[ids["attacker"]].accountEnabled
    assert devices[ids["old"]].accountEnabled is False


async def test_enable_devices_refuses_without_the_disabled_list(
    connector: EntraConnector, emulator: Emulator
) -> None:
    ids = seed_devices(emulator.tenant)
    emulator.tenant.devices[ids["old"]].accountEnabled = False
    with pytest.raises(PermanentError, match="undo of that action"):
        await connector.enable_devices(await connector.resolve_user(ALICE), ctx())
    assert emulator.tenant.devices[ids["old"]].accountEnabled is False


async def test_device_undo_through_the_worker_enables_what_the_action_disabled(
    engine: AsyncEngine, admin: Principal, connector: EntraConnector, emulator: Emulator
) -> None:
    ids = seed_devices(emulator.tenant)
    devices = emulator.tenant.devices
    store = ActionStore(engine)
    service = ActionService(store, {"entra": connector})
    action = await service.request("entra.disable_devices", ALICE, "INC-16", admin)
    await Worker(store, {"entra": connector}, FAST).run(until_drained=True)
    (done,) = await service.wait([action.id], timeout=5)
    assert done.status is ActionStatus.COMPLETED and done.changed
    assert not devices[ids["laptop"]].accountEnabled and not devices[ids["attacker"]].accountEnabled
    # Between the containment and its release, someone disables the laptop's twin for another reason.
    twin = emulator.tenant.register_device(user(emulator.tenant, ALICE), "ALICE-SPARE", accountEnabled=False)

    undo = await service.undo(done.id, admin)
    await Worker(store, {"entra": connector}, FAST).run(until_drained=True)
    (undone,) = await service.wait([undo.id], timeout=5)
    assert undone.status is ActionStatus.COMPLETED and undone.type == "entra.enable_devices"
    assert devices[ids["laptop"]].accountEnabled and devices[ids["attacker"]].accountEnabled
    assert devices[twin.id].accountEnabled is False and devices[ids["old"]].accountEnabled is False


async def test_releasing_a_containment_enables_exactly_the_devices_it_disabled(
    engine: AsyncEngine, admin: Principal, connector: EntraConnector, emulator: Emulator
) -> None:
    ids = seed_devices(emulator.tenant)
    devices = emulator.tenant.devices
    store = ActionStore(engine)
    actions = ActionService(store, {"entra": connector})
    evict = PlaybookSettings(steps=[PlaybookStep(action="entra.disable_devices")])
    playbooks = PlaybookService(actions, {"evict": evict}, ContainmentStore(store))
    await playbooks.run("evict", ALICE, "INC-16", admin)
    await Worker(store, {"entra": connector}, FAST).run(until_drained=True)
    assert not devices[ids["laptop"]].accountEnabled and not devices[ids["attacker"]].accountEnabled
    devices[ids["attacker"]].accountEnabled = True  # re-enabled by someone meanwhile: still released
    spare = emulator.tenant.register_device(user(emulator.tenant, ALICE), "ALICE-SPARE", accountEnabled=False)

    release = await playbooks.run("release", ALICE, "false positive", admin)
    await Worker(store, {"entra": connector}, FAST).run(until_drained=True)
    (back,) = await actions.wait([a.id for a in release.actions], timeout=5)
    assert back.status is ActionStatus.COMPLETED and back.type == "entra.enable_devices"
    assert devices[ids["laptop"]].accountEnabled and devices[ids["attacker"]].accountEnabled
    assert devices[spare.id].accountEnabled is False and devices[ids["old"]].accountEnabled is False


async def test_disable_devices_names_the_missing_permission(
    graph_emulator: ThreadedEmulator, emulator: Emulator
) -> None:
    ids = seed_devices(emulator.tenant)
    limited = await other_app(graph_emulator, DIRECTORY_APP)
    try:
        with pytest.raises(ActionAccountError) as caught:
            await limited.disable_devices(await limited.resolve_user(ALICE), ctx())
    finally:
        await limited.aclose()
    assert "Device.ReadWrite.All" in caught.value.message
    assert emulator.tenant.devices[ids["laptop"]].accountEnabled


# -- the emulator's Graph rules -----------------------------------------------------------------
def test_batch_request_ids_are_case_insensitive(emulator_admin: httpx.Client, emulator: Emulator) -> None:
    headers = bearer(emulator_admin, emulator)
    alice = f"/users/{user(emulator.tenant, ALICE).id}"
    clash = emulator_admin.post(
        "/v1.0/$batch",
        json={
            "requests": [
                {"id": "a", "method": "GET", "url": alice},
                {"id": "A", "method": "GET", "url": alice},
            ]
        },
        headers=headers,
    )
    assert clash.status_code == 400 and "more than once" in clash.json()["error"]["message"]
    chained = emulator_admin.post(
        "/v1.0/$batch",
        json={
            "requests": [
                {"id": "a", "method": "GET", "url": "/users/nobody@lab.example.test"},
                {"id": "b", "method": "GET", "url": alice, "dependsOn": ["A"]},
            ]
        },
        headers=headers,
    )
    statuses = {r["id"]: r["status"] for r in chained.json()["responses"]}
    assert chained.status_code == 200 and statuses == {"a": 404, "b": 424}


def test_non_windows_devices_refuse_an_app_and_methods_need_their_permission(
    emulator_admin: httpx.Client, emulator: Emulator
) -> None:
    ids = seed_devices(emulator.tenant)
    headers = bearer(emulator_admin, emulator)
    phone = emulator_admin.patch(
        f"/v1.0/devices/{ids['phone']}", json={"accountEnabled": False}, headers=headers
    )
    assert phone.status_code == 403 and emulator.tenant.devices[ids["phone"]].accountEnabled
    wrong = emulator_admin.patch(f"/v1.0/devices/{ids['laptop']}", json={"displayName": "x"}, headers=headers)
    assert wrong.status_code == 400
    alice = user(emulator.tenant, ALICE)
    key = emulator.tenant.add_auth_method(alice, "fido2Methods", displayName="key")
    mismatched = emulator_admin.delete(
        f"/v1.0/users/{alice.id}/authentication/phoneMethods/{key.id}", headers=headers
    )
    assert mismatched.status_code == 404 and emulator.tenant.auth_methods[alice.id] == [key]


async def test_many_users_at_once_go_through_batches(
    connector: EntraConnector, emulator: Emulator, recorded: Recorder
) -> None:
    tenant = emulator.tenant
    people = [ALICE, BOB, CAROL]
    for upn in people:
        tenant.register_device(user(tenant, upn), f"{upn.split('.')[0].upper()}-PC")
        tenant.add_auth_method(
            user(tenant, upn), "phoneMethods", phoneNumber="+1 5550100", phoneType="mobile"
        )
    accounts = [await connector.resolve_user(upn) for upn in people]
    batches = emulator.counters.batch_requests
    for method in ("disable_devices", "remove_auth_methods", "force_password_reset"):
        results = await connector.perform_batch(method, [(a, ctx()) for a in accounts])
        assert all(not isinstance(r, Exception) and r.changed for r in results), results
    assert emulator.counters.batch_requests == batches + 6  # per action: one read, then every write
    assert not any(d.accountEnabled for d in tenant.devices.values())
    assert all(tenant.auth_methods[user(tenant, upn).id] == [] for upn in people)
    assert all(
        (user(tenant, upn).passwordProfile or {}).get("forceChangePasswordNextSignIn") for upn in people
    )


def test_the_admin_api_seeds_what_eviction_acts_on(emulator_admin: httpx.Client, emulator: Emulator) -> None:
    device = emulator_admin.post("/_emulator/devices", json={"user": ALICE, "displayName": "ALICE-PC"})
    method = emulator_admin.post(
        "/_emulator/auth-methods",
        json={
            "user": ALICE,
            "kind": "fido2Methods",
            "registered_hours_ago": 2,
            "properties": {"displayName": "k"},
        },
    )
    role = emulator_admin.post("/_emulator/roles", json={"user": ALICE, "role": "Helpdesk Administrator"})
    assert device.status_code == method.status_code == role.status_code == 200
    alice = user(emulator.tenant, ALICE)
    assert emulator.tenant.devices[device.json()["id"]].registeredUsers == [alice.id]
    assert [m.id for m in emulator.tenant.auth_methods[alice.id]] == [method.json()["id"]]
    assert emulator.tenant.is_privileged(alice)
    assert emulator_admin.get("/_emulator/devices").json()[0]["displayName"] == "ALICE-PC"
    bad = emulator_admin.post("/_emulator/auth-methods", json={"user": ALICE, "kind": "smokeSignals"})
    assert bad.status_code == 400 and "fido2Methods" in bad.json()["error"]
    assert (
        emulator_admin.post("/_emulator/roles", json={"user": ALICE, "role": "Overlord"}).status_code == 400
    )
    saved = Tenant.from_json(emulator.tenant.to_json())  # the lab's state file keeps all of it
    assert saved.devices.keys() == emulator.tenant.devices.keys() and saved.is_privileged(alice)
    assert [m.id for m in saved.auth_methods[alice.id]] == [method.json()["id"]]
