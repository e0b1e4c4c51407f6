"""Every request the connector sends and every answer the emulator gives, checked against the
Microsoft Graph v1.0 OpenAPI subset (requests inside `$batch` included)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from clampdown.connectors.entra import EntraConnector
from clampdown.errors import ActionAccountError
from clampdown.model import Account, ActionContext
from clampdown_lab.graph_emulator import Emulator, ThreadedEmulator
from clampdown_lab.graph_emulator.tenant import UserRecord, object_id
from clampdown_lab.graph_emulator.throttling import BucketPolicy, FaultRule, ThrottleConfig
from tests.entra.contract import Exchange, Recorder, validate
from tests.entra.support import READ_ONLY_APP, settings_for

pytestmark = pytest.mark.filterwarnings("ignore:Unsupported scheme type")  # the oauth2 scheme: not checked

ALICE = "alice.martin@lab.example.test"
BOB = "bob.nguyen@lab.example.test"


def ctx() -> ActionContext:
    return ActionContext(action_id=1, reason="contract", requested_by="analyst")


async def test_connector_traffic_follows_the_contract(
    graph_emulator: ThreadedEmulator, emulator: Emulator, connector: EntraConnector
) -> None:
    recorder = Recorder()
    recorder.attach(connector.graph.http)
    alice = await connector.resolve_user(ALICE)
    await connector.resolve_user("bob.nguyen")  # $filter on onPremisesSamAccountName
    bob = await connector.resolve_user(BOB)
    await connector.read_state(bob)
    for method in ("suspend_user", "suspend_user", "enable_user", "revoke_sessions"):
        await getattr(connector, method)(alice, ctx())
    for method in ("mark_compromised", "dismiss_user_risk"):
        await getattr(connector, method)(bob, ctx())

    bulk = []
    for n in range(24):
        upn = f"contract{n}@lab.example.test"
        user = emulator.tenant.add_user(
            UserRecord(id=object_id("user", upn), userPrincipalName=upn, displayName=upn)
        )
        bulk.append(Account(provider="entra", id=user.id, name=upn))
    bulk.append(Account(provider="entra", id=object_id("user", "ghost"), name="ghost@lab.example.test"))
    emulator.faults.rules.append(
        FaultRule(method="PATCH", path=bulk[3].id, status=429, code="TooManyRequests", retry_after=0.05)
    )
    results = await connector.perform_batch("suspend_user", [(a, ctx()) for a in bulk])
    assert sum(isinstance(r, Exception) for r in results) == 1  # the ghost

    emulator.tenant.clock.offset += timedelta(hours=2)  # a 401, then a renewed token
    await connector.revoke_sessions(alice, ctx())

    reader = EntraConnector(settings_for(graph_emulator, client_id=READ_ONLY_APP))
    recorder.attach(reader.graph.http)
    try:
        with pytest.raises(ActionAccountError):
            await reader.revoke_sessions(alice, ctx())
    finally:
        await reader.aclose()

    checked = recorder.validate_all()
    statuses = {e.status for e in recorder.exchanges} | {
        i.status for e in recorder.exchanges if e.path.endswith("$batch") for i in e.inner()
    }
    assert {200, 204, 401, 403, 404, 429} <= statuses
    assert checked > len(recorder.exchanges)  # the inner requests were checked too


async def test_read_endpoints_follow_the_contract(connector: EntraConnector, emulator: Emulator) -> None:
    recorder = Recorder()
    recorder.attach(connector.graph.http)
    bob = emulator.tenant.find_user(BOB)
    assert bob is not None
    for n in range(5):
        emulator.tenant.record_sign_in(bob, ip_address=f"203.0.113.{n}")
    send = connector.graph.send
    await send("GET", "/users", params={"$top": "3", "$select": "id,userPrincipalName,accountEnabled"})
    page = recorder.exchanges[-1].response_body
    assert len(page["value"]) == 3 and "@odata.nextLink" in page
    await send("GET", f"/users/{bob.id}")  # Graph's default property set
    await send("GET", f"/identityProtection/riskyUsers/{bob.id}", identity_protection=True)
    await send("GET", f"/identityProtection/riskyUsers/{bob.id}/history", identity_protection=True)
    await send(
        "GET",
        "/identityProtection/riskyUsers",
        params={"$filter": "riskLevel eq 'medium'"},
        identity_protection=True,
    )
    await send(
        "POST",
        "/identityProtection/riskyUsers/microsoft.graph.confirmCompromised",
        json={"userIds": [bob.id]},
        identity_protection=True,
    )
    await send("POST", f"/users/{bob.id}/microsoft.graph.revokeSignInSessions")
    await send("GET", "/auditLogs/signIns", params={"$filter": f"userId eq '{bob.id}'", "$top": "2"})
    newest = recorder.exchanges[-1].response_body["value"]
    assert [e["ipAddress"] for e in newest] == ["203.0.113.4", "203.0.113.3"]  # newest first
    await send("GET", f"/auditLogs/signIns/{newest[0]['id']}")
    await send("GET", "/users", params={"$filter": "endsWith(mail,'x')"})  # 400 Request_UnsupportedQuery
    assert recorder.exchanges[-1].status == 400
    assert recorder.validate_all() == len(recorder.exchanges)


async def test_throttled_answers_follow_the_contract(connector: EntraConnector, emulator: Emulator) -> None:
    recorder = Recorder()
    recorder.attach(connector.graph.http)
    emulator.throttle.configure(ThrottleConfig(directory=BucketPolicy(rate=50, burst=1)))
    alice = await connector.resolve_user(ALICE)
    await connector.read_state(alice)
    throttled = [e for e in recorder.exchanges if e.status == 429]
    assert throttled and all("retry-after" in {k.lower() for k in e.response_headers} for e in throttled)
    recorder.validate_all()


def test_the_validator_rejects_what_graph_would() -> None:
    bad_body = Exchange(
        "POST", "/v1.0/identityProtection/riskyUsers/dismiss", {}, {}, {"userIds": "a"}, 204, {}, None
    )
    with pytest.raises(AssertionError, match="request breaks"):
        validate(bad_body)
    bad_answer = Exchange(
        "GET", "/v1.0/users/abc", {}, {}, None, 200, {}, {"id": "abc", "accountEnabled": "yes"}
    )
    with pytest.raises(AssertionError, match="answer breaks"):
        validate(bad_answer)
