"""Poll delivery (RFC 8936) by a real `clampdown serve`: it polls the transmitter, takes in the valid
SET, acknowledges it in its next request and sends the refused one's RFC 8935 error in `setErrs`;
a SET delivered again after its acknowledgement is acknowledged, not taken twice."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import tomli_w
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.db.tables import audit_log
from tests.api.conftest import start_server
from tests.lab_config import memory_provider
from tests.signals.conftest import AUDIENCE, Transmitter


@pytest.fixture
def polling(
    engine: AsyncEngine, database_url: str, tmp_path: Path, transmitter: Transmitter
) -> Iterator[str]:
    providers = {
        p: memory_provider(p, tmp_path / f"{p}.db", users=["alice"]) for p in ("ad", "entra", "okta")
    }
    receiver = {
        "issuer": transmitter.issuer, "audience": AUDIENCE, "poll_url": f"{transmitter.base}/poll",
        "poll_token": transmitter.poll_token, "poll_interval_seconds": 0.2,
    }  # fmt: skip
    data = {
        "database": {"url": database_url},
        "server": {"embedded_worker": True},  # polling runs where the embedded worker does
        "engine": {"poll_interval_seconds": 0.05},
        "providers": providers,
        "ssf": {"receivers": {"partner": receiver}},
    }
    config = tmp_path / "clampdown.toml"
    config.write_text(tomli_w.dumps(data))
    proc: subprocess.Popen[bytes]
    proc, base = start_server(config)
    yield base
    proc.terminate()
    proc.wait(15)


def _until(condition: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_polled_sets_are_taken_in_acknowledged_or_refused_with_their_code(
    polling: str, engine: AsyncEngine, transmitter: Transmitter
) -> None:
    t = transmitter
    valid, wrong_audience = t.claims(), t.claims(aud="https://someone-else.test")
    t.queued = {valid["jti"]: t.sign(valid), wrong_audience["jti"]: t.sign(wrong_audience)}
    _until(lambda: any("ack" in p or "setErrs" in p for p in t.polls), "the poll after the SETs")
    answered = next(p for p in t.polls if "ack" in p or "setErrs" in p)
    assert answered["ack"] == [valid["jti"]]
    assert answered["setErrs"][wrong_audience["jti"]]["err"] == "invalid_audience"
    assert answered["maxEvents"] == 100 and answered["returnImmediately"] is True
    # The acknowledgement was lost: the transmitter delivers the SET again; it is acknowledged again.
    seen = len(t.polls)
    t.queued = {valid["jti"]: t.sign(valid)}
    _until(lambda: any(p.get("ack") == [valid["jti"]] for p in t.polls[seen:]), "the second acknowledgement")
    # The stream has no push: a pushed SET is refused.
    headers = {"Content-Type": "application/secevent+jwt", "Authorization": "Bearer x"}
    pushed = httpx.post(
        f"{polling}/api/v1/ssf/receivers/partner/events", content=t.sign(t.claims()), headers=headers
    )
    assert pushed.status_code == 400 and pushed.json()["err"] == "authentication_failed"

    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(audit_log.c.event, audit_log.c.data)
                .where(audit_log.c.event.in_(["signal.received", "signal.refused"]))
                .order_by(audit_log.c.seq)
            )
        ).all()
    assert [(r.event, r.data.get("err"), r.data["delivery"]) for r in rows] == [
        ("signal.received", None, "poll"),
        ("signal.refused", "invalid_audience", "poll"),
        ("signal.refused", "authentication_failed", "push"),
    ]
