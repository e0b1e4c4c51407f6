"""Times out of range through the real command (issue 14): one clear line naming the option, no
stack trace, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.model import ActionFilter
from clampdown.store.actions import ActionStore
from tests.lab_config import bootstrap_admin, clampdown, memory_provider, write_config


@pytest.fixture
def config(database_url: str, engine: AsyncEngine, tmp_path: Path) -> Path:
    providers = {p: memory_provider(p, tmp_path / f"{p}.db") for p in ("ad", "okta")}
    return write_config(tmp_path / "clampdown.toml", database_url, providers=providers)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["act", "okta.suspend_user", "alice", "-r", "x", "--until", "9999-12-31T23:59:59-23:59"],
         "--until: 9999-12-31T23:59:59-23:59 is out of range"),
        (["contain", "alice", "-r", "x", "--until", "0001-01-01T00:00:00+23:59"], "--until: "),
        (["actions", "list", "--since", "9999-12-31T23:59:59-23:59"], "since: "),
    ],
)  # fmt: skip
async def test_times_out_of_range_are_one_line_naming_the_option(
    config: Path, engine: AsyncEngine, args: list[str], words: str
) -> None:
    token = bootstrap_admin(config)
    result = clampdown(config, *args, token=token)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], result.stderr
    assert await ActionStore(engine).list_actions(ActionFilter()) == []
