"""The command starts light (issue 18): `clampdown --help`, and a command asking a server over the
API, import neither DuckDB, pyarrow, the web framework, the directory clients, the connectors, the
hunting package nor the database. How fast that is, bench/cli_startup.py measures."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

# Never needed to print help or to ask a server: each is imported by the commands that use it.
HEAVY = (
    "duckdb",
    "pyarrow",
    "fastapi",
    "starlette",
    "uvicorn",
    "ldap3",
    "msal",
    "alembic",
    "argon2",
    "clampdown.connectors",
    "clampdown.hunting",
    "clampdown.services",
    "clampdown.server",
)
NOT_FOR_HELP = (*HEAVY, "sqlalchemy", "httpx", "clampdown.views", "clampdown.config")

RUN = """
import json, sys
sys.argv = ["clampdown", *json.loads(sys.argv[1])]
try:
    from clampdown.cli import app
    app()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("\\n" + json.dumps({"code": code, "modules": sorted(sys.modules)}))
"""


def _loaded(*args: str, **env: str) -> tuple[int, set[str]]:
    """Run the command in a fresh interpreter; its exit code and every module it imported."""
    environment = {**os.environ, "COLUMNS": "120", **env}
    environment.pop("CLAMPDOWN_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", RUN, json.dumps(list(args))],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return report["code"], set(report["modules"])


def _heavy(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_help_imports_nothing_heavy() -> None:
    code, modules = _loaded("--help")
    assert code == 0
    assert _heavy(modules, (*NOT_FOR_HELP, "pydantic")) == []


@pytest.mark.parametrize(
    "args", [("actions", "--help"), ("act", "--help"), ("hunt", "--help"), ("lab", "--help")], ids=" ".join
)
def test_a_commands_help_imports_nothing_heavy(args: tuple[str, ...]) -> None:
    """(Typer itself reads a command's parameters with pydantic: that much a command's help costs.)"""
    code, modules = _loaded(*args)
    assert code == 0
    assert _heavy(modules, NOT_FOR_HELP) == []


def test_help_still_lists_every_command_and_the_plugins() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "clampdown", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    for command in ("act", "catalog", "actions", "contain", "hunt", "ingest", "serve", "lab", "--server"):
        assert command in done.stdout
    assert "not loaded" not in done.stderr  # the lab's registration imports nothing it lacks


def test_catalog_imports_nothing_heavy() -> None:
    code, modules = _loaded("catalog", "--json")
    assert code == 0
    assert _heavy(modules, NOT_FOR_HELP) == []


@pytest.mark.parametrize("args", [("actions", "list"), ("actions", "show", "7"), ("catalog",)], ids=" ".join)
def test_asking_a_server_imports_neither_the_database_nor_duckdb(args: tuple[str, ...]) -> None:
    """Nothing listens on the port: the command fails cleanly (exit 5), having loaded only httpx."""
    server = f"http://127.0.0.1:{_closed_port()}"
    code, modules = _loaded("--server", server, "--token", "t", *args)
    assert code == 5
    assert "httpx" in modules
    assert _heavy(modules, (*HEAVY, "sqlalchemy", "clampdown.config")) == []
