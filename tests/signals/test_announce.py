"""Containments announced (audit/ssf_out.py ContainmentAnnouncer, an output of the one EventRecorder):
a containment run through the real engine over memory directories queues, when its last step ends,
one signed SET per receiving stream with the events of its completed steps, and none before; its
release queues account-enabled; each phase once, whatever repeats or races."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.chain import AuditEvent
from clampdown.auth.principal import Principal
from clampdown.db.tables import actions, audit_log, ssf_announcements
from clampdown.model import ActionSource, ActionStatus
from clampdown.secevents import (
    ACCOUNT_DISABLED,
    ACCOUNT_ENABLED,
    CREDENTIAL_CHANGE,
    SESSION_REVOKED,
)
from tests.signals.sets_out import (
    Transmitting,
    add_stream,
    build_transmitting,
    mark_subject,
    outbox,
    transmitter_settings,
    verified,
)

ADDRESS = "alice@memory.test"  # the UPN the memory directories give alice


@pytest.fixture
def tx(engine: AsyncEngine, tmp_path: Path) -> Iterator[Transmitting]:
    yield build_transmitting(engine, transmitter_settings(tmp_path))


def _claims(row: dict[str, Any], tx: Transmitting, audience: str = "https://receiver.test") -> dict[str, Any]:
    """The SET of an outbox row, verified with the published JWKS."""
    return verified(str(row["token"]), tx.keys, audience)


async def _wait_for(engine: AsyncEngine, statuses: dict[str, ActionStatus]) -> None:
    """Until the actions of these types have these statuses."""
    for _ in range(500):
        async with engine.connect() as conn:
            rows = dict((await conn.execute(select(actions.c.type, actions.c.status))).all())
        if all(rows.get(t) == s.value for t, s in statuses.items()):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"actions did not reach {statuses}: {rows}")


async def test_the_last_step_queues_one_set_per_receiving_stream_and_none_before(
    tx: Transmitting, admin: Principal
) -> None:
    await add_stream(tx.engine, "everything")
    await add_stream(tx.engine, "sessions-only", events=[SESSION_REVOKED], audience="https://other.test")
    await add_stream(tx.engine, "enabled-only", events=[ACCOUNT_ENABLED])
    await add_stream(tx.engine, "switched-off", status="disabled")
    tx.directories["okta"].held["suspend_user"] = release = asyncio.Event()
    containment_id = await tx.contain(admin)
    stop = asyncio.Event()
    running = asyncio.create_task(tx.worker().run(stop))
    try:
        done = ActionStatus.COMPLETED
        await _wait_for(tx.engine, {"ad.disable_user": done, "ad.force_password_reset": done,
                                    "entra.revoke_sessions": done})  # fmt: skip
        assert await outbox(tx.engine) == []  # the okta step still runs: nothing announced
        release.set()
        await _wait_for(tx.engine, {"okta.suspend_user": done})
    finally:
        release.set()  # a failed assertion must not leave the worker waiting on the held step
        stop.set()
        await running
    rows = await outbox(tx.engine)
    assert [(r["stream_id"], r["event_types"], r["status"]) for r in rows] == [
        ("everything", sorted([ACCOUNT_DISABLED, CREDENTIAL_CHANGE, SESSION_REVOKED]), "pending"),
        ("sessions-only", [SESSION_REVOKED], "pending"),
    ]
    assert {(r["containment_id"], r["subject"]) for r in rows} == {(containment_id, ADDRESS)}
    claims = _claims(rows[0], tx)
    assert claims["aud"] == "https://receiver.test" and claims["txn"] == f"containment-{containment_id}"
    assert claims["sub_id"] == {"format": "email", "email": ADDRESS}
    events = claims["events"]
    user = {"user": {"format": "email", "email": ADDRESS}}
    disabled = events[ACCOUNT_DISABLED]
    assert disabled == {
        "subject": user,
        "event_timestamp": disabled["event_timestamp"],
        "reason": "hijacking",
    }
    assert abs(disabled["event_timestamp"] - claims["iat"]) < 30
    assert events[SESSION_REVOKED]["initiating_entity"] == "admin"
    assert events[SESSION_REVOKED]["reason_admin"] == {"en": "phishing, INC-7"}
    assert events[SESSION_REVOKED]["subject"] == user
    assert {k: events[CREDENTIAL_CHANGE][k] for k in ("credential_type", "change_type")} == {
        "credential_type": "password", "change_type": "revoke"
    }  # fmt: skip
    other = _claims(rows[1], tx, audience="https://other.test")
    assert list(other["events"]) == [SESSION_REVOKED] and other["jti"] != claims["jti"]


async def test_a_failed_step_does_not_announce_its_event(tx: Transmitting, admin: Principal) -> None:
    await add_stream(tx.engine, "everything")
    tx.directories["ad"].failing.add("force_password_reset")
    await tx.contain(admin)
    await tx.drain()
    rows = await outbox(tx.engine)
    assert [r["event_types"] for r in rows] == [sorted([ACCOUNT_DISABLED, SESSION_REVOKED])]


async def test_every_step_failed_announces_nothing(tx: Transmitting, admin: Principal) -> None:
    await add_stream(tx.engine, "everything")
    for name in ("ad", "entra", "okta"):
        tx.directories[name].failing |= {"disable_user", "revoke_sessions", "suspend_user"}
    await tx.contain(admin)
    await tx.drain()
    assert await outbox(tx.engine) == []


async def test_release_announces_account_enabled_once_its_release_steps_end(
    tx: Transmitting, admin: Principal
) -> None:
    await add_stream(tx.engine, "everything")
    containment_id = await tx.contain(admin)
    await tx.drain()
    await tx.playbooks.release("alice", "false positive", admin)
    assert len(await outbox(tx.engine)) == 1  # the release steps have not run yet
    await tx.drain()
    rows = await outbox(tx.engine)
    assert [r["event_types"] for r in rows] == [
        sorted([ACCOUNT_DISABLED, CREDENTIAL_CHANGE, SESSION_REVOKED]), [ACCOUNT_ENABLED]
    ]  # fmt: skip
    claims = _claims(rows[1], tx)
    assert claims["txn"] == f"containment-{containment_id}-released"
    events = claims["events"]
    assert events[ACCOUNT_ENABLED]["subject"] == {"user": {"format": "email", "email": ADDRESS}}
    async with tx.engine.connect() as conn:
        phases = (
            await conn.execute(select(ssf_announcements.c.containment_id, ssf_announcements.c.phase))
        ).all()
    assert sorted(phases) == [(containment_id, "contained"), (containment_id, "released")]


async def test_announced_once_when_the_outcomes_are_recorded_again(
    tx: Transmitting, admin: Principal
) -> None:
    await add_stream(tx.engine, "everything")
    await tx.contain(admin)
    await tx.drain()
    assert len(await outbox(tx.engine)) == 1
    async with tx.engine.connect() as conn:
        rows = (
            await conn.execute(select(audit_log).where(audit_log.c.event == "action.completed"))
        ).mappings()
        completed = [AuditEvent(r["at"], r["actor"], r["event"], r["subject"], r["data"]) for r in rows]
    assert len(completed) == 4
    for _ in range(2):  # a retried commit, another process recording the same outcomes
        async with tx.engine.begin() as conn:
            await tx.announcer.queue_in(conn, completed)
    assert len(await outbox(tx.engine)) == 1


async def test_workers_racing_over_the_steps_announce_each_containment_once(
    tx: Transmitting, admin: Principal
) -> None:
    await add_stream(tx.engine, "everything")
    people = [f"person{n:02}" for n in range(12)]
    for person in people:
        await tx.contain(admin, person)
    await asyncio.gather(tx.drain(), tx.drain(), tx.drain())
    rows = await outbox(tx.engine)
    assert sorted(r["subject"] for r in rows) == [f"{p}@memory.test" for p in people]
    assert {tuple(r["event_types"]) for r in rows} == {
        tuple(sorted([ACCOUNT_DISABLED, CREDENTIAL_CHANGE, SESSION_REVOKED]))
    }


async def test_a_subject_removed_under_all_gets_nothing(tx: Transmitting, admin: Principal) -> None:
    await add_stream(tx.engine, "kept")
    await add_stream(tx.engine, "removed")
    await mark_subject(tx.engine, "removed", ADDRESS, included=False)
    await tx.contain(admin)
    await tx.drain()
    assert [r["stream_id"] for r in await outbox(tx.engine)] == ["kept"]


async def test_under_none_only_a_stream_that_added_the_subject_gets_it(
    engine: AsyncEngine, tmp_path: Path, admin: Principal
) -> None:
    tx = build_transmitting(engine, transmitter_settings(tmp_path, default_subjects="NONE"))
    await add_stream(engine, "added")
    await add_stream(engine, "silent")
    await add_stream(engine, "someone-else")
    await mark_subject(engine, "added", ADDRESS.upper(), included=True)  # addresses match in any case
    await mark_subject(engine, "someone-else", "bob@memory.test", included=True)
    await tx.contain(admin)
    await tx.drain()
    assert [r["stream_id"] for r in await outbox(engine)] == ["added"]


async def test_a_timed_release_announces_account_enabled_once_its_timers_have_run(
    tx: Transmitting, admin: Principal
) -> None:
    await add_stream(tx.engine, "everything")
    until = datetime.now(UTC) + timedelta(seconds=2)
    run = await tx.playbooks.run("announced", "alice", "phishing, INC-8", admin, until=until)
    await tx.drain()
    assert [r["event_types"] for r in await outbox(tx.engine)] == [
        sorted([ACCOUNT_DISABLED, CREDENTIAL_CHANGE, SESSION_REVOKED])
    ]  # fmt: skip
    await asyncio.sleep((until - datetime.now(UTC)).total_seconds() + 0.1)
    await tx.drain()
    rows = await outbox(tx.engine)
    assert [r["event_types"] for r in rows] == [
        sorted([ACCOUNT_DISABLED, CREDENTIAL_CHANGE, SESSION_REVOKED]), [ACCOUNT_ENABLED]
    ]  # fmt: skip
    assert _claims(rows[1], tx)["txn"] == f"containment-{run.containment_id}-released"


async def test_a_containment_a_detection_rule_started_says_policy_initiated_it(
    tx: Transmitting, admin: Principal
) -> None:
    await add_stream(tx.engine, "everything")
    await tx.playbooks.run("announced", "alice", "rule 'risky sign-ins'", admin, source=ActionSource.RULE)
    await tx.drain()
    [row] = await outbox(tx.engine)
    events = _claims(row, tx)["events"]
    assert events[SESSION_REVOKED]["initiating_entity"] == "policy"
    assert events[CREDENTIAL_CHANGE]["initiating_entity"] == "policy"
