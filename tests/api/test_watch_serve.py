"""`clampdown serve` runs the containment watch: an account turned back on outside Clampdown (here
another process writing the shared memory directory) is contained again within one interval,
without anyone asking, and the action center shows who did it and why."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest
import tomli_w

from tests.api.conftest import start_server
from tests.lab_config import bootstrap_admin, clampdown, memory_provider, memory_rows

pytestmark = pytest.mark.slow
INTERVAL = 0.5


def _enabled_again(state: Path, account: str) -> None:
    """Someone outside Clampdown turns the account back on (the memory directory's own row)."""
    with sqlite3.connect(state) as db:
        db.execute("INSERT OR REPLACE INTO state VALUES (?, 'enabled', 'True')", (account,))


def _enabled(state: Path, account: str) -> bool:
    with sqlite3.connect(state) as db:
        query = "SELECT value FROM state WHERE account = ? AND field = 'enabled'"
        row = db.execute(query, (account,)).fetchone()
    return row is None or row[0] == "True"


def test_serve_contains_again_within_one_interval(tmp_path: Path) -> None:
    state = tmp_path / "ad.db"
    config = tmp_path / "clampdown.toml"
    config.write_text(tomli_w.dumps({
        "database": {"url": f"sqlite:///{tmp_path / 'clampdown.db'}"},
        "engine": {"poll_interval_seconds": 0.05},
        "providers": {"ad": memory_provider("ad", state)},
        "watch": {"interval_seconds": INTERVAL},
        "playbooks": {"contain": {"on_drift": "recontain", "steps": [{"action": "ad.disable_user"}]}},
    }))  # fmt: skip
    token = bootstrap_admin(config)
    proc, _ = start_server(config)
    try:
        done = clampdown(config, "contain", "mallory", "-r", "INC-11", "--wait", "--json", token=token)
        assert done.returncode == 0, done.stderr
        containment_id = json.loads(done.stdout)["containment_id"]
        assert not _enabled(state, "id-mallory")

        _enabled_again(state, "id-mallory")
        deadline = time.monotonic() + 60  # generous: the machine may be loaded; the interval is 0.5 s
        while _enabled(state, "id-mallory") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not _enabled(state, "id-mallory"), "the watch did not contain the account again"
        changes = [row[1] for row in memory_rows(state, "changes")]
        assert changes == ["disable_user", "disable_user"]  # once by contain, once by the watch

        shown = clampdown(config, "containments", "show", str(containment_id), "--json", token=token)
        containment = json.loads(shown.stdout)
        again = [a for a in containment["actions"] if a["requested_by"] == "watch"]
        assert len(again) == 1 and "enabled is True outside Clampdown" in again[0]["reason"]
        assert any(n.startswith("drift on step") for n in containment["notes"])
    finally:
        proc.terminate()
        proc.wait(15)
