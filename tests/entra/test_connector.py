"""The Entra connector against the Graph emulator over HTTPS: every action and its inverse,
idempotent repeats, unknown users, missing permissions, token renewal, credentials."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from clampdown.connectors.entra import EntraConnector
from clampdown.errors import AccountNotFound, ActionAccountError
from clampdown.model import AccountState, ActionContext
from clampdown_lab.graph_emulator import Emulator, ThreadedEmulator
from clampdown_lab.graph_emulator.tenant import object_id
from tests.entra.support import CERT_APP, DIRECTORY_APP, READ_ONLY_APP, settings_for

ALICE = "alice.martin@lab.example.test"
BOB = "bob.nguyen@lab.example.test"
FRANK = "frank.li@lab.example.test"


def ctx(restore: AccountState | None = None, before: AccountState | None = None) -> ActionContext:
    return ActionContext(
        action_id=1,
        reason="incident 42",
        requested_by="analyst@lab.example.test",
        restore_state=restore,
        state_before=before,
    )


async def test_resolve_by_upn_object_id_sam_and_sid(connector: EntraConnector) -> None:
    by_upn = await connector.resolve_user(ALICE)
    assert by_upn.id == object_id("user", ALICE)
    assert by_upn.name == ALICE
    assert (await connector.resolve_user(by_upn.id)).name == ALICE
    frank = await connector.resolve_user("frank.li")
    assert frank.name == FRANK
    assert frank.attributes["onPremisesSecurityIdentifier"].startswith("S-1-5-21-")
    assert (await connector.resolve_user(frank.attributes["onPremisesSecurityIdentifier"])).id == frank.id


@pytest.mark.parametrize(
    "reference", ["nobody@lab.example.test", "0f0f0f0f-0000-4000-8000-000000000000", "no.such.sam"]
)
async def test_unknown_user(connector: EntraConnector, reference: str) -> None:
    with pytest.raises(AccountNotFound) as caught:
        await connector.resolve_user(reference)
    assert reference in caught.value.message


async def test_read_state_reports_enabled_and_risk(connector: EntraConnector) -> None:
    bob = await connector.read_state(await connector.resolve_user(BOB))
    assert bob.enabled is True
    assert bob.values["riskLevel"] == "medium" and bob.values["riskState"] == "atRisk"
    alice = await connector.read_state(await connector.resolve_user(ALICE))
    assert alice.values["riskLevel"] == "none"


async def test_suspend_and_enable_are_idempotent(connector: EntraConnector, emulator: Emulator) -> None:
    alice = await connector.resolve_user(ALICE)
    before = await connector.read_state(alice)
    first = await connector.suspend_user(alice, ctx())
    assert first.changed and first.provider_request_id
    assert emulator.tenant.users[alice.id].accountEnabled is False
    again = await connector.suspend_user(alice, ctx())
    assert again.changed is False
    assert emulator.tenant.users[alice.id].accountEnabled is False

    undo = await connector.enable_user(alice, ctx(restore=before))
    assert undo.changed
    assert emulator.tenant.users[alice.id].accountEnabled is True
    assert (await connector.enable_user(alice, ctx())).changed is False


async def test_undo_of_suspend_leaves_a_user_disabled_before(
    connector: EntraConnector, emulator: Emulator
) -> None:
    alice = await connector.resolve_user(ALICE)
    emulator.tenant.users[alice.id].accountEnabled = False
    before = await connector.read_state(alice)
    assert (await connector.suspend_user(alice, ctx())).changed is False
    outcome = await connector.enable_user(alice, ctx(restore=before))
    assert outcome.changed is False
    assert emulator.tenant.users[alice.id].accountEnabled is False


async def test_suspend_of_a_synced_user_warns_about_ad(connector: EntraConnector, emulator: Emulator) -> None:
    frank = await connector.resolve_user(FRANK)
    outcome = await connector.suspend_user(frank, ctx())
    assert outcome.changed
    assert emulator.tenant.users[frank.id].accountEnabled is False
    assert any("Active Directory" in w and "ad.disable_user" in w for w in outcome.warnings)
    # What the warning says: the next sync brings the AD account's state back...
    assert emulator.tenant.directory_sync({"frank.li": True}) == [frank.id]
    assert emulator.tenant.users[frank.id].accountEnabled is True
    # ...unless AD is disabled too.
    await connector.suspend_user(frank, ctx())
    assert emulator.tenant.directory_sync({"frank.li": False}) == []
    assert emulator.tenant.users[frank.id].accountEnabled is False


async def test_revoke_sessions_moves_the_valid_from_time(
    connector: EntraConnector, emulator: Emulator
) -> None:
    alice = await connector.resolve_user(ALICE)
    user = emulator.tenant.users[alice.id]
    old = user.signInSessionsValidFromDateTime
    emulator.tenant.clock.offset += type(emulator.tenant.clock.offset)(seconds=5)
    outcome = await connector.revoke_sessions(alice, ctx())
    assert outcome.changed
    assert user.signInSessionsValidFromDateTime > old
    # A session issued before the revocation no longer signs in; the sign-in log says why.
    entry = emulator.tenant.record_sign_in(
        user, ip_address="198.51.100.7", session_issued_at=emulator.tenant.clock.now().replace(year=2020)
    )
    assert entry["status"]["errorCode"] == 50133
    assert (await connector.revoke_sessions(alice, ctx())).changed  # repeating is harmless


async def test_mark_compromised_and_dismiss(connector: EntraConnector, emulator: Emulator) -> None:
    bob = await connector.resolve_user(BOB)
    before = await connector.read_state(bob)
    marked = await connector.mark_compromised(bob, ctx())
    assert marked.changed
    record = emulator.tenant.risky[bob.id]
    assert (record.riskLevel, record.riskState, record.riskDetail) == (
        "high",
        "confirmedCompromised",
        "adminConfirmedUserCompromised",
    )
    assert (await connector.mark_compromised(bob, ctx())).changed is False

    dismissed = await connector.dismiss_user_risk(bob, ctx(restore=before))
    assert dismissed.changed
    assert (record.riskLevel, record.riskState) == ("none", "dismissed")
    assert any("medium" in w for w in dismissed.warnings)  # the earlier level cannot be restored
    assert (await connector.dismiss_user_risk(bob, ctx())).changed is False


async def test_mark_compromised_a_user_never_at_risk(connector: EntraConnector, emulator: Emulator) -> None:
    alice = await connector.resolve_user(ALICE)
    assert (await connector.dismiss_user_risk(alice, ctx())).changed is False
    assert (await connector.mark_compromised(alice, ctx())).changed
    assert emulator.tenant.risky[alice.id].riskLevel == "high"


async def test_missing_permission_names_it(graph_emulator: ThreadedEmulator, emulator: Emulator) -> None:
    reader = EntraConnector(settings_for(graph_emulator, client_id=READ_ONLY_APP))
    try:
        alice = await reader.resolve_user(ALICE)  # User.Read.All is granted
        with pytest.raises(ActionAccountError) as caught:
            await reader.suspend_user(
                alice, ctx(before=AccountState(enabled=True, values={"accountEnabled": True}))
            )
        assert "User.EnableDisableAccount.All" in caught.value.message
        assert "Authorization_RequestDenied" in caught.value.message
        assert caught.value.provider_request_id
        assert emulator.tenant.users[alice.id].accountEnabled is True
        with pytest.raises(ActionAccountError) as caught:
            await reader.revoke_sessions(alice, ctx())
        assert "User.RevokeSessions.All" in caught.value.message
        with pytest.raises(ActionAccountError) as caught:
            await reader.mark_compromised(alice, ctx(before=AccountState(values={"riskState": "none"})))
        assert "IdentityRiskyUser.ReadWrite.All" in caught.value.message
        with pytest.raises(ActionAccountError) as caught:
            await reader.check()
        assert "User.EnableDisableAccount.All" in caught.value.message
    finally:
        await reader.aclose()


async def test_check_passes_with_every_permission(connector: EntraConnector) -> None:
    await connector.check()


async def test_expired_token_is_renewed(connector: EntraConnector, emulator: Emulator) -> None:
    alice = await connector.resolve_user(ALICE)
    assert connector.tokens.acquired == 1
    # Two hours later in the tenant: Graph rejects the cached token as expired.
    emulator.tenant.clock.offset += type(emulator.tenant.clock.offset)(hours=2)
    assert (await connector.suspend_user(alice, ctx())).changed
    assert connector.tokens.acquired == 2
    # Requests in flight together may each meet the 401; the token is still renewed only once.
    assert emulator.counters.by_status.get("401", 0) >= 1
    assert emulator.tenant.users[alice.id].accountEnabled is False


async def test_certificate_credential(
    graph_emulator: ThreadedEmulator, emulator: Emulator, client_certificate: tuple[Path, str]
) -> None:
    conn = EntraConnector(
        settings_for(
            graph_emulator,
            client_id=CERT_APP,
            client_secret=None,
            certificate_path=str(client_certificate[0]),
        )
    )
    try:
        alice = await conn.resolve_user(ALICE)
        assert (await conn.suspend_user(alice, ctx())).changed
        assert emulator.tenant.users[alice.id].accountEnabled is False
    finally:
        await conn.aclose()


async def test_wrong_secret_is_an_action_account_error(
    graph_emulator: ThreadedEmulator, emulator: Emulator
) -> None:
    conn = EntraConnector(settings_for(graph_emulator, client_secret="not-the-secret"))
    try:
        with pytest.raises(ActionAccountError) as caught:
            await conn.resolve_user(ALICE)
        assert "AADSTS7000215" in caught.value.message
        assert "client secret" in caught.value.message
    finally:
        await conn.aclose()


async def test_without_identity_protection_the_directory_actions_still_work(
    graph_emulator: ThreadedEmulator, emulator: Emulator
) -> None:
    conn = EntraConnector(settings_for(graph_emulator, client_id=DIRECTORY_APP))
    try:
        alice = await conn.resolve_user(ALICE)
        state = await conn.read_state(alice)
        assert state.enabled is True and state.values["riskLevel"] is None  # unknown, not "none"
        assert (await conn.suspend_user(alice, ctx(before=state))).changed
        assert emulator.tenant.users[alice.id].accountEnabled is False
    finally:
        await conn.aclose()


HOSTILE_REFERENCES = [
    "me",
    "..",
    "a/../me@lab.example.test",
    "alice.martin@lab.example.test/../../me",
    "alice.martin@lab.example.test?$select=id",
    "alice.martin@lab.example.test#x",
    "$alice@lab.example.test",
    "%2e%2e@lab.example.test",
    "alice martin@lab.example.test",
]


async def test_a_target_never_becomes_more_than_one_plain_path_segment(connector: EntraConnector) -> None:
    """Anything but an object id or a well-formed UPN is looked up by `$filter`, never by path, so a
    planted target cannot reach another Graph resource (`/me`, a parent path, a query)."""
    paths: list[str] = []

    async def note(request: httpx.Request) -> None:
        paths.append(request.url.raw_path.decode().split("?")[0])

    connector.graph.http.event_hooks["request"].append(note)
    for reference in HOSTILE_REFERENCES:
        with pytest.raises(AccountNotFound):
            await connector.resolve_user(reference)
    assert paths and set(paths) == {"/v1.0/users"}, paths
    found = await connector.resolve_users([*HOSTILE_REFERENCES, ALICE])
    assert all(isinstance(r, AccountNotFound) for r in found[:-1])
    assert getattr(found[-1], "name", None) == ALICE
