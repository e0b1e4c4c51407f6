"""The deployment tests use the lab's Samba AD DC (the AD tests' fixtures) as the directory."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from tests.ad.conftest import REPO, admin, lab, make_user

__all__ = ["admin", "lab", "make_user"]  # the AD tests' fixtures, used by name

UNITS = REPO / "deploy" / "systemd"
INSTALLED = "/opt/clampdown/bin/clampdown"  # where docs/deploy.md installs the command


def venv_command() -> str:
    """This test run's `clampdown` command, in place of the installed one."""
    return str(Path(sys.executable).with_name("clampdown"))


def unit_setting(unit: str, key: str) -> list[str]:
    """Every value of `key=` in the unit file's lines."""
    lines = (UNITS / unit).read_text(encoding="utf-8").splitlines()
    return [line.split("=", 1)[1] for line in lines if line.startswith(f"{key}=")]


def unit_command(unit: str, instance: str = "") -> list[str]:
    """The unit's ExecStart command line, run from this venv (%i is the instance name)."""
    (line,) = unit_setting(unit, "ExecStart")
    argv = shlex.split(line.replace("%i", instance))
    assert argv[0] == INSTALLED, f"{unit} runs {argv[0]}, not {INSTALLED} as docs/deploy.md installs it"
    return [venv_command(), *argv[1:]]
