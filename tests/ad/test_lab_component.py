"""The lab's AD part: idempotent `up`, the people's ids, a provider config the connector accepts."""

from __future__ import annotations

import pytest

from clampdown.connectors.ad import ADConnector, ADSettings
from clampdown_lab.people import DEMO_PEOPLE
from clampdown_lab.samba import SambaLab, SambaLabComponent
from tests.ad.conftest import LAB_DIR

pytestmark = pytest.mark.samba


async def test_up_again_reuses_the_dc_and_returns_working_config(lab: SambaLab) -> None:
    component = SambaLabComponent()
    service = component.up(LAB_DIR, DEMO_PEOPLE)  # the session fixture already started it
    assert service.name == "ad" and "running" in component.status(LAB_DIR)
    assert set(service.people) == {p.username for p in DEMO_PEOPLE}
    alice = service.people["alice.martin"]
    assert alice["objectSid"].startswith("S-1-5-21-") and alice["upn"] == "alice.martin@lab.example.test"
    assert alice["dn"].endswith("OU=Managed,DC=lab,DC=example,DC=test")
    assert all(
        u["dn"].endswith("OU=Other,DC=lab,DC=example,DC=test")
        for u in service.details["users_outside_delegation"].values()
    )

    settings = ADSettings.model_validate(service.provider_config)
    assert settings.bind_user == "svc-clampdown@lab.example.test"  # the delegated account, not an admin
    connector = ADConnector(settings)
    try:
        account = await connector.resolve_user(alice["objectGUID"])
        assert account.attributes["objectSid"] == alice["objectSid"]
    finally:
        await connector.aclose()
    assert (lab.samba_dir / "svc-clampdown.password").stat().st_mode & 0o077 == 0
