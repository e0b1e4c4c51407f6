"""Poll delivery served (RFC 8936) by a real `clampdown serve`: a poll stream's SETs answered oldest
first up to maxEvents with moreAvailable, acknowledged or refused (setErrs) by the receiver, answered
again until then, none while paused, a long poll answered when a SET arrives; and Clampdown's own
receiver (signals/poll.py) polling Clampdown's own transmitter: the two halves agree."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.recorder import EventRecorder
from clampdown.audit.ssf_out import Transmission, enqueue_in
from clampdown.config import HuntingSettings, SsfReceiverSettings, SsfTransmitterSettings
from clampdown.db.tables import audit_log, ssf_streams
from clampdown.hunting.store import EventStore
from clampdown.limits import SSF_LONG_POLL_SECONDS
from clampdown.permissions import SECURITY_ADMINISTRATOR
from clampdown.secevents import ACCOUNT_DISABLED, CONTAINMENT_EVENTS, POLL, VERIFICATION, TransmitterKeys
from clampdown.signals.poll import SignalPoller
from clampdown.signals.receiver import SignalReceivers
from tests.signals.transmitter_server import Transmitting, transmitting

__all__ = ["transmitting"]  # the fixture

STREAMS = "/api/v1/ssf/streams"
ALICE = {"format": "email", "email": "alice@memory.test"}
SELF_AUDIENCE = "https://clampdown.self.test/ssf"


async def _poll_stream(t: Transmitting, token: str, **body: Any) -> str:
    created = t.call(
        "POST",
        STREAMS,
        token,
        json={"delivery": {"method": POLL}, "events_requested": list(CONTAINMENT_EVENTS), **body},
    )
    assert created.status_code == 201, created.text
    stream_id: str = created.json()["stream_id"]
    return stream_id


async def _announce(t: Transmitting, stream_id: str, n: int = 1) -> list[str]:
    """`n` account-disabled SETs about alice queued to the stream, as the containment announcer does."""
    settings = SsfTransmitterSettings.model_validate(t.config["ssf"]["transmitter"])
    keys = TransmitterKeys.load(settings.signing_key_file)
    jtis = []
    async with t.engine.begin() as conn:
        row = dict(
            (await conn.execute(select(ssf_streams).where(ssf_streams.c.stream_id == stream_id)))
            .mappings()
            .one()
        )
        for _ in range(n):
            what = Transmission({ACCOUNT_DISABLED: {}}, ALICE, "alice@memory.test")
            jtis += await enqueue_in(conn, settings, keys, [row], what, t.now())
    return jtis


def _poll(t: Transmitting, token: str, stream_id: str, **body: Any) -> dict[str, Any]:
    answered = t.call("POST", f"{STREAMS}/{stream_id}/poll", token, json={"returnImmediately": True, **body})
    assert answered.status_code == 200, answered.text
    found: dict[str, Any] = answered.json()
    return found


async def test_a_poll_answers_pending_sets_oldest_first_and_records_acks_and_errors(
    transmitting: Transmitting,
) -> None:
    t = transmitting
    token = await t.token("poller", SECURITY_ADMINISTRATOR)
    stream_id = await _poll_stream(t, token)
    first, second, third = await _announce(t, stream_id, 3)

    answer = _poll(t, token, stream_id, maxEvents=2)
    assert list(answer["sets"]) == [first, second] and answer["moreAvailable"] is True
    assert answer["sets"][first] == (await t.outbox(stream_id))[0]["token"]
    answer = _poll(
        t,
        token,
        stream_id,
        maxEvents=10,
        ack=[first],
        setErrs={second: {"err": "invalid_key", "description": "no such kid"}},
    )
    assert answer == {"sets": {third: (await t.outbox(stream_id))[2]["token"]}, "moreAvailable": False}
    rows = await t.outbox(stream_id)
    assert [(r["jti"], r["status"], r["last_error"]) for r in rows] == [
        (first, "acknowledged", None),
        (second, "refused", "invalid_key: no such kid"),
        (third, "pending", None),
    ]
    assert rows[0]["delivered_at"] is not None
    # Not acknowledged: answered again. An acknowledgement of another stream's jti changes nothing.
    assert list(_poll(t, token, stream_id, ack=["not-a-jti-of-this-stream"])["sets"]) == [third]
    assert _poll(t, token, stream_id, maxEvents=0) == {"sets": {}, "moreAvailable": True}

    # Paused: nothing is answered, and at once (no long poll); enabled again, the SET is.
    t.call("POST", f"{STREAMS}/status", token, json={"stream_id": stream_id, "status": "paused"})
    started = time.monotonic()
    assert _poll(t, token, stream_id, returnImmediately=False) == {"sets": {}, "moreAvailable": False}
    assert time.monotonic() - started < SSF_LONG_POLL_SECONDS
    t.call("POST", f"{STREAMS}/status", token, json={"stream_id": stream_id, "status": "enabled"})
    sets = _poll(t, token, stream_id, ack=[third])["sets"]
    assert [r["event_types"] for r in await t.outbox(stream_id) if r["jti"] in sets] == [
        ["https://schemas.openid.net/secevent/ssf/event-type/stream-updated"],  # queued while paused
        ["https://schemas.openid.net/secevent/ssf/event-type/stream-updated"],
    ]


async def test_a_long_poll_is_answered_when_a_set_is_queued_meanwhile(transmitting: Transmitting) -> None:
    t = transmitting
    token = await t.token("poller", SECURITY_ADMINISTRATOR)
    stream_id = await _poll_stream(t, token)
    async with httpx.AsyncClient(timeout=30) as http:
        started = time.monotonic()
        waiting = asyncio.create_task(
            http.post(
                f"{t.base}{STREAMS}/{stream_id}/poll",
                json={"returnImmediately": False},
                headers={"Authorization": f"Bearer {token}"},
            )
        )
        await asyncio.sleep(1.0)
        assert not waiting.done()
        [jti] = await _announce(t, stream_id)
        answered = await waiting
    assert answered.status_code == 200, answered.text
    assert list(answered.json()["sets"]) == [jti]
    assert 1.0 <= time.monotonic() - started < SSF_LONG_POLL_SECONDS


async def test_clampdown_s_own_receiver_polls_its_own_transmitter_and_verifies_the_sets(
    transmitting: Transmitting, engine: AsyncEngine, tmp_path: Path
) -> None:
    t = transmitting
    token = await t.token("self-receiver", SECURITY_ADMINISTRATOR)
    stream_id = await _poll_stream(t, token, aud=SELF_AUDIENCE)
    config = t.call("GET", STREAMS, token, params={"stream_id": stream_id}).json()
    # The receiver finds the transmitter's keys from its issuer alone: /.well-known/ssf-configuration.
    settings = SsfReceiverSettings(
        issuer=t.issuer, audience=SELF_AUDIENCE, poll_url=config["delivery"]["endpoint_url"], poll_token=token
    )
    events = EventStore(tmp_path / "events.duckdb", HuntingSettings())
    receivers = SignalReceivers({"self": settings}, engine, EventRecorder(), {}, events)
    try:
        assert (
            t.call(
                "POST", f"{STREAMS}/verify", token, json={"stream_id": stream_id, "state": "round"}
            ).status_code
            == 204
        )
        [disabled] = await _announce(t, stream_id)
        poller = SignalPoller(receivers, "self")
        assert await poller.poll_once() is False
        verification = (await t.outbox(stream_id))[0]["jti"]
        assert poller.acks == [verification, disabled] and poller.errors == {}
        await poller.poll_once()  # sends the acknowledgements
    finally:
        await receivers.aclose()
    assert [r["status"] for r in await t.outbox(stream_id)] == ["acknowledged", "acknowledged"]
    async with engine.connect() as conn:
        received = (
            (
                await conn.execute(
                    select(audit_log.c.data)
                    .where(audit_log.c.event == "signal.received")
                    .order_by(audit_log.c.seq)
                )
            )
            .scalars()
            .all()
        )
    assert [(d["jti"], d["issuer"], d["events"]) for d in received] == [
        (verification, t.issuer, [VERIFICATION]),
        (disabled, t.issuer, [ACCOUNT_DISABLED]),
    ]
