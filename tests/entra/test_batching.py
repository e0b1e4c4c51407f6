"""Bulk work: `$batch` of 20, retries of only the throttled or transiently failed sub-requests,
per-item results for partial failures, Identity Protection's list form and pacing."""

from __future__ import annotations

import time

import httpx
import pytest

from clampdown.connectors.entra import EntraConnector
from clampdown.errors import AccountNotFound, PermanentError, TransientError
from clampdown.model import Account, AccountState, ActionContext
from clampdown_lab.graph_emulator import Emulator, ThreadedEmulator
from clampdown_lab.graph_emulator.tenant import UserRecord, object_id
from clampdown_lab.graph_emulator.throttling import BucketPolicy, FaultRule, ThrottleConfig
from tests.entra.support import settings_for

ENABLED = AccountState(enabled=True, status="enabled", values={"accountEnabled": True})


def bulk_users(emulator: Emulator, count: int) -> list[Account]:
    accounts = []
    for n in range(count):
        upn = f"bulk{n:04d}@lab.example.test"
        user = emulator.tenant.add_user(
            UserRecord(id=object_id("user", upn), userPrincipalName=upn, displayName=f"Bulk {n}")
        )
        accounts.append(Account(provider="entra", id=user.id, name=upn))
    return accounts


def items(
    accounts: list[Account], before: AccountState | None = ENABLED
) -> list[tuple[Account, ActionContext]]:
    return [
        (a, ActionContext(action_id=i, reason="incident", requested_by="analyst", state_before=before))
        for i, a in enumerate(accounts)
    ]


async def test_suspend_sixty_users_in_three_batches(connector: EntraConnector, emulator: Emulator) -> None:
    accounts = bulk_users(emulator, 60)
    results = await connector.perform_batch("suspend_user", items(accounts))
    assert all(not isinstance(r, Exception) and r.changed for r in results)
    assert all(emulator.tenant.users[a.id].accountEnabled is False for a in accounts)
    assert emulator.counters.http_requests == 3 and emulator.counters.batch_requests == 3
    assert emulator.counters.inner_requests == 60


async def test_batch_without_known_state_reads_first(connector: EntraConnector, emulator: Emulator) -> None:
    accounts = bulk_users(emulator, 20)
    emulator.tenant.users[accounts[0].id].accountEnabled = False
    results = await connector.perform_batch("suspend_user", items(accounts, before=None))
    assert [r.changed for r in results if not isinstance(r, Exception)] == [False] + [True] * 19
    # one $batch of 20 reads, one risk list, one $batch of 19 writes
    assert emulator.counters.batch_requests == 2
    assert emulator.counters.by_status.get("204") == 19


async def test_partial_failures_are_per_item(graph_emulator: ThreadedEmulator, emulator: Emulator) -> None:
    conn = EntraConnector(settings_for(graph_emulator, max_transient_retries=1))
    accounts = bulk_users(emulator, 20)
    ghost = Account(
        provider="entra", id=object_id("user", "ghost@lab.example.test"), name="ghost@lab.example.test"
    )
    accounts[5] = ghost
    throttled = [accounts[1], accounts[2]]
    for account in throttled:
        emulator.faults.rules.append(
            FaultRule(
                method="PATCH",
                path=account.id,
                status=429,
                code="TooManyRequests",
                message="Too many requests.",
                retry_after=0.2,
                times=1,
            )
        )
    broken = accounts[9]
    emulator.faults.rules.append(FaultRule(method="PATCH", path=broken.id, status=503, times=-1))
    emulator.faults.rules.append(
        FaultRule(
            method="PATCH",
            path=accounts[12].id,
            status=400,
            code="Request_BadRequest",
            message="Invalid value.",
            times=1,
        )
    )
    try:
        started = time.monotonic()
        results = await conn.perform_batch("suspend_user", items(accounts))
    finally:
        await conn.aclose()
    assert isinstance(results[5], AccountNotFound)
    assert isinstance(results[9], TransientError) and "503" in results[9].message
    assert isinstance(results[12], PermanentError) and not isinstance(results[12], TransientError)
    assert "Invalid value." in results[12].message
    for index in (1, 2):  # throttled once, retried alone, then done
        assert not isinstance(results[index], Exception) and results[index].changed
    ok = [a for i, a in enumerate(accounts) if i not in (5, 9, 12)]
    assert all(emulator.tenant.users[a.id].accountEnabled is False for a in ok)
    assert emulator.tenant.users[broken.id].accountEnabled is True
    # Round 1: 20 sub-requests; round 2: only the two throttled and the 503, which fails again.
    assert emulator.counters.inner_requests == 20 + 3
    assert emulator.counters.batch_requests == 2
    assert time.monotonic() - started >= 0.2  # the inner Retry-After was honoured


