"""Where events go (audit/recorder.py) and how they are named (audit/events.py)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.chain import NOT_ANCHORED, AuditLog, ChainReport
from clampdown.audit.events import EventName, action_event, outcome_event, requested_event
from clampdown.audit.recorder import EventRecorder
from clampdown.audit.syslog import SyslogOutput
from clampdown.config import SyslogSettings, WebhookSettings
from clampdown.db.tables import audit_log, syslog_outbox, webhook_deliveries
from clampdown.model import Action, ActionStatus
from tests.audit.conftest import make_event
from tests.sample_actions import REQUESTED_AT, sample_action

HOOKS = [
    WebhookSettings(name="siem", url="https://siem.example.test/in", secret="s1"),  # events = ["*"]
    WebhookSettings(name="actions", url="https://a.example.test", secret="s2", events=["action.*"]),
    WebhookSettings(
        name="approvals", url="https://b.example.test", secret="s3", events=["approval.requested"]
    ),
    WebhookSettings(name="signins", url="https://c.example.test", secret="s4", events=["signin.succeeded"]),
]
EVENTS = [
    make_event(1, EventName.ACTION_REQUESTED),
    make_event(2, EventName.APPROVAL_REQUESTED),
    make_event(3, EventName.SIGNIN_FAILED),
]


async def _outbox(engine: AsyncEngine) -> list[tuple[str, str, int]]:
    c = webhook_deliveries.c
    async with engine.connect() as conn:
        rows = (await conn.execute(select(c.event, c.webhook, c.payload, c.status).order_by(c.id))).all()
    assert {r.status for r in rows} <= {"pending"}
    return sorted((r.event, r.webhook, r.payload["data"]["n"]) for r in rows)


async def test_record_in_appends_to_the_chain_and_queues_one_delivery_per_matching_webhook(
    engine: AsyncEngine,
) -> None:
    recorder = EventRecorder(HOOKS)
    async with engine.begin() as conn:
        await recorder.record_in(conn, EVENTS)
    assert await _outbox(engine) == [
        ("action.requested", "actions", 1),
        ("action.requested", "siem", 1),
        ("approval.requested", "approvals", 2),
        ("approval.requested", "siem", 2),
        ("signin.failed", "siem", 3),  # "signins" subscribed to signin.succeeded only
    ]
    chained = [row async for row in AuditLog(engine).rows()]
    assert [(r["event"], r["data"]["n"]) for r in chained] == [(e.event, e.data["n"]) for e in EVENTS]
    assert await AuditLog(engine).verify() == ChainReport(3, [], warnings=[NOT_ANCHORED])


async def test_no_subscriber_means_no_delivery(engine: AsyncEngine) -> None:
    recorder = EventRecorder(HOOKS[1:])
    async with engine.begin() as conn:
        await recorder.record_in(conn, [make_event(3, EventName.SIGNIN_FAILED)])
    assert await _outbox(engine) == []
    assert (await AuditLog(engine).verify()).entries == 1


async def test_recorded_events_roll_back_with_their_cause(engine: AsyncEngine) -> None:
    recorder = EventRecorder(HOOKS)
    with pytest.raises(RuntimeError, match="the cause failed"):
        async with engine.begin() as conn:
            await recorder.record_in(conn, EVENTS)
            raise RuntimeError("the cause failed")
    async with engine.connect() as conn:
        assert (await conn.execute(select(audit_log.c.seq))).all() == []
    assert await _outbox(engine) == []


async def test_syslog_messages_commit_with_their_cause_and_roll_back_with_it(engine: AsyncEngine) -> None:
    syslog = SyslogOutput(engine, SyslogSettings())
    recorder = EventRecorder(syslog=syslog)
    with pytest.raises(RuntimeError, match="the cause failed"):
        async with engine.begin() as conn:
            await recorder.record_in(conn, EVENTS)
            raise RuntimeError("the cause failed")
    assert await syslog.pending() == 0
    async with engine.begin() as conn:
        await recorder.record_in(conn, EVENTS)
    recorder.after_commit(EVENTS)  # wakes the sender, sends nothing itself
    async with engine.connect() as conn:
        query = select(syslog_outbox.c.message).order_by(syslog_outbox.c.id)
        messages = (await conn.execute(query)).scalars()
        names = [m.split(" ")[5] for m in messages]
    assert names == ["action_requested", "approval_requested", "signin_failed"]


def test_every_event_name_is_unique_dotted_and_fits_its_column() -> None:
    values = [name.value for name in EventName]
    assert len(values) == len(set(values))
    for value in values:
        assert re.fullmatch(r"[a-z]+\.[a-z_]+", value), value
        assert len(value) <= audit_log.c.event.type.length  # type: ignore[attr-defined]


def _action(status: ActionStatus, **changes: Any) -> Action:
    waiting = status is ActionStatus.AWAITING_APPROVAL
    return sample_action(
        status=status, approval_reason="protected account: vip" if waiting else None, **changes
    )


def test_action_event_describes_the_action_at_its_request_time() -> None:
    event = action_event(EventName.ACTION_REQUESTED, _action(ActionStatus.QUEUED), "alice", extra="x")
    assert (event.at, event.actor, event.event, event.subject) == (
        REQUESTED_AT, "alice", "action.requested", "ivan@example.test"
    )  # fmt: skip
    assert event.data == {
        "action_id": 7, "type": "okta.suspend_user", "provider": "okta", "target": "ivan",
        "account": "00u1", "reason": "INC-7", "batch_id": "b1", "status": "queued",
        "action_source": "manual", "incident": None, "extra": "x",
    }  # fmt: skip
    unresolved = action_event(EventName.ACTION_REQUESTED, _action(ActionStatus.QUEUED, account=None), "alice")
    assert unresolved.subject == "ivan" and unresolved.data["account"] is None


@pytest.mark.parametrize(
    ("status", "name"),
    [(ActionStatus.QUEUED, "action.requested"), (ActionStatus.AWAITING_APPROVAL, "approval.requested")],
)
def test_requested_event_names_a_queued_or_waiting_request(status: ActionStatus, name: str) -> None:
    event = requested_event(_action(status))
    assert event.event == name and event.actor == "alice"
    assert event.data["approval_reason"] == _action(status).approval_reason


@pytest.mark.parametrize(
    ("status", "name"),
    [
        (ActionStatus.COMPLETED, "action.completed"),
        (ActionStatus.FAILED, "action.failed"),
        (ActionStatus.CANCELLED, "action.cancelled"),
    ],
)
def test_outcome_event_names_how_the_action_ended(status: ActionStatus, name: str) -> None:
    at = REQUESTED_AT + timedelta(minutes=1)
    event = outcome_event(_action(ActionStatus.RUNNING), status, "worker-1", at, "done")
    assert (event.event, event.actor, event.at) == (name, "worker-1", at)
    assert event.data["status"] == status.value and event.data["message"] == "done"
