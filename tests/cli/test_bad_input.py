"""Bad input through the real command: one clear line, a non-zero exit, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.model import ActionFilter
from clampdown.store.actions import ActionStore
from tests.lab_config import bootstrap_admin, clampdown, memory_provider, write_config


@pytest.fixture
def config(database_url: str, engine: AsyncEngine, tmp_path: Path) -> Path:
    providers = {"okta": memory_provider("okta", tmp_path / "directory.db")}
    return write_config(tmp_path / "clampdown.toml", database_url, providers=providers)


@pytest.fixture
def token(config: Path) -> str:
    return bootstrap_admin(config)


def _one_line_error(result, code: int, *words: str) -> None:  # type: ignore[no-untyped-def]
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


@pytest.mark.parametrize(
    ("args", "code", "words"),
    [
        (
            ["act", "okta.freeze_user", "alice", "-r", "x"],
            2,
            ["unknown action 'okta.freeze_user'", "okta.suspend_user"],
        ),
        (
            ["act", "okta.suspend_user", "missing.person", "-r", "x"],
            3,
            ["no such user in okta", "missing.person"],
        ),
        (["act", "okta.suspend_user", "alice", "-r", "   "], 2, ["a reason is required"]),
        (["act", "okta.suspend_user", "alice"], 2, ["a reason is required"]),
        (["act", "ad.disable_user", "alice", "-r", "x"], 2, ["provider 'ad' is not configured"]),
        (["actions", "show", "999"], 3, ["no action with id 999"]),
        (["actions", "list", "--status", "done"], 2, ["unknown status"]),
    ],
)
async def test_bad_requests_write_nothing(
    config: Path, token: str, engine: AsyncEngine, args: list[str], code: int, words: list[str]
) -> None:
    _one_line_error(clampdown(config, *args, token=token), code, *words)
    assert await ActionStore(engine).list_actions(ActionFilter()) == []


async def test_bulk_with_a_bad_reason_writes_nothing(
    config: Path, token: str, engine: AsyncEngine, tmp_path: Path
) -> None:
    users = tmp_path / "users.txt"
    users.write_text("a\nb\n")
    result = clampdown(config, "act", "okta.suspend_user", "--from-file", str(users), token=token)
    _one_line_error(result, 2, "reason")
    assert await ActionStore(engine).list_actions(ActionFilter()) == []


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("[database\nurl = 1", ["not valid TOML"]),
        (
            "[engine]\nmax_attempts = 0\nlease_seconds = 'soon'",
            ["engine.max_attempts", "engine.lease_seconds"],
        ),
        ("[databse]\nurl = 'sqlite:///x.db'", ["databse: unknown setting"]),
        ("[providers.okta]\nkind = 'oktaa'", ["providers.okta", "unknown connector kind 'oktaa'"]),
        (
            "[providers.okta]\nconnector = 'clampdown.connectors.memory:MemoryConnector'\n"
            "delay_seconds = 'x'",
            ["providers.okta.delay_seconds"],
        ),
    ],
)
def test_malformed_config_is_named(tmp_path: Path, content: str, words: list[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(content)
    for args in (["config", "check"], ["act", "okta.suspend_user", "alice", "-r", "x"]):
        _one_line_error(clampdown(path, *args), 4, *words)


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    _one_line_error(clampdown(tmp_path / "nope.toml", "config", "check"), 4, "config file not found")


def test_secrets_are_never_printed(tmp_path: Path) -> None:
    path = write_config(
        tmp_path / "c.toml",
        "postgresql://clampdown:hunter2@127.0.0.1:1/clampdown",
    )
    result = clampdown(path, "actions", "list")
    _one_line_error(result, 5, "cannot reach the database", "127.0.0.1:1")
    assert "hunter2" not in result.stderr + result.stdout


@pytest.mark.parametrize(
    "url", ["postgresql://postgres@127.0.0.1:1/test", "sqlite:////nonexistent-dir/sub/clampdown.db"]
)
def test_unreachable_database(tmp_path: Path, url: str) -> None:
    path = write_config(tmp_path / "c.toml", url)
    for args in (["actions", "list"], ["db", "upgrade"], ["worker", "--until-drained"]):
        _one_line_error(clampdown(path, *args), 5, "cannot reach the database")


def test_config_check_passes_on_a_good_file(config: Path) -> None:
    result = clampdown(config, "config", "check")
    assert result.returncode == 0, result.stderr
    assert "config OK" in result.stdout and "okta" in result.stdout


async def test_no_or_bad_token_is_refused(config: Path, token: str, engine: AsyncEngine) -> None:
    for bad in (None, "cdt_not-a-real-token"):
        result = clampdown(config, "act", "okta.suspend_user", "alice", "-r", "x", token=bad)
        _one_line_error(result, 9, "no credentials" if bad is None else "invalid token")
    assert await ActionStore(engine).list_actions(ActionFilter()) == []
