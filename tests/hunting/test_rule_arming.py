"""Detection rules act with the rights of whoever last armed them (issue 13, scenario 8): creating,
enabling and running a rule that acts need its action's rights, and each of those is audited."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.chain import AuditLog
from clampdown.audit.recorder import EventRecorder
from clampdown.auth.principal import PermissionDenied, Principal
from clampdown.auth.service import AuthService
from clampdown.config import Settings
from clampdown.connectors.registry import build_connectors
from clampdown.hunting.files import read_evtx
from clampdown.hunting.ingest import ingest_windows
from clampdown.hunting.rules import create_rule, get_rule, list_alerts, list_rules, run_due_rules
from clampdown.hunting.service import HuntingService
from clampdown.hunting.settings import HuntingSettings
from clampdown.hunting.store import EventStore
from clampdown.model import ActionFilter
from clampdown.permissions import GLOBAL_ADMINISTRATOR, SECURITY_OPERATOR
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore
from clampdown.store.auth import AuthStore
from tests.api.conftest import Server
from tests.hunting.scenario import BRUTE_USER
from tests.hunting.test_ingest_and_hunt import BRUTE_FORCE_KQL
from tests.lab_config import memory_provider

RULE = "brute force"


@dataclass
class Env:
    engine: AsyncEngine
    service: HuntingService
    actions: ActionStore
    auth: AuthService
    admin: Principal
    second_admin: Principal
    operator: Principal


@pytest.fixture
async def env(engine: AsyncEngine, tmp_path: Path) -> Env:
    recorder = EventRecorder()  # the audit chain, as the runtime records it
    auth = AuthService(AuthStore(engine, recorder))
    providers = {p: memory_provider(p, tmp_path / f"{p}.db") for p in ("ad", "okta")}
    store = ActionStore(engine, recorder)
    actions = ActionService(
        store, build_connectors(Settings(providers=providers)), record_denial=auth.record_denial
    )
    events = EventStore(tmp_path / "events.duckdb", HuntingSettings())
    events.initialize()
    principals = []
    for name, role in (
        ("admin", GLOBAL_ADMINISTRATOR),
        ("admin2", GLOBAL_ADMINISTRATOR),
        ("operator", SECURITY_OPERATOR),
    ):
        user = await auth.create_user(name, frozenset({role}), None)
        principals.append(await auth.principal_for(user, "api"))
    return Env(engine, HuntingService(events, actions, auth, auth.record_denial), store, auth, *principals)


async def _rule_events(engine: AsyncEngine) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    return [
        (r["event"], r["actor"], r["subject"], r["data"])
        async for r in AuditLog(engine).rows()
        if r["event"].startswith("rule.")
    ]


async def test_an_operator_can_stop_an_admins_rule_but_not_arm_create_or_run_it(
    env: Env, day_evtx: Path
) -> None:
    service = env.service
    await service.create_rule(env.admin, RULE, BRUTE_FORCE_KQL, 300, "ad.disable_user", "AccountName")
    ingest_windows(service.store, read_evtx(day_evtx))

    # Security Operator holds hunting:manage but may not disable AD accounts.
    with pytest.raises(PermissionDenied):
        await service.create_rule(
            env.operator, "mine", BRUTE_FORCE_KQL, 300, "ad.disable_user", "AccountName"
        )
    with pytest.raises(PermissionDenied):
        await service.run_rule_now(env.operator, RULE)
    stopped = await service.set_rule_enabled(
        env.operator, RULE, False
    )  # stopping a response is always allowed
    assert (stopped.enabled, stopped.armed_by) == (False, "admin")
    with pytest.raises(PermissionDenied):
        await service.set_rule_enabled(env.operator, RULE, True)

    rule = get_rule(service.store, RULE)
    assert (rule.enabled, rule.armed_by, rule.owner, rule.last_run_at) == (False, "admin", "admin", None)
    assert [r.name for r in list_rules(service.store)] == [RULE]  # "mine" was never stored
    assert list_alerts(service.store) == []
    assert await env.actions.list_actions(ActionFilter(type="ad.disable_user")) == []
    denials = [(d.principal, d.attempted) for d in await env.auth.store.denials()]
    assert denials == [("operator", "ad.disable_user")] * 3

    # A rule that requests no action needs hunting:manage only, and the operator arms it.
    await service.create_rule(env.admin, "watch", BRUTE_FORCE_KQL, 300)
    await service.set_rule_enabled(env.operator, "watch", False)
    assert (await service.set_rule_enabled(env.operator, "watch", True)).armed_by == "operator"


async def test_the_admin_who_enables_a_rule_arms_it_and_every_step_is_audited(
    env: Env, day_evtx: Path
) -> None:
    service = env.service
    made = await service.create_rule(env.admin, RULE, BRUTE_FORCE_KQL, 300, "ad.disable_user", "AccountName")
    assert (made.owner, made.armed_by, made.enabled) == ("admin", "admin", True)
    await service.set_rule_enabled(env.operator, RULE, False)
    armed = await service.set_rule_enabled(env.second_admin, RULE, True)
    assert (armed.owner, armed.armed_by, armed.enabled) == ("admin", "admin2", True)
    assert get_rule(service.store, RULE).armed_by == "admin2"  # stored, not only returned

    ingest_windows(service.store, read_evtx(day_evtx))
    [run] = await run_due_rules(service.store, service.actions, service.auth)  # the schedule's path
    queued = await env.actions.list_actions(ActionFilter(batch_id=run.batch_id))
    assert [(a.type, a.target, a.requested_by) for a in queued] == [("ad.disable_user", BRUTE_USER, "admin2")]

    again = await service.run_rule_now(env.admin, RULE)  # run by admin, still acting as admin2
    assert (again.rows, again.new_alerts, again.batch_id) == (1, 0, None)
    await service.set_rule_enabled(env.operator, RULE, False)

    common = {"rule_id": made.id, "action_type": "ad.disable_user", "channel": "api"}
    events = await _rule_events(env.engine)
    assert [(e, actor, subject) for e, actor, subject, _ in events] == [
        ("rule.created", "admin", RULE),
        ("rule.disabled", "operator", RULE),
        ("rule.enabled", "admin2", RULE),
        ("rule.run", "admin2", RULE),  # the schedule's run, which acted: as whoever armed it
        ("rule.run", "admin", RULE),
        ("rule.disabled", "operator", RULE),
    ]
    created, first_off, on, scheduled, ran, off = (data for *_, data in events)
    assert scheduled == {
        **common, "channel": "schedule", "rule": RULE, "armed_by": "admin2",
        "rows": 1, "new_alerts": 1, "batch_id": run.batch_id, "skipped": 0,
    }  # fmt: skip
    assert created == {
        **common, "rule": RULE, "armed_by": "admin", "query": BRUTE_FORCE_KQL,
        "interval_seconds": 300.0, "account_column": "AccountName",
    }  # fmt: skip
    assert first_off == {**common, "rule": RULE, "armed_by": "admin", "previously_armed_by": "admin"}
    assert on == {**common, "rule": RULE, "armed_by": "admin2", "previously_armed_by": "admin"}
    assert ran == {
        **common, "rule": RULE, "armed_by": "admin2", "rows": 1, "new_alerts": 0, "batch_id": None,
        "skipped": 0,
    }  # fmt: skip
    assert off["armed_by"] == "admin2"
    report = await AuditLog(env.engine).verify()
    checked, breaks = report.entries, report.breaks
    assert checked >= len(events) and breaks == []


async def test_a_run_that_fails_as_its_armer_is_audited_with_who_ran_it(env: Env, day_evtx: Path) -> None:
    service = env.service
    await service.create_rule(env.second_admin, RULE, BRUTE_FORCE_KQL, 300, "ad.disable_user", "AccountName")
    await env.auth.store.set_user_roles("admin2", frozenset({SECURITY_OPERATOR}))
    ingest_windows(service.store, read_evtx(day_evtx))
    with pytest.raises(PermissionDenied):  # admin may, but the rule acts as admin2, who no longer may
        await service.run_rule_now(env.admin, RULE)
    assert await env.actions.list_actions(ActionFilter(type="ad.disable_user")) == []
    *_, (event, actor, _, data) = await _rule_events(env.engine)
    assert (event, actor, data["armed_by"]) == ("rule.run", "admin", "admin2")
    assert "admin2 may not run ad.disable_user" in data["error"]


_OLD_RULES = (
    "CREATE TABLE clampdown_meta.rules (id BIGINT PRIMARY KEY, name VARCHAR UNIQUE,"
    " query VARCHAR, owner VARCHAR, interval_seconds DOUBLE, action_type VARCHAR, account_column VARCHAR,"
    " enabled BOOLEAN, last_run_at TIMESTAMPTZ, created_at TIMESTAMPTZ)"
)


def test_an_event_store_from_before_armed_by_gains_it_set_to_each_owner(tmp_path: Path) -> None:
    path = tmp_path / "events.duckdb"
    with duckdb.connect(str(path)) as con:  # the bookkeeping as the previous release made it
        con.execute("CREATE SCHEMA clampdown_meta")
        con.execute("CREATE SEQUENCE clampdown_meta.ids")
        con.execute(_OLD_RULES)
        con.execute(
            "INSERT INTO clampdown_meta.rules VALUES (nextval('clampdown_meta.ids'), 'old', 'IdentityInfo',"
            " 'carol', 300, 'ad.disable_user', 'AccountName', true, NULL, now())"
        )
    store = EventStore(path, HuntingSettings())
    store.initialize()
    old = get_rule(store, "old")
    assert (old.owner, old.armed_by, old.enabled, old.action_type) == (
        "carol",
        "carol",
        True,
        "ad.disable_user",
    )
    new = create_rule(store, "new", "IdentityInfo", "dave", 300)
    assert (new.owner, new.armed_by) == ("dave", "dave")
    reopened = EventStore(path, HuntingSettings())  # opening again changes nothing
    assert [(r.name, r.armed_by) for r in list_rules(reopened)] == [("new", "dave"), ("old", "carol")]


async def _audit(engine: AsyncEngine, prefix: str) -> list[tuple[str, str, str | None, dict[str, Any]]]:
    return [
        (r["event"], r["actor"], r["subject"], r["data"])
        async for r in AuditLog(engine).rows()
        if r["event"].startswith(prefix)
    ]


async def test_saved_query_changes_are_audited_with_who_what_and_from_where(env: Env) -> None:
    service = env.service
    saved = await service.save(env.admin, "failures", BRUTE_FORCE_KQL, "brute force", source="198.51.100.4")
    await service.delete_saved(env.operator, "failures", source="198.51.100.5")
    events = await _audit(env.engine, "query.")
    assert [(e, actor, subject) for e, actor, subject, _ in events] == [
        ("query.saved", "admin", "failures"),
        ("query.deleted", "operator", "failures"),
    ]
    created, deleted = (data for *_, data in events)
    assert created == {
        "saved_query": "failures", "saved_query_id": saved.id, "owner": "admin", "channel": "api",
        "source": "198.51.100.4", "query": BRUTE_FORCE_KQL, "description": "brute force",
    }  # fmt: skip
    assert (deleted["source"], deleted["query"], deleted["owner"]) == (
        "198.51.100.5",
        BRUTE_FORCE_KQL,
        "admin",
    )


async def test_a_scheduled_run_that_fails_is_audited(env: Env, day_evtx: Path) -> None:
    service = env.service
    await service.create_rule(env.second_admin, RULE, BRUTE_FORCE_KQL, 300, "ad.disable_user", "AccountName")
    await env.auth.store.set_user_roles("admin2", frozenset())
    ingest_windows(service.store, read_evtx(day_evtx))
    assert await run_due_rules(service.store, service.actions, service.auth) == []
    *_, (event, actor, subject, data) = await _audit(env.engine, "rule.")
    assert (event, actor, subject, data["channel"]) == ("rule.run", "admin2", RULE, "schedule")
    assert "may no longer run hunting queries" in data["error"]


async def test_hunting_changes_over_the_api_record_the_source_address(server: Server) -> None:
    admin = await server.token("hunter", GLOBAL_ADMINISTRATOR)
    headers = {"Authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(
        base_url=f"{server.base}/api/v1/hunting", headers=headers, timeout=60
    ) as api:
        assert (
            await api.post("/queries", json={"name": "q", "query": "IdentityLogonEvents | take 1"})
        ).is_success
        assert (await api.delete("/queries/q")).status_code == 204
        rule = {"name": "r", "query": "IdentityLogonEvents | take 1", "interval_seconds": 300}
        assert (await api.post("/rules", json=rule)).status_code == 201
        assert (await api.patch("/rules/r", json={"enabled": False})).is_success
        assert (await api.patch("/rules/r", json={"enabled": True})).is_success
        assert (await api.post("/rules/r/run")).is_success
    events = [
        (e, actor, subject, data.get("channel"), data.get("source"))
        for e, actor, subject, data in await _audit(server.engine, "")
        if e.startswith(("rule.", "query."))
    ]
    assert events == [
        ("query.saved", "hunter", "q", "api", "127.0.0.1"),
        ("query.deleted", "hunter", "q", "api", "127.0.0.1"),
        ("rule.created", "hunter", "r", "api", "127.0.0.1"),
        ("rule.disabled", "hunter", "r", "api", "127.0.0.1"),
        ("rule.enabled", "hunter", "r", "api", "127.0.0.1"),
        ("rule.run", "hunter", "r", "api", "127.0.0.1"),
    ]
