"""okta.expire_password with a temporary password: Okta's temporary password reaches its requester
once, through the same sealed one-time secret as AD's random password (POST
/api/v1/actions/{id}/secret), and is in no table, audit entry or log line. End to end: a real
`clampdown serve` with its worker, acting on the emulated org, on both databases."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tomli_w
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.service import AuthService
from clampdown.db.tables import actions, audit_log
from clampdown.model import SEALED_DETAIL
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.sealing import new_sealing_key
from clampdown.store.auth import AuthStore
from tests.api.conftest import start_server
from tests.okta.org import API_TOKEN, Org

BOB = "bob.nguyen@lab.example.test"


@pytest.fixture
def served(org: Org, database_url: str, engine: AsyncEngine, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    okta = {
        "org_url": org.url,
        "api_token": API_TOKEN,
        "expire_with_temp_password": True,
        "hand_temp_password_to_caller": True,
    }
    data = {
        "database": {"url": database_url},
        "server": {"embedded_worker": True},
        "engine": {"poll_interval_seconds": 0.05},
        "providers": {"okta": okta},
    }
    config = tmp_path / "clampdown.toml"
    config.write_text(tomli_w.dumps(data))
    proc, base = start_server(config)
    yield base, config
    proc.terminate()
    proc.wait(15)


async def _token(engine: AsyncEngine, username: str) -> str:
    auth = AuthService(AuthStore(engine))
    await auth.create_user(username, frozenset({GLOBAL_ADMINISTRATOR}), "correct horse battery")
    return (await auth.create_token(username, "test", None)).token


async def test_the_temporary_password_reaches_its_requester_once(
    served: tuple[str, Path], engine: AsyncEngine, org: Org
) -> None:
    base, config = served
    alice = {"Authorization": f"Bearer {await _token(engine, 'alice')}"}
    bob = {"Authorization": f"Bearer {await _token(engine, 'bob')}"}
    body = {"type": "okta.expire_password", "target": BOB, "reason": "INC-16"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        made = await client.post("/api/v1/actions", json=body, headers=alice)
        assert made.status_code == 202, made.text
        action_id, key = made.json()["id"], made.json()["secret_key"]
        assert key
        for _ in range(200):
            current = (await client.get(f"/api/v1/actions/{action_id}", headers=alice)).json()
            if current["status"] in ("completed", "failed"):
                break
            await asyncio.sleep(0.1)
        assert current["status"] == "completed", current
        assert "sealed for alice" in current["result"]["message"]
        wrong = await client.post(
            f"/api/v1/actions/{action_id}/secret",
            json={"secret_key": new_sealing_key().private},
            headers=alice,
        )
        assert wrong.status_code == 422
        other = await client.post(
            f"/api/v1/actions/{action_id}/secret", json={"secret_key": key}, headers=bob
        )
        assert other.status_code == 403
        opened = await client.post(
            f"/api/v1/actions/{action_id}/secret", json={"secret_key": key}, headers=alice
        )
        assert opened.status_code == 200, opened.text
        password = opened.json()["secret"]
        again = await client.post(
            f"/api/v1/actions/{action_id}/secret", json={"secret_key": key}, headers=alice
        )
        assert again.status_code == 409
        shown = (await client.get(f"/api/v1/actions/{action_id}", headers=alice)).text
    record = org.user(BOB)
    assert record.check_password(password) and record.status == "PASSWORD_EXPIRED" and record.sessions == 0
    assert password not in shown
    async with engine.connect() as conn:
        rows = [*(await conn.execute(select(actions))).all(), *(await conn.execute(select(audit_log))).all()]
    stored = "\n".join(repr(tuple(r)) for r in rows)
    assert password not in stored and SEALED_DETAIL not in stored
    for log in config.parent.glob("serve-*.log"):
        assert password not in log.read_text(errors="replace")
