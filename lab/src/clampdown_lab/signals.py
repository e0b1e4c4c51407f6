"""The lab's Shared Signals both ways between Clampdown and the lab's Okta org (issue 21).

- Okta to Clampdown: Clampdown is a receiver of the org ([ssf.receivers.okta]); the org holds a
  push stream to Clampdown's receiver endpoint, created through Okta's SSF stream API
  (/api/v1/ssf/stream) with the lab service app's OAuth token, as a real Okta tenant's is.
- Clampdown to Okta: Clampdown is a transmitter ([ssf.transmitter], its signing key in
  DIR/ssf-signing-key.pem) with a declared push stream to the org's
  /security/api/v1/security-events; the org knows Clampdown as a security events provider (issuer
  and JWKS URL, /api/v1/security-events-providers with the API token).
- A detection rule over SecuritySignals: a RISC credential-compromise the org transmits about a
  person contains them with the `contain` playbook, so Clampdown then announces account-disabled.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import jwt

from clampdown.config import Settings
from clampdown.errors import Conflict
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from clampdown.secevents import generate_key
from clampdown.services.runtime import open_runtime
from clampdown_lab.component import LabService, secret_file

RECEIVER = "okta"  # [ssf.receivers.okta] and the declared stream [ssf.transmitter.streams.okta]
PROVIDER_NAME = "Clampdown"
RULE = "risc-credential-compromise"
RULE_QUERY = "SecuritySignals | where EventName == 'credential-compromise' and Resolved | project AccountUpn"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
PUSH = "urn:ietf:rfc:8935"
# What the lab asks the org to transmit: Okta's documented CAEP events, and the RISC
# credential-compromise the lab's org adds.
ORG_EVENTS = [
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked",
    "https://schemas.openid.net/secevent/caep/event-type/credential-change",
    "https://schemas.openid.net/secevent/risc/event-type/credential-compromise",
]
TIMEOUT = 10.0


def signals_config(lab_dir: Path, okta: LabService, server_url: str) -> dict[str, Any]:
    """The [ssf] section: Clampdown receives from the org and transmits to it."""
    key = lab_dir / "ssf-signing-key.pem"
    if not key.exists():
        generate_key(str(key))
    bearer = secret_file(lab_dir, "ssf-okta-bearer")
    return {
        "receivers": {
            RECEIVER: {"issuer": okta.url, "audience": server_url, "bearer": {"file": str(bearer.resolve())}}
        },
        "transmitter": {
            "issuer": server_url,
            "signing_key_file": str(key.resolve()),
            "streams": {
                RECEIVER: {
                    "endpoint_url": f"{okta.url}/security/api/v1/security-events",
                    "audience": okta.url,
                    "description": "the lab's Okta org, which knows Clampdown as a security events provider",
                }
            },
        },
    }


def _service_app_token(okta: LabService, scopes: str) -> str:
    """An access token of the lab's service app (client credentials, private_key_jwt)."""
    app = okta.details["service_app"]
    key = Path(app["private_key"]["file"]).read_text(encoding="utf-8")
    token_url = f"{okta.url}/oauth2/v1/token"
    now = int(time.time())
    assertion = jwt.encode(
        {"iss": app["client_id"], "sub": app["client_id"], "aud": token_url, "iat": now, "exp": now + 300,
         "jti": str(uuid.uuid4())},
        key,
        algorithm="RS256",
    )  # fmt: skip
    form = {
        "grant_type": "client_credentials",
        "scope": scopes,
        "client_assertion_type": CLIENT_ASSERTION_TYPE,
        "client_assertion": assertion,
    }
    answer = httpx.post(token_url, data=form, timeout=TIMEOUT)
    answer.raise_for_status()
    return str(answer.json()["access_token"])


def register_with_okta(okta: LabService, settings: Settings) -> None:
    """Make the org and Clampdown know each other, idempotently: the org's push stream to
    Clampdown's receiver (replaced when it exists), and Clampdown as an ACTIVE security events
    provider of the org (its issuer and JWKS URL, replaced when it exists)."""
    receiver = settings.ssf.receivers[RECEIVER]
    transmitter = settings.ssf.transmitter
    assert receiver.bearer is not None and transmitter is not None
    bearer = {"Authorization": f"Bearer {_service_app_token(okta, 'ssf.manage ssf.read')}"}
    stream = {
        "delivery": {
            "method": PUSH,
            "endpoint_url": f"{receiver.audience}/api/v1/ssf/receivers/{RECEIVER}/events",
            "authorization_header": f"Bearer {receiver.bearer.get_secret_value()}",
        },
        "events_requested": ORG_EVENTS,
        "format": "iss_sub",
    }
    with httpx.Client(base_url=okta.url, timeout=TIMEOUT) as http:
        existing = http.get("/api/v1/ssf/stream", headers=bearer)
        existing.raise_for_status()
        if existing.json():
            http.put("/api/v1/ssf/stream", json=stream, headers=bearer).raise_for_status()
        else:
            http.post("/api/v1/ssf/stream", json=stream, headers=bearer).raise_for_status()
        ssws = {"Authorization": f"SSWS {_api_token(okta)}"}
        provider = {
            "name": PROVIDER_NAME,
            "type": "okta",
            "settings": {"issuer": transmitter.issuer, "jwks_url": f"{transmitter.issuer}/api/v1/ssf/jwks"},
        }
        listed = http.get("/api/v1/security-events-providers", headers=ssws)
        listed.raise_for_status()
        mine = [p for p in listed.json() if p.get("name") == PROVIDER_NAME]
        if mine:
            path = f"/api/v1/security-events-providers/{mine[0]['id']}"
            http.put(path, json=provider, headers=ssws).raise_for_status()
            if mine[0].get("status") != "ACTIVE":
                http.post(f"{path}/lifecycle/activate", headers=ssws).raise_for_status()
        else:
            http.post("/api/v1/security-events-providers", json=provider, headers=ssws).raise_for_status()


def _api_token(okta: LabService) -> str:
    section = okta.provider_config
    return Path(section["api_token"]["file"]).read_text(encoding="utf-8").strip()


async def ensure_signal_rule(settings: Settings, owner: str) -> None:
    """The detection rule that contains a person the org reports a compromised credential of
    (kept when it exists), armed by `owner` (a Global Administrator)."""
    from clampdown.hunting.service import HuntingService

    async with open_runtime(settings) as rt:
        user = await rt.auth.store.user_by_name(owner)
        assert user is not None and GLOBAL_ADMINISTRATOR in user.roles
        principal = await rt.auth.principal_for(user, "cli")
        hunting = HuntingService.from_runtime(rt)
        with contextlib.suppress(Conflict):  # made before: kept as it is
            await hunting.create_rule(principal, RULE, RULE_QUERY, 60, "playbook:contain", "AccountUpn")
