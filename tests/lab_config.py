"""Writing throw-away Clampdown configs for tests that run the real command in subprocesses."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import tomli_w


def write_config(
    path: Path, database_url: str, *, providers: dict[str, Any] | None = None, **engine: Any
) -> Path:
    """A config file with the given database, engine settings and provider sections."""
    data: dict[str, Any] = {"database": {"url": database_url}, "providers": providers or {}}
    if engine:
        data["engine"] = engine
    path.write_text(tomli_w.dumps(data), encoding="utf-8")
    return path


def memory_provider(provider: str, state_path: Path, **options: Any) -> dict[str, Any]:
    """A [providers.X] section backed by the shared-file memory directory."""
    return {
        "connector": "clampdown.connectors.memory:MemoryConnector",
        "provider": provider,
        "state_path": str(state_path),
        **options,
    }


def clampdown(
    config: Path, *args: str, token: str | None = None, timeout: float = 120, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    """Run the real `clampdown` command; returns the finished process (never raises on exit code)."""
    env = {**os.environ, "CLAMPDOWN_CONFIG": str(config)}
    env.pop("CLAMPDOWN_TOKEN", None)
    if token:
        env["CLAMPDOWN_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "clampdown", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def spawn_worker(config: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CLAMPDOWN_CONFIG": str(config)}
    return subprocess.Popen(
        [sys.executable, "-m", "clampdown", "worker", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def memory_rows(state_path: Path, table: str) -> list[tuple[Any, ...]]:
    """Rows of the memory directory's `changes` or `calls` log: (account, method, action_id, pid)."""
    with sqlite3.connect(state_path) as db:
        return db.execute(f"SELECT account, method, action_id, pid FROM {table} ORDER BY seq").fetchall()


def create_user_token(config: Path, username: str, *roles: str) -> str:
    """Create a user with the given roles through the real command and return a fresh API token."""
    role_args = [a for r in roles for a in ("--role", r)]
    made = clampdown(config, "users", "create", username, *role_args)
    assert made.returncode == 0, made.stderr
    issued = clampdown(config, "tokens", "create", "--user", username)
    assert issued.returncode == 0, issued.stderr
    return issued.stdout.strip()


def bootstrap_admin(config: Path) -> str:
    """Migrate the database and make a Global Administrator; returns their token."""
    upgraded = clampdown(config, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    return create_user_token(config, "admin", "Global Administrator")
