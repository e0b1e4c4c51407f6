"""Fixtures: one Graph emulator over HTTPS (private CA) for the session, a fresh tenant state and
connector per test. MSAL talks to the emulator's real discovery and token endpoints."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from clampdown.connectors.entra import EntraConnector
from clampdown_lab.graph_emulator import Emulator, Tenant, ThreadedEmulator
from clampdown_lab.graph_emulator.tenant import ALL_ROLES, AppRecord
from clampdown_lab.graph_emulator.throttling import ThrottleConfig
from clampdown_lab.graph_emulator.tls import write_client_certificate
from tests.entra.support import CERT_APP, DIRECTORY_APP, FULL_APP, READ_ONLY_APP, SECRET, seed, settings_for


@pytest.fixture(scope="session")
def client_certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A PEM file with the key and certificate of CERT_APP, and the certificate alone."""
    return write_client_certificate(tmp_path_factory.mktemp("client"))


@pytest.fixture(scope="session")
def graph_emulator(
    tmp_path_factory: pytest.TempPathFactory, client_certificate: tuple[Path, str]
) -> Iterator[ThreadedEmulator]:
    directory = tmp_path_factory.mktemp("graph")
    cert_pem = client_certificate[1]
    tenant = Tenant()
    tenant.apps[FULL_APP] = AppRecord(FULL_APP, "Clampdown", list(ALL_ROLES), secrets=[SECRET])
    tenant.apps[CERT_APP] = AppRecord(CERT_APP, "Clampdown cert", list(ALL_ROLES), certificates=[cert_pem])
    tenant.apps[READ_ONLY_APP] = AppRecord(READ_ONLY_APP, "Reader", ["User.Read.All"], secrets=[SECRET])
    directory_roles = ["User.Read.All", "User.EnableDisableAccount.All", "User.RevokeSessions.All"]
    tenant.apps[DIRECTORY_APP] = AppRecord(DIRECTORY_APP, "Directory only", directory_roles, secrets=[SECRET])
    server = ThreadedEmulator(Emulator(tenant=tenant), directory / "tls").start()
    yield server
    server.stop()


@pytest.fixture
def emulator(graph_emulator: ThreadedEmulator) -> Emulator:
    """The emulator with a freshly seeded tenant, no throttling and no armed faults."""
    emu = graph_emulator.emulator
    seed(emu.tenant)
    emu.throttle.configure(ThrottleConfig())
    emu.faults.rules.clear()
    emu.faults.next_link_base = None
    emu.counters.reset()
    emu.tenant.clock.offset = type(emu.tenant.clock.offset)()
    return emu


@pytest.fixture
async def connector(graph_emulator: ThreadedEmulator, emulator: Emulator) -> AsyncIterator[EntraConnector]:
    conn = EntraConnector(settings_for(graph_emulator))
    yield conn
    await conn.aclose()


@pytest.fixture
def emulator_admin(graph_emulator: ThreadedEmulator) -> Iterator[httpx.Client]:
    """A client for the emulator's admin API (as the lab and benchmarks use it)."""
    verify = ssl.create_default_context(cafile=str(graph_emulator.ca_path))
    with httpx.Client(base_url=graph_emulator.url, verify=verify) as client:
        yield client
