"""The console's pages over plain HTTP on a server with memory directories (no lab, no browser):
redirects, no open redirect, security headers, no asset from another origin, fragments."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from clampdown.permissions import GLOBAL_ADMINISTRATOR
from tests.api.conftest import Server

WEB = Path(__file__).resolve().parents[2] / "src" / "clampdown" / "web"
PASSWORD = "correct horse battery"  # what Server.token gives its users


def test_signed_out_pages_go_to_sign_in_and_never_elsewhere(server: Server) -> None:
    with httpx.Client(base_url=server.base) as client:
        assert client.get("/").headers["location"] == "/users"
        for path in ("/users", "/actions", "/hunting", "/users/anyone/panel", "/actions/1/panel"):
            answer = client.get(path)
            assert answer.status_code == 303
            assert answer.headers["location"] == f"/login?next={path}"
        for hostile in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
            page = client.get("/login", params={"next": hostile}).text
            assert 'data-next="/users"' in page


async def test_pages_carry_security_headers_and_the_csrf_token(server: Server) -> None:
    await server.token("ana", GLOBAL_ADMINISTRATOR)
    with httpx.Client(base_url=server.base) as client:
        client.post("/api/v1/session", json={"username": "ana", "password": PASSWORD}).raise_for_status()
        for path in (
            "/users",
            "/actions?tab=history&since=24h&provider=okta&status=failed",
            "/hunting",
            "/actions/rows?tab=history&since=1h",
        ):
            answer = client.get(path)
            assert answer.status_code == 200, path
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
            assert answer.headers["x-frame-options"] == "DENY"
        page = client.get("/users").text
        assert re.search(r'<meta name="csrf-token" content="[\w-]{20,}">', page)
        assert "ana" in page and GLOBAL_ADMINISTRATOR in page
        missing = client.get("/actions/999999/panel")
        assert missing.status_code == 404
        assert "999999" in missing.text


def test_assets_ship_in_the_package_and_nothing_comes_from_another_origin(server: Server) -> None:
    for name in ("console.js", "console.css", "hunting.js", "favicon.svg"):
        assert httpx.get(f"{server.base}/static/{name}").status_code == 200
    for path in [*WEB.glob("templates/*.html"), *WEB.glob("static/*")]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), path
        assert "@import" not in text and "url(http" not in text, path
