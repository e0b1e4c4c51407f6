"""Push delivery of Clampdown's SETs (audit/ssf_out.py SsfPusher, RFC 8935): to Clampdown's own
receiver endpoint, which verifies them with the transmitter's published JWKS (both halves agree);
to a scripted receiver over real HTTP: retried on 503 as Retry-After says, failed at once on a 400
with its err kept, retried on 401; a paused stream's SETs wait, a disabled stream's are dropped."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.ssf_out import SsfPusher
from clampdown.auth.principal import Principal
from clampdown.config import load_settings
from clampdown.db.tables import audit_log, ssf_streams
from clampdown.errors import ConfigError
from clampdown.retry import RetryPolicy
from clampdown.secevents import ACCOUNT_DISABLED, CREDENTIAL_CHANGE, SESSION_REVOKED
from clampdown.services.runtime import open_runtime
from tests.api.conftest import free_port, start_server
from tests.lab_config import clampdown, memory_provider
from tests.signals.sets_out import (
    Transmitting,
    add_stream,
    build_transmitting,
    outbox,
    transmitter_settings,
    verified,
)

BEARER = "clampdown-to-receiver-bearer-0123456789"
AUDIENCE = "https://receiver.test"
PROVIDERS = ("ad", "entra", "okta")


@dataclass
class Scripted:
    """A push receiver on loopback: answers from `answers` in turn (then 202), keeps each request."""

    base: str = ""
    answers: list[tuple[int, dict[str, str], bytes]] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"{self.base}/events"


class _Handler(BaseHTTPRequestHandler):
    scripted: Scripted

    def do_POST(self) -> None:
        s = self.scripted
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        s.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
        status, headers, answer = s.answers.pop(0) if s.answers else (202, {}, b"")
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Scripted]:
    scripted = Scripted()
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (_Handler,), {"scripted": scripted}))
    scripted.base = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield scripted
    server.shutdown()
    server.server_close()


class Later:
    """The system clock, moved on by `shift`: a retry's time comes without waiting for it."""

    def __init__(self) -> None:
        self.shift = timedelta()

    def now(self) -> datetime:
        return datetime.now(UTC) + self.shift


@pytest.fixture
def tx(engine: AsyncEngine, tmp_path: Path) -> Transmitting:
    return build_transmitting(engine, transmitter_settings(tmp_path))


def _pusher(tx: Transmitting, clock: Later | None = None, attempts: int = 5) -> SsfPusher:
    policy = RetryPolicy(max_attempts=attempts, base_seconds=60.0, max_seconds=600.0)
    return SsfPusher(tx.engine, tx.settings, clock=clock or Later(), policy=policy)


async def _contained(tx: Transmitting, admin: Principal) -> None:
    await tx.contain(admin)
    await tx.drain()


async def test_a_set_is_posted_as_rfc8935_says_and_delivered_on_202(
    tx: Transmitting, admin: Principal, receiver: Scripted
) -> None:
    await add_stream(
        tx.engine, "push", endpoint_url=receiver.endpoint, authorization_header=f"Bearer {BEARER}"
    )
    await _contained(tx, admin)
    pusher = _pusher(tx)
    try:
        assert await pusher.deliver_due() == 1
        assert await pusher.deliver_due() == 0  # delivered: not sent again
    finally:
        await pusher.aclose()
    [row] = await outbox(tx.engine)
    assert (row["status"], row["attempts"], row["last_error"]) == ("delivered", 1, None)
    assert row["delivered_at"] is not None
    [(headers, body)] = receiver.requests
    assert headers["content-type"] == "application/secevent+jwt"
    assert headers["accept"] == "application/json"
    assert headers["authorization"] == f"Bearer {BEARER}"
    assert body.decode() == row["token"]
    claims = verified(body.decode(), tx.keys, AUDIENCE)
    assert set(claims["events"]) == {ACCOUNT_DISABLED, CREDENTIAL_CHANGE, SESSION_REVOKED}


async def test_503_is_retried_when_retry_after_says_then_delivered(
    tx: Transmitting, admin: Principal, receiver: Scripted
) -> None:
    await add_stream(tx.engine, "push", endpoint_url=receiver.endpoint)
    receiver.answers = [(503, {"Retry-After": "120"}, b"busy")]
    await _contained(tx, admin)
    clock = Later()
    pusher = _pusher(tx, clock)
    try:
        assert await pusher.deliver_due() == 1
        [row] = await outbox(tx.engine)
        assert (row["status"], row["attempts"]) == ("pending", 1)
        assert "503" in row["last_error"]
        wait = (row["next_attempt_at"] - datetime.now(UTC)).total_seconds()
        assert 110 < wait < 135  # Retry-After, not the policy's 60 s base
        assert await pusher.deliver_due() == 0  # not due yet
        clock.shift = timedelta(seconds=140)
        assert await pusher.deliver_due() == 1
    finally:
        await pusher.aclose()
    [row] = await outbox(tx.engine)
    assert (row["status"], row["attempts"], row["last_error"]) == ("delivered", 2, None)
    assert len(receiver.requests) == 2 and receiver.requests[0][1] == receiver.requests[1][1]


