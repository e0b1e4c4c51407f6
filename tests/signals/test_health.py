"""The Shared Signals health (signals/health.py) over real rows: SETs taken in by the receiver (one
accepted, one refused, both audited), streams and outbox rows as the transmitter writes them. Each
stream's health follows its rows (ok, failing, backlog, paused, disabled); the transmitter's kids are
those of its key files, a missing key is shown, not raised; only settings:manage sees it."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.principal import PermissionDenied, Principal
from clampdown.config import HuntingSettings, load_settings
from clampdown.db.tables import containment_accounts, containments, ssf_outbox, ssf_streams
from clampdown.errors import InvalidInput
from clampdown.hunting.store import EventStore
from clampdown.permissions import GLOBAL_ADMINISTRATOR, HUNTING_READ, SECURITY_READER
from clampdown.secevents import ACCOUNT_DISABLED, POLL, PUSH, SESSION_REVOKED, generate_key
from clampdown.services.runtime import Runtime, open_runtime
from clampdown.signals.health import SignalsHealthService, signals_health
from clampdown.signals.jwks import well_known_url
from clampdown.signals.receiver import SignalReceivers
from clampdown.views.signals import SignalsHealthView
from tests.lab_config import memory_provider
from tests.signals.conftest import AUDIENCE, CREDENTIAL_COMPROMISE, Transmitter

BEARER = "partner-stream-bearer-token-0123456789"
ISSUER = "https://clampdown.test/tenant"
SET_TYPE = "application/secevent+jwt"
ADMIN = Principal.from_roles("admin", frozenset({GLOBAL_ADMINISTRATOR}), {})
READER = Principal.from_roles("reader", frozenset({SECURITY_READER}), {})


@dataclass
class Setup:
    rt: Runtime
    receivers: SignalReceivers
    kids: tuple[str, ...]


@pytest.fixture
async def setup(engine: AsyncEngine, database_url: str, tmp_path: Path, transmitter: Transmitter
                ) -> AsyncIterator[Setup]:  # fmt: skip
    current, previous = generate_key(str(tmp_path / "ssf.pem")), generate_key(str(tmp_path / "old.pem"))
    people = ["alice", "bob"]
    receivers = {
        "partner": {"issuer": transmitter.issuer, "audience": AUDIENCE, "bearer": BEARER},
        "quiet": {
            "issuer": "https://quiet.test/",
            "audience": AUDIENCE,
            "poll_url": "https://quiet.test/poll",
        },
    }
    sending = {"issuer": ISSUER, "signing_key_file": str(tmp_path / "ssf.pem"),
               "previous_key_files": [str(tmp_path / "old.pem")]}  # fmt: skip
    data = {
        "database": {"url": database_url},
        "providers": {
            p: memory_provider(p, tmp_path / f"{p}.db", users=people) for p in ("ad", "entra", "okta")
        },
        "ssf": {"receivers": receivers, "transmitter": sending},
    }
    config = tmp_path / "clampdown.toml"
    config.write_text(tomli_w.dumps(data))
    async with open_runtime(load_settings(config)) as rt:
        store = EventStore(tmp_path / "events.duckdb", HuntingSettings())
        receivers = SignalReceivers.from_runtime(rt, store)
        yield Setup(rt, receivers, (current.kid, previous.kid))
        await receivers.aclose()


def _stream(stream_id: str, now: datetime, **changes: Any) -> dict[str, Any]:
    row = {
        "stream_id": stream_id, "owner": "partner-app", "description": f"{stream_id} of the partner",
        "audience": ["https://partner.test/"], "events_requested": [ACCOUNT_DISABLED, SESSION_REVOKED],
        "delivery_method": PUSH, "endpoint_url": f"https://partner.test/{stream_id}", "status": "enabled",
        "status_reason": None, "created_at": now - timedelta(days=1), "updated_at": now, "verified_at": None,
    }  # fmt: skip
    return {**row, **changes}


def _set(stream_id: str, n: int, created: datetime, status: str, **changes: Any) -> dict[str, Any]:
    row = {
        "stream_id": stream_id, "jti": f"{stream_id}-{n}", "event_types": [ACCOUNT_DISABLED],
        "subject": "bob@memory.test", "containment_id": None, "token": "x.y.z", "status": status,
        "attempts": 0 if status == "pending" else 1, "next_attempt_at": created, "created_at": created,
        "delivered_at": created + timedelta(seconds=1) if status in ("delivered", "acknowledged") else None,
        "last_error": None,
    }  # fmt: skip
    return {**row, **changes}


async def _outbox(engine: AsyncEngine, now: datetime) -> None:
    ago = lambda minutes: now - timedelta(minutes=minutes)  # noqa: E731
    streams = [
        _stream("s-ok", now, verified_at=ago(30)),
        _stream("s-failing", now),
        _stream("s-backlog", now, delivery_method=POLL, endpoint_url=None),
        _stream("s-retrying", now),
        _stream("s-paused", now, status="paused", status_reason="the receiver asked to pause"),
        _stream("s-disabled", now, status="disabled", status_reason=None),
    ]
    sets = [
        _set("s-ok", 1, ago(20), "delivered"),
        _set("s-ok", 2, ago(1), "pending"),  # just queued: not a backlog yet
        _set("s-failing", 1, ago(50), "delivered"),
        _set("s-failing", 2, ago(40), "failed", attempts=8, last_error="HTTP 503 from https://partner.test"),
        _set("s-backlog", 1, ago(30), "acknowledged"),
        _set("s-backlog", 2, ago(10), "pending"),  # nobody polled for 10 minutes
        _set("s-retrying", 1, ago(2), "pending", attempts=2, last_error="connection refused"),
        _set("s-paused", 1, ago(15), "pending"),
        _set("s-ok", 3, ago(0.5), "delivered", subject="alice@memory.test", containment_id=None,
             event_types=[SESSION_REVOKED, ACCOUNT_DISABLED]),
        _set("s-ok", 4, ago(0.4), "delivered", subject="somebody", containment_id=7),
    ]  # fmt: skip
    async with engine.begin() as conn:
        await conn.execute(insert(ssf_streams), streams)
        await conn.execute(insert(containments), [{
            "id": 7, "person": "alice", "playbook": "contain", "requested_by": "admin", "reason": "INC-1",
            "state": "active", "created_at": ago(5), "accounts": [],
        }])  # fmt: skip
        covered = {"containment_id": 7, "account_id": "okta-alice-id"}
        await conn.execute(insert(containment_accounts), [covered])
        await conn.execute(insert(ssf_outbox), sets)


async def test_the_health_shows_receivers_streams_and_the_last_sets(
    setup: Setup, transmitter: Transmitter
) -> None:
    t, receivers = transmitter, setup.receivers
    accepted = await receivers.receive("partner", f"Bearer {BEARER}", SET_TYPE, t.sign(t.claims()).encode())
    assert accepted.resolution.resolved
    expired = t.sign(t.claims(iat=int(time.time()) - 600))
    with pytest.raises(InvalidInput):
        await receivers.receive("partner", f"Bearer {BEARER}", SET_TYPE, expired.encode())
    now = datetime.now(UTC)
    await _outbox(setup.rt.engine, now)

    found = await SignalsHealthService(setup.rt).health(ADMIN)

    partner, quiet = found.receivers
    assert (partner.name, partner.issuer, partner.delivery) == ("partner", t.issuer, "push")
    assert partner.configuration_url == f"{t.base}/.well-known/ssf-configuration/issuer"
    assert (partner.accepted_24h, partner.refused_24h) == (1, 1)
    assert partner.last_accepted is not None and partner.last_refused is not None
    assert partner.last_accepted.event_types == (CREDENTIAL_COMPROMISE,)
    assert partner.last_accepted.subject == "alice@memory.test" and partner.last_accepted.resolved
    assert partner.last_refused.err == "invalid_request"
    assert "outside the accepted window" in (partner.last_refused.description or "")
    assert (quiet.delivery, quiet.accepted_24h, quiet.refused_24h) == ("poll", 0, 0)
    assert quiet.last_accepted is None and quiet.last_refused is None
    assert [(e.outcome, e.receiver) for e in found.received] == [("refused", "partner"),
                                                                 ("accepted", "partner")]  # fmt: skip

    tx = found.transmitter
    assert tx is not None
    assert tx.metadata_url == "https://clampdown.test/.well-known/ssf-configuration/tenant"
    assert tx.kids == setup.kids and tx.key_problem is None
    health = {s.stream_id: s for s in tx.streams}
    assert {k: (s.health, s.delivery) for k, s in health.items()} == {
        "s-ok": ("ok", "push"), "s-failing": ("failing", "push"), "s-backlog": ("backlog", "poll"),
        "s-retrying": ("failing", "push"), "s-paused": ("paused", "push"), "s-disabled": ("disabled", "push"),
    }  # fmt: skip
    failing = health["s-failing"]
    assert failing.last_error == "HTTP 503 from https://partner.test"
    assert failing.counts == {"delivered": 1, "failed": 1}
    assert failing.health_reason == "the last delivery failed"
    ok = health["s-ok"]
    assert ok.counts == {"delivered": 3, "pending": 1} and ok.last_error is None
    assert ok.last_delivered_at is not None and abs((ok.last_delivered_at - now).total_seconds() - (-23)) < 2
    assert ok.oldest_pending_seconds is not None and 55 < ok.oldest_pending_seconds < 120
    assert health["s-backlog"].oldest_pending_seconds is not None
    assert health["s-backlog"].oldest_pending_seconds > 590
    assert health["s-paused"].health_reason == "the receiver asked to pause"
    assert health["s-disabled"].counts == {}
    assert [s.jti for s in found.sent][:3] == ["s-ok-4", "s-ok-3", "s-paused-1"]
    # One view for the API, the console and --json.
    view = SignalsHealthView.model_validate(found).model_dump(mode="json")
    shown = {s["stream_id"]: s["health"] for s in view["transmitter"]["streams"]}
    assert shown["s-failing"] == "failing" and shown["s-backlog"] == "backlog"
    assert view["receivers"][0]["last_refused"]["err"] == "invalid_request"


async def test_the_sets_sent_about_a_person_are_found_by_name_or_containment(setup: Setup) -> None:
    await _outbox(setup.rt.engine, datetime.now(UTC))
    service = SignalsHealthService(setup.rt)
    sent = await service.sent_about(ADMIN, HUNTING_READ, ["Alice@Memory.test"], ["okta-alice-id"])
    assert [(s.jti, s.subject, s.containment_id) for s in sent] == [
        ("s-ok-4", "somebody", 7), ("s-ok-3", "alice@memory.test", None)
    ]  # fmt: skip
    assert sent[1].event_types == (SESSION_REVOKED, ACCOUNT_DISABLED)
    assert await service.sent_about(ADMIN, HUNTING_READ, ["carol@memory.test"], ["carol-id"]) == []


async def test_only_settings_managers_see_it_and_a_missing_key_is_shown(setup: Setup, tmp_path: Path) -> None:
    with pytest.raises(PermissionDenied, match="settings:manage"):
        await SignalsHealthService(setup.rt).health(READER)
    scoped = Principal.from_roles("scoped", frozenset({GLOBAL_ADMINISTRATOR}), {}, scope=frozenset({"okta"}))
    with pytest.raises(PermissionDenied, match="every directory"):
        await SignalsHealthService(setup.rt).health(scoped)
    settings = setup.rt.settings.ssf
    assert settings.transmitter is not None
    gone = settings.transmitter.model_copy(update={"signing_key_file": str(tmp_path / "gone.pem")})
    broken = settings.model_copy(update={"transmitter": gone})
    found = await signals_health(setup.rt.engine, broken, datetime.now(UTC))
    assert found.transmitter is not None and found.transmitter.kids == ()
    assert "gone.pem" in (found.transmitter.key_problem or "")
    none = settings.model_copy(update={"transmitter": None})
    assert (await signals_health(setup.rt.engine, none, datetime.now(UTC))).transmitter is None
    assert well_known_url("https://cd.example") == "https://cd.example/.well-known/ssf-configuration"
