"""Listings print the way command-line tools do: `--output table|json|csv|yaml`, `--quiet` for the ids
only, tables that wrap long values instead of cutting them at 80 columns; `clampdown --help` names
every exit code."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from clampdown.cli import EPILOG
from clampdown.cli.errors import EXIT_ACTION_FAILED, EXIT_CODES, EXIT_UNAUTHENTICATED
from tests.lab_config import bootstrap_admin, clampdown, memory_provider, write_config

LONG = "someone.with.a.rather.long.name@subsidiary.example.test"


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = tmp_path_factory.mktemp("output")
    config = write_config(folder / "clampdown.toml", f"sqlite:///{folder / 'c.db'}",
                          providers={"okta": memory_provider("okta", folder / "okta.db")})  # fmt: skip
    token = bootstrap_admin(config)
    for target in ("alice", LONG):
        queued = clampdown(
            config, "act", "okta.suspend_user", target, "-r", "INC-5, a comma", token=token
        )
        assert queued.returncode == 0, queued.stderr
    return config, token


def _run(
    config: Path, *args: str, token: str | None = None, columns: int = 80
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAMPDOWN_")}
    env.update(
        CLAMPDOWN_CONFIG=str(config), COLUMNS=str(columns), **({"CLAMPDOWN_TOKEN": token} if token else {})
    )
    return subprocess.run([sys.executable, "-m", "clampdown", *args], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


def _listing(deployment: tuple[Path, str], *args: str, columns: int = 80) -> str:
    config, token = deployment
    done = _run(config, *args, token=token, columns=columns)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_actions_list_in_every_format_holds_the_same_actions(deployment: tuple[Path, str]) -> None:
    as_json = json.loads(_listing(deployment, "actions", "list", "--json"))
    assert json.loads(_listing(deployment, "actions", "list", "--output", "json")) == as_json
    assert yaml.safe_load(_listing(deployment, "actions", "list", "-o", "yaml")) == as_json
    rows = list(csv.DictReader(io.StringIO(_listing(deployment, "actions", "list", "-o", "csv"))))
    assert [r["id"] for r in rows] == [str(a["id"]) for a in as_json]
    assert [r["target"] for r in rows] == [LONG, "alice"]
    assert rows[0]["reason"] == "INC-5, a comma"  # quoted, not split
    assert json.loads(rows[0]["account"] or "null") == as_json[0]["account"]  # nested: JSON in its cell
    quiet = _listing(deployment, "actions", "list", "--quiet")
    assert quiet.split() == [str(a["id"]) for a in as_json]


def test_a_table_at_80_columns_wraps_and_never_cuts(deployment: tuple[Path, str]) -> None:
    shown = _listing(deployment, "actions", "list", columns=80)
    assert "…" not in shown
    assert all(len(line) <= 80 for line in shown.splitlines())
    cells = [line.split("│")[1:-1] for line in shown.splitlines() if line.count("│") == 8]
    column = {
        name: "".join(row[i].strip() for row in cells) for i, name in enumerate(["id", "type", "target"])
    }
    assert LONG in column["target"]  # folded over several lines, every character kept
    assert column["type"].count("okta.suspend_user") == 2
    wide = _listing(deployment, "actions", "list", columns=240)
    assert LONG in wide and "okta.suspend_user" in wide  # the terminal's width is used


@pytest.mark.parametrize(
    "args",
    [("catalog",), ("containments", "list"), ("workers",), ("actions", "pending"), ("tokens", "list")],
)
def test_every_listing_takes_output_and_quiet(deployment: tuple[Path, str], args: tuple[str, ...]) -> None:
    as_json = json.loads(_listing(deployment, *args, "--json"))
    assert yaml.safe_load(_listing(deployment, *args, "-o", "yaml")) == as_json
    rows = list(csv.DictReader(io.StringIO(_listing(deployment, *args, "-o", "csv"))))
    assert len(rows) == len(as_json)
    assert _listing(deployment, *args, "-q").split() == [str(item["id"]) for item in as_json]


def test_json_and_another_output_is_refused(deployment: tuple[Path, str]) -> None:
    config, token = deployment
    done = clampdown(config, "actions", "list", "--json", "-o", "csv", token=token)
    assert done.returncode == 2 and "two formats" in done.stderr
    unknown = clampdown(config, "actions", "list", "-o", "xml", token=token)
    assert unknown.returncode == 2 and "xml" in unknown.stderr


def test_help_names_every_exit_code() -> None:
    named = {int(n) for n in re.findall(r"(\d+) [a-z]", EPILOG.split("\n\n")[0])}
    codes = {code for _, code in EXIT_CODES} | {0, 1, EXIT_ACTION_FAILED, EXIT_UNAUTHENTICATED, 130}
    assert named == codes
    done = _run(Path("absent.toml"), "--help", columns=200)
    assert "Exit codes: 0 done" in done.stdout and "--install-completion" in done.stdout
