"""`clampdown lab up` for Okta: a detached emulator with the demo people, stable across restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from clampdown.connectors.okta import OktaConnector, OktaSettings
from clampdown.connectors.registry import validate_provider
from clampdown_lab.okta_emulator import OktaLabComponent
from clampdown_lab.people import DEMO_PEOPLE
from tests.okta.org import context


async def test_up_seeds_people_reuses_and_survives_restart(tmp_path: Path) -> None:
    component = OktaLabComponent()
    try:
        service = component.up(tmp_path, DEMO_PEOPLE)
        assert component.status(tmp_path).startswith(f"okta emulator: running at {service.url}")
        assert set(service.people) == {p.username for p in DEMO_PEOPLE}
        assert service.provider_config["api_token"] == {"file": str(tmp_path / "okta" / "api-token")}

        # As `clampdown` will build it from [providers.okta] in the lab's clampdown.toml.
        cls, settings = validate_provider("okta", service.provider_config)
        connector = cls.from_settings(settings)
        assert isinstance(connector, OktaConnector)
        try:
            alice = await connector.resolve_user("alice.martin@lab.example.test")
            assert alice.id == service.people["alice.martin"]["id"]
            await connector.suspend_user(alice, context())
            # The lab's custom authorization server "default" lets access tokens live two hours.
            cut = datetime.now(UTC)
            residual = await connector.residual_access(alice, {"okta.suspend_user": cut})
            (tokens,) = [r for r in residual if r.kind == "access_tokens"]
            assert tokens.until == cut + timedelta(minutes=120) and "'default'" in tokens.detail
        finally:
            await connector.aclose()

        again = component.up(tmp_path, DEMO_PEOPLE)  # running: reused as is
        assert (again.url, again.people, again.details["pid"]) == (
            service.url,
            service.people,
            service.details["pid"],
        )

        component.down(tmp_path)
        assert component.status(tmp_path) == "okta emulator: stopped"

        restarted = component.up(tmp_path, DEMO_PEOPLE)
        assert restarted.people == service.people and restarted.url == service.url
        connector = OktaConnector(OktaSettings.model_validate(restarted.provider_config))
        try:
            state = await connector.read_state(alice)
            assert state.status == "SUSPENDED"  # the org was kept in state.json
        finally:
            await connector.aclose()
    finally:
        component.down(tmp_path)
    assert component.status(tmp_path) == "okta emulator: stopped"
