"""The emulated org as the Okta tests see it, and the constants its fixtures use."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from clampdown.model import Account, ActionContext
from clampdown_lab.okta_emulator import Emulator

API_TOKEN = "00test-ssws-token-for-the-emulator"
CLIENT_ID = "0oaclampdowntest0001"
READ_ONLY_CLIENT_ID = "0oaclampdownread0002"


def pem_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@dataclass
class Org:
    """The running emulator, its URL and the keys of its service apps."""

    emulator: Emulator
    url: str
    private_key: str
    read_only_private_key: str
    ids: dict[str, str] = field(default_factory=dict)  # login -> Okta id

    @property
    def state(self) -> Any:
        return self.emulator.state

    def user(self, login: str) -> Any:
        return self.emulator.state.find_by_login(login)

    def events(self, event_type: str, user_id: str | None = None) -> list[dict[str, Any]]:
        return [
            e
            for e in self.emulator.state.logs
            if e["eventType"] == event_type and (user_id is None or e["target"][0]["id"] == user_id)
        ]

    def add(self, login: str, status: str = "ACTIVE", **profile: str) -> Account:
        record = self.emulator.state.add_user(
            {"login": login, "firstName": "Test", "lastName": login.split("@")[0], **profile}, status=status
        )
        return Account(provider="okta", id=record.id, name=login, attributes={"login": login})

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for _, _, status in self.emulator.request_log:
            counts[status] = counts.get(status, 0) + 1
        return counts


def context(**kwargs: Any) -> ActionContext:
    """An ActionContext as the engine would pass it."""
    return ActionContext(
        action_id=kwargs.pop("action_id", 1), reason="test", requested_by="analyst@test", **kwargs
    )
