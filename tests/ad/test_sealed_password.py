"""Issue 14 #13: the random password of ad.force_password_reset reaches its requester once, sealed
to a one-time key only the request's answer carries; it is in no table, audit entry, webhook or
log line. End to end against the lab DC: the API and `clampdown act --wait`, on both databases,
and a bind with the handed-over password proves it is the one set."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import tomli_w
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.service import AuthService
from clampdown.connectors.ad import ADConnector, ADSettings
from clampdown.connectors.ad.failures import bind_data_code
from clampdown.db.tables import actions, audit_log, webhook_deliveries
from clampdown.model import SEALED_DETAIL, ActionContext
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.sealing import new_sealing_key, open_sealed
from clampdown.store.auth import AuthStore
from clampdown_lab.samba import SambaLab
from tests.ad.ad_checks import ScratchUser, bind_as
from tests.api.conftest import start_server
from tests.lab_config import clampdown

HANDING = {"set_random_password": True, "hand_new_password_to_caller": True}
MUST_CHANGE = "773"  # the bind is refused only because the password must be changed: it is right


@pytest.fixture
def served(
    lab: SambaLab, database_url: str, engine: AsyncEngine, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    """A real `clampdown serve` with its worker, acting on the lab DC, handing passwords over."""
    data = {
        "database": {"url": database_url},
        "server": {"embedded_worker": True},
        "engine": {"poll_interval_seconds": 0.05},
        "providers": {"ad": {**lab.provider_config(), **HANDING}},
        "webhooks": [{"name": "soc", "url": "http://127.0.0.1:9/hook", "secret": "hook-secret"}],
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


async def _stored_text(engine: AsyncEngine) -> str:
    """Everything the database holds about actions, the audit chain and webhooks, as text."""
    async with engine.connect() as conn:
        rows = [
            *(await conn.execute(select(actions))).all(),
            *(await conn.execute(select(audit_log))).all(),
            *(await conn.execute(select(webhook_deliveries))).all(),
        ]
    return "\n".join(repr(tuple(r)) for r in rows)


async def test_the_api_hands_the_new_password_to_its_requester_once(
    served: tuple[str, Path], engine: AsyncEngine, lab: SambaLab, make_user: Callable[..., ScratchUser]
) -> None:
    base, config = served
    user = make_user()
    alice = {"Authorization": f"Bearer {await _token(engine, 'alice')}"}
    bob = {"Authorization": f"Bearer {await _token(engine, 'bob')}"}
    body = {"type": "ad.force_password_reset", "target": user.sam, "reason": "INC-13"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        made = await client.post("/api/v1/actions", json=body, headers=alice)
        assert made.status_code == 202, made.text
        assert made.headers["cache-control"] == "no-store"
        action_id, key = made.json()["id"], made.json()["secret_key"]
        assert key and len(key) == 43
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
        assert wrong.status_code == 422 and wrong.json()["error"]["message"].startswith("secret_key: ")
        other = await client.post(
            f"/api/v1/actions/{action_id}/secret", json={"secret_key": key}, headers=bob
        )
        assert other.status_code == 403, other.text
        opened = await client.post(
            f"/api/v1/actions/{action_id}/secret", json={"secret_key": key}, headers=alice
        )
        assert opened.status_code == 200, opened.text
        assert opened.headers["cache-control"] == "no-store"
        password = opened.json()["secret"]
        again = await client.post(
            f"/api/v1/actions/{action_id}/secret", json={"secret_key": key}, headers=alice
        )
        assert again.status_code == 409 and "opened already" in again.json()["error"]["message"]
        shown = [
            (await client.get(f"/api/v1/actions/{action_id}", headers=alice)).text,
            (await client.get("/api/v1/actions/export", params={"format": "json"}, headers=alice)).text,
            (await client.get("/api/v1/actions/export", params={"format": "csv"}, headers=alice)).text,
        ]
    assert len(password) >= 20
    bound = bind_as(lab, user.upn, password)
    assert bound["result"] == 49 and bind_data_code(bound["message"]) == MUST_CHANGE
    assert bind_data_code(bind_as(lab, user.upn, user.password)["message"]) == "52e"  # the old one is out
    stored = await _stored_text(engine)
    assert password not in stored and SEALED_DETAIL not in stored  # the ciphertext went with the opening
    for text in shown:
        assert password not in text
    for log in config.parent.glob("serve-*.log"):
        assert password not in log.read_text(errors="replace")


async def test_act_wait_prints_the_new_password_once(
    served: tuple[str, Path], engine: AsyncEngine, lab: SambaLab, make_user: Callable[..., ScratchUser]
) -> None:
    _, config = served
    user = make_user()
    token = await _token(engine, "carol")
    done = await asyncio.to_thread(
        clampdown, config, "act", "ad.force_password_reset", user.sam, "-r", "INC-13", "--wait", token=token
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    lines = [
        ln for ln in done.stdout.splitlines() if ln.startswith("new password (shown once, not stored): ")
    ]
    assert len(lines) == 1, done.stdout
    password = lines[0].split(": ", 1)[1].strip()
    bound = bind_as(lab, user.upn, password)
    assert bound["result"] == 49 and bind_data_code(bound["message"]) == MUST_CHANGE
    stored = await _stored_text(engine)
    assert password not in stored and SEALED_DETAIL not in stored


async def test_the_connector_returns_the_password_only_sealed(
    ad_settings: ADSettings, lab: SambaLab, make_user: Callable[..., ScratchUser]
) -> None:
    user, other = make_user(), make_user()
    connector = ADConnector(ad_settings.model_copy(update=HANDING))
    key = new_sealing_key()
    try:
        sealed_to = ActionContext(action_id=7, reason="test", requested_by="pytest", seal_to=key.public)
        outcome = await connector.force_password_reset(await connector.resolve_user(user.sam), sealed_to)
        unsealed = ActionContext(action_id=8, reason="test", requested_by="pytest")
        nobody = await connector.force_password_reset(await connector.resolve_user(other.sam), unsealed)
    finally:
        await connector.aclose()
    sealed = str(outcome.to_json()["details"][SEALED_DETAIL])
    password = open_sealed(key.private, sealed, "action:7")
    assert password not in repr(outcome) and password not in str(outcome.to_json())
    assert bind_data_code(bind_as(lab, user.upn, password)["message"]) == MUST_CHANGE
    with pytest.raises(Exception, match="secret_key"):
        open_sealed(key.private, sealed, "action:8")  # bound to its action
    assert SEALED_DETAIL not in nobody.details and "handed to nobody" in nobody.message
    assert not any(isinstance(v, str) and len(v) == 24 for v in nobody.details.values())
