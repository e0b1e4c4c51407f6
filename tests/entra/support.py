"""Shared test data for the Entra tests: app ids, the seeded tenant, connector settings."""

from __future__ import annotations

from typing import Any

from clampdown.connectors.entra import EntraSettings
from clampdown_lab.graph_emulator import Tenant, ThreadedEmulator
from clampdown_lab.people import DEMO_PEOPLE

FULL_APP = "11111111-1111-4111-8111-111111111111"
CERT_APP = "22222222-2222-4222-8222-222222222222"
READ_ONLY_APP = "33333333-3333-4333-8333-333333333333"
DIRECTORY_APP = "44444444-4444-4444-8444-444444444444"  # no Identity Protection (a tenant without P2)
SECRET = "emulator-test-secret-0123456789abcdefghij"


def seed(tenant: Tenant) -> None:
    """The demo people, bob.nguyen at medium risk, frank.li synced from AD."""
    tenant.reset_directory()
    for person in DEMO_PEOPLE:
        on_prem = None
        if person.username == "frank.li":
            on_prem = {
                "objectSid": "S-1-5-21-1004336348-1177238915-682003330-1105",
                "sAMAccountName": "frank.li",
            }
        tenant.add_person(person, on_prem)
    tenant.set_risk(tenant.find_user("bob.nguyen@lab.example.test"), "medium", "atRisk", "none", "seed")  # type: ignore[arg-type]


def settings_for(server: ThreadedEmulator, **overrides: Any) -> EntraSettings:
    values: dict[str, Any] = {
        "tenant_id": server.emulator.tenant.tenant_id,
        "client_id": FULL_APP,
        "client_secret": SECRET,
        "authority_host": server.url,
        "graph_url": f"{server.url}/v1.0",
        "ca_bundle": str(server.ca_path),
        "instance_discovery": False,
        "identity_protection_interval_seconds": 0.05,
    }
    values.update(overrides)
    return EntraSettings.model_validate(values)
