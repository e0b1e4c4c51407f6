"""Settings, Shared Signals, in Chromium, on a real `clampdown serve` with a receiver and a
transmitter: the page shows the receiver's accepted and refused SETs (pushed over HTTP, signed here),
a stream failing with its last error beside a healthy one, the transmitter's metadata address and
kid; GET /api/v1/ssf/health answers the same. A Security Reader is refused both. The person's user
page shows the SET received about them, with its transmitter and type, and the SET sent about them,
in the recent events. With $CLAMPDOWN_SCREENSHOTS set, the page's picture for docs/console.md is
saved there."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import sqlalchemy
import tomli_w
from playwright.sync_api import Page, expect

from clampdown.db.tables import ssf_outbox, ssf_streams
from clampdown.secevents import ACCOUNT_DISABLED, PUSH, SESSION_REVOKED, generate_key
from tests.api.conftest import start_server
from tests.lab_config import clampdown, memory_provider
from tests.signals.conftest import AUDIENCE, Transmitter, _Handler, ec_key, rsa_key
from tests.web.conftest import CHROMIUM, Console, _user, sign_in
from tests.web.test_accessibility import audit

BEARER = "partner-stream-bearer-token-0123456789"
ISSUER = "https://clampdown.example/ssf"
SET_TYPE = "application/secevent+jwt"
FAILURE = "HTTP 503 from https://partner.example/events: Service Unavailable"


@dataclass(frozen=True)
class SignalsConsole:
    console: Console
    transmitter: Transmitter
    kid: str


@pytest.fixture(scope="module")
def transmitter() -> Iterator[Transmitter]:
    """The partner's transmitter: its metadata and JWKS over HTTP on a loopback port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = Transmitter(f"http://127.0.0.1:{server.server_address[1]}", {"rsa-1": rsa_key(), "ec-1": ec_key()},
                    ["rsa-1", "ec-1"])  # fmt: skip
    server.RequestHandlerClass = type("Handler", (_Handler,), {"transmitter": t})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield t
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def signals_console(
    tmp_path_factory: pytest.TempPathFactory, transmitter: Transmitter
) -> Iterator[SignalsConsole]:
    """`clampdown serve` on SQLite, memory directories holding alice and bob, receiving from the
    partner (push) and transmitting with its own key."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM}")
    home = tmp_path_factory.mktemp("signals-console")
    key = generate_key(str(home / "ssf.pem"))
    config = home / "clampdown.toml"
    providers = {
        p: memory_provider(p, home / f"{p}.json", users=["alice", "bob"]) for p in ("ad", "entra", "okta")
    }
    receiver = {"issuer": transmitter.issuer, "audience": AUDIENCE, "bearer": BEARER}
    settings = {
        "database": {"url": f"sqlite:///{home / 'clampdown.db'}"},
        "server": {"embedded_worker": False},
        "providers": providers,
        "ssf": {"receivers": {"partner": receiver},
                "transmitter": {"issuer": ISSUER, "signing_key_file": str(home / "ssf.pem")}},
    }  # fmt: skip
    config.write_text(tomli_w.dumps(settings), encoding="utf-8")
    upgraded = clampdown(config, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    admin_token = _user(config, "analyst", "Global Administrator")
    reader_token = _user(config, "reader", "Security Reader")
    proc, base = start_server(config)
    console = Console(base, config, admin_token, reader_token)
    _seed(console, transmitter, home / "clampdown.db")
    yield SignalsConsole(console, transmitter, key.kid)
    proc.terminate()
    proc.wait(15)


def _push(console: Console, token: str) -> httpx.Response:
    headers = {"Content-Type": SET_TYPE, "Authorization": f"Bearer {BEARER}"}
    return httpx.post(f"{console.base}/api/v1/ssf/receivers/partner/events", content=token, headers=headers)


def _seed(console: Console, t: Transmitter, database: Path) -> None:
    """One SET about alice accepted, one refused (expired); two streams, one failing; SETs sent."""
    assert _push(console, t.sign(t.claims())).status_code == 202
    assert _push(console, t.sign(t.claims(iat=int(time.time()) - 600))).status_code == 400
    now = datetime.now(UTC)

    def stream(stream_id: str, description: str) -> dict[str, object]:
        return {
            "stream_id": stream_id, "owner": "config:" + stream_id, "description": description,
            "audience": ["https://partner.example/"], "events_requested": [ACCOUNT_DISABLED, SESSION_REVOKED],
            "delivery_method": PUSH, "endpoint_url": f"https://{stream_id}.example/events",
            "status": "enabled",
            "created_at": now - timedelta(days=1), "updated_at": now, "verified_at": now - timedelta(hours=1),
        }  # fmt: skip

    def sent(stream_id: str, n: int, status: str, ago: float, error: str | None = None) -> dict[str, object]:
        at = now - timedelta(minutes=ago)
        return {
            "stream_id": stream_id, "jti": f"{stream_id}-{n}", "event_types": [ACCOUNT_DISABLED],
            "subject": "alice@memory.test", "token": "x.y.z", "status": status, "attempts": 1,
            "next_attempt_at": now + timedelta(days=1), "created_at": at,
            "delivered_at": at if status == "delivered" else None, "last_error": error,
        }  # fmt: skip

    engine = sqlalchemy.create_engine(f"sqlite:///{database}")
    with engine.begin() as conn:
        conn.execute(sqlalchemy.insert(ssf_streams), [stream("partner-idp", "the partner's IdP"),
                                                      stream("partner-vpn", "the VPN gateway")])  # fmt: skip
        conn.execute(sqlalchemy.insert(ssf_outbox), [
            sent("partner-idp", 1, "delivered", 3),
            sent("partner-vpn", 1, "delivered", 30),
            sent("partner-vpn", 2, "failed", 2, FAILURE),
        ])  # fmt: skip
    engine.dispose()


def test_the_settings_page_shows_receivers_and_streams_health(
    page: Page, signals_console: SignalsConsole
) -> None:
    console = signals_console.console
    sign_in(page, console, "analyst")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Shared Signals").click()
    page.wait_for_url(f"{console.base}/settings/signals")
    expect(page.get_by_role("heading", name="Shared Signals", level=1)).to_be_visible()

    partner = page.get_by_test_id("ssf-receivers").locator("tr[data-receiver=partner]")
    expect(partner.get_by_test_id("accepted-24h")).to_have_text("1")
    expect(partner.get_by_test_id("refused-24h")).to_have_text("1")
    expect(partner.get_by_test_id("last-accepted")).to_contain_text(
        "credential-compromise about alice@memory.test"
    )
    expect(partner.get_by_test_id("last-accepted")).to_contain_text("resolved to a person")
    expect(partner.get_by_test_id("last-refused")).to_contain_text("invalid_request")
    expect(partner.get_by_test_id("last-refused")).to_contain_text("outside the accepted window")

    expect(page.get_by_test_id("metadata-url")).to_have_text(
        "https://clampdown.example/.well-known/ssf-configuration/ssf"
    )
    expect(page.get_by_test_id("kids")).to_contain_text(signals_console.kid)
    streams = page.get_by_test_id("ssf-streams")
    vpn, idp = streams.locator("tr[data-stream=partner-vpn]"), streams.locator("tr[data-stream=partner-idp]")
    expect(vpn.get_by_test_id("stream-health")).to_have_text("failing")  # the word, not only a colour
    expect(vpn.get_by_test_id("stream-last-error")).to_have_text(FAILURE)
    expect(vpn.get_by_test_id("stream-counts")).to_have_text("1 delivered, 1 failed")
    expect(idp.get_by_test_id("stream-health")).to_have_text("ok")

    received = page.get_by_test_id("ssf-received")
    expect(received.locator("tr[data-outcome=accepted]")).to_contain_text("credential-compromise")
    expect(received.locator("tr[data-outcome=refused]")).to_contain_text("invalid_request")
    expect(page.get_by_test_id("ssf-sent").locator("tbody tr")).to_have_count(3)
    audit(page)
    if folder := os.environ.get("CLAMPDOWN_SCREENSHOTS"):  # scripts/screenshots.sh, for docs/console.md
        page.screenshot(path=str(Path(folder) / "shared-signals.png"), full_page=True)

    health = httpx.get(f"{console.base}/api/v1/ssf/health",
                       headers={"Authorization": f"Bearer {console.admin_token}"})  # fmt: skip
    assert health.status_code == 200, health.text
    body = health.json()
    assert {s["stream_id"]: s["health"] for s in body["transmitter"]["streams"]} == {
        "partner-idp": "ok", "partner-vpn": "failing"
    }  # fmt: skip
    assert body["receivers"][0]["accepted_24h"] == 1 and body["receivers"][0]["refused_24h"] == 1
    assert body["transmitter"]["kids"] == [signals_console.kid]


def test_a_security_reader_is_refused_the_page(page: Page, signals_console: SignalsConsole) -> None:
    console = signals_console.console
    sign_in(page, console, "reader")
    expect(
        page.get_by_role("navigation", name="Main").get_by_role("link", name="Shared Signals")
    ).to_have_count(0)
    response = page.goto(f"{console.base}/settings/signals")
    assert response is not None and response.status == 403
    expect(page.get_by_role("main")).to_contain_text("needs permission settings:manage")
    expect(page.get_by_test_id("ssf-receivers")).to_have_count(0)
    refused = httpx.get(f"{console.base}/api/v1/ssf/health",
                        headers={"Authorization": f"Bearer {console.reader_token}"})  # fmt: skip
    assert refused.status_code == 403, refused.text


def test_the_user_page_shows_the_signals_received_and_sent_about_the_person(
    page: Page, signals_console: SignalsConsole
) -> None:
    console = signals_console.console
    sign_in(page, console, "analyst")
    page.goto(f"{console.base}/users/alice@memory.test")
    events = page.get_by_test_id("recent-events")
    received = events.locator("tbody tr", has_text="signal received")
    expect(received).to_have_count(1)
    expect(received).to_contain_text("partner")  # the transmitter it came through
    expect(received).to_contain_text("credential-compromise")
    expect(received).to_contain_text(f"from {signals_console.transmitter.issuer}")
    sent = events.locator("tbody tr", has_text="signal sent")
    expect(sent).to_have_count(3)
    expect(sent.filter(has_text="partner-vpn").filter(has_text="failed")).to_have_count(1)
    expect(sent.first).to_contain_text("account-disabled")
    # Bob's page shows none of them.
    page.goto(f"{console.base}/users/bob@memory.test")
    expect(page.get_by_role("heading", name="Recent events")).to_be_visible()
    expect(page.locator("[data-testid=recent-events] tbody tr", has_text="signal")).to_have_count(0)
