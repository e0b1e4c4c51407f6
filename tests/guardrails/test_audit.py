"""The audit chain: every action, approval, denial and sign-in is appended, and `audit verify`
finds rows edited, deleted or reordered directly in the database."""

from __future__ import annotations

import itertools
import json
import sqlite3
from pathlib import Path

import psycopg
import pytest

from tests.lab_config import bootstrap_admin, clampdown, create_user_token, memory_provider, write_config


def _sql(database_url: str, statement: str) -> None:
    if database_url.startswith("sqlite"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            db.execute(statement)
    else:
        with psycopg.connect(database_url, autocommit=True) as db:
            db.execute(statement)


@pytest.fixture
def audited(database_url: str, tmp_path: Path) -> tuple[Path, str]:
    providers = {"okta": memory_provider("okta", tmp_path / "okta.db")}
    config = write_config(tmp_path / "clampdown.toml", database_url, providers=providers)
    token = bootstrap_admin(config)
    reader = create_user_token(config, "reader", "Security Reader")
    for user in ("ann", "ben", "cy"):
        assert clampdown(config, "act", "okta.suspend_user", user, "-r", "INC-9", token=token).returncode == 0
    assert clampdown(config, "act", "okta.suspend_user", "dee", "-r", "x", token=reader).returncode == 7
    assert clampdown(config, "worker", "--until-drained").returncode == 0
    return config, token


def test_every_event_is_chained(audited: tuple[Path, str]) -> None:
    config, _ = audited
    verified = clampdown(config, "audit", "verify", "--json")
    assert verified.returncode == 0, verified.stdout
    report = json.loads(verified.stdout)
    assert report["ok"] and report["entries"] >= 7
    exported = [json.loads(line) for line in clampdown(config, "audit", "export").stdout.splitlines()]
    events = [e["event"] for e in exported]
    assert events.count("action.requested") == 3 and events.count("action.completed") == 3
    assert events.count("access.denied") == 1
    assert all(e["prev_hash"] == p["hash"] for p, e in itertools.pairwise(exported))


def test_verify_names_each_edit_delete_and_reorder(audited: tuple[Path, str], database_url: str) -> None:
    config, _ = audited
    rows = [json.loads(line) for line in clampdown(config, "audit", "export").stdout.splitlines()]
    edited, deleted, a, b = rows[1]["seq"], rows[3]["seq"], rows[5]["seq"], rows[6]["seq"]
    _sql(database_url, f"UPDATE audit_log SET actor = 'someone-else' WHERE seq = {edited}")
    _sql(database_url, f"DELETE FROM audit_log WHERE seq = {deleted}")
    # Reorder: swap two rows' places in the sequence.
    _sql(database_url, f"UPDATE audit_log SET seq = -1 WHERE seq = {a}")
    _sql(database_url, f"UPDATE audit_log SET seq = {a} WHERE seq = {b}")
    _sql(database_url, f"UPDATE audit_log SET seq = {b} WHERE seq = -1")
    verified = clampdown(config, "audit", "verify", "--json")
    assert verified.returncode == 1
    breaks = {(item["seq"], item["problem"].split(":")[0]) for item in json.loads(verified.stdout)["breaks"]}
    assert (edited, "its content does not match its hash") in breaks
    assert (rows[4]["seq"], "does not follow the row before it") in breaks  # the row after the deleted one
    assert (a, "does not follow the row before it") in breaks and (
        b,
        "does not follow the row before it",
    ) in breaks
