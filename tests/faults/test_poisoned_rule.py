"""A rule fed a poisoned event keeps running and still acts on the good rows, end to end: events
ingested by `clampdown ingest jsonl`, rules made over the REST API of a real `clampdown serve`,
run by its hunting schedule, their actions run by its embedded worker on the memory directories."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import tomli_w
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.chain import AuditLog
from clampdown.connectors.memory import MemoryConnector, MemorySettings
from clampdown.model import ActionFilter, ActionStatus
from clampdown.store.actions import ActionStore
from tests.api.conftest import start_server
from tests.hunting.evtx_writer import SecurityEvent
from tests.hunting.scenario import BRUTE_USER, START, security_events, write_jsonl
from tests.hunting.test_ingest_and_hunt import BRUTE_FORCE_KQL
from tests.lab_config import bootstrap_admin, clampdown, memory_provider, memory_rows

pytestmark = pytest.mark.slow

LONG = "x" * 600  # past the 512 characters a target may have
NUL = "eve\x00l"  # PostgreSQL stores no NUL, in text or in JSON
CONTROL = "ctl\x01\x1b[31mname"  # control characters: a target the service takes
KEY_SIZED = "k" * 300  # past String(256) were it used as a key as it is
POISON = [LONG, NUL, CONTROL, KEY_SIZED]
ACCEPTED = {BRUTE_USER, CONTROL, KEY_SIZED}
SECOND_USER = "alice.martin"
SECOND_KQL = f"""IdentityLogonEvents
| where AccountName == "{SECOND_USER}"
| summarize Events = count() by AccountName"""


def _poisoned_day(path: Path) -> Path:
    """The known day, and eleven failed logons for each poisoned user name from one address."""
    events: list[SecurityEvent] = security_events()
    for n, name in enumerate(POISON):
        for i in range(11):
            events.append(
                SecurityEvent(
                    4625, START + timedelta(hours=4, minutes=n, seconds=i), len(events) + 1,
                    [("TargetUserName", name), ("TargetDomainName", "LAB"), ("Status", "0xc000006d"),
                     ("SubStatus", "0xc000006a"), ("LogonType", "3"), ("IpAddress", "198.51.100.9"),
                     ("IpPort", "50000")],
                )
            )  # fmt: skip
    return write_jsonl(path, events)


def _config(tmp_path: Path, database_url: str) -> Path:
    data: dict[str, Any] = {
        "database": {"url": database_url},
        # The schedule runs where the embedded worker does, on PostgreSQL too when asked.
        "server": {"embedded_worker": True},
        "engine": {"poll_interval_seconds": 0.05},
        "providers": {p: memory_provider(p, tmp_path / f"{p}.db") for p in ("ad", "entra", "okta")},
        "hunting": {
            "events_path": str(tmp_path / "events.duckdb"),
            "rules_interval_seconds": 0.5,
            "pull_interval_seconds": 3600,
        },
    }
    config = tmp_path / "clampdown.toml"
    config.write_text(tomli_w.dumps(data))
    return config


async def _poll(what: str, probe, timeout: float = 60) -> Any:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        found = await probe()
        if found or time.monotonic() > deadline:
            assert found, f"{what}: not within {timeout:g} s"
            return found
        await asyncio.sleep(0.2)


async def test_a_poisoned_rule_keeps_running_acts_on_the_good_rows_and_the_next_rule_runs(
    engine: AsyncEngine, database_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, database_url)
    token = bootstrap_admin(config)
    ingested = clampdown(
        config, "ingest", "jsonl", str(_poisoned_day(tmp_path / "winlogbeat.ndjson")), "--json", token=token
    )
    assert ingested.returncode == 0, ingested.stderr

    proc, base = start_server(config)
    try:
        async with httpx.AsyncClient(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as api:
            for name, query, action in (
                ("a brute force", BRUTE_FORCE_KQL, "okta.suspend_user"),
                ("z after the poisoned one", SECOND_KQL, "entra.suspend_user"),
            ):
                body = {"name": name, "query": query, "interval_seconds": 300, "action": action}
                made = await api.post("/api/v1/hunting/rules", json={**body, "account_column": "AccountName"})
                assert made.status_code == 201, made.text

            async def both_ran() -> list[dict[str, Any]] | None:
                rules = (await api.get("/api/v1/hunting/rules")).json()
                return rules if all(r["last_run_at"] for r in rules) else None

            rules = {r["name"]: r for r in await _poll("both rules ran", both_ran)}
            alerts = (await api.get("/api/v1/hunting/alerts")).json()
            store = ActionStore(engine)

            async def all_done() -> bool:
                acts = await store.list_actions(ActionFilter(), limit=100)
                return len(acts) == len(ACCEPTED) + 1 and all(
                    a.status is ActionStatus.COMPLETED for a in acts
                )

            await _poll("the rules' actions completed", all_done)
            health = await api.get("/healthz")
            assert health.status_code == 200
    finally:
        proc.terminate()
        proc.wait(15)

    # The poisoned rule's run completed: its schedule moved on, and it says what it skipped.
    poisoned, after = rules["a brute force"], rules["z after the poisoned one"]
    assert poisoned["last_run_error"] is None
    assert poisoned["last_run_skipped"] == 2
    assert poisoned["last_run_note"] == (
        "skipped 2 rows: target 'eve\\x00l' contains a NUL character; target is longer than 512 characters"
    )
    assert after["last_run_error"] is None and after["last_run_skipped"] == 0

    # Every row alerted on; the two refused ones carry the reason, no batch.
    by_account = {a["account"]: a for a in alerts if a["rule_id"] == poisoned["id"]}
    assert set(by_account) == {BRUTE_USER, *POISON}
    assert by_account[LONG]["skipped"] == "target is longer than 512 characters"
    assert by_account[LONG]["batch_id"] is None
    assert "NUL" in by_account[NUL]["skipped"] and by_account[NUL]["batch_id"] is None
    batches = {by_account[a]["batch_id"] for a in ACCEPTED}
    assert len(batches) == 1 and None not in batches
    assert all(by_account[a]["skipped"] is None for a in ACCEPTED)
    [second_alert] = [a for a in alerts if a["rule_id"] == after["id"]]
    assert second_alert["account"] == SECOND_USER and second_alert["batch_id"]

    # The good rows' actions ran, and landed in the directories; nothing for the refused names.
    acts = await ActionStore(engine).list_actions(ActionFilter(), limit=100)
    assert sorted((a.type, a.target) for a in acts) == sorted(
        [("okta.suspend_user", t) for t in ACCEPTED] + [("entra.suspend_user", SECOND_USER)]
    )
    okta_changes = memory_rows(tmp_path / "okta.db", "changes")
    assert sorted(r[2] for r in okta_changes) == sorted(a.id for a in acts if a.provider == "okta")
    okta = MemoryConnector(MemorySettings(provider="okta", state_path=str(tmp_path / "okta.db")))
    for target in ACCEPTED:
        assert (await okta.read_state(await okta.resolve_user(target))).enabled is False
    entra_changes = memory_rows(tmp_path / "entra.db", "changes")
    assert [r[2] for r in entra_changes] == [a.id for a in acts if a.provider == "entra"]

    # The audit log has both runs, the skipped rows counted, no NUL in it.
    runs = [r async for r in AuditLog(engine).rows() if r["event"] == "rule.run"]
    data = {r["subject"]: r["data"] for r in runs}
    assert (
        data["a brute force"]["skipped"] == 2 and data["a brute force"]["note"] == poisoned["last_run_note"]
    )
    assert data["z after the poisoned one"]["batch_id"] == second_alert["batch_id"]
    assert all("\x00" not in str(r["data"]) for r in runs)
