"""Fixtures: one Okta emulator on a free loopback port for the session, reset before each test."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from clampdown.connectors.okta import OktaConnector, OktaSettings
from clampdown.lab.okta_emulator import Emulator, EmulatorServer, EmulatorSettings, build_emulator
from clampdown.lab.okta_emulator.ratelimit import DEFAULT_CONCURRENCY, DEFAULT_LIMITS
from clampdown.lab.people import DEMO_PEOPLE
from clampdown.model import Account, ActionContext

sys.path.insert(0, str(Path(__file__).parent))
from contract import Exchange, validate

API_TOKEN = "00test-ssws-token-for-the-emulator"
CLIENT_ID = "0oaclampdowntest0001"
READ_ONLY_CLIENT_ID = "0oaclampdownread0002"


def _pem_pair() -> tuple[str, str]:
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


@pytest.fixture(scope="session")
def _server() -> Iterator[tuple[EmulatorServer, str, str]]:
    private, public = _pem_pair()
    read_private, read_public = _pem_pair()
    settings = EmulatorSettings(
        api_tokens={API_TOKEN: "clampdown.action@lab.example.test"},
        apps=[
            {
                "client_id": CLIENT_ID,
                "public_key_pem": public,
                "scopes": ["okta.users.read", "okta.users.manage"],
            },
            {"client_id": READ_ONLY_CLIENT_ID, "public_key_pem": read_public, "scopes": ["okta.users.read"]},
        ],
        deactivate_delay=0.2,
    )
    server = EmulatorServer(build_emulator(settings)).start()
    yield server, private, read_private
    server.stop()


@pytest.fixture
def org(_server: tuple[EmulatorServer, str, str]) -> Org:
    """The emulated org, emptied and seeded with the demo people, default limits, no faults."""
    server, private, read_private = _server
    emulator = server.emulator
    emulator.state.clear()
    emulator.faults.clear()
    emulator.request_log.clear()
    emulator.limiter.limits = dict(DEFAULT_LIMITS)
    emulator.limiter.configure(concurrency=DEFAULT_CONCURRENCY, window_seconds=60.0)
    emulator.limiter.counters.clear()
    emulator.auth.token_lifetime = 3600
    emulator.auth.tokens_issued = 0
    emulator.auth.access_tokens.clear()
    result = Org(emulator, server.url, private, read_private)
    for person in DEMO_PEOPLE:
        record = emulator.state.add_user(
            {
                "login": person.upn,
                "email": person.upn,
                "firstName": person.given_name,
                "lastName": person.surname,
                "department": person.department,
                "title": person.title,
            }
        )
        result.ids[person.upn] = record.id
    return result


@pytest.fixture
def exchanges() -> list[Exchange]:
    """Every exchange the connectors of a test made; checked against the OpenAPI documents."""
    return []


@pytest.fixture
async def make_connector(
    org: Org, exchanges: list[Exchange], request: pytest.FixtureRequest
) -> AsyncIterator[Callable[..., OktaConnector]]:
    """Builds connectors to the org (SSWS by default); all are closed after the test, and every
    exchange they made is checked against Okta's OpenAPI documents (except where a test module
    injects faults, whose 5xx answers are deliberately outside the contract)."""
    made: list[OktaConnector] = []

    def build(**overrides: Any) -> OktaConnector:
        values: dict[str, Any] = {"org_url": org.url, "api_token": API_TOKEN, **overrides}
        if "client_id" in overrides:
            values.pop("api_token")
        connector = OktaConnector(OktaSettings.model_validate(values))

        async def record(response: Any) -> None:
            exchanges.append(await Exchange.capture(response))

        connector.client.http.event_hooks["response"].append(record)
        made.append(connector)
        return connector

    yield build
    for connector in made:
        await connector.aclose()
    if not getattr(request.module, "INJECTS_FAULTS", False):
        for exchange in exchanges:
            validate(exchange)


@pytest.fixture
def connector(make_connector: Callable[..., OktaConnector]) -> OktaConnector:
    return make_connector()


@pytest.fixture
def check_contract(exchanges: list[Exchange]) -> Iterator[list[Exchange]]:
    """A test's exchanges, which must not be empty (make_connector validates them)."""
    yield exchanges
    assert exchanges, "the test made no HTTP exchange to validate"


def context(**kwargs: Any) -> ActionContext:
    """An ActionContext as the engine would pass it."""
    return ActionContext(
        action_id=kwargs.pop("action_id", 1), reason="test", requested_by="analyst@test", **kwargs
    )
