"""Scoped hunting (issue 17): a user limited to some directories hunts in their events only, in
SQL and KQL, whatever the query names; nothing else of the store shows (no counts, no other table,
no catalog); rules and alerts, which span every directory, are refused them."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.principal import PermissionDenied, Principal
from clampdown.auth.service import AuthService
from clampdown.config import Settings
from clampdown.connectors.registry import build_connectors
from clampdown.hunting.query import QueryError, run_query
from clampdown.hunting.rules import create_rule, get_rule, list_alerts, run_rule
from clampdown.hunting.service import HuntingService
from clampdown.hunting.store import Batch, EventStore
from clampdown.model import ActionFilter
from clampdown.permissions import GLOBAL_ADMINISTRATOR, SECURITY_OPERATOR
from clampdown.services.actions import ActionService
from clampdown.store.actions import ActionStore
from clampdown.store.auth import AuthStore
from tests.lab_config import memory_provider

EMEA = frozenset({"emea-okta"})
# (table, Directory, account): the account is AccountUpn, or TargetAccountUpn for directory
# events; a row of no known directory (None) is a DC event whose Source is evtx.
EVENTS = [
    ("IdentityLogonEvents", "corp-okta", "alice@corp.example"),
    ("IdentityLogonEvents", "emea-okta", "bob@emea.example"),
    ("IdentityLogonEvents", "emea-okta", "carol@emea.example"),
    ("IdentityLogonEvents", None, "dave@corp.example"),
    ("CloudSignInEvents", "corp-okta", "alice@corp.example"),
    ("CloudSignInEvents", "emea-okta", "bob@emea.example"),
    ("CloudSignInEvents", None, "dave@corp.example"),
    ("IdentityDirectoryEvents", "emea-okta", "erin@emea.example"),
    ("IdentityDirectoryEvents", "corp-okta", "frank@corp.example"),
    ("IdentityDirectoryEvents", None, "grace@corp.example"),
]


def _row(table: str, directory: str | None, account: str, n: int) -> dict[str, Any]:
    column = "TargetAccountUpn" if table == "IdentityDirectoryEvents" else "AccountUpn"
    source = directory or "evtx"
    return {
        column: account,
        "Source": source,
        "Directory": directory,
        "ReportId": f"{source}-{n}",
        "ActionType": "LogonFailed",
    }


@pytest.fixture
def events(event_store: EventStore) -> EventStore:
    rows: dict[str, list[dict[str, Any]]] = {}
    for n, (table, directory, account) in enumerate(EVENTS):
        rows.setdefault(table, []).append(_row(table, directory, account, n))
    rows["IdentityInfo"] = [
        {
            "Provider": "okta",
            "AccountObjectId": "00u1",
            "AccountUpn": "bob@emea.example",
            "Directory": "emea-okta",
        }
    ]
    event_store.append(Batch(rows, {"okta:logs:emea-okta": "/api/v1/logs?after=1"}))
    return event_store


def _expected(*tables: str, sources: frozenset[str] | None = EMEA) -> list[str]:
    return sorted(a for t, s, a in EVENTS if t in tables and (sources is None or s in sources))


def _values(store: EventStore, query: str, sources: frozenset[str] | None = EMEA) -> list[Any]:
    return sorted(row[0] for row in run_query(store, query, sources=sources).rows)


LOGONS_AND_SIGN_INS = ("IdentityLogonEvents", "CloudSignInEvents")
LOGONS = ("IdentityLogonEvents",)
# (query, the tables whose accounts it returns): scoped, their emea-okta rows; unscoped, all of them.
SEEN = [
    ("SELECT AccountUpn FROM IdentityLogonEvents", LOGONS),
    ("select accountupn from identitylogonevents", LOGONS),  # names in any case
    ("SELECT TargetAccountUpn FROM IdentityDirectoryEvents", ("IdentityDirectoryEvents",)),
    ("SELECT AccountUpn FROM IdentityLogonEvents UNION ALL SELECT AccountUpn FROM CloudSignInEvents",
     LOGONS_AND_SIGN_INS),
    # Every account that signed in also logged on, in emea and everywhere: the join finds them all.
    ("SELECT l.AccountUpn FROM IdentityLogonEvents l JOIN CloudSignInEvents c USING (AccountUpn)"
     " UNION ALL SELECT c.AccountUpn FROM IdentityLogonEvents l RIGHT JOIN CloudSignInEvents c"
     " ON l.AccountUpn = c.AccountUpn WHERE l.AccountUpn IS NULL", ("CloudSignInEvents",)),
    ("SELECT AccountUpn FROM CloudSignInEvents WHERE AccountUpn IN"
     " (SELECT AccountUpn FROM IdentityLogonEvents WHERE Source <> 'nowhere')", ("CloudSignInEvents",)),
    ("SELECT AccountUpn FROM IdentityLogonEvents l WHERE EXISTS"
     " (SELECT 1 FROM IdentityLogonEvents m WHERE m.ReportId = l.ReportId)", LOGONS),
    ("WITH a AS (SELECT AccountUpn FROM IdentityLogonEvents), b AS (SELECT * FROM a)"
     " SELECT * FROM b UNION ALL SELECT AccountUpn FROM (SELECT * FROM CloudSignInEvents)",
     LOGONS_AND_SIGN_INS),
    # A CTE named like an event table reads the event table's rows of the directory, no more.
    ("WITH IdentityLogonEvents AS (SELECT * FROM IdentityLogonEvents)"
     " SELECT AccountUpn FROM IdentityLogonEvents", LOGONS),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 2)"
     " SELECT AccountUpn FROM IdentityLogonEvents, r WHERE n = 1", LOGONS),
    ("SELECT * FROM (SELECT AccountUpn FROM 'IdentityLogonEvents')", LOGONS),
    ("SELECT unnest(list(AccountUpn)) FROM IdentityLogonEvents, range(1)", LOGONS),
]  # fmt: skip


@pytest.mark.parametrize(("query", "tables"), SEEN)
def test_a_scoped_sql_query_sees_its_directories_rows_only(
    events: EventStore, query: str, tables: tuple[str, ...]
) -> None:
    assert _values(events, query) == _expected(*tables)
    assert _values(events, query, None) == _expected(*tables, sources=None)


def test_a_scalar_subquery_sees_the_directorys_rows_only(events: EventStore) -> None:
    query = (
        "SELECT (SELECT max(AccountUpn) FROM IdentityLogonEvents),"
        " (SELECT min(Source) FROM CloudSignInEvents)"
    )
    assert run_query(events, query, sources=EMEA).rows == [["carol@emea.example", "emea-okta"]]
    assert run_query(events, query).rows == [["dave@corp.example", "corp-okta"]]


def test_counts_reflect_the_directorys_rows_only(events: EventStore) -> None:
    query = (
        "SELECT (SELECT count(*) FROM IdentityLogonEvents), (SELECT count(*) FROM CloudSignInEvents),"
        " (SELECT count(*) FROM IdentityDirectoryEvents), (SELECT count(*) FROM IdentityInfo),"
        " (SELECT count(DISTINCT Source) FROM IdentityLogonEvents)"
    )
    assert run_query(events, query, sources=EMEA).rows == [[2, 1, 1, 1, 1]]
    both = frozenset({"emea-okta", "corp-okta"})
    assert run_query(events, query, sources=both).rows == [[3, 2, 2, 1, 2]]
    # A Source is no directory: naming one shows nothing.
    assert run_query(events, query, sources=frozenset({"evtx"})).rows == [[0, 0, 0, 0, 0]]
    assert run_query(events, query).rows == [[4, 3, 3, 1, 3]]  # unscoped: everything, as before
    assert run_query(events, query, sources=frozenset()).rows == [[0, 0, 0, 0, 0]]


def test_a_scoped_kql_query_sees_its_directories_rows_only(events: EventStore) -> None:
    assert run_query(events, "IdentityLogonEvents | count", sources=EMEA).rows == [[2]]
    union = "IdentityLogonEvents | union CloudSignInEvents | summarize n = count() by Source"
    assert run_query(events, union, sources=EMEA).rows == [["emea-okta", 3]]
    joined = (
        "IdentityLogonEvents | join kind=inner (CloudSignInEvents | project AccountUpn, Country)"
        " on AccountUpn | project AccountUpn"
    )
    assert run_query(events, joined, sources=EMEA).rows == [["bob@emea.example"]]
    assert sorted(r[0] for r in run_query(events, joined).rows) == _expected(
        "CloudSignInEvents", sources=None
    )


REFUSED = [
    ("SELECT count(*) FROM main.IdentityLogonEvents", "'main.IdentityLogonEvents' is not one"),
    ('SELECT count(*) FROM "events".main."IdentityLogonEvents"', "'events.main.IdentityLogonEvents' is not"),
    ("SELECT * FROM information_schema.tables", "'information_schema.tables' is not one"),
    ("SELECT table_name, estimated_size FROM duckdb_tables()", "the table function duckdb_tables()"),
    ("SELECT * FROM read_csv('/etc/passwd')", "the table function read_csv()"),
    ("SELECT * FROM sqlite_master", "'sqlite_master' is not one"),
    ("SELECT * FROM clampdown_meta.cursors", "'clampdown_meta.cursors' is not one"),
    ("SELECT * FROM clampdown_meta.rules", "'clampdown_meta.rules' is not one"),
    ("SELECT * FROM '/etc/passwd'", "'/etc/passwd' is not one"),
    ("WITH IdentityLogonEvents AS (SELECT * FROM main.IdentityLogonEvents)"
     " SELECT count(*) FROM IdentityLogonEvents", "'main.IdentityLogonEvents' is not one"),
    # A CTE's own name, inside it, is the catalog's table of that name, not the CTE.
    ("WITH sqlite_master AS (SELECT count(*) FROM sqlite_master) SELECT * FROM sqlite_master",
     "'sqlite_master' is not one"),
    # A CTE is no name outside the subquery that defines it.
    ("SELECT * FROM (WITH duckdb_views AS (SELECT 1) SELECT * FROM duckdb_views), duckdb_views",
     "'duckdb_views' is not one"),
    ("SELECT AccountUpn FROM IdentityLogonEvents WHERE AccountUpn IN"
     " (SELECT database_name FROM duckdb_databases())", "the table function duckdb_databases()"),
    ("SUMMARIZE IdentityLogonEvents", "DESCRIBE, SHOW or SUMMARIZE is not allowed"),
    ("SELECT * FROM query_table('clampdown_meta.rules')", "the table function query_table()"),
    # Built-in macros read the catalog without naming a table: the bound plan shows what they read.
    ("SELECT pg_get_viewdef(1)", "it reads duckdb_views()"),
    ("SELECT get_block_size('events')", "it reads pragma_database_size()"),
]  # fmt: skip


@pytest.mark.parametrize(("query", "why"), REFUSED)
def test_a_scoped_query_may_read_the_event_tables_only(events: EventStore, query: str, why: str) -> None:
    with pytest.raises(QueryError) as refused:
        run_query(events, query, sources=EMEA)
    assert "a query limited to directories emea-okta may read the event tables" in refused.value.message
    assert why in refused.value.message


def test_a_refusal_points_at_the_table(events: EventStore) -> None:
    with pytest.raises(QueryError) as refused:
        run_query(
            events, "SELECT 'é', *\n  FROM IdentityLogonEvents, information_schema.tables", sources=EMEA
        )
    assert (refused.value.line, refused.value.column) == (2, 29)


def test_unscoped_queries_read_what_they_always_did(events: EventStore) -> None:
    assert run_query(events, "SELECT count(*) FROM main.IdentityLogonEvents").rows == [[4]]
    assert run_query(events, "SELECT count(*) FROM clampdown_meta.cursors").rows == [[1]]
    tables = run_query(events, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'main'")
    assert tables.rows == [[5]]  # the four identity tables and SecuritySignals


def test_directory_names_are_quoted_not_spliced(events: EventStore) -> None:
    for hostile in ("x' OR true OR 'x", "emea-okta' OR Directory <> '", 'a"b'):
        assert run_query(
            events, "SELECT count(*) FROM IdentityLogonEvents", sources=frozenset({hostile})
        ).rows == [[0]]


def test_the_limit_stays_with_the_query_that_asked_for_it(events: EventStore) -> None:
    """The filtered views live on the query's own connection: a hunt run after, or beside it on
    a held file, sees the whole table."""
    query = "SELECT count(*) FROM IdentityLogonEvents"
    with events.held():
        assert run_query(events, query, sources=EMEA).rows == [[2]]
        assert run_query(events, query).rows == [[4]]
        assert run_query(events, query, sources=frozenset({"corp-okta"})).rows == [[1]]
    assert run_query(events, query).rows == [[4]]


@dataclass
class Env:
    service: HuntingService
    actions: ActionStore
    auth: AuthService
    admin: Principal
    operator: Principal  # scoped to emea-okta


@pytest.fixture
async def env(engine: AsyncEngine, tmp_path: Path, events: EventStore) -> Env:
    auth = AuthService(AuthStore(engine))
    providers = {
        name: memory_provider("okta", tmp_path / f"{name}.db") for name in ("corp-okta", "emea-okta")
    }
    store = ActionStore(engine)
    actions = ActionService(
        store, build_connectors(Settings(providers=providers)), record_denial=auth.record_denial
    )
    admin = await auth.principal_for(
        await auth.create_user("admin", frozenset({GLOBAL_ADMINISTRATOR}), None), "api"
    )
    operator = await auth.principal_for(
        await auth.create_user("emea-op", frozenset({SECURITY_OPERATOR}), None), "api"
    )
    service = HuntingService(events, actions, auth, auth.record_denial)
    return Env(service, store, auth, admin, replace(operator, scope=EMEA))


async def test_the_service_limits_a_scoped_principals_hunts(env: Env) -> None:
    query = "SELECT AccountUpn FROM IdentityLogonEvents ORDER BY 1"
    scoped = await env.service.query(env.operator, query)
    assert [r[0] for r in scoped.rows] == _expected("IdentityLogonEvents")
    everyone = await env.service.query(env.admin, query)
    assert [r[0] for r in everyone.rows] == _expected("IdentityLogonEvents", sources=None)
    with pytest.raises(QueryError, match=r"'clampdown_meta\.rules' is not one"):
        await env.service.query(env.operator, "SELECT * FROM clampdown_meta.rules")


async def test_acting_on_results_targets_the_accounts_of_the_scoped_rows_only(env: Env) -> None:
    outcome = await env.service.act_on_results(
        env.operator,
        "SELECT AccountUpn FROM IdentityLogonEvents UNION ALL SELECT AccountUpn FROM CloudSignInEvents",
        "AccountUpn",
        "okta.suspend_user",
        "spray from a known bad address",
    )
    assert sorted(outcome.targets) == ["bob@emea.example", "carol@emea.example"]
    queued = await env.actions.list_actions(ActionFilter(batch_id=outcome.bulk.batch_id))
    assert sorted(a.target for a in queued) == ["bob@emea.example", "carol@emea.example"]
    assert {a.instance for a in queued} == {"emea-okta"}


RULE_CALLS = {
    "read detection rules": lambda s, p: s.rules(p),
    "create detection rules": lambda s, p: s.create_rule(p, "spray", "IdentityLogonEvents | count", 60),
    "change detection rules": lambda s, p: s.set_rule_enabled(p, "armed", False),
    "run detection rules": lambda s, p: s.run_rule_now(p, "armed"),
    "read alerts": lambda s, p: s.alerts(p),
}


@pytest.mark.parametrize("what", list(RULE_CALLS))
async def test_rules_and_alerts_are_refused_a_scoped_principal(env: Env, what: str) -> None:
    await env.service.create_rule(env.admin, "armed", "IdentityLogonEvents | count", 60)
    with pytest.raises(PermissionDenied, match="it covers every directory") as denied:
        await RULE_CALLS[what](env.service, env.operator)
    assert denied.value.missing == "access to every directory"
    denials = [(d.principal, d.attempted, d.missing) for d in await env.auth.store.denials()]
    assert denials == [("emea-op", f"hunting.{what}", "access to every directory")]
    rule = await asyncio.to_thread(get_rule, env.service.store, "armed")
    assert rule.enabled and rule.last_run_at is None  # nothing was changed or run
    assert [r.name for r in await env.service.rules(env.admin)] == ["armed"]


async def test_a_rule_reads_as_far_as_its_armers_scope(env: Env) -> None:
    """Arming is refused a scoped user, but a rule armed by someone whose access was limited since
    queries their directories only."""
    user = await env.auth.create_user("limited", frozenset({SECURITY_OPERATOR}), None, scope=EMEA)
    assert (await env.auth.principal_for(user, "rule")).scope == EMEA
    query = "SELECT AccountUpn FROM IdentityLogonEvents"
    rule = await asyncio.to_thread(create_rule, env.service.store, "emea logons", query, "limited", 60)
    run = await run_rule(rule, env.service.store, env.service.actions, env.auth)
    assert run.rows == 2
    alerted = await asyncio.to_thread(list_alerts, env.service.store, rule.id)
    assert sorted(a.row["AccountUpn"] for a in alerted) == _expected("IdentityLogonEvents")
