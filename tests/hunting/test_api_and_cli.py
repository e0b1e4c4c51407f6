"""Hunting through a real `clampdown serve` and the real CLI: ingest, hunt, save, act on the results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from clampdown.config import load_settings
from clampdown.hunting.rules import create_rule, list_alerts
from clampdown.hunting.settings import HuntingSettings, events_path
from clampdown.hunting.store import EventStore
from clampdown.permissions import GLOBAL_ADMINISTRATOR, SECURITY_OPERATOR, SECURITY_READER
from tests.api.conftest import Server
from tests.hunting.scenario import (
    BRUTE_FAILURES,
    BRUTE_IP,
    BRUTE_USER,
    DIRECTORY_ROWS,
    LOGON_ROWS,
    SPRAY_IP,
    SPRAY_USERS,
)
from tests.hunting.test_ingest_and_hunt import BRUTE_FORCE_KQL, SPRAY_SQL
from tests.lab_config import clampdown, memory_rows

SPRAYED_ACCOUNTS_KQL = (
    'IdentityLogonEvents | where ActionType == "LogonFailed" and IPAddress == "203.0.113.7"'
    " | summarize Failures = count() by AccountName"
)


def _ingest(server: Server, token: str, day_evtx: Path) -> None:
    done = clampdown(server.config, "ingest", "evtx", str(day_evtx), "--json", token=token)
    assert done.returncode == 0, done.stderr
    assert f'"added": {LOGON_ROWS + DIRECTORY_ROWS},' in done.stdout


def _flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def _post(server: Server, token: str, path: str, body: dict[str, object]) -> httpx.Response:
    return httpx.post(
        f"{server.base}/api/v1/hunting{path}",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=60,
    )


async def test_hunt_over_the_api_and_act_on_the_accounts_found(server_factory, day_evtx: Path) -> None:  # type: ignore[no-untyped-def]
    server: Server = server_factory(embedded_worker=True)
    admin = await server.token("hunter", GLOBAL_ADMINISTRATOR)
    _ingest(server, admin, day_evtx)

    brute = _post(server, admin, "/query", {"query": BRUTE_FORCE_KQL})
    assert brute.status_code == 200, brute.text
    assert brute.json()["language"] == "kql"
    assert [r[:3] for r in brute.json()["rows"]] == [[BRUTE_USER, BRUTE_IP, BRUTE_FAILURES]]
    spray = _post(server, admin, "/query", {"query": SPRAY_SQL, "language": "sql"})
    assert spray.json()["rows"] == [[SPRAY_IP, len(SPRAY_USERS), len(SPRAY_USERS)]]

    acted = _post(
        server, admin, "/act",
        {"query": SPRAYED_ACCOUNTS_KQL, "column": "AccountName", "action": "ad.disable_user",
         "reason": "password spray from 203.0.113.7"},
    )  # fmt: skip
    assert acted.status_code == 202, acted.text
    batch = acted.json()["batch_id"]
    assert sorted(acted.json()["targets"]) == SPRAY_USERS
    headers = {"Authorization": f"Bearer {admin}"}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        page = httpx.get(f"{server.base}/api/v1/actions", params={"batch": batch}, headers=headers).json()
        if len(page["items"]) == 12 and all(a["status"] == "completed" for a in page["items"]):
            break
        time.sleep(0.2)
    assert {a["requested_by"] for a in page["items"]} == {"hunter"}
    assert {a["reason"] for a in page["items"]} == {"password spray from 203.0.113.7"}
    changed = memory_rows(server.state_dir / "ad.db", "changes")
    assert sorted(account for account, method, _, _ in changed if method == "disable_user") == [
        f"id-{u}" for u in SPRAY_USERS
    ]


async def test_rights_errors_and_saved_queries_over_the_api(server: Server, day_evtx: Path) -> None:
    admin = await server.token("lead", GLOBAL_ADMINISTRATOR)
    reader = await server.token("reader", SECURITY_READER)
    operator = await server.token("operator", SECURITY_OPERATOR)
    _ingest(server, admin, day_evtx)

    assert _post(server, reader, "/query", {"query": "IdentityLogonEvents | count"}).json()["rows"] == [
        [LOGON_ROWS]
    ]
    denied = _post(
        server, reader, "/act",
        {"query": SPRAYED_ACCOUNTS_KQL, "column": "AccountName", "action": "ad.disable_user", "reason": "x"},
    )  # fmt: skip
    assert denied.status_code == 403 and "ad.disable_user" in denied.json()["error"]["message"]
    assert _post(server, reader, "/queries", {"name": "spray", "query": SPRAY_SQL}).status_code == 403

    refused = _post(server, admin, "/query", {"query": "COPY IdentityLogonEvents TO '/tmp/x.csv'"})
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "invalid_query"
    assert "read-only" in refused.json()["error"]["message"]
    typo = _post(server, admin, "/query", {"query": "IdentityLogonEvents\n| where ActionType =="})
    assert typo.status_code == 422 and typo.json()["error"]["message"].startswith("line 2, column")
    missing = _post(
        server, admin, "/act",
        {"query": SPRAYED_ACCOUNTS_KQL, "column": "Upn", "action": "ad.disable_user", "reason": "x"},
    )  # fmt: skip
    assert missing.status_code == 422 and "AccountName" in missing.json()["error"]["message"]

    saved = _post(server, operator, "/queries", {"name": "password spray", "query": SPRAY_SQL})
    assert saved.status_code == 201, saved.text
    assert saved.json()["owner"] == "operator"
    again = _post(server, operator, "/queries", {"name": "password spray", "query": SPRAY_SQL})
    assert again.status_code == 409
    headers = {"Authorization": f"Bearer {reader}"}
    listed = httpx.get(f"{server.base}/api/v1/hunting/queries", headers=headers).json()
    assert [q["name"] for q in listed] == ["password spray"]
    ran = httpx.post(f"{server.base}/api/v1/hunting/queries/password spray/run", headers=headers)
    assert ran.json()["rows"] == [[SPRAY_IP, len(SPRAY_USERS), len(SPRAY_USERS)]]
    gone = httpx.delete(
        f"{server.base}/api/v1/hunting/queries/{saved.json()['id']}",
        headers={"Authorization": f"Bearer {operator}"},
    )
    assert gone.status_code == 204
    assert httpx.get(f"{server.base}/api/v1/hunting/queries", headers=headers).json() == []


# The CLI's hunting paths do not touch the SQL database beyond signing in: SQLite is enough.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_hunt_and_ingest_from_the_cli(server: Server, day_evtx: Path, day_jsonl: Path) -> None:
    admin = await server.token("cli-hunter", GLOBAL_ADMINISTRATOR)
    reader = await server.token("cli-reader", SECURITY_READER)
    refused = clampdown(server.config, "ingest", "evtx", str(day_evtx), token=reader)
    assert refused.returncode == 7 and "hunting:manage" in refused.stderr
    first = clampdown(server.config, "ingest", "jsonl", str(day_jsonl), token=admin)
    assert first.returncode == 0 and f"{LOGON_ROWS + DIRECTORY_ROWS} rows added" in _flat(first.stdout)
    same = clampdown(server.config, "ingest", "evtx", str(day_evtx), token=admin)
    assert f"0 rows added, {LOGON_ROWS + DIRECTORY_ROWS + 1} already stored" in _flat(same.stdout)

    hunted = clampdown(server.config, "hunt", BRUTE_FORCE_KQL, "--json", token=reader)
    assert hunted.returncode == 0, hunted.stderr
    assert f'"{BRUTE_USER}"' in hunted.stdout and f"{BRUTE_FAILURES}" in hunted.stdout
    table = clampdown(server.config, "hunt", SPRAY_SQL, token=reader)
    assert SPRAY_IP in table.stdout and "1 rows" in _flat(table.stderr)
    bad = clampdown(server.config, "hunt", "SELECT * FROM read_csv('/etc/passwd')", token=reader)
    assert bad.returncode == 2 and "root:" not in bad.stdout + bad.stderr

    acted = clampdown(
        server.config, "hunt", BRUTE_FORCE_KQL, "--act", "okta.suspend_user", "--column", "AccountName",
        "--reason", "brute force", token=admin,
    )  # fmt: skip
    assert acted.returncode == 0, acted.stderr
    assert "1 actions queued (okta.suspend_user on 1 accounts)" in _flat(acted.stdout)
    listed = clampdown(server.config, "actions", "list", "--json", token=admin)
    assert BRUTE_USER in listed.stdout and "brute force" in listed.stdout


async def test_schema_rules_and_alerts_over_the_api(server: Server, day_evtx: Path) -> None:
    admin = await server.token("boss", GLOBAL_ADMINISTRATOR)
    operator = await server.token("op", SECURITY_OPERATOR)
    reader = await server.token("viewer", SECURITY_READER)
    _ingest(server, admin, day_evtx)
    as_reader = {"Authorization": f"Bearer {reader}"}
    schema = httpx.get(f"{server.base}/api/v1/hunting/schema", headers=as_reader).json()
    tables = {t["name"]: {c["name"] for c in t["columns"]} for t in schema}
    assert set(tables) == {
        "IdentityLogonEvents",
        "IdentityDirectoryEvents",
        "CloudSignInEvents",
        "IdentityInfo",
        "SecuritySignals",
    }
    assert {"Timestamp", "AccountName", "AccountSid", "IPAddress", "ReportId"} <= tables[
        "IdentityLogonEvents"
    ]

    rule = {"name": "brute force", "query": BRUTE_FORCE_KQL, "interval_seconds": 300,
            "action": "okta.suspend_user", "account_column": "AccountName"}  # fmt: skip
    assert _post(server, reader, "/rules", rule).status_code == 403
    made = _post(server, operator, "/rules", rule)
    assert made.status_code == 201, made.text
    assert (made.json()["owner"], made.json()["enabled"], made.json()["armed_by"]) == ("op", True, "op")
    ran = _post(server, reader, "/rules/brute force/run", {})
    assert ran.status_code == 403
    ran = _post(server, admin, "/rules/brute force/run", {})
    assert ran.json()["new_alerts"] == 1 and ran.json()["batch_id"]
    alerts = httpx.get(f"{server.base}/api/v1/hunting/alerts", headers=as_reader).json()
    assert [(a["account"], a["row"]["Failures"]) for a in alerts] == [(BRUTE_USER, BRUTE_FAILURES)]
    batch = httpx.get(
        f"{server.base}/api/v1/actions", params={"batch": ran.json()["batch_id"]}, headers=as_reader
    ).json()["items"]
    assert [(a["target"], a["requested_by"], a["reason"]) for a in batch] == [
        (BRUTE_USER, "op", "detection rule 'brute force'")
    ]
    off = httpx.patch(
        f"{server.base}/api/v1/hunting/rules/brute force", json={"enabled": False},
        headers={"Authorization": f"Bearer {operator}"},
    )  # fmt: skip
    assert off.json()["enabled"] is False
    arm = {"Authorization": f"Bearer {admin}"}
    on = httpx.patch(f"{server.base}/api/v1/hunting/rules/brute force", json={"enabled": True}, headers=arm)
    assert (on.json()["enabled"], on.json()["armed_by"]) == (True, "boss")
    disabling = {**rule, "name": "disable them", "action": "ad.disable_user"}
    assert _post(server, operator, "/rules", disabling).status_code == 403  # not the operator's action


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_hunt_in_the_lab_finds_the_lab_day(server: Server) -> None:
    admin = await server.token("lab-admin", GLOBAL_ADMINISTRATOR)
    for day in ("2026-11-27", "2026-11-28", "2026-11-28"):
        done = clampdown(server.config, "ingest", "lab-day", "--day", day, "--json", token=admin)
        assert done.returncode == 0, done.stderr
    hunted = clampdown(server.config, "hunt", BRUTE_FORCE_KQL, "--json", token=admin)
    rows = json.loads(hunted.stdout)["rows"]
    assert [r[:3] for r in rows] == [
        ["bob.nguyen", "10.20.0.66", 50]
    ]  # two days, the third run added nothing
    sprayed = clampdown(server.config, "hunt", SPRAY_SQL.replace(">= 10", ">= 8"), "--json", token=admin)
    assert json.loads(sprayed.stdout)["rows"] == [["203.0.113.7", 8, 16]]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_ingest_watch_runs_the_schedule_outside_serve(server: Server) -> None:
    admin = await server.token("watcher", GLOBAL_ADMINISTRATOR)
    assert clampdown(server.config, "ingest", "lab-day", "--day", "2026-11-28", token=admin).returncode == 0
    store = EventStore(events_path(load_settings(server.config)), HuntingSettings())
    create_rule(store, "lab brute force", BRUTE_FORCE_KQL, "watcher", 60, account_column="AccountName")
    env = {**os.environ, "CLAMPDOWN_CONFIG": str(server.config), "CLAMPDOWN_TOKEN": admin}
    watch = subprocess.Popen(
        [sys.executable, "-m", "clampdown", "ingest", "watch"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list_alerts(store):
            time.sleep(0.5)
        assert [a.account for a in list_alerts(store)] == ["bob.nguyen"]
    finally:
        watch.terminate()
        watch.wait(15)
