"""`clampdown serve` on SQLite: health endpoints, the catalog, and the embedded worker at work."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.lab_config import clampdown, create_user_token, memory_provider, memory_rows, write_config


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    state = tmp_path / "directory.db"
    config = write_config(
        tmp_path / "clampdown.toml",
        f"sqlite:///{tmp_path / 'clampdown.db'}",
        providers={"okta": memory_provider("okta", state)},
        poll_interval_seconds=0.05,
    )
    port = _free_port()
    env = {**os.environ, "CLAMPDOWN_CONFIG": str(config)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "clampdown", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    try:
        yield base, config, state
    finally:
        proc.terminate()
        proc.wait(15)


def test_health_ready_and_catalog(served: tuple[str, Path, Path]) -> None:
    base, _, _ = served
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{base}/readyz")
    assert ready.status_code == 200 and ready.json() == {
        "ready": True,
        "checks": {"database": "ok", "okta": "ok"},
    }
    ids = {d["id"] for d in httpx.get(f"{base}/api/v1/catalog").json()}
    assert "okta.deactivate_user" in ids
    assert "/api/v1/catalog" in httpx.get(f"{base}/openapi.json").json()["paths"]


def test_embedded_worker_runs_what_the_cli_queues(served: tuple[str, Path, Path]) -> None:
    _, config, state = served
    token = create_user_token(config, "responder", "Security Operator")
    result = clampdown(
        config, "act", "okta.suspend_user", "alice", "-r", "INC-9", "--wait", "--timeout", "30", token=token
    )
    assert result.returncode == 0, result.stderr
    assert "completed" in result.stdout
    assert [row[:2] for row in memory_rows(state, "changes")] == [("id-alice", "suspend_user")]
