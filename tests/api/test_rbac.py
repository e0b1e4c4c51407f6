"""Who may run which action: every role x every action type x (API, CLI), checked on the server."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from clampdown.auth.service import AuthService
from clampdown.catalog import ActionDefinition, all_actions
from clampdown.model import ActionFilter
from clampdown.permissions import (
    GLOBAL_ADMINISTRATOR,
    RESPONSE_MANAGE,
    RESPONSE_READ,
    SECURITY_ADMINISTRATOR,
    SECURITY_OPERATOR,
    SECURITY_READER,
)
from clampdown.store.actions import ActionStore
from clampdown.store.auth import AuthStore
from tests.api.conftest import Server
from tests.lab_config import clampdown

RESPONDER = "Responder (custom)"  # response:manage and response:read, no built-in role

# The seed's table, written out independently of the catalog: role -> action ids it may run.
AD = {
    "ad.disable_user", "ad.enable_user", "ad.force_password_reset", "ad.clear_password_reset",
    "ad.remove_privileged_groups",
}
AD_ADMINS = {"ad.restore_privileged_groups"}  # gives administrative memberships back
OKTA = {"okta.suspend_user", "okta.unsuspend_user", "okta.deactivate_user"}
# Okta eviction: the operator's like suspension; risk like Entra's (admins, or response:manage).
OKTA |= {
    "okta.clear_sessions", "okta.revoke_grants", "okta.reset_factors", "okta.expire_password",
    "okta.universal_logout",
}  # fmt: skip
OKTA_RISK = {"okta.set_risk", "okta.clear_risk"}
RISK = {"entra.mark_compromised", "entra.dismiss_user_risk"}
ENTRA_GA = {"entra.suspend_user", "entra.enable_user", "entra.revoke_sessions"}
ENTRA_GA |= {  # eviction (issue 16)
    "entra.force_password_reset", "entra.remove_auth_methods", "entra.disable_devices", "entra.enable_devices"
}  # fmt: skip
EXPECTED: dict[str, set[str]] = {
    GLOBAL_ADMINISTRATOR: AD | AD_ADMINS | OKTA | OKTA_RISK | RISK | ENTRA_GA,
    SECURITY_ADMINISTRATOR: AD | AD_ADMINS | OKTA | OKTA_RISK | RISK,  # holds response:manage
    SECURITY_OPERATOR: OKTA,
    SECURITY_READER: set(),
    RESPONDER: AD | OKTA | OKTA_RISK,
}


async def _tokens(server: Server) -> dict[str, str]:
    await AuthService(AuthStore(server.engine)).define_role(
        RESPONDER, frozenset({RESPONSE_MANAGE, RESPONSE_READ})
    )
    return {role: await server.token(f"user-{i}", role) for i, role in enumerate(EXPECTED)}


async def test_matrix_over_the_api(server: Server) -> None:
    tokens = await _tokens(server)
    store = ActionStore(server.engine)
    async with httpx.AsyncClient(base_url=server.base) as client:
        for role, token in tokens.items():
            for definition in all_actions():
                response = await client.post(
                    "/api/v1/actions",
                    json={"type": definition.id, "target": f"{role}-{definition.id}", "reason": "matrix"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                if definition.id in EXPECTED[role]:
                    assert response.status_code == 202, (role, definition.id, response.text)
                    assert response.json()["status"] == "queued"
                else:
                    assert response.status_code == 403, (role, definition.id, response.text)
                    error = response.json()["error"]
                    assert error["code"] == "permission_denied"
                    assert f"may not run {definition.id}: needs " in error["message"]
    queued = await store.list_actions(ActionFilter(), limit=1000)
    assert sorted((a.requested_by, a.type) for a in queued) == sorted(
        (f"user-{i}", t) for i, role in enumerate(EXPECTED) for t in EXPECTED[role]
    )
    denials = await AuthStore(server.engine).denials(limit=1000)
    total = len(list(all_actions()))
    expected_denials = sum(total - len(allowed) for allowed in EXPECTED.values())
    assert len(denials) == expected_denials and {d.channel for d in denials} == {"api"}


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_matrix_over_the_cli(server: Server) -> None:
    tokens = await _tokens(server)
    cases = [(role, token, definition) for role, token in tokens.items() for definition in all_actions()]

    def act(case: tuple[str, str, ActionDefinition]) -> subprocess.CompletedProcess[str]:
        role, token, definition = case
        return clampdown(server.config, "act", definition.id, f"{role}-x", "-r", "matrix", token=token)

    with ThreadPoolExecutor(max_workers=4) as pool:  # one process per case, a few at once
        results = list(pool.map(act, cases))
    for (role, _, definition), result in zip(cases, results, strict=True):
        if definition.id in EXPECTED[role]:
            assert result.returncode == 0, (role, definition.id, result.stderr)
        else:
            assert result.returncode == 7, (role, definition.id, result.stderr)
            assert f"may not run {definition.id}: needs" in result.stderr
    denials = await AuthStore(server.engine).denials(limit=1000)
    assert {d.channel for d in denials} == {"cli"}


async def test_readers_see_the_action_center_and_nothing_else(server: Server) -> None:
    admin = await server.token("boss", GLOBAL_ADMINISTRATOR)
    reader = await server.token("watcher", SECURITY_READER)
    async with httpx.AsyncClient(base_url=server.base) as client:
        made = await client.post(
            "/api/v1/actions",
            json={"type": "okta.suspend_user", "target": "kim", "reason": "x"},
            headers={"Authorization": f"Bearer {admin}"},
        )
        action_id = made.json()["id"]
        as_reader = {"Authorization": f"Bearer {reader}"}
        assert (await client.get("/api/v1/actions", headers=as_reader)).status_code == 200
        assert (await client.get(f"/api/v1/actions/{action_id}", headers=as_reader)).status_code == 200
        assert (
            await client.post(f"/api/v1/actions/{action_id}/cancel", headers=as_reader)
        ).status_code == 403
        person = (await client.get("/api/v1/users/kim", headers=as_reader)).json()
        assert all(acc["allowed_actions"] == [] for acc in person["accounts"])


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "no credentials"),
        ("Bearer cdt_wrong", "invalid token"),
        ("Basic YWRtaW46YWRtaW4=", "no credentials"),
    ],
)
async def test_missing_or_wrong_token_is_401(server: Server, header: str | None, message: str) -> None:
    headers = {"Authorization": header} if header else {}
    async with httpx.AsyncClient(base_url=server.base) as client:
        body = {"type": "okta.suspend_user", "target": "kim", "reason": "x"}
        response = await client.post("/api/v1/actions", json=body, headers=headers)
        assert response.status_code == 401 and message in response.json()["error"]["message"]
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert (await client.get("/api/v1/actions", headers=headers)).status_code == 401
    assert await ActionStore(server.engine).list_actions(ActionFilter()) == []


async def test_expired_and_revoked_tokens_are_401(server: Server) -> None:
    from datetime import timedelta

    auth = AuthService(AuthStore(server.engine))
    await auth.create_user("temp", frozenset({GLOBAL_ADMINISTRATOR}), None)
    expired = await auth.create_token("temp", "short", timedelta(microseconds=1))
    revoked = await auth.create_token("temp", "gone", None)
    await auth.revoke_token(revoked.id)
    async with httpx.AsyncClient(base_url=server.base) as client:
        for issued, message in ((expired, "token expired"), (revoked, "token revoked")):
            response = await client.post(
                "/api/v1/actions",
                json={"type": "okta.suspend_user", "target": "kim", "reason": "x"},
                headers={"Authorization": f"Bearer {issued.token}"},
            )
            assert response.status_code == 401 and response.json()["error"]["message"] == message
    assert await ActionStore(server.engine).list_actions(ActionFilter()) == []
