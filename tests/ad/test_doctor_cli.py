"""`clampdown doctor ad` through the real command: OK inside the delegated OU, exact grants outside."""

from __future__ import annotations

from pathlib import Path

from clampdown_lab.samba import SambaLab
from clampdown_lab.samba.seed import MANAGED_OU, OTHER_OU
from tests.lab_config import clampdown, write_config


def test_doctor_command_reports_what_is_missing(lab: SambaLab, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "clampdown.toml", f"sqlite:///{tmp_path / 'c.db'}", providers={"ad": lab.provider_config()}
    )
    good = clampdown(config, "doctor", "ad", "--ou", MANAGED_OU)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "action account: " in good.stdout
    bad = clampdown(config, "doctor", "ad", "--ou", MANAGED_OU, "--ou", OTHER_OU)
    assert bad.returncode == 1
    assert "missing Write userAccountControl" in bad.stdout
    assert f'dsacls "{OTHER_OU}"' in bad.stdout

    groups = clampdown(config, "doctor", "ad", "--ou", MANAGED_OU, "--groups")
    assert groups.returncode == 1  # the lab does not delegate member of Domain Admins (Tier 0)
    assert "group CN=Domain Admins,CN=Users," in groups.stdout
    assert "ad.remove_privileged_groups" in groups.stdout and "AdminSDHolder" in groups.stdout
