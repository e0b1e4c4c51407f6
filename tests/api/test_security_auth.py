"""Sign-in hardening over real HTTP against `clampdown serve`: no open redirect after sign-in, a
CSRF header of any characters is a 403 not a 500, and throttled sign-ins are a 429 with
Retry-After."""

from __future__ import annotations

import asyncio
import re
import subprocess
from html import unescape
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx
import pytest
import tomli_w
from sqlalchemy.ext.asyncio import AsyncEngine

from clampdown.audit.chain import AuditLog
from clampdown.permissions import GLOBAL_ADMINISTRATOR
from tests.api.conftest import Server, free_port, start_server

PASSWORD = "correct horse battery"  # Server.token's password
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]

HOSTILE_NEXT = [
    "/\t/evil.example",  # browsers drop the tab: //evil.example
    "/\n/evil.example",
    "/\r/evil.example",
    "/\x00/evil.example",
    "/\x7f/evil.example",
    "//evil.example",
    "/\\evil.example",
    "\\/evil.example",
    "/\\/evil.example",
    "https://evil.example/",
    "http:evil.example",
    "javascript:alert(1)",
    " /users",
    "/users ",
    "/\u00a0/evil.example",  # no-break space
    "/\u3000/evil.example",  # ideographic space
    "/\u200b/evil.example",  # zero-width space (a format character)
    "evil.example",
    "",
]
SAFE_NEXT = ["/actions", "/users?q=ana#top", "/%09/evil.example", "/hunting/queries"]


def data_next(page: str) -> str:
    [found] = re.findall(r'data-next="([^"]*)"', page)
    return unescape(found)


async def test_sign_in_page_renders_only_a_path_on_this_site_as_next(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.base) as client:
        for next_url in HOSTILE_NEXT:
            page = await client.get(f"/login?next={quote(next_url, safe='')}")
            assert page.status_code == 200
            assert data_next(page.text) == "/users", repr(next_url)
        for next_url in SAFE_NEXT:
            page = await client.get("/login", params={"next": next_url})
            assert data_next(page.text) == next_url


async def test_a_signed_in_browser_is_not_sent_off_site(server: Server) -> None:
    """The whole flow in Chromium: the sign-in page with a hostile next, the form posted."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed")
    await server.token("ana.analyst", GLOBAL_ADMINISTRATOR)

    def sign_in_in_chromium() -> str:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(f"{server.base}/login?next=%2F%09%2Fevil.example%2Fphish")
                page.fill("#username", "ana.analyst")
                page.fill("#password", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_url(re.compile(r".*/users.*"), timeout=10_000)
                return page.url
            finally:
                browser.close()

    landed = await asyncio.to_thread(sign_in_in_chromium)
    assert urlsplit(landed).netloc == urlsplit(server.base).netloc and urlsplit(landed).path == "/users"


async def test_a_csrf_header_beyond_ascii_is_a_403_naming_the_csrf_token(server: Server) -> None:
    await server.token("ana.analyst", GLOBAL_ADMINISTRATOR)
    async with httpx.AsyncClient(base_url=server.base) as client:
        signed = await client.post("/api/v1/session", json={"username": "ana.analyst", "password": PASSWORD})
        assert signed.status_code == 200
        body = {"type": "okta.suspend_user", "target": "q", "reason": "x"}
        for header in ["é", "☃" * 40, "\u00ff" * 43]:
            answer = await client.post(
                "/api/v1/actions", json=body, headers={"X-CSRF-Token": header.encode("utf-8")}
            )
            assert answer.status_code == 403, answer.text
            error = answer.json()["error"]
            assert error["code"] == "permission_denied" and "CSRF token" in error["message"]


@pytest.fixture
def throttled_server(database_url: str, engine: AsyncEngine, tmp_path: Path) -> object:
    config = tmp_path / "clampdown.toml"
    config.write_text(
        tomli_w.dumps(
            {
                "database": {"url": database_url},
                "server": {"embedded_worker": False},
                "hunting": {"scheduled": False},
                "signin": {
                    "account_free_failures": 2,
                    "backoff_base_seconds": 30,
                    "address_free_failures": 3,
                },
            }
        )
    )
    proc: subprocess.Popen[bytes]
    proc, base = start_server(config, free_port())
    yield Server(base, config, engine, tmp_path)
    proc.terminate()
    proc.wait(15)


async def test_throttled_sign_ins_are_a_429_with_retry_after(throttled_server: Server) -> None:
    server = throttled_server
    await server.token("ana.analyst", GLOBAL_ADMINISTRATOR)
    await server.token("ben.analyst", GLOBAL_ADMINISTRATOR)
    async with httpx.AsyncClient(base_url=server.base) as client:
        for _ in range(3):  # two free failures, the third starts a 30 s back-off
            wrong = await client.post("/api/v1/session", json={"username": "ana.analyst", "password": "nope"})
            assert wrong.status_code == 401
        refused = await client.post("/api/v1/session", json={"username": "ana.analyst", "password": PASSWORD})
        assert refused.status_code == 429, refused.text
        assert 25 <= int(refused.headers["retry-after"]) <= 30
        error = refused.json()["error"]
        assert error["code"] == "too_many_attempts" and "this account" in error["message"]
        assert "ana.analyst" not in refused.cookies and "clampdown_session" not in refused.cookies
        # Another account from the same address: one more failure reaches the address's limit.
        ben = await client.post("/api/v1/session", json={"username": "ben.analyst", "password": "nope"})
        assert ben.status_code == 401
        blocked = await client.post("/api/v1/session", json={"username": "ben.analyst", "password": PASSWORD})
        assert blocked.status_code == 429 and "this address" in blocked.json()["error"]["message"]
    events = [row async for row in AuditLog(server.engine).rows()]
    throttled = [r for r in events if r["event"] == "signin.throttled"]
    assert [(r["subject"], r["data"]["throttled"]) for r in throttled] == [  # type: ignore[index]
        ("ana.analyst", "account"),
        ("127.0.0.1", "address"),
    ]
