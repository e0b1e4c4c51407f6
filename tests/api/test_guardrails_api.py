"""Playbooks, approvals, dry-runs, timed release and the audit chain through the REST API."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx

from clampdown.permissions import GLOBAL_ADMINISTRATOR, SECURITY_READER
from tests.api.conftest import Server


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _settle(client: httpx.AsyncClient, ids: list[int], statuses: set[str]) -> list[dict[str, object]]:
    for _ in range(150):
        found = [(await client.get(f"/api/v1/actions/{i}")).json() for i in ids]
        if {a["status"] for a in found} <= statuses:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"actions did not reach {statuses}: {found}")


async def test_contain_plan_approve_release_and_audit(server_factory) -> None:  # type: ignore[no-untyped-def]
    server: Server = server_factory(embedded_worker=True)
    lead = await server.token("lead", GLOBAL_ADMINISTRATOR)
    second = await server.token("second", GLOBAL_ADMINISTRATOR)
    reader = await server.token("reader", SECURITY_READER)
    body = {"target": "mallory@example.test", "reason": "INC-100"}
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
        dry = await client.post(
            "/api/v1/playbooks/contain/run", json={**body, "dry_run": True}, headers=_auth(lead)
        )
        assert dry.status_code == 202 and dry.json()["batch_id"] is None
        assert {p["provider"] for p in dry.json()["plan"]} == {"ad", "entra", "okta"}
        assert (await client.get("/api/v1/actions", headers=_auth(lead))).json()["items"] == []

        asked = await client.post(
            "/api/v1/playbooks/contain/run", json={**body, "request_approval": True}, headers=_auth(lead)
        )
        run = asked.json()
        assert {a["status"] for a in run["actions"]} == {"awaiting_approval"}
        waiting = (await client.get("/api/v1/approvals", headers=_auth(second))).json()
        assert len(waiting) == len(run["actions"])
        own = await client.post("/api/v1/approvals", json={"approve": True, "batch_id": run["batch_id"]},
                                headers=_auth(lead))  # fmt: skip
        assert own.status_code == 409
        denied = await client.post("/api/v1/approvals", json={"approve": True, "batch_id": run["batch_id"]},
                                   headers=_auth(reader))  # fmt: skip
        assert denied.status_code == 403
        ok = await client.post("/api/v1/approvals", json={"approve": True, "batch_id": run["batch_id"]},
                               headers=_auth(second))  # fmt: skip
        assert ok.status_code == 200
        client.headers.update(_auth(lead))
        done = await _settle(client, [a["id"] for a in run["actions"]], {"completed"})
        assert {a["approved_by"] for a in done} == {"second"}

        released = await client.post("/api/v1/playbooks/release/run", json={**body, "reason": "cleared"})
        assert released.status_code == 202
        undone = await _settle(client, [a["id"] for a in released.json()["actions"]], {"completed"})
        assert {a["type"] for a in undone} == {
            "ad.enable_user", "ad.clear_password_reset", "ad.restore_privileged_groups", "entra.enable_user",
            "entra.dismiss_user_risk", "entra.enable_devices", "okta.unsuspend_user",
        }  # fmt: skip

        until = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
        timed = await client.post(
            "/api/v1/actions",
            json={"type": "okta.suspend_user", "target": "trent", "reason": "x", "until": until},
        )
        assert timed.status_code == 202
        page = (await client.get("/api/v1/actions", params={"target": "trent"})).json()["items"]
        undo = next(a for a in page if a["undoes_action_id"] == timed.json()["id"])
        assert undo["type"] == "okta.unsuspend_user" and undo["status"] == "queued"
        finished = await _settle(client, [undo["id"]], {"completed"})
        assert finished[0]["started_at"] >= until

        audit = await client.get("/api/v1/audit/verify")
        assert audit.status_code == 200 and audit.json()["ok"] and audit.json()["entries"] > 20
        assert (await client.get("/api/v1/audit/verify", headers=_auth(reader))).status_code == 403
