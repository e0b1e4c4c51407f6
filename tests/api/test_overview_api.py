"""Action source and incident through the REST API of a real `clampdown serve` (on SQLite and
PostgreSQL), and GET /api/v1/overview: each of its numbers is what GET /api/v1/actions lists for
the same filter."""

from __future__ import annotations

import csv
import io
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from clampdown.auth.service import AuthService
from clampdown.model import ActionFilter, ActionSource
from clampdown.permissions import GLOBAL_ADMINISTRATOR, HUNTING_READ, SECURITY_READER
from clampdown.store.actions import ActionStore
from clampdown.store.auth import AuthStore
from tests.api.conftest import Server

LINK = "https://tickets.example/browse/{incident}"


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _api_filter(console_link: str) -> list[tuple[str, str]]:
    """The console link's filter as GET /api/v1/actions takes it (a period as a time)."""
    params = [(k, v) for k, v in parse_qsl(urlsplit(console_link).query) if k != "tab"]
    return [(k, v) for k, v in params if k != "since"]  # every action here is younger than a day


async def _listed(client: httpx.AsyncClient, params: list[tuple[str, str]]) -> int:
    page = await client.get("/api/v1/actions", params=[*params, ("limit", "1000")])
    assert page.status_code == 200, page.text
    return len(page.json()["items"])


async def test_source_and_incident_are_recorded_filtered_exported_and_linked(
    server_factory,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setenv("CLAMPDOWN_CONSOLE__INCIDENT_LINK", LINK)
    server: Server = server_factory()
    token = await server.token("lead", GLOBAL_ADMINISTRATOR)
    async with httpx.AsyncClient(base_url=server.base, headers=_auth(token), timeout=30) as client:
        body = {"type": "okta.suspend_user", "target": "alice", "reason": "phish", "source": "user_page",
                "incident": "INC-42"}  # fmt: skip
        made = await client.post("/api/v1/actions", json=body)
        assert made.status_code == 202, made.text
        shown = made.json()
        assert (shown["source"], shown["incident"]) == ("user_page", "INC-42")
        assert shown["incident_link"] == "https://tickets.example/browse/INC-42"
        plain = await client.post("/api/v1/actions", json={**body, "target": "bob", "source": "manual",
                                                           "incident": None})  # fmt: skip
        assert plain.json()["source"] == "manual" and plain.json()["incident_link"] is None
        bulk = await client.post("/api/v1/actions/bulk", json={
            "type": "okta.suspend_user", "targets": ["carol", "dan"], "reason": "spray", "source": "hunting",
            "incident": "INC-43"})  # fmt: skip
        assert bulk.status_code == 202, bulk.text
        assert {(a["source"], a["incident"]) for a in bulk.json()["actions"]} == {("hunting", "INC-43")}
        contain = {"target": "erin", "reason": "INC-44", "incident": "INC-44"}
        run = await client.post("/api/v1/playbooks/contain/run", json=contain)
        assert run.status_code == 202, run.text
        steps = run.json()["actions"]
        assert steps and {(a["source"], a["incident"]) for a in steps} == {("playbook", "INC-44")}
        contained = await client.get(f"/api/v1/containments/{run.json()['containment_id']}")
        assert contained.json()["incident"] == "INC-44"

        # A client states only where it asks from; what Clampdown does itself, it may not claim.
        for wrong, field, words in (
            ({"source": "rule"}, "body.source", "manual"),
            ({"source": "playbook"}, "body.source", "user_page"),
            ({"incident": "INC 42; drop"}, None, "incident"),
            ({"incident": "x" * 65}, "body.incident", "64"),
        ):
            refused = await client.post("/api/v1/actions", json={**body, **wrong})
            assert refused.status_code in (400, 422), refused.text
            error = refused.json()["error"]
            assert error["field"] == field and words in error["message"], error

        assert await _listed(client, [("source", "user_page")]) == 1
        assert await _listed(client, [("incident", "INC-43")]) == 2
        assert await _listed(client, [("source", "playbook"), ("incident", "INC-44")]) == len(steps)
        assert await _listed(client, [("source", "rule")]) == 0
        bad = await client.get("/api/v1/actions", params={"incident": "a b"})
        assert bad.status_code == 422 and "incident" in bad.json()["error"]["message"]
        exported = await client.get("/api/v1/actions/export", params={"incident": "INC-42"})
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [(r["source"], r["incident"], r["incident_link"]) for r in rows] == [
            ("user_page", "INC-42", "https://tickets.example/browse/INC-42")
        ]
    stored = await ActionStore(server.engine).list_actions(ActionFilter(source=ActionSource.HUNTING))
    assert {a.incident for a in stored} == {"INC-43"}  # in the database, not only in the answers


async def test_overview_numbers_are_what_the_action_center_lists(server: Server) -> None:
    token = await server.token("lead", GLOBAL_ADMINISTRATOR)
    reader = await server.token("rita", SECURITY_READER)
    await AuthService(AuthStore(server.engine)).define_role("Hunter", frozenset({HUNTING_READ}))
    nobody = await server.token("hugo", "Hunter")  # may hunt, not read the action center
    async with httpx.AsyncClient(base_url=server.base, headers=_auth(token), timeout=30) as client:
        for n, target in enumerate(("alice", "bob", "carol")):
            body = {"type": "okta.suspend_user", "target": target, "reason": "r", "incident": f"INC-{n}"}
            assert (await client.post("/api/v1/actions", json=body)).status_code == 202
        cancelled = (await client.get("/api/v1/actions")).json()["items"][0]["id"]
        assert (await client.post(f"/api/v1/actions/{cancelled}/cancel")).status_code == 200
        run = await client.post("/api/v1/playbooks/contain/run", json={"target": "dan", "reason": "INC-9"})
        assert run.status_code == 202

        answer = await client.get("/api/v1/overview", headers=_auth(reader))
        assert answer.status_code == 200, answer.text
        overview = answer.json()
        assert overview["active_containments"]["count"] == 1
        assert overview["active_containments"]["link"] == "/containments?state=active"
        day, week = overview["actions"]
        assert (day["window"], week["window"]) == ("24h", "7d")
        counts = {s["label"]: s["count"] for s in day["statuses"]}
        assert counts["queued"] == 2 + len(run.json()["actions"]) and counts["cancelled"] == 1
        assert day["total"]["count"] == sum(counts.values()) == week["total"]["count"]
        for window in (day, week):
            for number in (window["total"], *window["statuses"]):
                assert number["count"] == await _listed(client, _api_filter(number["link"])), number
        assert overview["time_to_contain"]["contained"] == 0  # no worker: nothing completed yet
        assert overview["time_to_contain"]["median_seconds"] is None
        assert overview["failures"] == [] and overview["rules"]["total"]["count"] == 0
        assert {(h["name"], h["kind"], h["status"]) for h in overview["health"]} == {
            ("ad", "directory", "ok"), ("entra", "directory", "ok"), ("okta", "directory", "ok"),
            ("containment-watch", "job", "ok"),  # as /readyz says: this server's background jobs
        }  # fmt: skip
        refused = await client.get("/api/v1/overview", headers=_auth(nobody))
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
    async with httpx.AsyncClient(base_url=server.base, timeout=30) as stranger:
        assert (await stranger.get("/api/v1/overview")).status_code == 401
