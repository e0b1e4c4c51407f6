"""The lab's Active Directory: a Samba AD DC on loopback, started by the project's own scripts."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clampdown.errors import ConfigError
from clampdown_lab.component import LabService
from clampdown_lab.people import LAB_NETBIOS, LAB_REALM, DemoPerson
from clampdown_lab.samba.seed import (
    BASE_DN,
    MANAGED_OU,
    OTHER_OU,
    OTHER_PEOPLE,
    Directory,
    new_password,
    seed_kerberos_policy,
    seed_people,
)

SCRIPTS = Path(__file__).resolve().parent
ACTION_ACCOUNT = "svc-clampdown"
LDAPS_URL = "ldaps://127.0.0.1:636"
DC_HOST_NAME = "dc1.lab.example.test"


@dataclass(frozen=True)
class SambaLab:
    """Where a started lab DC keeps what clients need, under `samba_dir`."""

    samba_dir: Path

    @property
    def ca_file(self) -> Path:
        return self.samba_dir / "tls" / "ca.pem"

    @property
    def admin_password(self) -> str:
        return (self.samba_dir / "admin.password").read_text().strip()

    @property
    def action_password_file(self) -> Path:
        return self.samba_dir / f"{ACTION_ACCOUNT}.password"

    @property
    def keytab(self) -> Path:
        return self.samba_dir / f"{ACTION_ACCOUNT}.keytab"

    @property
    def krb5_config(self) -> Path:
        return self.samba_dir / "krb5.conf"

    @property
    def people_password_file(self) -> Path:
        return self.samba_dir / "people.password"

    @property
    def directory(self) -> Directory:
        return Directory(LDAPS_URL, self.ca_file, self.admin_password)

    def provider_config(self) -> dict[str, Any]:
        """The `[providers.ad]` section: the delegated account, simple bind over verified LDAPS."""
        return {
            "servers": [LDAPS_URL],
            "base_dn": BASE_DN,
            "netbios_domain": LAB_NETBIOS,
            "ca_file": str(self.ca_file),
            "bind": "simple",
            "bind_user": f"{ACTION_ACCOUNT}@{LAB_REALM.lower()}",
            "bind_password": {"file": str(self.action_password_file)},
            "managed_ous": [MANAGED_OU],
            "sysvol_path": str(self.sysvol),
        }

    @property
    def sysvol(self) -> Path:
        return self.samba_dir / "state" / "sysvol"

    def kerberos_config(self) -> dict[str, Any]:
        """The same section binding with Kerberos from the action account's keytab."""
        config = self.provider_config()
        for key in ("bind_user", "bind_password"):
            config.pop(key)
        config.update({
            "servers": [{"url": LDAPS_URL, "name": DC_HOST_NAME}],
            "bind": "kerberos",
            "principal": f"{ACTION_ACCOUNT}@{LAB_REALM}",
            "keytab": str(self.keytab),
            "krb5_config": str(self.krb5_config),
        })
        return config


def run_script(name: str, samba_dir: Path, **env: str) -> str:
    """Run one of the Samba scripts for `samba_dir`; its stdout, or ConfigError with its stderr."""
    result = subprocess.run(
        ["bash", str(SCRIPTS / name)],
        env={**os.environ, "SAMBA_DIR": str(samba_dir), **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ConfigError(f"{name} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result.stdout


def start_samba(samba_dir: Path) -> SambaLab:
    """Install (if needed), provision (once), start (or reuse) the DC and delegate the action account."""
    running = samba_running(samba_dir)
    if running is not None:  # point our pid file at the DC that serves, so the script reuses it
        (samba_dir / "samba-up.pid").write_text(f"{running}\n")
    # samba stops by itself after this long (a safety net for CI): half a day covers a lab session.
    run_script("samba-up.sh", samba_dir, SAMBA_MAX_RUNTIME=os.environ.get("SAMBA_MAX_RUNTIME", "43200"))
    run_script("setup_delegation.sh", samba_dir)
    return SambaLab(samba_dir)


def samba_running(samba_dir: Path) -> int | None:
    """The pid of the DC started for `samba_dir`, if it runs. Samba's own pid file is checked
    too: two start-ups racing can leave ours naming the loser while the winner serves."""
    for pid_file in (samba_dir / "samba-up.pid", samba_dir / "run" / "samba.pid"):
        try:
            pid = int(pid_file.read_text().strip())
            comm = Path(f"/proc/{pid}/comm").read_text()
        except (OSError, ValueError):
            continue
        if comm.startswith("samba"):
            return pid
    return None


class SambaLabComponent:
    """`clampdown lab` part for Active Directory; everything lives in LAB_DIR/samba."""

    name = "ad"

    def up(self, lab_dir: Path, people: tuple[DemoPerson, ...]) -> LabService:
        """Start (or reuse) the DC in the background, seed the people, return the ready config."""
        lab = start_samba(lab_dir.resolve() / "samba")
        if not lab.people_password_file.exists():
            lab.people_password_file.write_text(new_password() + "\n")
            lab.people_password_file.chmod(0o600)
        password = lab.people_password_file.read_text().strip()
        ids = seed_people(lab.directory, people, password)
        seed_kerberos_policy(lab.sysvol)
        return LabService(
            name=self.name,
            url=LDAPS_URL,
            provider_config=lab.provider_config(),
            people={p.username: ids[p.username] for p in people},
            details={
                "managed_ou": MANAGED_OU,
                "other_ou": OTHER_OU,
                "users_outside_delegation": {p.username: ids[p.username] for p in OTHER_PEOPLE},
                "people_password_file": str(lab.people_password_file),
                "admin_password_file": str(lab.samba_dir / "admin.password"),
                "kerberos": {k: v for k, v in lab.kerberos_config().items()
                             if k in ("principal", "keytab", "krb5_config")},
                "samba_dir": str(lab.samba_dir),
            },
        )

    def down(self, lab_dir: Path) -> None:
        """Stop the DC started for `lab_dir` (its data stays for the next `up`)."""
        run_script("samba-down.sh", lab_dir.resolve() / "samba")

    def status(self, lab_dir: Path) -> str:
        """Running with which pid and where, or stopped."""
        pid = samba_running(lab_dir.resolve() / "samba")
        if pid is None:
            return "stopped"
        return f"running (pid {pid}) at {LDAPS_URL}, domain {LAB_REALM}"
