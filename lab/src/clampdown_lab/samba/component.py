"""The lab's Active Directory: a Samba AD DC on loopback, started by the project's own scripts.

The first domain (LAB) listens on 127.0.0.1 and lives in LAB_DIR/samba; the second (EMEA, for
`clampdown lab up --second`) on 127.0.0.2 with the same ports, in LAB_DIR/samba-emea. Its people
migrated from LAB carry their LAB objectSid in sIDHistory."""

from __future__ import annotations

import dataclasses
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clampdown.errors import ConfigError
from clampdown_lab.component import LabService
from clampdown_lab.people import LAB, MIGRATED_FROM_LAB, DemoPerson, LabDomain
from clampdown_lab.samba.seed import (
    OTHER_PEOPLE,
    Directory,
    managed_ou,
    new_password,
    other_ou,
    seed_kerberos_policy,
    seed_people,
    user_ids,
)

SCRIPTS = Path(__file__).resolve().parent
ACTION_ACCOUNT = "svc-clampdown"


def ldaps_url(domain: LabDomain) -> str:
    return f"ldaps://{domain.address}:636"


def dc_host_name(domain: LabDomain) -> str:
    return f"dc1.{domain.domain}"


LDAPS_URL = ldaps_url(LAB)
DC_HOST_NAME = dc_host_name(LAB)


@dataclass(frozen=True)
class SambaLab:
    """Where a started lab DC keeps what clients need, under `samba_dir`."""

    samba_dir: Path
    domain: LabDomain = LAB

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
        return Directory(ldaps_url(self.domain), self.ca_file, self.admin_password, self.domain)

    def provider_config(self) -> dict[str, Any]:
        """The `[providers.ad]` section: the delegated account, simple bind over verified LDAPS."""
        return {
            "servers": [ldaps_url(self.domain)],
            "base_dn": self.domain.base_dn,
            "netbios_domain": self.domain.netbios,
            "ca_file": str(self.ca_file),
            "bind": "simple",
            "bind_user": f"{ACTION_ACCOUNT}@{self.domain.domain}",
            "bind_password": {"file": str(self.action_password_file)},
            "managed_ous": [managed_ou(self.domain)],
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
            "servers": [{"url": ldaps_url(self.domain), "name": dc_host_name(self.domain)}],
            "bind": "kerberos",
            "principal": f"{ACTION_ACCOUNT}@{self.domain.realm}",
            "keytab": str(self.keytab),
            "krb5_config": str(self.krb5_config),
        })
        return config


def run_script(name: str, samba_dir: Path, *args: str, **env: str) -> str:
    """Run one of the Samba scripts for `samba_dir`; its stdout, or ConfigError with its stderr."""
    result = subprocess.run(
        ["bash", str(SCRIPTS / name), *args],
        env={**os.environ, "SAMBA_DIR": str(samba_dir), **env},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise ConfigError(f"{name} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result.stdout


def start_samba(samba_dir: Path, domain: LabDomain = LAB) -> SambaLab:
    """Install (if needed), provision (once), start (or reuse) the DC of `domain` and delegate the
    action account."""
    running = samba_running(samba_dir)
    if running is not None:  # point our pid file at the DC that serves, so the script reuses it
        (samba_dir / "samba-up.pid").write_text(f"{running}\n")
    names = {"REALM": domain.realm, "DOMAIN": domain.netbios, "SAMBA_ADDRESS": domain.address}
    # samba stops by itself after this long (a safety net for CI): half a day covers a lab session.
    max_runtime = os.environ.get("SAMBA_MAX_RUNTIME", "43200")
    run_script("samba-up.sh", samba_dir, SAMBA_MAX_RUNTIME=max_runtime, **names)
    run_script("setup_delegation.sh", samba_dir, REALM=domain.realm)
    return SambaLab(samba_dir, domain)


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
    """`clampdown lab` part for Active Directory; everything lives in LAB_DIR/samba (the second
    domain's in LAB_DIR/samba-emea)."""

    def __init__(self, domain: LabDomain = LAB) -> None:
        self.domain = domain
        self.name = domain.provider("ad")

    def up(self, lab_dir: Path, people: tuple[DemoPerson, ...]) -> LabService:
        """Start (or reuse) the DC in the background, seed the people, return the ready config."""
        lab = start_samba(lab_dir.resolve() / self.domain.folder("samba"), self.domain)
        if not lab.people_password_file.exists():
            lab.people_password_file.write_text(new_password() + "\n")
            lab.people_password_file.chmod(0o600)
        password = lab.people_password_file.read_text().strip()
        ids = seed_people(lab.directory, people, password)
        seed_kerberos_policy(lab.sysvol, self.domain)
        return LabService(
            name=self.name,
            url=ldaps_url(self.domain),
            provider_config=self.domain.provider_section("ad", lab.provider_config()),
            people={p.username: ids[p.username] for p in people},
            details={
                "realm": self.domain.realm,
                "managed_ou": managed_ou(self.domain),
                "other_ou": other_ou(self.domain),
                "users_outside_delegation": {p.username: ids[p.username] for p in OTHER_PEOPLE},
                "people_password_file": str(lab.people_password_file),
                "admin_password_file": str(lab.samba_dir / "admin.password"),
                "kerberos": {k: v for k, v in lab.kerberos_config().items()
                             if k in ("principal", "keytab", "krb5_config")},
                "samba_dir": str(lab.samba_dir),
            },
        )

    def link(self, lab_dir: Path, services: list[LabService]) -> LabService | None:
        """In the second domain, give the people migrated from the first (MIGRATED_FROM_LAB) their
        first-domain objectSid as sIDHistory, taken from the started "ad" service; this domain's
        service with the people's ids read again. No-op (None) in the first domain."""
        first = next((s for s in services if s.name == LAB.provider("ad")), None)
        mine = next((s for s in services if s.name == self.name), None)
        if self.domain == LAB or first is None or mine is None:
            return None
        samba_dir = lab_dir.resolve() / self.domain.folder("samba")
        for username, source in MIGRATED_FROM_LAB.items():
            if username in mine.people and source in first.people:
                run_script("set_sid_history.sh", samba_dir, username, first.people[source]["objectSid"])
        conn = SambaLab(samba_dir, self.domain).directory.connect()
        try:
            people = {u: user_ids(conn, u, self.domain) or ids for u, ids in mine.people.items()}
        finally:
            conn.unbind()
        return dataclasses.replace(mine, people=people)

    def down(self, lab_dir: Path) -> None:
        """Stop the DC started for `lab_dir` (its data stays for the next `up`)."""
        run_script("samba-down.sh", lab_dir.resolve() / self.domain.folder("samba"))

    def running(self, lab_dir: Path) -> bool:
        return samba_running(lab_dir.resolve() / self.domain.folder("samba")) is not None

    def status(self, lab_dir: Path) -> str:
        """Running with which pid and where, or stopped."""
        pid = samba_running(lab_dir.resolve() / self.domain.folder("samba"))
        if pid is None:
            return "stopped"
        return f"running (pid {pid}) at {ldaps_url(self.domain)}, domain {self.domain.realm}"
