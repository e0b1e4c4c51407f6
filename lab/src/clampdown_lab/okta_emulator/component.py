"""`clampdown lab up` for Okta: the emulator as a detached process, its org kept under lab_dir/okta.

Files under lab_dir/okta: settings.json (the emulator's settings, incl. the demo people),
state.json (users, System Log and the custom authorization server "default", so ids and statuses
survive restarts), api-token (the SSWS token, given to Clampdown as a secret file), service-app.pem
(the key of an OAuth service app, for trying the private_key_jwt way), emulator.pid, emulator.log
and component.json (the port).

For single sign-on: oidc-client-secret (of the "Clampdown" OIDC web app), oidc-signing-key.pem (the
org's ID token key, kept so that restarts keep the published JWKS) and demo-password (every demo
person's password at the emulator's sign-in form). `details["oidc"]` is a ready [sso] section.

The second org (EMEA, `clampdown lab up --second`) is another emulator process with its own port
(its org URL), API token and folder lab_dir/okta-emea, seeded with the EMEA people; its user ids
differ from the first org's for the same login (Okta ids are unique across orgs). It is not the
lab's identity provider: its details have no "oidc".
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from clampdown_lab.component import LabService
from clampdown_lab.detached import DetachedProcess
from clampdown_lab.okta_emulator.auth import ALL_SCOPES
from clampdown_lab.okta_emulator.server import EmulatorSettings
from clampdown_lab.okta_emulator.state import stable_id
from clampdown_lab.people import LAB, DemoPerson, LabDomain

SERVICE_APP_CLIENT_ID = "0oaclampdownlab00001"
OIDC_CLIENT_ID = "0oaclampdownsso00001"
# Who may use Clampdown when signing in with single sign-on, by the Okta groups of demo people.
LAB_ROLE_MAPPING = {
    "Clampdown Administrators": ["Global Administrator"],
    "Clampdown Operators": ["Security Operator"],
    "Clampdown Readers": ["Security Reader"],
}
_CLAMPDOWN_GROUPS = {
    "dave.okafor": "Clampdown Administrators",
    "frank.li": "Clampdown Operators",
    "grace.haddad": "Clampdown Readers",
}
_MODULE = "clampdown_lab.okta_emulator"
# The org's custom authorization server "default", as every org with API Access Management has
# one; its rule lets access tokens live two hours (Okta's own default is one), so the residual
# access of a contained person shows a custom server's lifetime beyond the org server's hour.
LAB_AUTHORIZATION_SERVER: dict[str, Any] = {
    "name": "default",
    "description": "Default Authorization Server",
    "audiences": ["api://default"],
    "policies": [
        {
            "name": "Default Policy",
            "description": "Default policy description",
            "rules": [{"name": "Default Policy Rule", "accessTokenLifetimeMinutes": 120}],
        }
    ],
}


def _person_profile(person: DemoPerson) -> dict[str, Any]:
    return {
        "login": person.upn,
        "email": person.upn,
        "firstName": person.given_name,
        "lastName": person.surname,
        "displayName": person.display_name,
        "department": person.department,
        "title": person.title,
    }


def _new_private_key_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _secret_file(path: Path, make: Callable[[], bytes]) -> None:
    """Write a new secret readable by the owner only, unless the lab already has one."""
    if not path.exists():
        path.write_bytes(make())
        path.chmod(0o600)


class OktaLabComponent:
    """The Okta part of the lab: one emulated org on loopback, seeded with the demo people (with
    `domain=EMEA`, the second org and its people)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        start_timeout: float = 20.0,
        clampdown_urls: tuple[str, ...] = ("http://127.0.0.1:8080", "http://localhost:8080"),
        domain: LabDomain = LAB,
    ) -> None:
        self.host = host
        self.start_timeout = start_timeout
        self.clampdown_urls = clampdown_urls  # where the lab's `clampdown serve` is browsed to
        self.domain = domain
        self.name = domain.provider("okta")

    # --- LabComponent --------------------------------------------------------------------
    def up(self, lab_dir: Path, people: tuple[DemoPerson, ...]) -> LabService:
        """Start (or reuse) the emulator in the background, seed `people`, say how to reach it."""
        home = lab_dir / self.domain.folder("okta")
        home.mkdir(parents=True, exist_ok=True)
        self._write_settings(home, people)
        pid, url = self._emulator(home).start_or_reuse(self._url, self._answers, self.start_timeout)
        # Seeding is idempotent: people already in the org keep their ids and statuses.
        seeded = httpx.post(f"{url}/_emulator/users", json={"users": self._seed(home, people)}, timeout=10)
        seeded.raise_for_status()
        ids: dict[str, str] = seeded.json()["ids"]
        servers = {"servers": [LAB_AUTHORIZATION_SERVER]}  # idempotent too: an existing one is kept
        httpx.post(f"{url}/_emulator/authorization-servers", json=servers, timeout=10).raise_for_status()
        # A reused emulator started before this app was added learns it here; registering is idempotent.
        httpx.post(f"{url}/_emulator/oidc/apps", json=self._oidc_app(home), timeout=10).raise_for_status()
        settings = {
            "org_url": url,
            "api_token": {"file": str(home / "api-token")},
            "user_risk": True,  # the lab org has Identity Threat Protection
        }
        details: dict[str, Any] = {
            "pid": pid,
            "state_file": str(home / "state.json"),
            "log_file": str(home / "emulator.log"),
            "login_domain": self.domain.domain,
            "service_app": {
                "client_id": SERVICE_APP_CLIENT_ID,
                "private_key": {"file": str(home / "service-app.pem")},
            },
        }
        if self.domain == LAB:  # the lab's identity provider for signing in to Clampdown
            details |= {
                "oidc": {
                    "issuer": url,
                    "client_id": OIDC_CLIENT_ID,
                    "client_secret": {"file": str(home / "oidc-client-secret")},
                    "role_mapping": LAB_ROLE_MAPPING,
                },
                "oidc_sign_in": {
                    "redirect_uris": self._redirect_uris(),
                    "password": {"file": str(home / "demo-password")},
                    # who signs in to Clampdown, and through which group
                    "users": {
                        p.upn: _CLAMPDOWN_GROUPS[p.username]
                        for p in people
                        if p.username in _CLAMPDOWN_GROUPS
                    },
                },
            }
        return LabService(
            name=self.name,
            url=url,
            provider_config=self.domain.provider_section("okta", settings),
            people={p.username: {"id": ids[p.upn], "login": p.upn} for p in people},
            details=details,
        )

    def down(self, lab_dir: Path) -> None:
        """Stop the emulator this lab_dir started; its org stays in state.json for the next `up`."""
        self._emulator(lab_dir / self.domain.folder("okta")).down()

    def running(self, lab_dir: Path) -> bool:
        return self._emulator(lab_dir / self.domain.folder("okta")).running_pid() is not None

    def status(self, lab_dir: Path) -> str:
        label = "okta emulator" if self.domain == LAB else f"{self.name} emulator"
        return self._emulator(lab_dir / self.domain.folder("okta")).status(label, self._url)

    # --- internals -----------------------------------------------------------------------
    @property
    def _action_login(self) -> str:
        """The admin the API token acts as."""
        return f"clampdown.action@{self.domain.domain}"

    def _emulator(self, home: Path) -> DetachedProcess:
        return DetachedProcess(home, _MODULE, ["--settings", str(home / "settings.json")], "Okta emulator")

    def _url(self, port: int) -> str:
        return f"http://{self.host}:{port}"

    def _redirect_uris(self) -> list[str]:
        return [f"{u.rstrip('/')}/auth/oidc/callback" for u in self.clampdown_urls]

    def _oidc_app(self, home: Path) -> dict[str, Any]:
        secret = (home / "oidc-client-secret").read_text(encoding="utf-8").strip()
        return {"client_id": OIDC_CLIENT_ID, "client_secret": secret,
                "redirect_uris": self._redirect_uris(), "label": "Clampdown"}  # fmt: skip

    def _seed(self, home: Path, people: tuple[DemoPerson, ...]) -> list[dict[str, Any]]:
        """The demo people with their password and groups (Everyone, their department, Clampdown's)."""
        password = (home / "demo-password").read_text(encoding="utf-8").strip()
        items = []
        for person in people:
            groups = ["Everyone", person.department]
            item = {**_person_profile(person), "password": password, "groups": groups}
            if self.domain == LAB and person.username in _CLAMPDOWN_GROUPS:
                groups.append(_CLAMPDOWN_GROUPS[person.username])
            if self.domain != LAB:  # ids unique across orgs; the first org's stay derived from the login
                item["id"] = stable_id("00u", f"{self.domain.domain}/{person.upn.lower()}")
            items.append(item)
        return items

    def _write_settings(self, home: Path, people: tuple[DemoPerson, ...]) -> None:
        _secret_file(home / "api-token", lambda: ("00" + secrets.token_urlsafe(30)).encode())
        _secret_file(home / "oidc-client-secret", lambda: secrets.token_urlsafe(32).encode())
        _secret_file(home / "demo-password", lambda: f"Lab-{secrets.token_urlsafe(9)}".encode())
        _secret_file(home / "oidc-signing-key.pem", _new_private_key_pem)
        key_file = home / "service-app.pem"
        _secret_file(key_file, _new_private_key_pem)
        token_file = home / "api-token"
        private = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        public = private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        settings = EmulatorSettings(
            api_tokens={token_file.read_text(encoding="utf-8").strip(): self._action_login},
            apps=[
                {
                    "client_id": SERVICE_APP_CLIENT_ID,
                    "public_key_pem": public.decode(),
                    "scopes": sorted(ALL_SCOPES),
                }
            ],
            state_file=str(home / "state.json"),
            users=self._seed(home, people),
            oidc_apps=[self._oidc_app(home)],
            signing_key_file=str(home / "oidc-signing-key.pem"),
        )
        settings_file = home / "settings.json"
        settings_file.write_text(json.dumps(settings.to_json(), indent=2), encoding="utf-8")
        settings_file.chmod(0o600)  # it holds the API token, client secret and demo password

    def _answers(self, url: str) -> bool:
        try:
            return httpx.get(f"{url}/_emulator/stats", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
