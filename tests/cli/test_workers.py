"""`clampdown workers` lists the registered workers; `act --wait` says at once when none is alive."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.cli.errors import EXIT_ACTION_FAILED
from clampdown.store.workers import WorkerRegistry
from tests.lab_config import bootstrap_admin, clampdown, memory_provider, write_config

WARNING = "warning: no worker is running: start `clampdown serve` (SQLite) or `clampdown worker`"


@pytest.fixture
def config(database_url: str, engine: AsyncEngine, tmp_path: Path) -> Path:
    providers = {"okta": memory_provider("okta", tmp_path / "directory.db")}
    return write_config(tmp_path / "clampdown.toml", database_url, providers=providers)


@pytest.fixture
def token(config: Path) -> str:
    return bootstrap_admin(config)


async def test_workers_lists_live_and_dead_workers(
    config: Path, token: str, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the table on one line per worker
    empty = clampdown(config, "workers", token=token)
    assert empty.returncode == 0 and "no worker is registered" in empty.stdout
    assert json.loads(clampdown(config, "workers", "--json", token=token).stdout) == []

    registry = WorkerRegistry(engine)
    await registry.register("gone:7:aaaaaa", "gone", 7, "standalone", 0.01)
    await registry.register("here:8:bbbbbb", "here", 8, "embedded", 600)
    time.sleep(0.05)
    listed = json.loads(clampdown(config, "workers", "--json", token=token).stdout)
    assert [(w["id"], w["live"], w["kind"], w["pid"]) for w in listed] == [
        ("here:8:bbbbbb", True, "embedded", 8),
        ("gone:7:aaaaaa", False, "standalone", 7),
    ]
    assert listed[0]["holds"] == [] and listed[0]["inflight"] == 0
    table = clampdown(config, "workers", token=token)
    assert table.returncode == 0
    assert "here:8:bbbbbb" in table.stdout and "live" in table.stdout and "dead" in table.stdout

    refused = clampdown(config, "workers", token="not-a-token")
    assert refused.returncode != 0 and "here:8" not in refused.stdout


def test_act_wait_warns_at_once_when_no_worker_is_alive(config: Path, token: str) -> None:
    env = {**os.environ, "CLAMPDOWN_CONFIG": str(config), "CLAMPDOWN_TOKEN": token}
    started = time.monotonic()
    waiting = subprocess.Popen(
        [sys.executable, "-m", "clampdown", "act", "okta.suspend_user", "alice", "-r", "INC-1",
         "--wait", "--timeout", "120"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert waiting.stderr is not None
        line = waiting.stderr.readline()
        # Told long before the 120 s the wait would last: the time is the command's start-up.
        assert line.startswith(WARNING) and "waiting anyway" in line, line
        assert time.monotonic() - started < 60
        assert waiting.poll() is None  # and it is still waiting
    finally:
        waiting.kill()
        waiting.wait(10)


async def test_act_wait_does_not_warn_while_a_worker_is_alive(
    config: Path, token: str, engine: AsyncEngine
) -> None:
    await WorkerRegistry(engine).register("here:8:cccccc", "here", 8, "standalone", 600)
    done = clampdown(config, "act", "okta.suspend_user", "alice", "-r", "INC-2", "--wait", "--timeout", "1",
                     token=token)  # fmt: skip
    assert done.returncode == EXIT_ACTION_FAILED  # nothing really ran it
    assert "no worker is running" not in done.stderr and "still not finished" in done.stderr
