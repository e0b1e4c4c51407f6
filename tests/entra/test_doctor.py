"""`clampdown doctor entra`, run as the real command against Graph emulators: the app permissions
read from the app's own token, compared with each Entra action; one or several tenants."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clampdown.catalog import all_actions
from clampdown.config import load_settings
from clampdown.connectors.entra.doctor import compare
from clampdown.connectors.entra.permissions import ACTION_NEEDS
from clampdown.connectors.registry import build_connectors
from clampdown.errors import ClampdownError
from clampdown_lab.graph_emulator import Emulator, Tenant, ThreadedEmulator
from clampdown_lab.graph_emulator.tenant import ALL_ROLES, AppRecord, tenant_id_for
from tests.lab_config import clampdown, write_config

FULL_APP = "51111111-1111-4111-8111-111111111111"
NO_RISK_APP = "52222222-2222-4222-8222-222222222222"  # everything but IdentityRiskyUser.ReadWrite.All
SECRET = "doctor-test-secret-0123456789abcdefghij"
ENTRA_ACTIONS = [a.id for a in all_actions() if a.provider == "entra"]


def _tenant(domain: str) -> Tenant:
    tenant = Tenant(tenant_id=tenant_id_for(domain), domain=domain)
    tenant.apps[FULL_APP] = AppRecord(FULL_APP, "Clampdown", list(ALL_ROLES), secrets=[SECRET])
    partial = [r for r in ALL_ROLES if r != "IdentityRiskyUser.ReadWrite.All"]
    tenant.apps[NO_RISK_APP] = AppRecord(NO_RISK_APP, "Clampdown no risk", partial, secrets=[SECRET])
    return tenant


@pytest.fixture(scope="module")
def tenants(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ThreadedEmulator, ThreadedEmulator]]:
    """Two tenants (corp and emea), each its own emulator over HTTPS."""
    directory = tmp_path_factory.mktemp("doctor-graph")
    corp = ThreadedEmulator(Emulator(tenant=_tenant("corp.example.test")), directory / "corp").start()
    emea = ThreadedEmulator(Emulator(tenant=_tenant("emea.example.test")), directory / "emea").start()
    yield corp, emea
    corp.stop()
    emea.stop()


def _section(server: ThreadedEmulator, client_id: str = FULL_APP, **more: Any) -> dict[str, Any]:
    return {
        "kind": "entra",
        "tenant_id": server.emulator.tenant.tenant_id,
        "client_id": client_id,
        "client_secret": SECRET,
        "authority_host": server.url,
        "graph_url": f"{server.url}/v1.0",
        "ca_bundle": str(server.ca_path),
        "instance_discovery": False,
        **more,
    }


def _config(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    return write_config(tmp_path / "clampdown.toml", f"sqlite:///{tmp_path / 'c.db'}", providers=sections)


def _verdicts(stdout: str) -> dict[str, str]:
    """action id -> its verdict, from the report's action lines."""
    found = {}
    for line in stdout.splitlines():
        words = line.split(maxsplit=1)
        if len(words) == 2 and words[0] in ENTRA_ACTIONS:
            found[words[0]] = words[1]
    return found


def test_every_entra_action_of_the_catalog_has_its_permissions() -> None:
    assert set(ACTION_NEEDS) == set(ENTRA_ACTIONS)
    actions, _ = compare(frozenset(ALL_ROLES))
    assert all(a.ok for a in actions)


def test_fully_granted_app_passes(tenants: tuple[ThreadedEmulator, ThreadedEmulator], tmp_path: Path) -> None:
    corp, _ = tenants
    done = clampdown(_config(tmp_path, entra=_section(corp)), "doctor", "entra")
    assert done.returncode == 0, done.stdout + done.stderr
    verdicts = _verdicts(done.stdout)
    assert set(verdicts) == set(ENTRA_ACTIONS)
    assert set(verdicts.values()) == {"ok"}
    # Which tenant and app answered, read from the token the tenant issued.
    assert f"token issued by tenant {corp.emulator.tenant.tenant_id} to app {FULL_APP}" in done.stdout
    assert "User.EnableDisableAccount.All" in done.stdout
    assert "hunting: sign-in log pull: ok" in done.stdout
    assert "Privileged Authentication Administrator" in done.stdout  # said, not checked
    assert "[providers." not in done.stdout  # one tenant: no header