async def test_a_400_fails_at_once_with_the_receivers_err_kept(
    tx: Transmitting, admin: Principal, receiver: Scripted
) -> None:
    await add_stream(tx.engine, "push", endpoint_url=receiver.endpoint)
    refusal = {"err": "invalid_audience", "description": "the aud does not name this receiver"}
    receiver.answers = [(400, {"Content-Type": "application/json"}, json.dumps(refusal).encode())]
    await _contained(tx, admin)
    clock = Later()
    pusher = _pusher(tx, clock)
    try:
        assert await pusher.deliver_due() == 1
        clock.shift = timedelta(days=1)
        assert await pusher.deliver_due() == 0  # never again
    finally:
        await pusher.aclose()
    [row] = await outbox(tx.engine)
    assert row["status"] == "failed"
    assert "invalid_audience: the aud does not name this receiver" in row["last_error"]
    assert len(receiver.requests) == 1


async def test_an_authentication_failure_is_retried_until_the_bound_then_failed(
    tx: Transmitting, admin: Principal, receiver: Scripted
) -> None:
    await add_stream(tx.engine, "push", endpoint_url=receiver.endpoint)
    refusal = json.dumps({"err": "authentication_failed", "description": "bad bearer"}).encode()
    receiver.answers = [(401, {}, b""), (400, {}, refusal), (500, {}, b"")]
    await _contained(tx, admin)
    clock = Later()
    pusher = _pusher(tx, clock, attempts=3)
    try:
        for n in range(3):
            assert await pusher.deliver_due() == 1
            [row] = await outbox(tx.engine)
            assert row["status"] == ("pending" if n < 2 else "failed"), row
            clock.shift += timedelta(hours=1)
        assert await pusher.deliver_due() == 0
    finally:
        await pusher.aclose()
    assert "500" in row["last_error"] and len(receiver.requests) == 3


async def test_a_paused_stream_holds_its_sets_until_enabled_a_disabled_one_drops_them(
    tx: Transmitting, admin: Principal, receiver: Scripted
) -> None:
    await add_stream(tx.engine, "paused", endpoint_url=receiver.endpoint, status="paused")
    await add_stream(tx.engine, "to-disable", endpoint_url=receiver.endpoint)
    await add_stream(tx.engine, "to-delete", endpoint_url=receiver.endpoint)
    await add_stream(tx.engine, "disabled", endpoint_url=receiver.endpoint, status="disabled")
    await _contained(tx, admin)
    assert [r["stream_id"] for r in await outbox(tx.engine)] == ["paused", "to-delete", "to-disable"]
    async with tx.engine.begin() as conn:
        await conn.execute(
            update(ssf_streams).where(ssf_streams.c.stream_id == "to-disable").values(status="disabled")
        )
        await conn.execute(delete(ssf_streams).where(ssf_streams.c.stream_id == "to-delete"))
    pusher = _pusher(tx)
    try:
        assert await pusher.deliver_due() == 0
        assert receiver.requests == []
        rows = {r["stream_id"]: r for r in await outbox(tx.engine)}
        assert rows["paused"]["status"] == "pending"
        assert rows["to-disable"]["status"] == "failed" and "disabled" in rows["to-disable"]["last_error"]
        assert "to-delete" not in rows  # gone with its stream
        async with tx.engine.begin() as conn:
            await conn.execute(
                update(ssf_streams).where(ssf_streams.c.stream_id == "paused").values(status="enabled")
            )
        assert await pusher.deliver_due() == 1
    finally:
        await pusher.aclose()
    statuses = {r["stream_id"]: r["status"] for r in await outbox(tx.engine)}
    assert statuses["paused"] == "delivered" and len(receiver.requests) == 1


async def test_the_running_sender_is_woken_when_an_announcement_commits(
    engine: AsyncEngine, tmp_path: Path, admin: Principal, receiver: Scripted
) -> None:
    tx = build_transmitting(engine, transmitter_settings(tmp_path))
    await add_stream(engine, "push", endpoint_url=receiver.endpoint)
    pusher = _pusher(tx)
    tx.announcer.wake = pusher.notify
    stop = asyncio.Event()
    running = asyncio.create_task(pusher.run(stop, interval=3600))  # it polls once an hour
    try:
        await asyncio.sleep(0.2)  # its first round found nothing: it waits
        await _contained(tx, admin)
        for _ in range(200):
            if receiver.requests:
                break
            await asyncio.sleep(0.02)
        assert len(receiver.requests) == 1
    finally:
        stop.set()
        await running


