"""`clampdown lab up` for Entra ID: the Graph emulator as a detached HTTPS process, its tenant
kept under lab_dir/entra so object ids and states survive restarts. The tenant has an organization
default token lifetime policy of two hours (LAB_ACCESS_TOKEN_LIFETIME), so residual access shows
a lifetime read from the tenant, and the emulator's own tokens live that long.

The second tenant (EMEA, `clampdown lab up --second`) is another emulator process with its own
port, tenant id (from its domain emea.example.test), app registration and folder lab_dir/entra-emea;
its users are linked to the accounts of the EMEA domain.

Files under lab_dir/entra: tenant.json (users, risk, sign-ins, the app registration),
client-secret (given to Clampdown as a secret file), app-certificate.pem (key and certificate
registered on the same app, to try the certificate credential), admin-key (the emulator's admin
API), tls/ (the lab CA and the server certificate), emulator.pid, emulator.log, component.json.
"""

from __future__ import annotations

import secrets
import ssl
from dataclasses import asdict
from pathlib import Path
from typing import Any

import httpx

from clampdown_lab.component import LabService
from clampdown_lab.detached import DetachedProcess
from clampdown_lab.graph_emulator.app import ADMIN_KEY_HEADER
from clampdown_lab.graph_emulator.server import STATE_FILE
from clampdown_lab.graph_emulator.tenant import ALL_ROLES, AppRecord, Tenant, object_id, tenant_id_for
from clampdown_lab.graph_emulator.tls import write_client_certificate, write_tls_files
from clampdown_lab.people import LAB, DemoPerson, LabDomain, people_of

APP_CLIENT_ID = object_id("app", "clampdown-lab")
LAB_ACCESS_TOKEN_LIFETIME = "02:00:00"  # the organization default token lifetime policy's
_MODULE = "clampdown_lab.graph_emulator"
# Sign-ins written once into a new lab tenant, so hunting has history to look at.
_DEMO_SIGN_INS = (("203.0.113.10", "Paris", "FR"), ("198.51.100.23", "Lyon", "FR"))
OnPremises = dict[str, dict[str, str]]


def _person_seed(person: DemoPerson, on_premises: OnPremises | None) -> dict[str, Any]:
    link = (on_premises or {}).get(person.username)
    return {
        "username": person.username,
        "given_name": person.given_name,
        "surname": person.surname,
        "department": person.department,
        "title": person.title,
        "domain": person.domain,
        "upn_name": person.upn_name,
        "on_premises": {k: v for k, v in link.items() if k in ("objectSid", "sAMAccountName", "objectGUID")}
        if link
        else None,
    }


def app_client_id(domain: LabDomain) -> str:
    """The client id of the lab's app registration in the tenant of `domain`."""
    return APP_CLIENT_ID if domain == LAB else object_id("app", f"clampdown-lab/{domain.domain}")


