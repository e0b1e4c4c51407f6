"""Approval decisions name who decided, through which channel and from where: the API (and the
console, which calls it with its session) and the CLI."""

from __future__ import annotations

import socket
from typing import Any

import httpx
from sqlalchemy import select

from clampdown.db.tables import audit_log
from tests.api import conftest as api_fixtures
from tests.api.conftest import Server
from tests.lab_config import clampdown

server_factory = api_fixtures.server_factory  # a real `clampdown serve`


async def _decisions(server: Server) -> list[dict[str, Any]]:
    query = select(audit_log).where(audit_log.c.event.in_(["approval.approved", "approval.rejected"]))
    async with server.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(query.order_by(audit_log.c.seq))).mappings()]


async def test_decisions_record_the_channel_and_the_source(server_factory) -> None:  # type: ignore[no-untyped-def]
    server: Server = server_factory()
    asker = {"Authorization": f"Bearer {await server.token('asker', 'Global Administrator')}"}
    decider_token = await server.token("decider", "Global Administrator")
    waiting = []
    for target in ("u1", "u2"):
        body = {"type": "okta.suspend_user", "target": target, "reason": "INC-7", "request_approval": True}
        made = httpx.post(f"{server.base}/api/v1/actions", json=body, headers=asker)
        assert made.status_code == 202, made.text
        waiting.append(made.json()["id"])
    approved = httpx.post(
        f"{server.base}/api/v1/approvals",
        json={"approve": True, "action_ids": [waiting[0]], "note": "checked"},
        headers={"Authorization": f"Bearer {decider_token}"},
    )
    assert approved.status_code == 200, approved.text
    rejected = clampdown(
        server.config, "actions", "reject", str(waiting[1]), "--note", "no", token=decider_token
    )
    assert rejected.returncode == 0, rejected.stderr
    rows = await _decisions(server)
    assert [(r["event"], r["actor"], r["data"]["action_id"]) for r in rows] == [
        ("approval.approved", "decider", waiting[0]),
        ("approval.rejected", "decider", waiting[1]),
    ]
    assert (rows[0]["data"]["channel"], rows[0]["data"]["source"], rows[0]["data"]["note"]) == (
        "api", "127.0.0.1", "checked"
    )  # fmt: skip
    assert (rows[1]["data"]["channel"], rows[1]["data"]["source"]) == ("cli", socket.gethostname())