# -- Both halves: Clampdown's receiver takes what Clampdown's transmitter sends -------------------


async def test_a_clampdown_serve_pushes_to_its_own_receiver_which_verifies_with_the_published_jwks(
    engine: AsyncEngine, database_url: str, tmp_path: Path, admin: Principal
) -> None:
    """One `clampdown serve` is both: its transmitter publishes its metadata and JWKS and runs the
    push sender (job ssf-push); its receiver [ssf.receivers.self] trusts that issuer, fetches the
    metadata and keys from it, and verifies what the sender pushes to it."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    settings = transmitter_settings(tmp_path, issuer=issuer)
    tx = build_transmitting(engine, settings)  # this process contains; the server's sender pushes
    providers = {p: memory_provider(p, tmp_path / f"{p}.db", users=["alice"]) for p in PROVIDERS}
    config = tmp_path / "clampdown.toml"
    config.write_text(tomli_w.dumps({
        "database": {"url": database_url},
        "server": {"embedded_worker": False},
        # Its memory directories are not this process's: its watch would see drift and add steps.
        "watch": {"enabled": False},
        "providers": providers,
        "ssf": {
            "transmitter": {"issuer": issuer, "signing_key_file": settings.signing_key_file},
            "receivers": {"self": {"issuer": issuer, "audience": AUDIENCE, "bearer": BEARER}},
        },
    }))  # fmt: skip
    proc, base = start_server(config, port)
    try:
        endpoint = f"{base}/api/v1/ssf/receivers/self/events"
        await add_stream(engine, "to-self", endpoint_url=endpoint, authorization_header=f"Bearer {BEARER}")
        await _contained(tx, admin)
        for _ in range(600):  # the server's sender polls every half second
            [row] = await outbox(engine)
            if row["status"] != "pending":
                break
            await asyncio.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(15)
    assert (row["status"], row["last_error"]) == ("delivered", None)
    async with engine.connect() as conn:
        query = select(audit_log.c.event, audit_log.c.subject, audit_log.c.data).where(
            audit_log.c.event.in_(["signal.received", "signal.refused"])
        )
        [(event, subject, data)] = (await conn.execute(query)).all()
    assert event == "signal.received", data
    assert data["jti"] == row["jti"] and data["issuer"] == issuer
    assert sorted(data["events"]) == sorted([ACCOUNT_DISABLED, CREDENTIAL_CHANGE, SESSION_REVOKED])
    assert data["resolved"] is True and subject == "alice@memory.test", data


# -- The runtime: [ssf.transmitter] wires the announcer, the sender and the metrics ---------------


def _config(tmp_path: Path, database_url: str, key_file: Path) -> Path:
    config = tmp_path / "transmitter.toml"
    config.write_text(tomli_w.dumps({
        "database": {"url": database_url},
        "providers": {p: memory_provider(p, tmp_path / f"{p}.db") for p in PROVIDERS},
        "ssf": {"transmitter": {"issuer": "https://clampdown.test", "signing_key_file": str(key_file)}},
    }))  # fmt: skip
    return config


async def test_with_a_transmitter_configured_the_runtime_announces_sends_and_counts(
    engine: AsyncEngine, database_url: str, tmp_path: Path, admin: Principal, receiver: Scripted
) -> None:
    settings = load_settings(_config(tmp_path, database_url, tmp_path / "ssf-out-signing.pem"))
    transmitter_settings(tmp_path)  # writes the key
    await add_stream(engine, "push", endpoint_url=receiver.endpoint)
    async with open_runtime(settings) as rt:
        assert rt.ssf_keys is not None and rt.ssf_pusher is not None
        await rt.playbooks.run("contain", "alice", "INC-9", admin)
        await rt.worker().run(until_idle=True)
        try:
            assert await rt.ssf_pusher.deliver_due() == 1
        finally:
            await rt.ssf_pusher.aclose()
        assert (await rt.counts()).ssf_outbox == [("delivered", 1)]
    [(_, body)] = receiver.requests
    claims = verified(body.decode(), rt.ssf_keys, AUDIENCE)
    assert claims["sub_id"] == {"format": "email", "email": "alice@memory.test"}


async def test_a_signing_key_that_cannot_be_read_stops_the_start_and_config_check_names_it(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, database_url, tmp_path / "missing.pem")
    with pytest.raises(ConfigError, match=r"cannot read the signing key .*missing\.pem"):
        async with open_runtime(load_settings(config)):
            pass
    checked = await asyncio.to_thread(clampdown, config, "config", "check")
    assert checked.returncode == 4 and "missing.pem" in checked.stderr, checked.stderr
