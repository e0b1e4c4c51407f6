"""Okta System Log and Entra ID sign-ins pulled from the emulators over HTTP: every event once,
after interruptions and restarts, and hunts that find the effects of Clampdown's own actions."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from clampdown.connectors.entra import EntraConnector
from clampdown.connectors.okta import OktaConnector
from clampdown.errors import PermanentError, ProviderError, TransientError
from clampdown.hunting.pulls import EntraSignInSource, OktaLogSource
from clampdown.hunting.query import run_query
from clampdown.hunting.settings import HuntingSettings
from clampdown.hunting.store import EventStore
from clampdown.model import ActionContext
from clampdown_lab.graph_emulator import Emulator, ThreadedEmulator
from clampdown_lab.okta_emulator.faults import Fault
from tests.entra.support import READ_ONLY_APP, settings_for
from tests.lab_config import bootstrap_admin, clampdown, write_config
from tests.okta.org import API_TOKEN, Org

INJECTS_FAULTS = True  # the 5xx pages below are outside Okta's contract on purpose
CONTEXT = ActionContext(action_id=1, reason="hunting test", requested_by="test")
SUSPENDED = ["alice.martin", "bob.nguyen", "carol.diaz", "dave.okafor", "erin.kowalski"]


def _distinct(store: EventStore, table: str) -> int:
    return int(run_query(store, f"SELECT count(DISTINCT ReportId) FROM {table}").rows[0][0])


async def test_okta_log_pull_survives_interruptions_without_gaps_or_duplicates(
    org: Org, make_connector: Callable[..., OktaConnector], tmp_path: Path
) -> None:
    okta = make_connector()
    for name in SUSPENDED:
        account = await okta.resolve_user(f"{name}@lab.example.test")
        await okta.suspend_user(account, CONTEXT)
    await okta.unsuspend_user(await okta.resolve_user("alice.martin@lab.example.test"), CONTEXT)
    total = len(org.state.logs)
    assert total >= len(SUSPENDED) + 1

    clean = EventStore(tmp_path / "clean.duckdb", HuntingSettings())
    assert (await OktaLogSource(clean, okta.client, page_size=2).pull()).added == total

    store = EventStore(tmp_path / "events.duckdb", HuntingSettings())
    source = OktaLogSource(store, okta.client, page_size=2)
    first = await source.pull(max_pages=1)  # the process stops after one page
    assert first.added == 2
    org.emulator.faults.add(Fault("status", path="/api/v1/logs", status=503, count=10))
    with pytest.raises(TransientError):
        await OktaLogSource(store, okta.client, page_size=2).pull()
    org.emulator.faults.clear()
    await OktaLogSource(store, okta.client, page_size=2).pull()  # a new process resumes
    assert store.count("IdentityDirectoryEvents") == clean.count("IdentityDirectoryEvents") == total
    assert _distinct(store, "IdentityDirectoryEvents") == total

    # Later events arrive on the next pull, and only they.
    await okta.suspend_user(await okta.resolve_user("grace.haddad@lab.example.test"), CONTEXT)
    new = len(org.state.logs) - total
    later = await OktaLogSource(store, okta.client, page_size=2).pull()
    assert new > 0 and later.added == new and store.count("IdentityDirectoryEvents") == total + new

    hunt = run_query(
        store,
        'IdentityDirectoryEvents | where Application == "Okta" and ActionType == "Suspend Okta user"'
        " | summarize by TargetAccountUpn | order by TargetAccountUpn asc",
    )
    expected = sorted(f"{n}@lab.example.test" for n in [*SUSPENDED, "grace.haddad"])
    assert [r[0] for r in hunt.rows] == expected


async def test_entra_sign_in_pull_finds_sign_ins_refused_after_a_suspend(
    connector: EntraConnector, emulator_admin: httpx.Client, tmp_path: Path
) -> None:
    users = ["alice.martin", "bob.nguyen", "carol.diaz", "dave.okafor"]
    for user in users:
        done = emulator_admin.post("/_emulator/signins", json={"user": f"{user}@lab.example.test"})
        assert done.status_code == 200, done.text
    for user in users[:3]:
        await connector.suspend_user(await connector.resolve_user(f"{user}@lab.example.test"), CONTEXT)
    for user in users:  # the attacker retries from elsewhere: the suspended accounts are refused
        emulator_admin.post(
            "/_emulator/signins", json={"user": f"{user}@lab.example.test", "ip_address": "198.51.100.9"}
        )
    total = 2 * len(users)

    store = EventStore(tmp_path / "events.duckdb", HuntingSettings())
    cut = await EntraSignInSource(store, connector.graph, page_size=3).pull(max_pages=1)
    assert cut.added == 3 and store.cursor("entra:signins") is None  # cut short: no watermark
    full = await EntraSignInSource(store, connector.graph, page_size=3).pull()
    assert full.added == total - 3
    again = await EntraSignInSource(store, connector.graph, page_size=3).pull()
    assert again.read == total and again.added == 0  # the overlap is re-read, nothing is doubled
    assert store.count("CloudSignInEvents") == _distinct(store, "CloudSignInEvents") == total

    refused = run_query(
        store,
        'CloudSignInEvents | where ActionType == "LogonFailed"'
        " | summarize Accounts = dcount(AccountUpn), Codes = make_set(ErrorCode) by IPAddress",
    )
    assert refused.rows == [["198.51.100.9", 3, ["50057"]]]


async def test_ingest_pull_from_the_cli_resumes_where_it_stopped(
    org: Org, make_connector: Callable[..., OktaConnector], tmp_path: Path
) -> None:
    okta = make_connector()
    for name in SUSPENDED[:3]:
        await okta.suspend_user(await okta.resolve_user(f"{name}@lab.example.test"), CONTEXT)
    total = len(org.state.logs)
    providers = {"okta": {"org_url": org.url, "api_token": API_TOKEN}}
    config = write_config(
        tmp_path / "clampdown.toml", f"sqlite:///{tmp_path / 'clampdown.db'}", providers=providers
    )
    with config.open("a", encoding="utf-8") as extra:
        extra.write("\n[hunting]\npull_page_size = 2\n")
    admin = bootstrap_admin(config)
    first = clampdown(config, "ingest", "pull", "--max-pages", "1", "--json", token=admin)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["added"] == 2
    rest = clampdown(config, "ingest", "pull", "--json", token=admin)
    added = [json.loads(line)["added"] for line in (first.stdout + rest.stdout).splitlines()]
    assert sum(added) == total
    again = clampdown(config, "ingest", "pull", "--json", token=admin)
    assert json.loads(again.stdout)["added"] == 0
    hunted = clampdown(
        config, "hunt", "IdentityDirectoryEvents | where Application == 'Okta' | count", "--json", token=admin
    )
    assert json.loads(hunted.stdout)["rows"] == [[total]]


async def test_an_app_without_audit_log_rights_is_told_what_it_lacks(
    graph_emulator: ThreadedEmulator, emulator: Emulator, tmp_path: Path
) -> None:
    reader = EntraConnector(settings_for(graph_emulator, client_id=READ_ONLY_APP))
    try:
        store = EventStore(tmp_path / "events.duckdb", HuntingSettings())
        with pytest.raises(ProviderError) as refused:
            await EntraSignInSource(store, reader.graph).pull()
        assert "AuditLog.Read.All" in refused.value.message
        assert store.cursor("entra:signins") is None
    finally:
        await reader.aclose()


class _Listener:
    """A plain HTTP server on loopback that records every request it receives and whether it
    carried an Authorization header (where a poisoned next link would send the token)."""

    def __init__(self) -> None:
        seen: list[tuple[str, str | None]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                seen.append((self.path, self.headers.get("Authorization")))
                body = b'{"value": []}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.seen = seen
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener() -> Iterator[_Listener]:
    made = _Listener()
    yield made
    made.close()


async def test_a_poisoned_graph_next_link_ends_the_pull_without_sending_the_token(
    connector: EntraConnector, emulator_admin: httpx.Client, listener: _Listener, tmp_path: Path
) -> None:
    for user in ("alice.martin", "bob.nguyen", "carol.diaz"):
        emulator_admin.post("/_emulator/signins", json={"user": f"{user}@lab.example.test"})
    poisoned = emulator_admin.put("/_emulator/next-link", params={"base": f"{listener.url}/v1.0"})
    assert poisoned.status_code == 200, poisoned.text
    store = EventStore(tmp_path / "events.duckdb", HuntingSettings())
    try:
        with pytest.raises(ProviderError) as stopped:
            await EntraSignInSource(store, connector.graph, page_size=2).pull()
    finally:
        emulator_admin.put("/_emulator/next-link")
    assert stopped.value.code == "foreign_link" and listener.url in stopped.value.message
    assert listener.seen == []  # not even a request, let alone the bearer token
    assert store.count("CloudSignInEvents") == 2 and store.cursor("entra:signins") is None
    # Nothing else in the connector sends the token off the Graph URL either.
    with pytest.raises(PermanentError):
        await connector.graph.send("GET", f"{listener.url}/v1.0/users")
    for link in (f"{listener.url}/v1.0/users", "https://graph.example.test.evil/v1.0/users", "//evil/v1.0/x"):
        with pytest.raises(PermanentError):
            connector.graph.follow(link)
    assert listener.seen == []
    # A link on the Graph URL itself is followed as before.
    assert (await EntraSignInSource(store, connector.graph, page_size=2).pull()).read == 3


async def test_a_poisoned_okta_next_link_ends_the_pull_without_sending_the_token(
    org: Org, make_connector: Callable[..., OktaConnector], listener: _Listener, tmp_path: Path
) -> None:
    okta = make_connector()
    for name in SUSPENDED[:3]:
        await okta.suspend_user(await okta.resolve_user(f"{name}@lab.example.test"), CONTEXT)
    store = EventStore(tmp_path / "events.duckdb", HuntingSettings())
    org.emulator.faults.add(Fault("foreign_links", path="/api/v1/logs", link_base=listener.url))
    with pytest.raises(ProviderError) as stopped:
        await OktaLogSource(store, okta.client, page_size=2).pull()
    assert stopped.value.code == "foreign_link" and listener.url in stopped.value.message
    assert listener.seen == []
    assert store.count("IdentityDirectoryEvents") == 2  # the page read is kept
    assert store.cursor("okta:logs") is None  # the cursor did not move to the foreign link
    with pytest.raises(PermanentError):
        await okta.client.request("GET", f"{listener.url}/api/v1/logs")
    assert listener.seen == []
    resumed = await OktaLogSource(store, okta.client, page_size=2).pull()
    assert store.count("IdentityDirectoryEvents") == len(org.state.logs) and resumed.pages >= 2


async def test_each_okta_org_has_its_own_cursor_and_tags_its_events(
    org: Org, make_connector: Callable[..., OktaConnector], tmp_path: Path
) -> None:
    """Issue 17: with two orgs configured, each pull keeps its own place in its own log, and its
    events say which org ([providers.NAME]) they came from; the org named after its kind keeps the
    cursor it always had."""
    okta = make_connector()
    await okta.suspend_user(await okta.resolve_user("frank.li@lab.example.test"), CONTEXT)
    store = EventStore(tmp_path / "events.duckdb", HuntingSettings())
    first = await OktaLogSource(store, okta.client, page_size=1000).pull()
    assert first.source == "okta:logs" and store.cursor("okta:logs") is not None
    other = EventStore(tmp_path / "emea.duckdb", HuntingSettings())
    emea = await OktaLogSource(other, okta.client, page_size=1000, instance="emea-okta").pull()
    assert emea.source == "okta:logs:emea-okta" and other.cursor("okta:logs") is None
    assert other.cursor("okta:logs:emea-okta") is not None and emea.added == first.added
    tags = "SELECT DISTINCT Source, Directory FROM IdentityDirectoryEvents"
    assert run_query(other, tags).rows == [["emea-okta", "emea-okta"]]
    assert run_query(store, tags).rows == [["okta", "okta"]]