def test_a_missing_permission_names_the_actions_and_what_would_suffice(
    tenants: tuple[ThreadedEmulator, ThreadedEmulator], tmp_path: Path
) -> None:
    corp, _ = tenants
    done = clampdown(_config(tmp_path, entra=_section(corp, NO_RISK_APP)), "doctor", "entra")
    assert done.returncode == 1, done.stdout + done.stderr
    verdicts = _verdicts(done.stdout)
    for action, call in (
        ("entra.mark_compromised", "confirmCompromised"),
        ("entra.dismiss_user_risk", "riskyUsers/dismiss"),
    ):
        assert verdicts[action].startswith("missing IdentityRiskyUser.ReadWrite.All for POST"), verdicts
        assert call in verdicts[action]
    assert verdicts["entra.suspend_user"] == "ok"
    assert "MISSING PERMISSIONS" in done.stdout
    assert "Traceback" not in done.stderr


def test_several_tenants_and_instance(
    tenants: tuple[ThreadedEmulator, ThreadedEmulator], tmp_path: Path
) -> None:
    corp, emea = tenants
    config = _config(tmp_path, **{"corp-entra": _section(corp), "emea-entra": _section(emea, NO_RISK_APP)})
    both = clampdown(config, "doctor", "entra")
    assert both.returncode == 1, both.stdout + both.stderr
    corp_part, emea_part = both.stdout.split("[providers.emea-entra]")
    assert corp_part.startswith("[providers.corp-entra]")
    assert corp.emulator.tenant.tenant_id in corp_part and "missing" not in corp_part.split("other uses")[0]
    assert emea.emulator.tenant.tenant_id in emea_part and "missing IdentityRiskyUser" in emea_part

    only_corp = clampdown(config, "doctor", "entra", "--instance", "corp-entra")
    assert only_corp.returncode == 0, only_corp.stdout + only_corp.stderr
    assert emea.emulator.tenant.tenant_id not in only_corp.stdout

    unknown = clampdown(config, "doctor", "entra", "--instance", "nope")
    assert unknown.returncode == 4
    assert "corp-entra, emea-entra" in unknown.stderr


def test_a_tenant_that_does_not_answer(
    tenants: tuple[ThreadedEmulator, ThreadedEmulator], tmp_path: Path
) -> None:
    corp, _ = tenants
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    dead = _section(corp, authority_host=f"https://127.0.0.1:{closed}")
    done = clampdown(
        _config(tmp_path, **{"corp-entra": _section(corp), "dead-entra": dead}), "doctor", "entra"
    )
    assert done.returncode == 1, done.stdout + done.stderr
    dead_part = done.stdout.split("[providers.dead-entra]")[1]
    assert "ERROR cannot reach the Entra ID authority" in dead_part
    assert "Traceback" not in done.stderr
    assert "[providers.corp-entra]" in done.stdout  # the other tenant is still reported



async def test_the_readiness_check_names_what_the_app_lacks_from_the_same_table(
    tenants: tuple[ThreadedEmulator, ThreadedEmulator], tmp_path: Path
) -> None:
    """/readyz's check of a tenant (connector.check) reads the same table as doctor entra."""
    corp, _ = tenants
    for app, lacks in ((FULL_APP, False), (NO_RISK_APP, True)):
        connectors = build_connectors(load_settings(_config(tmp_path, entra=_section(corp, app))))
        try:
            if not lacks:
                await connectors["entra"].check()
                continue
            with pytest.raises(ClampdownError) as refused:
                await connectors["entra"].check()
        finally:
            await connectors["entra"].aclose()
        said = refused.value.message
        needed = "IdentityRiskyUser.ReadWrite.All (entra.mark_compromised, entra.dismiss_user_risk)"
        assert needed in said, said
