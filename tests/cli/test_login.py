"""`clampdown login`, `whoami`, `profiles` and `logout` against a real `clampdown serve`, from a
machine with no configuration file and no database credentials: the profile keeps the server and
the token (the token in a file only its owner reads), commands then talk to the server with it,
and logging out revokes the token on the server."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import tomli_w

from clampdown.cli.errors import EXIT_UNAUTHENTICATED
from tests.api.conftest import start_server
from tests.lab_config import bootstrap_admin, clampdown, memory_provider

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("login")
    config = folder / "clampdown.toml"
    data = {
        "database": {"url": f"sqlite:///{folder / 'clampdown.db'}"},
        "server": {"embedded_worker": True},
        "engine": {"poll_interval_seconds": 0.05},
        "providers": {"okta": memory_provider("okta", folder / "okta.db")},
    }
    config.write_text(tomli_w.dumps(data), encoding="utf-8")
    admin = bootstrap_admin(config)
    made = clampdown(config, "users", "create", "ana", "--role", "Security Administrator", "--password-stdin",
                     input=PASSWORD + "\n")  # fmt: skip
    assert made.returncode == 0, made.stderr
    proc, base = start_server(config)
    try:
        yield base, admin
    finally:
        proc.terminate()
        proc.wait(15)


class Analyst:
    """An analyst's machine: an empty home and working folder, no Clampdown variables."""

    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(exist_ok=True)

    def run(self, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CLAMPDOWN_")}
        env.update(HOME=str(self.home), XDG_CONFIG_HOME=str(self.home / ".config"), COLUMNS="200")
        return subprocess.run(
            [sys.executable, "-m", "clampdown", *args], env=env, cwd=self.home, input=stdin,
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    @property
    def folder(self) -> Path:
        return self.home / ".config" / "clampdown"


def test_login_then_commands_over_the_api_then_logout(served: tuple[str, str], tmp_path: Path) -> None:
    base, _ = served
    me = Analyst(tmp_path / "ana")
    assert me.run("whoami").returncode == 2  # nothing to ask yet, said plainly

    wrong = me.run("login", "--server", base, "-u", "ana", "--password-stdin", stdin="nope\n")
    assert wrong.returncode == EXIT_UNAUTHENTICATED and "password" in wrong.stderr.lower(), wrong.stderr
    assert not (me.folder / "tokens").exists()

    done = me.run("login", "--server", base, "-u", "ana", "--password-stdin", stdin=PASSWORD + "\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"logged in to {base} as ana (profile default, token until ")
    token_file = me.folder / "tokens" / "default"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((me.folder / "tokens").stat().st_mode) == 0o700
    token = token_file.read_text().strip()
    saved = tomllib.loads((me.folder / "profiles.toml").read_text())
    expires = saved["profiles"]["default"]["expires_at"]
    assert saved == {"current": "default", "profiles": {"default": {"url": base, "username": "ana",
                                                                    "expires_at": expires}}}  # fmt: skip
    assert token not in (me.folder / "profiles.toml").read_text()

    who = me.run("whoami", "--json")
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout) == {"username": "ana", "roles": ["Security Administrator"],
                                      "directories": None, "server": base, "profile": "default"}  # fmt: skip
    acted = me.run("act", "okta.suspend_user", "alice", "-r", "INC-9", "--wait", "--timeout", "60", "--json")
    assert acted.returncode == 0, acted.stderr
    assert json.loads(acted.stdout)["requested_by"] == "ana"
    listed = me.run("actions", "list", "--json")
    assert listed.returncode == 0 and [a["target"] for a in json.loads(listed.stdout)] == ["alice"]

    listing = me.run("profiles")
    assert listing.stdout.strip() == f"* default: {base} as ana"
    other = me.run("--profile", "emea", "actions", "list")
    assert other.returncode == 2 and "no profile 'emea'" in other.stderr

    out = me.run("logout")
    assert out.returncode == 0 and "token revoked" in out.stdout, out.stderr
    assert not token_file.exists()
    answer = httpx.get(f"{base}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401  # revoked on the server, not only forgotten here
    after = me.run("actions", "list")
    assert after.returncode == EXIT_UNAUTHENTICATED and "no credentials" in after.stderr
    assert me.run("profiles").stdout.strip() == f"* default: {base} logged out"
    again = me.run("logout")
    assert again.returncode == 0 and "not logged in" in again.stdout


def test_login_with_a_token_and_a_named_profile(served: tuple[str, str], tmp_path: Path) -> None:
    base, admin = served
    me = Analyst(tmp_path / "admin")
    done = me.run("login", "--server", base, "--profile", "corp", "--token-stdin", stdin=admin + "\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"logged in to {base} as admin (profile corp)"
    assert me.run("--profile", "corp", "whoami").stdout.splitlines()[0] == "username: admin"
    bad = me.run("login", "--server", base, "--profile", "x", "--token-stdin", stdin="cdt_not-a-token\n")
    assert bad.returncode == EXIT_UNAUTHENTICATED and "invalid token" in bad.stderr
    named = me.run("login", "--profile", "../etc", "--token-stdin", stdin=admin + "\n")
    assert named.returncode == 2 and "is not a profile name" in named.stderr
    # A configuration file at hand is the administrator's direct mode: the profile is not used.
    (me.home / "clampdown.toml").write_text('[database]\nurl = "sqlite:///nowhere/x.db"\n')
    local = me.run("actions", "list")
    assert local.returncode != 0 and "server" not in local.stderr
