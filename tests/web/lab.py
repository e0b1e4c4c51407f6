"""The lab the console's browser tests run against: the shared Samba AD DC (one per machine, the
same LAB_DIR as the AD tests), and the Okta and Graph emulators of this test session."""

from __future__ import annotations

import os
import ssl
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import ldap3

from clampdown_lab.component import LabService
from clampdown_lab.graph_emulator.app import ADMIN_KEY_HEADER
from clampdown_lab.people import DemoPerson
from clampdown_lab.samba import SambaLab
from clampdown_lab.samba.seed import MANAGED_OU, create_user

REPO = Path(__file__).resolve().parents[2]
LAB_DIR = Path(os.environ.get("CLAMPDOWN_AD_LAB_DIR", REPO / ".lab")).resolve()
ACCOUNTDISABLE = 0x2
PASSWORD = "Web-Test-Pw-5931!"


@dataclass
class WebLab:
    """Where each part of the lab listens, and how to check what landed there."""

    samba: SambaLab
    ad: LabService
    entra: LabService
    okta: LabService
    entra_home: Path

    def provider_configs(self) -> dict[str, Any]:
        return {s.name: s.provider_config for s in (self.ad, self.entra, self.okta)}

    def entra_admin(self) -> httpx.Client:
        key = (self.entra_home / "admin-key").read_text(encoding="utf-8").strip()
        verify = ssl.create_default_context(cafile=str(self.entra_home / "tls" / "ca.pem"))
        return httpx.Client(base_url=self.entra.url, verify=verify, headers={ADMIN_KEY_HEADER: key})

    def okta_status(self, okta_id: str) -> str:
        """The user's status as the Okta emulator holds it."""
        answer = httpx.get(f"{self.okta.url}/_emulator/users/{okta_id}", timeout=10)
        answer.raise_for_status()
        return str(answer.json()["status"])

    def ad_disabled(self, dn: str) -> bool:
        """ACCOUNTDISABLE as the directory holds it, read as Administrator."""
        conn = self.samba.directory.connect()
        try:
            conn.search(dn, "(objectClass=*)", ldap3.BASE, attributes=["userAccountControl"])
            value = conn.response[0]["attributes"]["userAccountControl"]
            return bool(int(value[0] if isinstance(value, list) else value) & ACCOUNTDISABLE)
        finally:
            conn.unbind()


@dataclass(frozen=True)
class ScratchPerson:
    """A person made for one test in all three providers, so tests never touch shared people."""

    upn: str
    username: str
    ad_dn: str
    okta_id: str
    entra_id: str


def create_person(lab: WebLab, given: str = "Wendy", surname: str = "Test") -> ScratchPerson:
    """The same person in AD (OU=Managed, in the action account's delegation), Entra ID (synced
    from that AD account) and Okta; a unique username given.surname.xxxxxx."""
    suffix = uuid.uuid4().hex[:6]
    username = f"{given}.{surname}.{suffix}".lower()[-20:]  # sAMAccountName holds 20 characters
    surname = f"{surname} {suffix}"  # the DN is CN=<display name>: unique too
    person = DemoPerson(username, given, surname, "Security", "Test user")
    conn = lab.samba.directory.connect()
    try:
        ids = create_user(conn, person, MANAGED_OU, PASSWORD)
    finally:
        conn.unbind()
    with lab.entra_admin() as admin:
        seed = {"username": username, "given_name": given, "surname": surname, "department": "Security",
                "title": "Test user", "on_premises": {k: ids[k] for k in ("objectSid", "sAMAccountName",
                                                                          "objectGUID")}}  # fmt: skip
        made = admin.post("/_emulator/people", json=[seed])
        made.raise_for_status()
        entra_id = made.json()["ids"][username]
    profile = {"login": person.upn, "email": person.upn, "firstName": given, "lastName": surname}
    answer = httpx.post(f"{lab.okta.url}/_emulator/users", json={"users": [profile]}, timeout=10)
    answer.raise_for_status()
    return ScratchPerson(person.upn, username, ids["dn"], answer.json()["ids"][person.upn], entra_id)


def delete_person(lab: WebLab, person: ScratchPerson) -> None:
    """Remove the AD account (the emulators belong to this session and go with it)."""
    conn = lab.samba.directory.connect()
    try:
        conn.delete(person.ad_dn)
    finally:
        conn.unbind()
