"""A person's own API token for the CLI (`clampdown login`/`logout`), over a real `clampdown serve`:
made only from a signed-in console session (never with another token), working as its owner,
revoked by presenting it, and both changes in the audit chain naming who and from where."""

from __future__ import annotations

import httpx

from clampdown.audit.chain import AuditLog
from clampdown.permissions import SECURITY_READER
from tests.api.conftest import Server

PASSWORD = "correct horse battery"  # Server.token's


async def test_a_console_session_makes_a_token_that_its_owner_then_revokes(server: Server) -> None:
    other = await server.token("ana.reader", SECURITY_READER)
    async with httpx.AsyncClient(base_url=server.base) as console:
        signed = await console.post("/api/v1/session", json={"username": "ana.reader", "password": PASSWORD})
        csrf = {"X-CSRF-Token": signed.json()["csrf_token"]}
        no_csrf = await console.post("/api/v1/me/tokens", json={"name": "cli"})
        assert no_csrf.status_code == 403  # the session's CSRF token is required, as for every POST
        made = await console.post("/api/v1/me/tokens", json={"name": "cli on laptop", "expires_in_days": 7},
                                  headers=csrf)  # fmt: skip
        assert made.status_code == 201, made.text
        issued = made.json()
        bad = await console.post("/api/v1/me/tokens", json={"name": "x" * 201}, headers=csrf)
        assert bad.status_code == 422 and "name" in bad.text
        too_long = await console.post(
            "/api/v1/me/tokens", json={"name": "x", "expires_in_days": 366}, headers=csrf
        )
        assert too_long.status_code == 422 and "expires_in_days" in too_long.text

    async with httpx.AsyncClient(
        base_url=server.base, headers={"Authorization": f"Bearer {issued['token']}"}
    ) as cli:
        me = (await cli.get("/api/v1/me")).json()
        assert me["username"] == "ana.reader" and me["channel"] == "api"
        # A token cannot make another: a stolen one would otherwise outlive its expiry.
        refused = await cli.post("/api/v1/me/tokens", json={"name": "more"})
        assert refused.status_code == 403 and "console session" in refused.json()["error"]["message"]
        assert (await cli.delete("/api/v1/me/token")).status_code == 204
        after = await cli.get("/api/v1/me")
        assert after.status_code == 401 and "revoked" in after.json()["error"]["message"]
    # Another person's token is untouched.
    async with httpx.AsyncClient(base_url=server.base, headers={"Authorization": f"Bearer {other}"}) as them:
        assert (await them.get("/api/v1/me")).status_code == 200

    rows = [row async for row in AuditLog(server.engine).rows()]
    made_row = next(
        r for r in rows if r["event"] == "token.created" and r["data"].get("token_id") == issued["id"]
    )
    revoked = next(
        r for r in rows if r["event"] == "token.revoked" and r["data"].get("token_id") == issued["id"]
    )
    for row in (made_row, revoked):
        assert row["subject"] == "ana.reader" and row["actor"] == "ana.reader"
        assert row["data"]["channel"] == "api" and row["data"]["source"] == "127.0.0.1"
    assert made_row["data"]["token_name"] == "cli on laptop"
    assert issued["token"] not in str(rows)  # the token itself is never stored


async def test_revoking_needs_a_bearer_token(server: Server) -> None:
    await server.token("ben.reader", SECURITY_READER)
    async with httpx.AsyncClient(base_url=server.base) as console:
        signed = await console.post("/api/v1/session", json={"username": "ben.reader", "password": PASSWORD})
        answer = await console.delete(
            "/api/v1/me/token", headers={"X-CSRF-Token": signed.json()["csrf_token"]}
        )
        assert answer.status_code == 403 and "Bearer" in answer.json()["error"]["message"]
