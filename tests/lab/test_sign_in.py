"""`clampdown lab sign-in`: the last lines ./scripts/demo.sh prints before serving: where the
console is, who signs in with which password, and the CLI's two variables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import tomli_w


def _sign_in(lab_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "clampdown", "lab", "sign-in", "--dir", str(lab_dir)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_sign_in_names_the_console_the_admin_and_the_cli_variables(tmp_path: Path) -> None:
    admin = {"username": "lab-admin", "password": "pw-" + "x" * 20, "token": "cdt_" + "t" * 40}
    (tmp_path / "lab.json").write_text(json.dumps({"admin": admin}))
    config = {"database": {"url": f"sqlite:///{tmp_path / 'c.db'}"}, "server": {"port": 8181}}
    (tmp_path / "clampdown.toml").write_text(tomli_w.dumps(config))
    done = _sign_in(tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "console: http://127.0.0.1:8181"
    assert lines[1] == f"sign in as lab-admin with password {admin['password']}"
    config_path = tmp_path / "clampdown.toml"
    assert lines[2] == f"CLI: export CLAMPDOWN_CONFIG={config_path} CLAMPDOWN_TOKEN={admin['token']}"
    assert len(lines) == 3  # no Shared Signals line: this lab has no [ssf.receivers.okta]


def test_sign_in_names_the_signal_command_when_the_lab_speaks_shared_signals(tmp_path: Path) -> None:
    admin = {"username": "lab-admin", "password": "pw-" + "x" * 20, "token": "cdt_" + "t" * 40}
    (tmp_path / "lab.json").write_text(json.dumps({"admin": admin}))
    receiver = {"issuer": "http://127.0.0.1:9", "audience": "http://127.0.0.1:8080", "bearer": "b" * 32}
    config = {"database": {"url": f"sqlite:///{tmp_path / 'c.db'}"}, "ssf": {"receivers": {"okta": receiver}}}
    (tmp_path / "clampdown.toml").write_text(tomli_w.dumps(config))
    done = _sign_in(tmp_path)
    assert done.returncode == 0, done.stderr
    hint = done.stdout.splitlines()[3]
    assert hint.startswith(f"Shared Signals: clampdown lab signal <login> --dir {tmp_path}"), hint


def test_sign_in_without_a_lab_says_how_to_start_one(tmp_path: Path) -> None:
    done = _sign_in(tmp_path / "none")
    assert done.returncode == 1
    assert "no lab in" in done.stderr and "clampdown lab up --dir" in done.stderr
