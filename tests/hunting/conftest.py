"""Fixtures: an empty event store in a temporary folder, and the known day written as EVTX and JSON lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from clampdown.hunting.settings import HuntingSettings
from clampdown.hunting.store import EventStore
from tests.hunting.evtx_writer import write_evtx
from tests.hunting.scenario import security_events, write_jsonl


@pytest.fixture
def event_store(tmp_path: Path) -> EventStore:
    store = EventStore(tmp_path / "events.duckdb", HuntingSettings(query_timeout_seconds=3, max_rows=1000))
    store.initialize()
    return store


@pytest.fixture
def day_evtx(tmp_path: Path) -> Path:
    return write_evtx(tmp_path / "Security.evtx", security_events())


@pytest.fixture
def day_jsonl(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "winlogbeat.ndjson", security_events())


from tests.api.conftest import server, server_factory  # noqa: E402,F401  (a real `clampdown serve`)
from tests.entra.conftest import (  # noqa: E402,F401  (the Graph emulator over HTTPS)
    client_certificate,
    connector,
    emulator,
    emulator_admin,
    graph_emulator,
)
from tests.okta.conftest import _server, exchanges, make_connector, org  # noqa: E402,F401  (the Okta emulator)
