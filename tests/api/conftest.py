"""A real `clampdown serve` on a free loopback port, with memory directories for AD, Entra ID and Okta."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import tomli_w
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.auth.service import AuthService
from clampdown.store.auth import AuthStore
from tests.lab_config import memory_provider


@dataclass
class Server:
    base: str
    config: Path
    engine: AsyncEngine
    state_dir: Path

    async def token(self, username: str, *roles: str) -> str:
        """A new user with these roles and a fresh API token, made directly in the database."""
        auth = AuthService(AuthStore(self.engine))
        await auth.create_user(username, frozenset(roles), "correct horse battery")
        return (await auth.create_token(username, "test", None)).token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(config: Path, port: int | None = None) -> tuple[subprocess.Popen[bytes], str]:
    port = port or free_port()
    env = {**os.environ, "CLAMPDOWN_CONFIG": str(config)}
    # The server's log goes to a file: a pipe nobody reads fills up and blocks the server.
    log = config.with_name(f"serve-{port}.log")
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "clampdown", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz").status_code == 200:
                return proc, base
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"clampdown serve did not start: {log.read_text(errors='replace')}")


@pytest.fixture
def server_factory(engine: AsyncEngine, database_url: str, tmp_path: Path) -> Iterator[object]:
    procs: list[subprocess.Popen[bytes]] = []

    def make(embedded_worker: bool = False, **engine_settings: object) -> Server:
        providers = {p: memory_provider(p, tmp_path / f"{p}.db") for p in ("ad", "entra", "okta")}
        data = {
            "database": {"url": database_url},
            "server": {"embedded_worker": embedded_worker},
            "engine": {"poll_interval_seconds": 0.05, **engine_settings},
            "providers": providers,
        }
        config = tmp_path / "clampdown.toml"
        config.write_text(tomli_w.dumps(data))
        proc, base = start_server(config)
        procs.append(proc)
        return Server(base, config, engine, tmp_path)

    yield make
    for proc in procs:
        proc.terminate()
        proc.wait(15)


@pytest.fixture
def server(server_factory) -> Server:  # type: ignore[no-untyped-def]
    return server_factory()  # type: ignore[no-any-return]