class GraphLabComponent:
    """The Entra ID part of the lab: one emulated tenant on loopback with the demo people
    (with `domain=EMEA`, the second tenant and its people)."""

    def __init__(self, host: str = "127.0.0.1", start_timeout: float = 20.0, domain: LabDomain = LAB) -> None:
        self.host = host
        self.start_timeout = start_timeout
        self.domain = domain
        self.name = domain.provider("entra")
        self.client_id = app_client_id(domain)

    # -- LabComponent ------------------------------------------------------------------------
    def up(
        self, lab_dir: Path, people: tuple[DemoPerson, ...], on_premises: OnPremises | None = None
    ) -> LabService:
        """Start (or reuse) the emulator, seed `people` (linked to their AD accounts when
        `on_premises` maps username -> {objectSid, sAMAccountName[, objectGUID]}), say how to reach it."""
        home = lab_dir / self.domain.folder("entra")
        home.mkdir(parents=True, exist_ok=True)
        new_tenant = self._prepare(home)
        pid, url = self._emulator(home).start_or_reuse(
            self._url, lambda url: self._answers(home, url), self.start_timeout
        )
        with self._admin(home, url) as admin:
            seeded = admin.post("/_emulator/people", json=[_person_seed(p, on_premises) for p in people])
            seeded.raise_for_status()
            ids: dict[str, str] = seeded.json()["ids"]
            # Every `up`: a tenant made by an older lab gets the permissions added since.
            admin.post("/_emulator/apps", json=asdict(self._registration(home))).raise_for_status()
            lifetime = {
                "access_token_lifetime": LAB_ACCESS_TOKEN_LIFETIME,
                "displayName": "Lab organization default: two-hour access tokens",
            }
            admin.put("/_emulator/token-lifetime", json=lifetime).raise_for_status()
            if new_tenant:
                self._seed_history(admin, people)
        tenant_id = tenant_id_for(self.domain.domain)
        settings = {
            "tenant_id": tenant_id,
            "client_id": self.client_id,
            "client_secret": {"file": str(home / "client-secret")},
            "authority_host": url,
            "graph_url": f"{url}/v1.0",
            "ca_bundle": str(home / "tls" / "ca.pem"),
            # The emulator is an authority we know: MSAL's instance discovery would ask
            # login.microsoftonline.com about it (MSAL documents this switch for such hosts).
            "instance_discovery": False,
        }
        return LabService(
            name=self.name,
            url=url,
            provider_config=self.domain.provider_section("entra", settings),
            people={p.username: {"id": ids[p.username], "upn": p.upn} for p in people},
            details={
                "pid": pid,
                "tenant_id": tenant_id,
                "domain": self.domain.domain,
                "state_file": str(home / STATE_FILE),
                "log_file": str(home / "emulator.log"),
                "admin_key_file": str(home / "admin-key"),
                "certificate_path": str(home / "app-certificate.pem"),
            },
        )

    def link(self, lab_dir: Path, services: list[LabService]) -> None:
        """Mark the demo people as synced from AD with their AD objectSid and sAMAccountName,
        taken from the already started "ad" service ("emea-ad" for EMEA; no-op without one)."""
        ad = next((s for s in services if s.name == self.domain.provider("ad")), None)
        home = lab_dir / self.domain.folder("entra")
        emulator = self._emulator(home)
        if ad is None or emulator.running_pid() is None:
            return
        people = tuple(p for p in people_of(self.domain) if p.username in ad.people)
        url = self._url(emulator.saved_port() or 0)
        with self._admin(home, url) as admin:
            admin.post(
                "/_emulator/people", json=[_person_seed(p, ad.people) for p in people]
            ).raise_for_status()

    def down(self, lab_dir: Path) -> None:
        """Stop the emulator this lab_dir started; the tenant stays in tenant.json for the next `up`."""
        self._emulator(lab_dir / self.domain.folder("entra")).down()

    def running(self, lab_dir: Path) -> bool:
        return self._emulator(lab_dir / self.domain.folder("entra")).running_pid() is not None

    def status(self, lab_dir: Path) -> str:
        """One line: running where, or stopped."""
        home = lab_dir / self.domain.folder("entra")
        return self._emulator(home).status(f"{self.name} (Graph emulator)", self._url)

    # -- internals ---------------------------------------------------------------------------
    def _emulator(self, home: Path) -> DetachedProcess:
        args = ["--state", str(home), "--host", self.host, "--admin-key-file", str(home / "admin-key")]
        return DetachedProcess(home, _MODULE, [*args, "--graph-like-throttling"], "Graph emulator")

    def _url(self, port: int) -> str:
        return f"https://{self.host}:{port}"

    def _prepare(self, home: Path) -> bool:
        """Create the secrets, certificates and tenant file once; True if the tenant is new."""
        for name in ("client-secret", "admin-key"):
            path = home / name
            if not path.exists():
                path.write_text(secrets.token_urlsafe(30) + "\n", encoding="utf-8")
                path.chmod(0o600)
        write_tls_files(home / "tls")
        cert_file = home / "app-certificate.pem"
        if not cert_file.exists():
            written, _ = write_client_certificate(home, "app-certificate")
            assert written == cert_file
        state = home / STATE_FILE
        if state.exists():
            return False
        tenant = Tenant(tenant_id=tenant_id_for(self.domain.domain), domain=self.domain.domain)
        tenant.apps[self.client_id] = self._registration(home)
        tenant.save(state)
        return True

    def _registration(self, home: Path) -> AppRecord:
        """The lab's app registration: every permission, the secret and the certificate in `home`."""
        pem = (home / "app-certificate.pem").read_text(encoding="utf-8")
        return AppRecord(
            self.client_id,
            "Clampdown (lab)",
            list(ALL_ROLES),
            secrets=[(home / "client-secret").read_text(encoding="utf-8").strip()],
            certificates=[pem[pem.index("-----BEGIN CERTIFICATE-----") :]],
        )

    def _seed_history(self, admin: httpx.Client, people: tuple[DemoPerson, ...]) -> None:
        for person in people:
            for ip, city, country in _DEMO_SIGN_INS:
                attempt = {"user": person.upn, "ip_address": ip, "city": city, "country": country}
                admin.post("/_emulator/signins", json=attempt).raise_for_status()
        if len(people) > 1:  # one person at risk, so Identity Protection has something to show
            risk = {"user": people[1].upn, "riskLevel": "medium", "riskState": "atRisk"}
            admin.post("/_emulator/risk", json=risk).raise_for_status()

    def _admin(self, home: Path, url: str) -> httpx.Client:
        key = (home / "admin-key").read_text(encoding="utf-8").strip()
        verify = ssl.create_default_context(cafile=str(home / "tls" / "ca.pem"))
        return httpx.Client(base_url=url, verify=verify, headers={ADMIN_KEY_HEADER: key}, timeout=10)

    def _answers(self, home: Path, url: str) -> bool:
        try:
            with self._admin(home, url) as admin:
                return admin.get("/_emulator/health", timeout=1).status_code == 200
        except (httpx.HTTPError, OSError):
            return False
