"""Fixtures: one Okta emulator on a free loopback port for the session, reset before each test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from clampdown.connectors.okta import OktaConnector, OktaSettings
from clampdown_lab.okta_emulator import EmulatorServer, EmulatorSettings, build_emulator
from clampdown_lab.okta_emulator.ratelimit import DEFAULT_CONCURRENCY, DEFAULT_LIMITS
from clampdown_lab.people import DEMO_PEOPLE
from tests.okta.contract import Exchange, validate
from tests.okta.org import API_TOKEN, CLIENT_ID, READ_ONLY_CLIENT_ID, Org, pem_pair


@pytest.fixture(scope="session")
def _server() -> Iterator[tuple[EmulatorServer, str, str]]:
    private, public = pem_pair()
    read_private, read_public = pem_pair()
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


@pytest.fixture
async def raw(org: Org, exchanges: list[Exchange]) -> AsyncIterator[httpx.AsyncClient]:
    """A plain HTTP client to the org whose exchanges are all validated at the end of the test."""

    async def record(response: httpx.Response) -> None:
        exchanges.append(await Exchange.capture(response))

    headers = {"Authorization": f"SSWS {API_TOKEN}", "Accept": "application/json"}
    async with httpx.AsyncClient(
        base_url=org.url, headers=headers, event_hooks={"response": [record]}
    ) as client:
        yield client
    assert exchanges
    for exchange in exchanges:
        validate(exchange)
