"""The systemd units in deploy/systemd are valid: `systemd-analyze verify` accepts them, with not
a warning, once their command points at an executable that exists (this venv's)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.conftest import INSTALLED, UNITS, unit_setting, venv_command

UNIT_FILES = sorted(p.name for p in UNITS.glob("*.service"))


def test_the_units_are_the_documented_ones() -> None:
    assert UNIT_FILES == ["clampdown-worker@.service", "clampdown.service"]
    docs = (UNITS.parents[1] / "docs" / "deploy.md").read_text(encoding="utf-8")
    for name in UNIT_FILES:
        assert name in docs


@pytest.mark.parametrize("unit", UNIT_FILES)
def test_systemd_analyze_verify_accepts_the_unit(unit: str, tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        if os.environ.get("CI"):
            pytest.fail("systemd-analyze is not installed (Debian: systemd)")
        pytest.skip("systemd-analyze is not installed (Debian: systemd)")
    # A template is verified as an instance of it, as systemctl would start it.
    name = unit.replace("@.", "@1.")
    text = (UNITS / unit).read_text(encoding="utf-8").replace(INSTALLED, venv_command())
    (tmp_path / name).write_text(text, encoding="utf-8")
    done = subprocess.run([analyze, "verify", str(tmp_path / name)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "", done.stderr  # unknown keys and bad values are only warnings


def test_the_units_run_hardened_as_their_own_user() -> None:
    for unit in UNIT_FILES:
        assert unit_setting(unit, "User") == ["clampdown"]
        assert unit_setting(unit, "NoNewPrivileges") == ["yes"]
        assert unit_setting(unit, "ProtectSystem") == ["strict"]
        assert unit_setting(unit, "CapabilityBoundingSet") == [""]
        assert unit_setting(unit, "Environment") == ["CLAMPDOWN_CONFIG=/etc/clampdown/clampdown.toml"]


def test_the_example_configuration_passes_config_check(tmp_path: Path) -> None:
    """deploy/clampdown.toml with its files where it names them (here under tmp_path) and the
    secrets of deploy/clampdown.env set: `clampdown config check` accepts it."""
    example = UNITS.parent / "clampdown.toml"
    text = example.read_text(encoding="utf-8").replace("/etc/clampdown/", f"{tmp_path}/")
    (tmp_path / "tls").mkdir()
    for name in ("tls/server.pem", "tls/server-key.pem", "tls/corp-root-ca.pem", "entra-app.pem"):
        (tmp_path / name).write_text("placeholder\n")
    (tmp_path / "audit-checkpoint.key").write_text("k" * 64)
    (tmp_path / "okta-service-app.pem").write_text("placeholder\n")
    config = tmp_path / "clampdown.toml"
    config.write_text(text, encoding="utf-8")
    env_file = (UNITS.parent / "clampdown.env").read_text(encoding="utf-8").splitlines()
    secrets = dict(line.split("=", 1) for line in env_file if line and not line.startswith("#"))
    assert set(secrets) == {"CLAMPDOWN_DATABASE__URL", "CLAMPDOWN_SESSION_SECRET", "CLAMPDOWN_AD_PASSWORD"}
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAMPDOWN_")}
    env.update(secrets, CLAMPDOWN_SESSION_SECRET="s" * 64)
    done = subprocess.run(
        [venv_command(), "--config", str(config), "config", "check"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "providers: ad, entra, okta" in done.stdout
