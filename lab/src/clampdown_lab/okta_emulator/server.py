"""Build an emulated org from its settings and serve it with uvicorn, in a thread or as a process."""

from __future__ import annotations

import argparse
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from clampdown_lab.okta_emulator.app import Emulator
from clampdown_lab.okta_emulator.auth import Authenticator, ServiceApp
from clampdown_lab.okta_emulator.oidc import OidcProvider, OidcWebApp, load_signing_key
from clampdown_lab.okta_emulator.ratelimit import DEFAULT_CONCURRENCY, RateLimiter
from clampdown_lab.okta_emulator.state import Actor, OrgState, stable_id


@dataclass
class EmulatorSettings:
    """Everything an emulated org is made of; saved as JSON by the lab component."""

    api_tokens: dict[str, str] = field(default_factory=dict)  # token -> login of the admin who owns it
    apps: list[dict[str, Any]] = field(default_factory=list)  # client_id, public_key_pem, scopes, key_id
    limits: dict[str, int] = field(default_factory=dict)
    concurrency: int = DEFAULT_CONCURRENCY
    window_seconds: float = 60.0
    token_lifetime: int = 3600
    deactivate_delay: float = 0.2
    latency: float = 0.0
    state_file: str | None = None
    # profiles (+ optional status, password, groups) to seed
    users: list[dict[str, Any]] = field(default_factory=list)
    oidc_apps: list[dict[str, Any]] = field(default_factory=list)  # client_id, client_secret, redirect_uris
    signing_key_file: str | None = None  # PEM of the ID token key; else a new key at each start
    # Admin role types (SUPER_ADMIN, USER_ADMIN, ...) by API token owner login or service app
    # client id; a caller not named is a SUPER_ADMIN. [] : no admin role at all.
    admin_roles: dict[str, list[str]] = field(default_factory=dict)
    org_name: str = "Clampdown Lab"  # companyName of GET /api/v1/org
    # TLS verification when the org calls SSF peers (pushes SETs, reads a provider's JWKS): true,
    # false, or the path of a CA bundle. http URLs are allowed (the lab runs on loopback).
    ssf_verify: bool | str = True

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def admin_actor(login: str) -> Actor:
    """The admin user an API token acts as."""
    return Actor(stable_id("00u", f"admin {login}"), "User", login, "Clampdown Action Account")


def build_emulator(settings: EmulatorSettings) -> Emulator:
    """An emulator with its org loaded from the state file (when given) and the users seeded."""
    state = OrgState.load(Path(settings.state_file)) if settings.state_file else OrgState()
    for item in settings.users:
        state.seed(item)
    oidc = OidcProvider()
    if settings.signing_key_file:
        oidc.signing_key = load_signing_key(Path(settings.signing_key_file).read_text(encoding="utf-8"))
    for app in settings.oidc_apps:
        oidc.register(
            OidcWebApp(
                str(app["client_id"]),
                str(app["client_secret"]),
                tuple(app["redirect_uris"]),
                str(app.get("label", "OIDC web app")),
            )
        )
    auth = Authenticator(
        api_tokens={token: admin_actor(login) for token, login in settings.api_tokens.items()},
        apps={
            a["client_id"]: ServiceApp(
                a["client_id"], a["public_key_pem"], frozenset(a["scopes"]), a.get("key_id")
            )
            for a in settings.apps
        },
        token_lifetime=settings.token_lifetime,
        roles={
            (admin_actor(key).id if key in settings.api_tokens.values() else key): tuple(types)
            for key, types in settings.admin_roles.items()
        },
    )
    limiter = RateLimiter(concurrency=settings.concurrency, window_seconds=settings.window_seconds)
    limiter.limits.update(settings.limits)
    return Emulator(
        state=state,
        auth=auth,
        limiter=limiter,
        deactivate_delay=settings.deactivate_delay,
        latency=settings.latency,
        oidc=oidc,
        org_name=settings.org_name,
        ssf_verify=settings.ssf_verify,
    )


class EmulatorServer:
    """Serves an emulator on loopback from a background thread (tests); `url` once started."""

    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0) -> None:
        self.emulator = emulator
        config = uvicorn.Config(
            emulator.asgi(), host=host, port=port, log_level="critical", lifespan="off", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="okta-emulator", daemon=True)
        self.url = ""

    def start(self) -> EmulatorServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the Okta emulator did not start")
            time.sleep(0.01)
        host, port = self._server.servers[0].sockets[0].getsockname()[:2]
        self.url = f"http://{host}:{port}"
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def main(argv: list[str] | None = None) -> None:
    """Run an emulator in the foreground: `python -m clampdown_lab.okta_emulator --settings F`."""
    parser = argparse.ArgumentParser(description="Clampdown's local Okta org emulator")
    parser.add_argument("--settings", type=Path, required=True, help="JSON file of EmulatorSettings")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log-level", default="warning")
    args = parser.parse_args(argv)
    settings = EmulatorSettings(**json.loads(args.settings.read_text(encoding="utf-8")))
    emulator = build_emulator(settings)
    uvicorn.run(
        emulator.asgi(),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        lifespan="off",
        access_log=False,
    )