async def test_inner_throttling_by_budget_completes(connector: EntraConnector, emulator: Emulator) -> None:
    accounts = bulk_users(emulator, 60)
    emulator.throttle.configure(ThrottleConfig(directory_writes=BucketPolicy(rate=100, burst=25)))
    results = await connector.perform_batch("suspend_user", items(accounts))
    assert all(not isinstance(r, Exception) for r in results)
    assert emulator.counters.throttled.get("directory_writes", 0) > 0
    assert all(emulator.tenant.users[a.id].accountEnabled is False for a in accounts)


async def test_whole_request_throttling_is_honoured(connector: EntraConnector, emulator: Emulator) -> None:
    accounts = bulk_users(emulator, 10)
    emulator.throttle.configure(ThrottleConfig(requests=BucketPolicy(rate=20, burst=2)))
    results = await connector.perform_batch("revoke_sessions", items(accounts))
    assert all(not isinstance(r, Exception) for r in results)
    one = await connector.resolve_user(accounts[0].name)
    for _ in range(5):  # more single requests than the burst allows
        await connector.revoke_sessions(one, items([one])[0][1])
    assert emulator.counters.throttled.get("requests", 0) > 0
    assert connector.graph.stats.throttled > 0


async def test_revoke_in_bulk(connector: EntraConnector, emulator: Emulator) -> None:
    accounts = bulk_users(emulator, 25)
    emulator.tenant.clock.offset += type(emulator.tenant.clock.offset)(seconds=10)
    results = await connector.perform_batch("revoke_sessions", items(accounts))
    assert all(not isinstance(r, Exception) and r.changed for r in results)
    stamps = {emulator.tenant.users[a.id].signInSessionsValidFromDateTime for a in accounts}
    assert all(s > emulator.tenant.users[accounts[0].id].createdDateTime for s in stamps)
    assert emulator.counters.batch_requests == 2


async def test_risk_actions_use_the_list_form(connector: EntraConnector, emulator: Emulator) -> None:
    accounts = bulk_users(emulator, 60)
    emulator.throttle.configure(
        ThrottleConfig(identity_protection=BucketPolicy(rate=25, burst=1, retry_after=False))
    )
    results = await connector.perform_batch("mark_compromised", items(accounts, before=None))
    assert all(not isinstance(r, Exception) and r.changed for r in results)
    assert all(emulator.tenant.risky[a.id].riskState == "confirmedCompromised" for a in accounts)
    # one riskyUsers list for the 60 ids (their state), one confirmCompromised for all 60
    assert emulator.counters.http_requests == 2
    results = await connector.perform_batch("dismiss_user_risk", items(accounts, before=None))
    assert all(not isinstance(r, Exception) and r.changed for r in results)
    assert all(emulator.tenant.risky[a.id].riskLevel == "none" for a in accounts)


async def test_identity_protection_429_without_retry_after(
    graph_emulator: ThreadedEmulator, emulator: Emulator
) -> None:
    # The connector's own spacing is set too tight on purpose: the emulator enforces ~1/s and
    # names no wait, so the connector must back off by itself.
    conn = EntraConnector(settings_for(graph_emulator, identity_protection_interval_seconds=0))
    emulator.throttle.configure(
        ThrottleConfig(identity_protection=BucketPolicy(rate=2, burst=1, retry_after=False))
    )
    try:
        accounts = [
            await conn.resolve_user(u)
            for u in ("alice.martin@lab.example.test", "carol.diaz@lab.example.test")
        ]
        for account in accounts:
            outcome = await conn.mark_compromised(account, items([account], before=None)[0][1])
            assert outcome.changed
    finally:
        await conn.aclose()
    assert emulator.counters.throttled.get("identity_protection", 0) > 0
    assert all(emulator.tenant.risky[a.id].riskLevel == "high" for a in accounts)


async def test_transient_failure_retried_then_reported(
    graph_emulator: ThreadedEmulator, emulator: Emulator
) -> None:
    conn = EntraConnector(settings_for(graph_emulator, max_transient_retries=1, throttle_patience_seconds=5))
    try:
        alice = await conn.resolve_user("alice.martin@lab.example.test")
        emulator.faults.rules.append(FaultRule(method="PATCH", status=503, retry_after=0.1, times=1))
        assert (await conn.suspend_user(alice, items([alice])[0][1])).changed
        emulator.faults.rules.append(
            FaultRule(
                method="PATCH",
                status=429,
                code="TooManyRequests",
                message="Please retry again later.",
                retry_after=7,
                times=-1,
            )
        )
        conn.graph.pacer.pause(0)
        emulator.tenant.users[alice.id].accountEnabled = True
        with pytest.raises(TransientError) as caught:
            await conn.suspend_user(alice, items([alice])[0][1])
    finally:
        await conn.aclose()
    assert caught.value.retry_after == 7  # the engine schedules its retry from the provider's hint
    assert "TooManyRequests" in caught.value.message


