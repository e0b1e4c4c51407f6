"""Webhooks: every event delivered across a receiver outage, each signed and verifiable."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.checkpoint import Checkpoint
from clampdown.audit.webhooks import WebhookDispatcher
from clampdown.config import load_settings
from clampdown.db.tables import audit_log, webhook_deliveries
from clampdown.services.runtime import open_runtime
from tests.api.conftest import free_port
from tests.lab_config import memory_provider, write_config

SECRET = "whsec-test-31337"
CHECKPOINT_KEY = "audit-checkpoint-key-for-tests-0123456789"


class Later:
    """The system clock, shifted: retries whose backoff has not run out yet are due."""

    def __init__(self, shift: timedelta) -> None:
        self.shift = shift

    def now(self) -> datetime:
        return datetime.now(UTC) + self.shift


class Receiver:
    """A SIEM-like receiver on loopback that checks every signature."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: dict[str, dict[str, object]] = {}
        self.bad_signatures = 0
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stamp = self.headers["X-Clampdown-Timestamp"]
                expected = hmac.new(SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(self.headers["X-Clampdown-Signature"], f"sha256={expected}"):
                    receiver.bad_signatures += 1
                    self.send_response(401)
                else:
                    receiver.received[self.headers["X-Clampdown-Delivery"]] = json.loads(body)
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


async def test_delivery_survives_a_receiver_outage(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    config = write_config(
        tmp_path / "c.toml", database_url, providers={"okta": memory_provider("okta", tmp_path / "o.db")}
    )
    text = config.read_text() + (
        f'\n[[webhooks]]\nname = "siem"\nurl = "http://127.0.0.1:{port}/hook"\nsecret = "{SECRET}"\n'
        'events = ["action.*"]\n'
    )
    config.write_text(text)
    settings = load_settings(config)
    async with open_runtime(settings) as rt:
        from clampdown.auth.principal import Principal
        from clampdown.permissions import GLOBAL_ADMINISTRATOR

        admin = Principal.from_roles("admin", frozenset({GLOBAL_ADMINISTRATOR}), {})
        bulk = await rt.actions.request_bulk("okta.suspend_user", ["u1", "u2", "u3"], "INC-5", admin)
        await rt.worker().run(until_drained=True)
        dispatcher = WebhookDispatcher(rt.engine, settings.webhooks)
        # The receiver is down: every attempt fails, nothing is lost.
        assert await dispatcher.deliver_due() == 6  # 3 requested + 3 completed
        async with rt.engine.connect() as conn:
            rows = (await conn.execute(select(webhook_deliveries))).mappings().all()
        assert {r["status"] for r in rows} == {"pending"} and all(r["last_error"] for r in rows)
        receiver = Receiver(port)
        receiver.start()
        try:
            async with rt.engine.begin() as conn:  # the retry is due now instead of after its backoff
                await conn.execute(
                    webhook_deliveries.update().values(
                        next_attempt_at=rt.store.engine.dialect and rows[0]["created_at"]
                    )
                )
            stop = asyncio.Event()
            task = asyncio.create_task(dispatcher.run(stop, interval=0.05))
            for _ in range(100):
                if len(receiver.received) == 6:
                    break
                await asyncio.sleep(0.1)
            stop.set()
            await task
        finally:
            receiver.stop()
        assert receiver.bad_signatures == 0
        events = sorted((p["event"], p["data"]["action_id"]) for p in receiver.received.values())  # type: ignore[index]
        ids = [a.id for a in bulk.actions]
        assert events == sorted(
            [("action.requested", i) for i in ids] + [("action.completed", i) for i in ids]
        )
        async with rt.engine.connect() as conn:
            rows = (await conn.execute(select(webhook_deliveries))).mappings().all()
        assert {r["status"] for r in rows} == {"delivered"} and {r["attempts"] for r in rows} == {2}


async def test_an_audit_checkpoint_reaches_the_webhook_signed(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    port = free_port()
    config = write_config(
        tmp_path / "c.toml", database_url, providers={"okta": memory_provider("okta", tmp_path / "o.db")}
    )
    (tmp_path / "audit.key").write_text(CHECKPOINT_KEY)
    config.write_text(
        config.read_text()
        + f'\n[audit]\ncheckpoint_key = {{file = "{tmp_path / "audit.key"}"}}\n'
        + f'\n[[webhooks]]\nname = "siem"\nurl = "http://127.0.0.1:{port}/hook"\nsecret = "{SECRET}"\n'
    )
    settings = load_settings(config)
    receiver = Receiver(port)
    receiver.start()
    try:
        async with open_runtime(settings) as rt:
            from clampdown.auth.principal import Principal
            from clampdown.permissions import GLOBAL_ADMINISTRATOR

            admin = Principal.from_roles("admin", frozenset({GLOBAL_ADMINISTRATOR}), {})
            await rt.actions.request("okta.suspend_user", "u1", "INC-6", admin)
            assert rt.anchor is not None
            made = await rt.anchor.checkpoint()
            assert made is not None and made.entries == 1
            assert await WebhookDispatcher(rt.engine, settings.webhooks).deliver_due() == 2
    finally:
        receiver.stop()
    assert receiver.bad_signatures == 0
    bodies = {str(p["event"]): p for p in receiver.received.values()}
    assert set(bodies) == {"action.requested", "audit.checkpoint"}
    copy = Checkpoint.from_json(bodies["audit.checkpoint"])
    assert copy == made and copy.signature_holds(CHECKPOINT_KEY.encode())
    async with engine.connect() as conn:  # the checkpoint describes the chain: it is not an entry in it
        assert (await conn.execute(select(func.count()).select_from(audit_log))).scalar_one() == 1
