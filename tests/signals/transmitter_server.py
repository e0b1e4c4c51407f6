"""A real `clampdown serve` that is a Shared Signals transmitter ([ssf.transmitter] with a key made
by secevents.generate_key and one declared push stream), and API users to be its receivers."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.service import AuthService
from clampdown.db.tables import audit_log, ssf_outbox
from clampdown.secevents import generate_key
from clampdown.store.auth import AuthStore
from tests.api.conftest import free_port, start_server
from tests.lab_config import memory_provider

DECLARED_ENDPOINT = "https://okta.example.test/security/api/v1/security-events"
DECLARED_AUDIENCE = "https://okta.example.test"
VERIFY_INTERVAL = 3


@dataclass
class Transmitting:
    base: str
    engine: AsyncEngine
    key_file: Path
    config: dict[str, Any]

    @property
    def issuer(self) -> str:
        return self.base

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def token(self, username: str, *roles: str) -> str:
        """A new API user with these roles and its token."""
        auth = AuthService(AuthStore(self.engine))
        await auth.create_user(username, frozenset(roles), "correct horse battery")
        return (await auth.create_token(username, "test", None)).token

    def call(
        self, method: str, path: str, token: str | None, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        sent = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
        return httpx.request(method, f"{self.base}{path}", headers=sent, timeout=30, **kwargs)

    async def outbox(self, stream_id: str) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(ssf_outbox).where(ssf_outbox.c.stream_id == stream_id).order_by(ssf_outbox.c.id)
            )
            return [dict(r) for r in rows.mappings()]

    async def audit(self, prefix: str = "ssf.") -> list[tuple[str, str, dict[str, Any]]]:
        """(event, actor, data) of the audit events whose name starts with `prefix`, in order."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(audit_log.c.event, audit_log.c.actor, audit_log.c.data)
                .where(audit_log.c.event.startswith(prefix))
                .order_by(audit_log.c.seq)
            )
            return [(r.event, r.actor, r.data) for r in rows]


def transmitter_config(database_url: str, tmp_path: Path, port: int, **transmitter: Any) -> dict[str, Any]:
    key_file = tmp_path / "ssf-signing.pem"
    if not key_file.exists():
        generate_key(str(key_file))
    providers = {
        p: memory_provider(p, tmp_path / f"{p}.db", users=["alice"]) for p in ("ad", "entra", "okta")
    }
    settings: dict[str, Any] = {
        "issuer": f"http://127.0.0.1:{port}",
        "signing_key_file": str(key_file),
        "min_verification_interval_seconds": VERIFY_INTERVAL,
        "streams": {"okta": {"endpoint_url": DECLARED_ENDPOINT, "audience": DECLARED_AUDIENCE}},
        **transmitter,
    }
    return {
        "database": {"url": database_url},
        "server": {"embedded_worker": False},
        "providers": providers,
        "ssf": {"transmitter": settings},
    }


@pytest.fixture
def transmitting(engine: AsyncEngine, database_url: str, tmp_path: Path) -> Iterator[Transmitting]:
    port = free_port()
    data = transmitter_config(database_url, tmp_path, port)
    config = tmp_path / "clampdown.toml"
    config.write_text(tomli_w.dumps(data))
    proc: subprocess.Popen[bytes]
    proc, base = start_server(config, port)
    yield Transmitting(base, engine, tmp_path / "ssf-signing.pem", data)
    proc.terminate()
    proc.wait(15)
