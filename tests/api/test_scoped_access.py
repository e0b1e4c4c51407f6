"""Scoped access (issue 17): an analyst whose roles are limited to the EMEA directories gets 403, 404
or nothing from every API route and console page for the CORP ones, over a real `clampdown serve`.

The matrix is over every route the server has: a route added without a row here fails
`test_the_matrix_covers_every_route`. Every answer the scoped analyst gets is searched for the
CORP directories' people and names; only what the request itself said may come back.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.service import AuthService
from clampdown.config import load_settings
from clampdown.permissions import GLOBAL_ADMINISTRATOR, SECURITY_ADMINISTRATOR
from clampdown.server import create_app
from clampdown.store.auth import AuthStore
from clampdown.web import console_routers
from tests.api.conftest import start_server
from tests.lab_config import clampdown, memory_provider

CORP_PEOPLE = ["carol", "dave"]
EMEA_PEOPLE = ["lena", "marco"]
# Has accounts in both: the admin contains him everywhere. The EMEA analyst sees the steps in
# EMEA's directories (what was done to their accounts, and why), never how they were linked to CORP's.
BOTH = "sam"
EMEA = frozenset({"emea-ad", "emea-okta"})
# What must never reach the EMEA analyst: CORP's people and directory names.
CORP_MARKERS = [*CORP_PEOPLE, "corp-ad", "corp-okta", "corp-entra", "CORP incident"]
PASSWORD = "correct horse battery"
METRICS_TOKEN = "scrape-token-for-prometheus-only"


@dataclass
class World:
    base: str
    config: Path
    admin: str  # tokens
    emea: str
    emea_peer: str
    ids: dict[str, int] = field(default_factory=dict)


def _config(tmp_path: Path, database_url: str) -> Path:
    corp, emea = [*CORP_PEOPLE, BOTH], [*EMEA_PEOPLE, BOTH]
    providers = {
        "corp-ad": memory_provider("ad", tmp_path / "corp-ad.db", kind="ad", users=corp),
        "emea-ad": memory_provider("ad", tmp_path / "emea-ad.db", kind="ad", users=emea),
        "corp-okta": memory_provider("okta", tmp_path / "corp-okta.db", kind="okta", users=corp),
        "emea-okta": memory_provider("okta", tmp_path / "emea-okta.db", kind="okta", users=emea),
        "corp-entra": memory_provider("entra", tmp_path / "corp-entra.db", kind="entra", users=corp),
    }
    data = {
        "database": {"url": database_url},
        "server": {"embedded_worker": False},
        "metrics": {"token": METRICS_TOKEN},
        "providers": providers,
        "playbooks": {
            "lock": {"steps": [{"action": "ad.disable_user"}, {"action": "okta.suspend_user"}]},
        },
    }
    config = tmp_path / "clampdown.toml"
    config.write_text(tomli_w.dumps(data))
    return config


async def _user(engine: AsyncEngine, name: str, role: str, scope: frozenset[str] | None) -> str:
    auth = AuthService(AuthStore(engine))
    await auth.create_user(name, frozenset({role}), PASSWORD, scope=scope)
    return (await auth.create_token(name, "test", None)).token


@pytest.fixture
def served(engine: AsyncEngine, database_url: str, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    config = _config(tmp_path, database_url)
    proc, base = start_server(config)
    yield config, base
    proc.terminate()
    proc.wait(15)


@pytest.fixture
async def world(served: tuple[Path, str], engine: AsyncEngine) -> World:
    config, base = served
    w = World(
        base,
        config,
        await _user(engine, "admin", GLOBAL_ADMINISTRATOR, None),
        await _user(engine, "emea-analyst", SECURITY_ADMINISTRATOR, EMEA),
        await _user(engine, "emea-peer", SECURITY_ADMINISTRATOR, EMEA),
    )
    async with httpx.AsyncClient(base_url=base, headers=_bearer(w.admin)) as admin:

        async def act(body: dict[str, Any]) -> int:
            made = await admin.post("/api/v1/actions", json={"reason": "CORP incident", **body})
            assert made.status_code == 202, made.text
            return int(made.json()["id"])

        w.ids["corp"] = await act({"type": "ad.disable_user", "target": "carol"})
        w.ids["corp_okta"] = await act({"type": "okta.suspend_user", "target": "carol"})
        w.ids["corp_waiting"] = await act(
            {"type": "ad.force_password_reset", "target": "carol", "request_approval": True}
        )
        w.ids["corp_entra"] = await act({"type": "entra.revoke_sessions", "target": "carol"})
        run = await admin.post(
            "/api/v1/playbooks/lock/run", json={"target": "dave", "reason": "CORP incident"}
        )
        assert run.status_code == 202, run.text
        w.ids["corp_containment"] = int(run.json()["containment_id"])
        everywhere = await admin.post(
            "/api/v1/playbooks/lock/run", json={"target": BOTH, "reason": "sam everywhere"}
        )
        assert everywhere.status_code == 202, everywhere.text
        assert len(everywhere.json()["actions"]) == 4, everywhere.text  # two forests, two orgs
        saved = await admin.post(
            "/api/v1/hunting/queries", json={"name": "logons", "query": "IdentityLogonEvents | take 5"}
        )
        assert saved.status_code == 201, saved.text
        w.ids["saved"] = int(saved.json()["id"])
    async with httpx.AsyncClient(base_url=base, headers=_bearer(w.emea)) as emea:
        made = await emea.post(
            "/api/v1/actions",
            json={"type": "ad.disable_user", "target": "lena", "reason": "EMEA incident"},
        )
        assert made.status_code == 202, made.text
        assert made.json()["instance"] == "emea-ad"
        w.ids["emea"] = int(made.json()["id"])
        lock = {"target": "marco", "reason": "EMEA incident"}
        run = await emea.post("/api/v1/playbooks/lock/run", json=lock)
        assert run.status_code == 202, run.text
        w.ids["emea_containment"] = int(run.json()["containment_id"])
    return w


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Case:
    """One request of the EMEA analyst and what it must get: `status`, and where it is 200 or 202,
    `check` on the JSON body (a console page's text)."""

    method: str
    route: str  # the route's path template, as the server declares it
    path: str  # the path asked for ('{id}' and the like filled in)
    status: int | tuple[int, ...]
    body: dict[str, Any] | None = None
    params: dict[str, str] | None = None
    check: Any = None
    console: bool = False  # a console page: asked with the analyst's session cookie


def _cases(w: World) -> list[Case]:
    corp, waiting, cid = w.ids["corp"], w.ids["corp_waiting"], w.ids["corp_containment"]
    emea, saved = w.ids["emea"], w.ids["saved"]
    disable = {"type": "ad.disable_user", "reason": "x"}

    def only_emea(items: list[dict[str, Any]]) -> None:
        assert items and {i["instance"] for i in items} <= EMEA, items

    return [
        # actions
        Case("POST", "/api/v1/actions", "/api/v1/actions", 404, {**disable, "target": "carol"}),
        Case("POST", "/api/v1/actions", "/api/v1/actions", 422,
             {**disable, "target": "carol", "instance": "corp-ad"}),
        Case("POST", "/api/v1/actions", "/api/v1/actions", 403,
             {"type": "entra.revoke_sessions", "target": "lena", "reason": "x"}),
        Case("POST", "/api/v1/actions/{action_id}/secret", f"/api/v1/actions/{corp}/secret", 404,
             {"secret_key": "x" * 43}),
        Case("POST", "/api/v1/actions/bulk", "/api/v1/actions/bulk", 422,
             {**disable, "targets": ["carol"], "instance": "corp-ad"}),
        Case("POST", "/api/v1/actions/bulk", "/api/v1/actions/bulk", 202, {**disable, "targets": ["zed"]},
             check=lambda b: only_emea(b["actions"])),
        Case("GET", "/api/v1/actions", "/api/v1/actions", 200, check=lambda b: only_emea(b["items"])),
        Case("GET", "/api/v1/actions", "/api/v1/actions", 200, params={"instance": "corp-ad"},
             check=lambda b: b["items"] == []),
        Case("GET", "/api/v1/actions", "/api/v1/actions", 200, params={"status": "awaiting_approval"},
             check=lambda b: b["items"] == []),
        Case("GET", "/api/v1/actions/export", "/api/v1/actions/export", 200, params={"format": "json"}),
        Case("GET", "/api/v1/actions/export", "/api/v1/actions/export", 200, params={"format": "csv"}),
        Case("GET", "/api/v1/actions/{action_id}", f"/api/v1/actions/{corp}", 404),
        Case("GET", "/api/v1/actions/{action_id}", f"/api/v1/actions/{emea}", 200),
        Case("POST", "/api/v1/actions/{action_id}/cancel", f"/api/v1/actions/{corp}/cancel", 404),
        Case("POST", "/api/v1/actions/{action_id}/undo", f"/api/v1/actions/{corp}/undo", 404, {}),
        # containments and playbooks
        Case("GET", "/api/v1/containments", "/api/v1/containments", 200,
             check=lambda b: [c["id"] for c in b] == [w.ids["emea_containment"]]),
        Case("GET", "/api/v1/containments", "/api/v1/containments", 404, params={"person": "dave"}),
        Case("GET", "/api/v1/containments/{containment_id}", f"/api/v1/containments/{cid}", 404),
        Case("POST", "/api/v1/playbooks/{name}/run", "/api/v1/playbooks/lock/run", 404,
             {"target": "dave", "reason": "x"}),
        Case("POST", "/api/v1/playbooks/{name}/run", "/api/v1/playbooks/release/run", 404,
             {"target": "dave", "reason": "x"}),
        # sam's containment reaches CORP: the EMEA analyst may neither take it over nor release it
        Case("POST", "/api/v1/playbooks/{name}/run", "/api/v1/playbooks/lock/run", 403,
             {"target": BOTH, "reason": "x"}),
        Case("POST", "/api/v1/playbooks/{name}/run", "/api/v1/playbooks/release/run", 403,
             {"target": BOTH, "reason": "x"}),
        Case("GET", "/api/v1/containments", "/api/v1/containments", 200, params={"person": BOTH},
             check=lambda b: b == []),
        Case("GET", "/api/v1/users/{reference}", f"/api/v1/users/{BOTH}", 200,
             check=lambda b: {a["account"]["instance"] for a in b["accounts"]} == EMEA),
        Case("POST", "/api/v1/actions/plan", "/api/v1/actions/plan", 200,
             {**disable, "targets": ["carol", "lena"]},
             check=lambda b: [p.get("refusal") is not None for p in b] == [True, False]),
        # approvals and audit
        Case("GET", "/api/v1/approvals", "/api/v1/approvals", 200, check=lambda b: b == []),
        Case("POST", "/api/v1/approvals", "/api/v1/approvals", 422,
             {"action_ids": [waiting], "approve": True}),
        Case("GET", "/api/v1/audit/verify", "/api/v1/audit/verify", 403),
        # people
        Case("GET", "/api/v1/users", "/api/v1/users", 200, params={"query": "carol"},
             check=lambda b: b == []),
        Case("GET", "/api/v1/users/{reference}", "/api/v1/users/carol", 404),
        Case("GET", "/api/v1/users/search", "/api/v1/users/search", 200, params={"query": "ca"},
             check=lambda b: b["people"] == [] and set(b["searched"]) == EMEA),
        Case("GET", "/api/v1/users/search", "/api/v1/users/search", 200, params={"query": "sa"},
             check=lambda b: [{a["account"]["instance"] for a in p["accounts"]}
                              for p in b["people"]] == [EMEA]),
        Case("GET", "/api/v1/users/{reference}", "/api/v1/users/lena", 200,
             check=lambda b: {a["account"]["instance"] for a in b["accounts"]} == EMEA),
        # hunting: saved queries are text, open to every hunter; rules and alerts span every directory
        Case("POST", "/api/v1/hunting/query", "/api/v1/hunting/query", 200,
             {"query": "IdentityLogonEvents | take 5"}),
        Case("GET", "/api/v1/hunting/schema", "/api/v1/hunting/schema", 200),
        Case("POST", "/api/v1/hunting/check", "/api/v1/hunting/check", 200,
             {"query": "IdentityLogonEvents | where AccountUpn == 'carol@corp.example.test' | take 1"}),
        Case("POST", "/api/v1/hunting/act", "/api/v1/hunting/act", 422,
             {"query": "IdentityLogonEvents | take 5", "column": "AccountUpn", "action": "ad.disable_user",
              "reason": "x"}),
        Case("GET", "/api/v1/hunting/queries", "/api/v1/hunting/queries", 200),
        Case("POST", "/api/v1/hunting/queries", "/api/v1/hunting/queries", 201,
             {"name": "mine", "query": "IdentityLogonEvents | take 1"}),
        Case("GET", "/api/v1/hunting/queries/{ref}", f"/api/v1/hunting/queries/{saved}", 200),
        Case("POST", "/api/v1/hunting/queries/{ref}/run", f"/api/v1/hunting/queries/{saved}/run", 200),
        Case("DELETE", "/api/v1/hunting/queries/{ref}", "/api/v1/hunting/queries/mine", 204),
        Case("GET", "/api/v1/hunting/rules", "/api/v1/hunting/rules", 403),
        Case("POST", "/api/v1/hunting/rules", "/api/v1/hunting/rules", 403,
             {"name": "r", "query": "IdentityLogonEvents | take 1", "interval_seconds": 300}),
        Case("PATCH", "/api/v1/hunting/rules/{ref}", "/api/v1/hunting/rules/1", 403, {"enabled": False}),
        Case("POST", "/api/v1/hunting/rules/{ref}/run", "/api/v1/hunting/rules/1/run", 403),
        Case("GET", "/api/v1/hunting/alerts", "/api/v1/hunting/alerts", 403),
        # operations
        Case("GET", "/api/v1/workers", "/api/v1/workers", 403),
        Case("GET", "/metrics", "/metrics", 401),  # the scrape token's, never a person's
        Case("GET", "/api/v1/me", "/api/v1/me", 200, check=lambda b: b["directories"] == sorted(EMEA)),
        Case("GET", "/api/v1/overview", "/api/v1/overview", 200,  # counts and health of theirs only
             check=lambda b: {h["name"] for h in b["health"] if h["kind"] == "directory"} == EMEA),
        # Shared Signals push (tests/signals): a transmitter's bearer token, not a person's; none here
        Case("POST", "/api/v1/ssf/receivers/{name}/events", "/api/v1/ssf/receivers/partner/events", 404),
        # Clampdown as a transmitter (tests/signals/test_streams.py): not configured here, so not found
        Case("GET", "/.well-known/ssf-configuration", "/.well-known/ssf-configuration", 404),
        Case("GET", "/.well-known/ssf-configuration/{path}", "/.well-known/ssf-configuration/x", 404),
        Case("GET", "/api/v1/ssf/jwks", "/api/v1/ssf/jwks", 404),
        Case("GET", "/api/v1/ssf/streams", "/api/v1/ssf/streams", 404),
        Case("POST", "/api/v1/ssf/streams", "/api/v1/ssf/streams", 404,
             {"delivery": {"method": "urn:ietf:rfc:8936"}}),
        Case("PATCH", "/api/v1/ssf/streams", "/api/v1/ssf/streams", 404,
             {"stream_id": "s", "description": "x"}),
        Case("PUT", "/api/v1/ssf/streams", "/api/v1/ssf/streams", 404,
             {"stream_id": "s", "delivery": {"method": "urn:ietf:rfc:8936"}}),
        Case("DELETE", "/api/v1/ssf/streams", "/api/v1/ssf/streams", 404, params={"stream_id": "s"}),
        Case("GET", "/api/v1/ssf/streams/status", "/api/v1/ssf/streams/status", 404,
             params={"stream_id": "s"}),
        Case("POST", "/api/v1/ssf/streams/status", "/api/v1/ssf/streams/status", 404,
             {"stream_id": "s", "status": "paused"}),
        Case("POST", "/api/v1/ssf/streams/subjects:add", "/api/v1/ssf/streams/subjects:add", 404,
             {"stream_id": "s", "subject": {"format": "email", "email": "someone@example.test"}}),
        Case("POST", "/api/v1/ssf/streams/subjects:remove", "/api/v1/ssf/streams/subjects:remove", 404,
             {"stream_id": "s", "subject": {"format": "email", "email": "someone@example.test"}}),
        Case("POST", "/api/v1/ssf/streams/verify", "/api/v1/ssf/streams/verify", 404, {"stream_id": "s"}),
        Case("POST", "/api/v1/ssf/streams/{stream_id}/poll", "/api/v1/ssf/streams/s/poll", 404, {}),
        # the Shared Signals health spans every directory: refused to a scoped analyst
        Case("GET", "/api/v1/ssf/health", "/api/v1/ssf/health", 403),
        # public: no caller, nothing of any directory's people (catalog, health)
        Case("GET", "/api/v1/catalog", "/api/v1/catalog", 200),
        Case("GET", "/healthz", "/healthz", 200),
        # console pages, with the analyst's session
        Case("GET", "/actions", "/actions", 200, console=True,
             check=lambda page: "in emea-ad, emea-okta" in page),
        Case("GET", "/actions/rows", "/actions/rows", 200, console=True),
        Case("GET", "/actions/rows", "/actions/rows", 200, params={"instance": "corp-ad"}, console=True),
        Case("GET", "/actions/{action_id}/panel", f"/actions/{corp}/panel", 404, console=True),
        Case("GET", "/actions/{action_id}/panel", f"/actions/{emea}/panel", 200, console=True),
        Case("GET", "/containments", "/containments", 200, console=True),
        Case("GET", "/containments/{containment_id}", f"/containments/{cid}", 404, console=True),
        Case("GET", "/containments/{containment_id}/panel", f"/containments/{cid}/panel", 404, console=True),
        Case("GET", "/hunting", "/hunting", 200, console=True),
        Case("GET", "/settings/signals", "/settings/signals", 403, console=True),
        Case("GET", "/users", "/users", 200, params={"q": "carol"}, console=True),
        Case("GET", "/users", "/users", 200, params={"query": "sa"}, console=True,
             check=lambda page: "emea-ad" in page and "Sam" in page),
        Case("GET", "/users/{reference}", "/users/carol", 404, console=True),
        Case("GET", "/users/{reference}", "/users/lena", 200, console=True),
        Case("GET", "/users/{reference}/panel", "/users/carol/panel", 404, console=True),
        Case("GET", "/", "/", 200, console=True),  # the overview, of their directories
        Case("GET", "/login", "/login", (200, 302, 303, 307), console=True),
        Case("GET", "/cli/login", "/cli/login", 200, console=True,
             params={"port": "5000", "key": "k" * 43, "state": "s" * 20}),
    ]  # fmt: skip


# Routes asked without the analyst's credentials, or that hold no directory's data.
NOT_A_PERSONS = {
    ("GET", "/readyz"),  # the orchestrator's, unauthenticated: one check per configured directory
    ("POST", "/api/v1/session"),  # signing in (done by the console cases)
    ("DELETE", "/api/v1/session"),  # signing out
    ("POST", "/api/v1/me/tokens"),  # a person's own token, no directory's data (test_own_tokens.py)
    ("POST", "/api/v1/me/tokens/sealed"),  # the same, sealed for `login --browser` (test_cli_login.py)
    ("DELETE", "/api/v1/me/token"),  # revoking the token asked with (it would end the matrix's)
    ("GET", "/auth/oidc/login"),  # single sign-on (tests/api/test_sso.py)
    ("GET", "/auth/oidc/callback"),
}


def _routes(config: Path) -> set[tuple[str, str]]:
    """Every API route (the OpenAPI document lists them all) and every console page."""
    paths = create_app(load_settings(config)).openapi()["paths"]
    api = {(method.upper(), path) for path, operations in paths.items() for method in operations}
    pages = {
        (method, route.path)
        for router in console_routers()
        for route in router.routes
        if isinstance(route, APIRoute)
        for method in route.methods - {"HEAD"}
    }
    return api | pages


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_the_matrix_covers_every_route(world: World) -> None:
    covered = {(c.method, c.route) for c in _cases(world)} | NOT_A_PERSONS
    assert _routes(world.config) == covered


def _leaks(text: str, asked: str) -> list[str]:
    """The CORP markers in an answer, except those the request itself named."""
    return [m for m in CORP_MARKERS if re.search(rf"\b{re.escape(m)}\b", text) and m not in asked]


async def test_an_analyst_scoped_to_emea_gets_nothing_of_corp(world: World) -> None:
    async with (
        httpx.AsyncClient(base_url=world.base, headers=_bearer(world.emea)) as api,
        httpx.AsyncClient(base_url=world.base, follow_redirects=False) as console,
    ):
        me = {"username": "emea-analyst", "password": PASSWORD}
        signed_in = await console.post("/api/v1/session", json=me)
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.json()["directories"] == sorted(EMEA)
        for case in _cases(world):
            client = console if case.console else api
            response = await client.request(case.method, case.path, json=case.body, params=case.params)
            expected = case.status if isinstance(case.status, tuple) else (case.status,)
            where = f"{case.method} {case.path} {case.params or ''} {case.body or ''}"
            assert response.status_code in expected, (where, response.status_code, response.text[:500])
            asked = f"{case.path} {case.params} {case.body}"
            leaked = _leaks(response.text, asked)
            assert not leaked, (where, leaked, response.text[:2000])
            if case.check is not None:
                case.check(response.text if case.console else response.json())
            if response.status_code == 403 and not case.console and case.route != "/metrics":
                assert response.json()["error"]["code"] == "permission_denied", response.text


async def test_the_admin_still_sees_everything_and_the_scope_is_audited(world: World) -> None:
    async with httpx.AsyncClient(base_url=world.base, headers=_bearer(world.admin)) as admin:
        listed = (await admin.get("/api/v1/actions", params={"limit": 100})).json()["items"]
        every = {"corp-ad", "emea-ad", "corp-okta", "emea-okta", "corp-entra"}
        assert every <= {a["instance"] for a in listed}
        assert len((await admin.get("/api/v1/containments")).json()) == 3
        assert (await admin.get(f"/api/v1/actions/{world.ids['corp']}")).status_code == 200
    # Changing who sees what is audited, and takes effect at the next request.
    changed = clampdown(world.config, "users", "set-scope", "emea-peer", "--directory", "corp-okta")
    assert changed.returncode == 0, changed.stderr
    assert "corp-okta" in changed.stdout
    wrong = clampdown(world.config, "users", "set-scope", "emea-peer", "--directory", "nowhere")
    assert wrong.returncode != 0 and "unknown directory nowhere" in wrong.stderr
    async with httpx.AsyncClient(base_url=world.base, headers=_bearer(world.emea_peer)) as peer:
        items = (await peer.get("/api/v1/actions")).json()["items"]
        assert {a["instance"] for a in items} == {"corp-okta"}
        assert (await peer.get(f"/api/v1/actions/{world.ids['emea']}")).status_code == 404
    exported = clampdown(world.config, "audit", "export", timeout=60)
    assert exported.returncode == 0, exported.stderr
    assert "user.scope_changed" in exported.stdout and "emea-peer" in exported.stdout
