"""The actions API end to end: idempotency under concurrency, paging, export, undo, cancel,
errors that name the field, and console sessions with CSRF."""

from __future__ import annotations

import asyncio
import csv
import io

import httpx

from clampdown.model import ActionFilter
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.store.actions import ActionStore
from tests.api.conftest import Server


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_same_idempotency_key_twenty_times_concurrently_is_one_action(server: Server) -> None:
    token = await server.token("soar", GLOBAL_ADMINISTRATOR)
    body = {"type": "okta.suspend_user", "target": "mallory", "reason": "SOAR playbook 7"}
    headers = {**_auth(token), "Idempotency-Key": "soar-incident-7-mallory"}
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as client:
        answers = await asyncio.gather(
            *(client.post("/api/v1/actions", json=body, headers=headers) for _ in range(20))
        )
    assert {r.status_code for r in answers} == {202}
    assert len({r.json()["id"] for r in answers}) == 1
    assert len(await ActionStore(server.engine).list_actions(ActionFilter())) == 1


async def test_paging_filters_and_export(server: Server) -> None:
    token = await server.token("lead", GLOBAL_ADMINISTRATOR)
    async with httpx.AsyncClient(base_url=server.base, headers=_auth(token)) as client:
        bulk = await client.post(
            "/api/v1/actions/bulk",
            json={"type": "ad.disable_user", "targets": [f"u{i}" for i in range(25)], "reason": "INC-5"},
        )
        assert bulk.status_code == 202
        batch = bulk.json()["batch_id"]
        await client.post("/api/v1/actions", json={"type": "okta.suspend_user", "target": "z", "reason": "x"})
        seen, cursor = [], None
        while True:
            params = {"batch": batch, "limit": 10, **({"cursor": cursor} if cursor else {})}
            page = (await client.get("/api/v1/actions", params=params)).json()
            seen += [a["id"] for a in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert len(seen) == 25 == len(set(seen)) and seen == sorted(seen, reverse=True)
        exported = await client.get(
            "/api/v1/actions/export", params={"format": "csv", "type": "ad.disable_user"}
        )
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert exported.headers["content-type"].startswith("text/csv")
        assert len(rows) == 25 and {r["batch_id"] for r in rows} == {batch}
        as_json = (await client.get("/api/v1/actions/export", params={"format": "json"})).json()
        assert len(as_json) == 26
        bad = await client.get("/api/v1/actions", params={"status": "done"})
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "query.status.0"


async def test_undo_and_cancel_through_the_api(server_factory) -> None:  # type: ignore[no-untyped-def]
    server: Server = server_factory(embedded_worker=True)
    token = await server.token("lead", GLOBAL_ADMINISTRATOR)
    async with httpx.AsyncClient(base_url=server.base, headers=_auth(token)) as client:
        made = (
            await client.post(
                "/api/v1/actions", json={"type": "okta.suspend_user", "target": "o", "reason": "x"}
            )
        ).json()
        for _ in range(100):
            current = (await client.get(f"/api/v1/actions/{made['id']}")).json()
            if current["status"] == "completed":
                break
            await asyncio.sleep(0.1)
        assert current["state_before"]["enabled"] is True
        undo = await client.post(f"/api/v1/actions/{made['id']}/undo", json={"reason": "false positive"})
        assert undo.status_code == 202
        assert undo.json()["type"] == "okta.unsuspend_user" and undo.json()["undoes_action_id"] == made["id"]
        cancel_done = await client.post(f"/api/v1/actions/{made['id']}/cancel")
        assert (
            cancel_done.status_code == 409
            and "only a queued action" in cancel_done.json()["error"]["message"]
        )
        missing = await client.get("/api/v1/actions/999999")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_bad_bodies_name_the_field(server: Server) -> None:
    token = await server.token("lead", GLOBAL_ADMINISTRATOR)
    async with httpx.AsyncClient(base_url=server.base, headers=_auth(token)) as client:
        for body, field, words in (
            ({"type": "okta.suspend_user", "target": "x"}, "body.reason", "Field required"),
            ({"type": "okta.suspend_user", "target": "x", "reason": "  "}, None, "a reason is required"),
            ({"type": "nope", "target": "x", "reason": "r"}, None, "unknown action 'nope'"),
            (
                {"type": "okta.suspend_user", "target": "missing-1", "reason": "r"},
                None,
                "no such user in okta",
            ),
            ({"type": "okta.suspend_user", "target": "x", "reason": "r", "extra": 1}, "body.extra", "Extra"),
        ):
            response = await client.post("/api/v1/actions", json=body)
            error = response.json()["error"]
            assert response.status_code in (404, 422), response.text
            assert error["field"] == field and words in error["message"], error
        not_json = await client.post(
            "/api/v1/actions", content=b"{", headers={"Content-Type": "application/json"}
        )
        assert not_json.status_code == 422 and not_json.json()["error"]["code"] == "invalid_input"
    assert await ActionStore(server.engine).list_actions(ActionFilter()) == []


async def test_console_session_needs_csrf_for_changes(server: Server) -> None:
    await server.token("analyst", GLOBAL_ADMINISTRATOR)  # password "correct horse battery"
    async with httpx.AsyncClient(base_url=server.base) as client:
        wrong = await client.post("/api/v1/session", json={"username": "analyst", "password": "nope"})
        assert wrong.status_code == 401
        signed = await client.post(
            "/api/v1/session", json={"username": "analyst", "password": "correct horse battery"}
        )
        assert signed.status_code == 200
        cookie = signed.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        csrf = signed.json()["csrf_token"]
        assert (await client.get("/api/v1/me")).json()["username"] == "analyst"
        body = {"type": "okta.suspend_user", "target": "q", "reason": "x"}
        no_csrf = await client.post("/api/v1/actions", json=body)
        assert no_csrf.status_code == 403 and "CSRF" in no_csrf.json()["error"]["message"]
        with_csrf = await client.post("/api/v1/actions", json=body, headers={"X-CSRF-Token": csrf})
        assert with_csrf.status_code == 202 and with_csrf.json()["requested_by"] == "analyst"
        await client.delete("/api/v1/session")
        assert (await client.get("/api/v1/me")).status_code == 401
