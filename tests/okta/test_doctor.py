"""`clampdown doctor okta`, run as the real command against Okta emulators: the scopes granted to a
service app (asked of the token endpoint one by one) or an API token owner's admin roles, compared
with each Okta action; one or several orgs. The emulator's new reads are checked against Okta's
Management document."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from clampdown.catalog import all_actions
from clampdown.connectors.okta.doctor import ACTION_SCOPES, all_scopes
from clampdown_lab.okta_emulator import EmulatorServer, EmulatorSettings, build_emulator
from clampdown_lab.okta_emulator.auth import ALL_SCOPES
from tests.lab_config import clampdown, write_config
from tests.okta.contract import FULL_MANAGEMENT, Exchange
from tests.okta.org import pem_pair

TOKEN = "00doctor-ssws-token-for-the-emulator"
OWNER = "clampdown.doctor@lab.example.test"
FULL, NO_RISK, NO_ROLE = "0oadoctorfull0000001", "0oadoctorrisk0000002", "0oadoctorrole0000003"
OKTA_ACTIONS = [a.id for a in all_actions() if a.provider == "okta"]
ACTION_NEEDS = sorted({s for scopes in ACTION_SCOPES.values() for s in scopes})


@pytest.fixture(scope="module")
def orgs() -> Iterator[tuple[EmulatorServer, EmulatorServer, str]]:
    """Two orgs; the first has a fully granted app, one without okta.userRisk.manage and one
    without an admin role, the second a fully granted app; both take the API token."""
    private, public = pem_pair()
    partial = [s for s in ALL_SCOPES if s != "okta.userRisk.manage"]

    def org(name: str) -> EmulatorServer:
        settings = EmulatorSettings(
            api_tokens={TOKEN: OWNER},
            apps=[
                {"client_id": FULL, "public_key_pem": public, "scopes": sorted(ALL_SCOPES)},
                {"client_id": NO_RISK, "public_key_pem": public, "scopes": partial},
                {"client_id": NO_ROLE, "public_key_pem": public, "scopes": sorted(ALL_SCOPES)},
            ],
            admin_roles={OWNER: ["ORG_ADMIN"], NO_ROLE: []},
            org_name=name,
        )
        return EmulatorServer(build_emulator(settings)).start()

    corp, emea = org("Corp"), org("EMEA")
    yield corp, emea, private
    corp.stop()
    emea.stop()


def _app(server: EmulatorServer, key: str, client_id: str = FULL, **more: Any) -> dict[str, Any]:
    return {
        "kind": "okta",
        "org_url": server.url,
        "client_id": client_id,
        "private_key": key,
        "scopes": ACTION_NEEDS,
        **more,
    }


def _config(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    return write_config(tmp_path / "clampdown.toml", f"sqlite:///{tmp_path / 'c.db'}", providers=sections)


def _verdicts(stdout: str) -> dict[str, str]:
    found = {}
    for line in stdout.splitlines():
        words = line.split(maxsplit=1)
        if len(words) == 2 and words[0] in OKTA_ACTIONS:
            found[words[0]] = words[1]
    return found


def test_every_okta_action_of_the_catalog_has_its_scopes() -> None:
    assert set(ACTION_SCOPES) == set(OKTA_ACTIONS)
    assert set(all_scopes()) <= ALL_SCOPES  # the emulator knows every scope doctor asks for


def test_fully_granted_service_app_passes(
    orgs: tuple[EmulatorServer, EmulatorServer, str], tmp_path: Path
) -> None:
    corp, _, key = orgs
    done = clampdown(_config(tmp_path, okta=_app(corp, key)), "doctor", "okta")
    assert done.returncode == 0, done.stdout + done.stderr
    verdicts = _verdicts(done.stdout)
    assert set(verdicts) == set(OKTA_ACTIONS) and set(verdicts.values()) == {"ok"}
    assert "(Corp, 127)" in done.stdout  # GET /api/v1/org: which org answered
    assert "admin roles: SUPER_ADMIN" in done.stdout  # read with okta.roles.read
    assert "scopes not granted: none" in done.stdout


def test_a_scope_not_granted_or_not_configured(
    orgs: tuple[EmulatorServer, EmulatorServer, str], tmp_path: Path
) -> None:
    corp, _, key = orgs
    done = clampdown(_config(tmp_path, okta=_app(corp, key, NO_RISK)), "doctor", "okta")
    assert done.returncode == 1, done.stdout + done.stderr
    verdicts = _verdicts(done.stdout)
    for action in ("okta.set_risk", "okta.clear_risk"):
        assert verdicts[action] == "missing okta.userRisk.manage (grant to the app in Okta: Okta API Scopes)"
    assert verdicts["okta.suspend_user"] == "ok"

    # Granted, but the connector is not configured to ask for it: missing all the same.
    narrow = _app(corp, key, scopes=["okta.users.read", "okta.users.manage"])
    done = clampdown(_config(tmp_path, okta=narrow), "doctor", "okta")
    assert done.returncode == 1
    verdict = _verdicts(done.stdout)["okta.universal_logout"]
    assert verdict == "missing okta.universalLogout.manage (granted; add to scopes in the config)"


def test_a_service_app_without_an_admin_role(
    orgs: tuple[EmulatorServer, EmulatorServer, str], tmp_path: Path
) -> None:
    corp, _, key = orgs
    done = clampdown(_config(tmp_path, okta=_app(corp, key, NO_ROLE)), "doctor", "okta")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "admin roles: NONE" in done.stdout


def test_api_token_reports_its_owner_and_roles(
    orgs: tuple[EmulatorServer, EmulatorServer, str], tmp_path: Path
) -> None:
    corp, _, _ = orgs
    section = {"kind": "okta", "org_url": corp.url, "api_token": TOKEN}
    done = clampdown(_config(tmp_path, okta=section), "doctor", "okta")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"API token (SSWS) of {OWNER}" in done.stdout
    assert "admin roles: ORG_ADMIN" in done.stdout
    assert set(_verdicts(done.stdout).values()) == {"ok"}


def test_several_orgs_instance_and_one_that_does_not_answer(
    orgs: tuple[EmulatorServer, EmulatorServer, str], tmp_path: Path
) -> None:
    corp, emea, key = orgs
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    sections = {
        "corp-okta": _app(corp, key),
        "emea-okta": _app(emea, key, NO_RISK),
        "dead-okta": {**_app(corp, key), "org_url": f"http://127.0.0.1:{closed}", "retries": 0},
    }
    config = _config(tmp_path, **sections)
    every = clampdown(config, "doctor", "okta")
    assert every.returncode == 1, every.stdout + every.stderr
    corp_part, rest = every.stdout.split("[providers.emea-okta]")
    emea_part, dead_part = rest.split("[providers.dead-okta]")
    assert corp_part.startswith("[providers.corp-okta]") and "(Corp," in corp_part
    assert "(EMEA," in emea_part and "missing okta.userRisk.manage" in emea_part
    assert "ERROR Okta did not answer" in dead_part
    assert "Traceback" not in every.stderr

    only = clampdown(config, "doctor", "okta", "--instance", "corp-okta")
    assert only.returncode == 0, only.stdout + only.stderr
    assert "EMEA" not in only.stdout and "[providers." not in only.stdout

    unknown = clampdown(config, "doctor", "okta", "--instance", "nope")
    assert unknown.returncode == 4 and "corp-okta, emea-okta, dead-okta" in unknown.stderr


def test_the_emulators_new_reads_follow_the_contract(
    orgs: tuple[EmulatorServer, EmulatorServer, str],
) -> None:
    """Well-known org metadata, org settings and role assignments, validated against Okta's
    Management document (the operations trimmed from it here, as contract.py does its own)."""
    from openapi_core import Config, OpenAPI
    from openapi_core.testing import MockRequest, MockResponse

    from tests.okta.contract import SPEC_HOST, TRIM_TOOL

    corp, _, _ = orgs
    operations = (
        "/.well-known/okta-organization:get",
        "/api/v1/org:get",
        "/api/v1/users/{id}:get",
        "/api/v1/users/{userId}/roles:get",
        "/oauth2/v1/clients/{clientId}/roles:get",
    )
    import subprocess
    import sys
    import tempfile

    target = Path(tempfile.mkdtemp(prefix="doctor-contract-")) / "okta-doctor.yaml"
    subprocess.run(
        [sys.executable, str(TRIM_TOOL), str(FULL_MANAGEMENT), str(target), *operations], check=True
    )
    api = OpenAPI.from_file_path(str(target), config=Config(spec_validator_cls=None))
    exchanges: list[Exchange] = []

    async def record(response: httpx.Response) -> None:
        exchanges.append(await Exchange.capture(response))

    import asyncio

    async def calls() -> None:
        headers = {"Authorization": f"SSWS {TOKEN}", "Accept": "application/json"}
        async with httpx.AsyncClient(
            base_url=corp.url, headers=headers, event_hooks={"response": [record]}
        ) as c:
            me = (await c.get("/api/v1/users/me")).json()
            for path in (
                "/.well-known/okta-organization",
                "/api/v1/org",
                f"/api/v1/users/{me['id']}/roles",
                f"/oauth2/v1/clients/{FULL}/roles",
            ):
                assert (await c.get(path)).status_code == 200, path

    asyncio.run(calls())
    assert len(exchanges) == 5
    for exchange in exchanges:
        path = httpx.URL(exchange.url).path
        request = MockRequest(SPEC_HOST, exchange.method.lower(), path, headers=exchange.request_headers)
        response = MockResponse(
            exchange.response_body,
            status_code=exchange.status,
            content_type=exchange.response_headers.get("content-type", "").split(";")[0],
            headers=exchange.response_headers,
        )
        api.validate_request(request)
        api.validate_response(request, response)
