"""The lab's Entra part: a detached emulator under lab_dir, stable ids across restarts, a ready
provider config, and users linked to their AD accounts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import jwt
import pytest

from clampdown.connectors.entra import EntraConnector, EntraSettings
from clampdown.model import ActionContext
from clampdown_lab.component import LabService
from clampdown_lab.graph_emulator.component import GraphLabComponent
from clampdown_lab.people import DEMO_PEOPLE

SID = "S-1-5-21-3623811015-3361044348-30300820-1106"
GUID = str(uuid.uuid4())


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[GraphLabComponent, Path]]:
    component = GraphLabComponent()
    yield component, tmp_path
    component.down(tmp_path)


async def test_up_down_keeps_ids_and_state(lab: tuple[GraphLabComponent, Path]) -> None:
    component, lab_dir = lab
    service = component.up(lab_dir, DEMO_PEOPLE)
    assert "running" in component.status(lab_dir)
    alice_id = service.people["alice.martin"]["id"]
    connector = EntraConnector(EntraSettings.model_validate(service.provider_config))
    try:
        await connector.check()
        alice = await connector.resolve_user("alice.martin@lab.example.test")
        assert alice.id == alice_id
        await connector.suspend_user(alice, ActionContext(action_id=1, reason="lab", requested_by="me"))
        reply = await connector.graph.send(
            "GET", "/auditLogs/signIns", params={"$filter": f"userId eq '{alice_id}'"}
        )
        assert len(reply.body["value"]) == 2  # the demo history
        # The lab tenant's organization default policy: two-hour access tokens, the emulator's too.
        lifetime = await connector.residual.lifetimes.get()
        assert lifetime.lifetime == timedelta(hours=2) and "organization default" in lifetime.source
        token = jwt.decode(await connector.tokens.token(), options={"verify_signature": False})
        assert token["exp"] - token["iat"] == 7200
    finally:
        await connector.aclose()

    component.down(lab_dir)
    assert "stopped" in component.status(lab_dir)
    again = component.up(lab_dir, DEMO_PEOPLE)
    assert again.people == service.people
    component.link(
        lab_dir,
        [
            LabService(
                name="ad",
                url="ldaps://x",
                provider_config={},
                people={
                    "alice.martin": {
                        "objectSid": SID,
                        "sAMAccountName": "alice.martin",
                        "objectGUID": GUID,
                        "dn": "CN=Alice",
                    }
                },
            )
        ],
    )
    connector = EntraConnector(EntraSettings.model_validate(again.provider_config))
    try:
        state = await connector.read_state(await connector.resolve_user(alice_id))
        assert state.enabled is False  # the suspend survived the restart
        linked = await connector.resolve_user(SID)  # one person, one identity: by the AD objectSid
        assert linked.id == alice_id and linked.attributes["onPremisesSamAccountName"] == "alice.martin"
    finally:
        await connector.aclose()
    # `up` again (a second `clampdown lab up`) reuses the running process.
    assert component.up(lab_dir, DEMO_PEOPLE).details["pid"] == again.details["pid"]


async def test_certificate_credential_of_the_lab_app(lab: tuple[GraphLabComponent, Path]) -> None:
    component, lab_dir = lab
    service = component.up(lab_dir, DEMO_PEOPLE)
    config = dict(service.provider_config)
    del config["client_secret"]
    config["certificate_path"] = service.details["certificate_path"]
    connector = EntraConnector(EntraSettings.model_validate(config))
    try:
        await connector.check()
    finally:
        await connector.aclose()