def token_for(emulator_admin: httpx.Client, tenant_id: str) -> str:
    from tests.entra.support import FULL_APP, SECRET

    reply = emulator_admin.post(
        f"/{tenant_id}/oauth2/v2.0/token",
        data={
            "client_id": FULL_APP,
            "client_secret": SECRET,
            "grant_type": "client_credentials",
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    reply.raise_for_status()
    return str(reply.json()["access_token"])


def test_batch_limits_as_graph_enforces_them(emulator_admin: httpx.Client, emulator: Emulator) -> None:
    headers = {"Authorization": f"Bearer {token_for(emulator_admin, emulator.tenant.tenant_id)}"}
    alice = object_id("user", "alice.martin@lab.example.test")
    too_many = [{"id": str(i), "method": "GET", "url": f"/users/{alice}"} for i in range(21)]
    reply = emulator_admin.post("/v1.0/$batch", json={"requests": too_many}, headers=headers)
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "BadRequest"
    dupes = [{"id": "1", "method": "GET", "url": "/users"}, {"id": "1", "method": "GET", "url": "/users"}]
    assert emulator_admin.post("/v1.0/$batch", json={"requests": dupes}, headers=headers).status_code == 400
    no_type = [{"id": "1", "method": "PATCH", "url": f"/users/{alice}", "body": {"accountEnabled": False}}]
    assert emulator_admin.post("/v1.0/$batch", json={"requests": no_type}, headers=headers).status_code == 400
    chained = [
        {
            "id": "a",
            "method": "PATCH",
            "url": "/users/nobody@lab.example.test",
            "headers": {"Content-Type": "application/json"},
            "body": {"accountEnabled": False},
        },
        {"id": "b", "method": "POST", "url": f"/users/{alice}/revokeSignInSessions", "dependsOn": ["a"]},
        {"id": "c", "method": "GET", "url": f"/v1.0/users/{alice}"},
    ]
    reply = emulator_admin.post("/v1.0/$batch", json={"requests": chained}, headers=headers)
    assert reply.status_code == 200
    statuses = {r["id"]: r["status"] for r in reply.json()["responses"]}
    assert statuses == {"a": 404, "b": 424, "c": 400}


async def test_state_snapshots_share_one_risk_read(connector: EntraConnector, emulator: Emulator) -> None:
    accounts = bulk_users(emulator, 180)
    groups = [accounts[i : i + 60] for i in range(0, 180, 60)]
    for group in groups:
        states = await connector.read_states(group)
        assert all(isinstance(s, AccountState) and s.values["riskLevel"] == "none" for s in states)
    # 9 $batch reads of users, and the tenant's at-risk list read once for all three groups
    assert emulator.counters.batch_requests == 9
    assert emulator.counters.http_requests == 10


async def test_resolve_many_users_in_batches(connector: EntraConnector, emulator: Emulator) -> None:
    accounts = bulk_users(emulator, 30)
    references = [a.name for a in accounts[:15]] + [a.id for a in accounts[15:]]
    references += ["ghost@lab.example.test", "frank.li"]
    found = await connector.resolve_users(references)
    assert [f.id for f in found[:30] if isinstance(f, Account)] == [a.id for a in accounts]
    assert isinstance(found[30], AccountNotFound)
    assert isinstance(found[31], Account) and found[31].name == "frank.li@lab.example.test"
    assert emulator.counters.batch_requests == 2  # 31 direct lookups in two $batches


async def test_risk_reads_survive_a_tenant_refusing_the_filter(
    connector: EntraConnector, emulator: Emulator
) -> None:
    # Should Graph refuse `id in (...)` on riskyUsers, the connector reads the list unfiltered.
    emulator.faults.rules.append(
        FaultRule(
            method="GET",
            path=r"^/identityProtection/riskyUsers$",
            status=400,
            code="BadRequest",
            message="Invalid filter clause",
            times=1,
        )
    )
    bob = await connector.resolve_user("bob.nguyen@lab.example.test")
    alice = await connector.resolve_user("alice.martin@lab.example.test")
    results = await connector.perform_batch("mark_compromised", items([bob, alice], before=None))
    assert [r.changed for r in results if not isinstance(r, Exception)] == [True, True]
    assert connector.risk.filters_supported is False
    assert emulator.tenant.risky[alice.id].riskState == "confirmedCompromised"
