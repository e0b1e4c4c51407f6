"""Every change to who may do what is in the audit chain, naming who, what and from where: users,
roles, custom roles and tokens, made with the real `clampdown` commands."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.chain import AuditLog
from clampdown.db.database import create_engine


def clampdown(
    database_url: str, tmp_path: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "clampdown.toml"
    config.write_text(f'[database]\nurl = "{database_url}"\n')
    env = {**os.environ, "CLAMPDOWN_CONFIG": str(config)}
    done = subprocess.run(
        [sys.executable, "-m", "clampdown", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done


def audit(database_url: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        engine = create_engine(database_url)
        try:
            return [row async for row in AuditLog(engine).rows()]
        finally:
            await engine.dispose()

    return asyncio.run(read())


@pytest.mark.usefixtures("engine")  # migrated
def test_user_role_and_token_changes_are_audited(
    database_url: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    def run(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return clampdown(database_url, tmp_path, *args, stdin=stdin)

    run(
        "users",
        "create",
        "ana.analyst",
        "--role",
        "Security Reader",
        "--password-stdin",
        stdin="x" * 16 + "\n",
    )
    run("roles", "create", "Hunters", "--permission", "hunting:read")
    run("roles", "create", "Hunters", "--permission", "hunting:read", "--permission", "hunting:manage")
    run("users", "set-roles", "ana.analyst", "--role", "Hunters")
    token_id = run("tokens", "create", "--user", "ana.analyst", "--name", "laptop", "--json").stdout
    run("users", "set-roles", "ana.analyst", "--role", "Security Reader")
    run("roles", "delete", "Hunters")
    issued = json.loads(token_id)
    run("tokens", "revoke", str(issued["id"]))
    rows = audit(database_url)
    events = [(r["event"], r["subject"]) for r in rows]
    assert events == [
        ("user.created", "ana.analyst"),
        ("role.created", "Hunters"),
        ("role.changed", "Hunters"),
        ("user.roles_changed", "ana.analyst"),
        ("token.created", "ana.analyst"),
        ("user.roles_changed", "ana.analyst"),
        ("role.deleted", "Hunters"),
        ("token.revoked", "ana.analyst"),
    ]
    for row in rows:  # who, and from where
        assert row["actor"].startswith("database administrator ")
        assert row["data"]["channel"] == "cli" and row["data"]["source"] == socket.gethostname()
    by_event = {r["event"]: r["data"] for r in rows}
    assert (
        by_event["user.created"]["roles"] == ["Security Reader"]
        and by_event["user.created"]["password"] is True
    )
    assert by_event["role.changed"]["before"] == ["hunting:read"]
    assert by_event["role.changed"]["permissions"] == ["hunting:manage", "hunting:read"]
    assert by_event["token.created"]["token_id"] == issued["id"]
    assert (
        by_event["token.created"]["token_name"] == "laptop" and by_event["token.created"]["service"] is False
    )
    assert issued["token"] not in str(rows)  # the token itself is never recorded
    assert by_event["token.revoked"]["token_id"] == issued["id"]
    assert by_event["user.roles_changed"]["before"] == ["Hunters"]


@pytest.mark.usefixtures("engine")
def test_a_custom_role_still_held_is_not_deleted(database_url: str, tmp_path: Path) -> None:
    clampdown(database_url, tmp_path, "roles", "create", "Hunters", "--permission", "hunting:read")
    clampdown(database_url, tmp_path, "users", "create", "ana.analyst", "--role", "Hunters")
    config = tmp_path / "clampdown.toml"
    refused = subprocess.run(
        [sys.executable, "-m", "clampdown", "roles", "delete", "Hunters"],
        env={**os.environ, "CLAMPDOWN_CONFIG": str(config)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0 and "ana.analyst" in refused.stderr
    assert [r["event"] for r in audit(database_url)] == ["role.created", "user.created"]
