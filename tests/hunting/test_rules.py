"""Detection rules: new rows raise one alert each, and actions are requested as the rule's owner."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.principal import PermissionDenied, Principal
from clampdown.auth.service import AuthService
from clampdown.config import PlaybookSettings, PlaybookStep, Settings
from clampdown.connectors.base import Connector
from clampdown.connectors.registry import build_connectors
from clampdown.errors import InvalidInput
from clampdown.hunting.files import read_evtx
from clampdown.hunting.identity import refresh_identity_info
from clampdown.hunting.ingest import ingest_windows
from clampdown.hunting.query import run_query
from clampdown.hunting.schedule import run_schedule
from clampdown.hunting.service import HuntingService
from clampdown.hunting.settings import HuntingSettings
from clampdown.hunting.store import EventStore
from clampdown.model import ActionContext, ActionFilter
from clampdown.permissions import GLOBAL_ADMINISTRATOR, SECURITY_OPERATOR, SECURITY_READER
from clampdown.services.actions import ActionService
from clampdown.services.playbooks import PlaybookService
from clampdown.store.actions import ActionStore
from clampdown.store.auth import AuthStore
from clampdown.store.containments import ContainmentStore
from tests.hunting.evtx_writer import write_evtx
from tests.hunting.scenario import BRUTE_USER, NORMAL_USERS, SPRAY_USERS, START, security_events
from tests.hunting.test_ingest_and_hunt import BRUTE_FORCE_KQL
from tests.lab_config import memory_provider


@dataclass
class Env:
    service: HuntingService
    actions: ActionStore
    auth: AuthService
    admin: Principal
    operator: Principal
    reader: Principal
    connectors: dict[str, Connector]


@pytest.fixture
async def env(engine: AsyncEngine, tmp_path: Path) -> Env:
    auth = AuthService(AuthStore(engine))
    providers = {p: memory_provider(p, tmp_path / f"{p}.db") for p in ("ad", "okta")}
    connectors = build_connectors(Settings(providers=providers))
    store = ActionStore(engine)
    actions = ActionService(store, connectors, record_denial=auth.record_denial)
    events = EventStore(tmp_path / "events.duckdb", HuntingSettings())
    events.initialize()
    principals = []
    for name, role in (
        ("admin", GLOBAL_ADMINISTRATOR),
        ("operator", SECURITY_OPERATOR),
        ("reader", SECURITY_READER),
    ):
        user = await auth.create_user(name, frozenset({role}), None)
        principals.append(await auth.principal_for(user, "api"))
    service = HuntingService(events, actions, auth, auth.record_denial)
    return Env(service, store, auth, *principals, connectors)


async def test_a_rule_alerts_on_new_rows_once_and_acts_as_its_owner(
    env: Env, day_evtx: Path, tmp_path: Path
) -> None:
    service = env.service
    with pytest.raises(PermissionDenied):
        await service.create_rule(env.reader, "brute force", BRUTE_FORCE_KQL, 300)
    with pytest.raises(PermissionDenied):  # the operator may not disable AD accounts, so neither may the rule
        await service.create_rule(
            env.operator, "brute force", BRUTE_FORCE_KQL, 300, "ad.disable_user", "AccountName"
        )
    rule = await service.create_rule(
        env.operator, "brute force", BRUTE_FORCE_KQL, 300, "okta.suspend_user", "AccountName"
    )
    assert (rule.owner, rule.enabled, rule.last_run_at) == ("operator", True, None)

    quiet = await service.run_rule_now(env.admin, "brute force")
    assert (quiet.rows, quiet.new_alerts, quiet.batch_id) == (0, 0, None)
    ingest_windows(service.store, read_evtx(day_evtx))
    first = await service.run_rule_now(env.admin, "brute force")
    assert (first.rows, first.new_alerts) == (1, 1) and first.batch_id is not None
    queued = await env.actions.list_actions(ActionFilter(batch_id=first.batch_id))
    assert [(a.type, a.target, a.requested_by, a.reason) for a in queued] == [
        ("okta.suspend_user", BRUTE_USER, "operator", "detection rule 'brute force'")
    ]
    again = await service.run_rule_now(env.admin, "brute force")
    assert (again.rows, again.new_alerts, again.batch_id) == (1, 0, None)
    alerts = await service.alerts(env.reader, "brute force")
    assert [(a.account, a.batch_id) for a in alerts] == [(BRUTE_USER, first.batch_id)]
    assert alerts[0].row["Failures"] == 30

    # The owner loses the right to act: the rule's next new rows request nothing.
    await env.auth.store.set_user_roles("operator", frozenset({SECURITY_READER}))
    second_dc = write_evtx(tmp_path / "dc2.evtx", security_events(computer="DC2.lab.example.test"))
    ingest_windows(service.store, read_evtx(second_dc))
    with pytest.raises(PermissionDenied):
        await service.run_rule_now(env.admin, "brute force")
    assert len(await env.actions.list_actions(ActionFilter(type="okta.suspend_user"))) == 1


async def test_the_schedule_runs_due_rules_and_skips_disabled_ones(env: Env, day_evtx: Path) -> None:
    service = env.service
    ingest_windows(service.store, read_evtx(day_evtx))
    spray = (
        'IdentityLogonEvents | where ActionType == "LogonFailed" | summarize Accounts = dcount(AccountName)'
        " by IPAddress | where Accounts >= 10"
    )
    await service.create_rule(env.operator, "spray", spray, 60)
    await service.create_rule(env.operator, "off", "IdentityLogonEvents | take 5", 60)
    await service.set_rule_enabled(env.operator, "off", False)
    stop = asyncio.Event()
    task = asyncio.create_task(run_schedule(service, {}, stop))
    for _ in range(100):
        if await service.alerts(env.reader):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 10)
    alerts = await service.alerts(env.reader)
    assert [a.row for a in alerts] == [{"IPAddress": "203.0.113.7", "Accounts": 12}]
    rules = {r.name: r for r in await service.rules(env.reader)}
    assert rules["spray"].last_run_at is not None and rules["off"].last_run_at is None


async def test_identity_info_follows_the_accounts_seen_and_their_current_state(
    env: Env, day_evtx: Path
) -> None:
    store = env.service.store
    ingest_windows(store, read_evtx(day_evtx))
    # The scenario's day is fixed (START); look back far enough to see it whatever today is.
    days = (datetime.now(UTC) - START).days + 1
    written = await refresh_identity_info(store, env.connectors, days=days)
    names = run_query(store, "SELECT AccountName FROM IdentityInfo WHERE Provider = 'ad' ORDER BY 1").rows
    expected = sorted([*NORMAL_USERS, BRUTE_USER, *SPRAY_USERS, "frank.fox"])
    assert [n[0] for n in names] == expected
    # Each AD account's UPN was looked up in the Okta org too (issue 19): every row is counted.
    assert written == run_query(store, "SELECT count(*) FROM IdentityInfo").rows[0][0] >= len(names)
    assert not any(n[0].endswith("$") for n in names)  # DC1$ is a computer, not a person

    still_enabled = (
        "IdentityLogonEvents | where ActionType == 'LogonFailed'"
        " | summarize Failures = count() by AccountName"
        " | join kind=inner (IdentityInfo | where Provider == 'ad') on AccountName"
        " | where IsAccountEnabled == true and Failures >= 10 | project AccountName"
    )
    assert run_query(store, still_enabled).rows == [[BRUTE_USER]]
    ad = env.connectors["ad"]
    account = await ad.resolve_user(BRUTE_USER)
    await ad.disable_user(account, ActionContext(action_id=1, reason="test", requested_by="test"))  # type: ignore[attr-defined]
    await refresh_identity_info(store, env.connectors, days=days)
    assert run_query(store, still_enabled).rows == []  # bob is disabled now: nothing left to contain
    assert run_query(store, "SELECT count(*) - count(DISTINCT AccountObjectId) FROM IdentityInfo").rows == [
        [0]
    ]


async def test_a_rule_with_a_playbook_contains_each_person_found_as_its_owner(
    env: Env, day_evtx: Path
) -> None:
    """action "playbook:NAME": each new person found is contained by that playbook (one containment
    each, its steps marked as born of a rule), as whoever armed the rule; creating or running it
    needs the right to every step; an unknown playbook is refused by name."""
    playbook = PlaybookSettings(steps=[PlaybookStep(action="okta.suspend_user"),
                                       PlaybookStep(action="okta.clear_sessions")])  # fmt: skip
    containments = ContainmentStore(env.actions)
    playbooks = PlaybookService(env.service.actions, {"lock": playbook}, containments)
    base = env.service
    service = HuntingService(base.store, base.actions, env.auth, env.auth.record_denial, playbooks)
    with pytest.raises(InvalidInput, match="unknown playbook 'nope'"):
        await service.create_rule(env.admin, "x", BRUTE_FORCE_KQL, 300, "playbook:nope", "AccountName")
    with pytest.raises(PermissionDenied):  # the reader may not run a step of it
        await service.create_rule(env.reader, "x", BRUTE_FORCE_KQL, 300, "playbook:lock", "AccountName")
    await service.create_rule(env.admin, "brute force", BRUTE_FORCE_KQL, 300, "playbook:lock", "AccountName")
    ingest_windows(service.store, read_evtx(day_evtx))
    run = await service.run_rule_now(env.admin, "brute force")
    assert (run.rows, run.new_alerts, run.batch_id, len(run.containment_ids)) == (1, 1, None, 1)
    held = await containments.get(run.containment_ids[0])
    assert (held.person, held.playbook, held.requested_by, held.reason) == (
        BRUTE_USER, "lock", "admin", "detection rule 'brute force'"
    )  # fmt: skip
    assert [(a.type, a.source.value) for a in held.steps] == [
        ("okta.suspend_user", "rule"), ("okta.clear_sessions", "rule")
    ]  # fmt: skip
    again = await service.run_rule_now(env.admin, "brute force")  # the same row: nothing new
    assert (again.new_alerts, again.containment_ids) == (0, ())
