"""The console's pages over plain HTTP on a server with memory directories (no lab, no browser):
redirects, no open redirect, security headers, no asset from another origin, fragments."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from clampdown.auth.service import AuthService
from clampdown.permissions import GLOBAL_ADMINISTRATOR, HUNTING_READ, SECURITY_READER
from clampdown.store.auth import AuthStore
from tests.api.conftest import Server

WEB = Path(__file__).resolve().parents[2] / "src" / "clampdown" / "web"
PASSWORD = "correct horse battery"  # what Server.token gives its users


def test_signed_out_pages_go_to_sign_in_and_never_elsewhere(server: Server) -> None:
    with httpx.Client(base_url=server.base) as client:
        assert client.get("/").headers["location"] == "/login?next=/"  # the overview, once signed in
        for path in ("/users", "/actions", "/hunting", "/users/anyone/panel", "/actions/1/panel",
                     "/containments", "/containments/1", "/containments/1/panel"):  # fmt: skip
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
            "/containments?state=all",
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
        assert client.get("/containments/999999").status_code == 404


def test_assets_ship_in_the_package_and_nothing_comes_from_another_origin(server: Server) -> None:
    for name in ("console.js", "console.css", "hunting.js", "favicon.svg", "dist/hunting-editor.js"):
        assert httpx.get(f"{server.base}/static/{name}").status_code == 200
    # The bundle (scripts/build-web.sh) included: it loads nothing from another origin either.
    for path in [*WEB.glob("templates/*.html"), *(p for p in WEB.glob("static/**/*") if p.is_file())]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), path
        assert "@import" not in text and "url(http" not in text, path


@contextmanager
def _signed_in(server: Server, username: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base, timeout=30) as client:
        client.post("/api/v1/session", json={"username": username, "password": PASSWORD}).raise_for_status()
        yield client


def _settled(client: httpx.Client, ids: list[int]) -> None:
    for _ in range(150):
        if all(client.get(f"/api/v1/actions/{i}").json()["status"] == "completed" for i in ids):
            return
        time.sleep(0.1)
    raise AssertionError(f"actions {ids} did not complete")


async def test_containments_view_follows_a_containment_through_the_services(server_factory) -> None:  # type: ignore[no-untyped-def]
    server: Server = server_factory(embedded_worker=True)
    await server.token("lead", GLOBAL_ADMINISTRATOR)
    await server.token("watcher", SECURITY_READER)
    await AuthService(AuthStore(server.engine)).define_role("Hunter", frozenset({HUNTING_READ}))
    await server.token("nobody", "Hunter")  # hunts, may not see the action center
    target = {"target": "mallory@example.test", "reason": "INC-913 token theft"}
    with _signed_in(server, "lead") as lead, _signed_in(server, "watcher") as watcher:
        token = re.findall(r'name="csrf-token" content="([^"]+)"', lead.get("/users").text)[0]
        csrf = {"X-CSRF-Token": token}
        assert "No containments match." in lead.get("/containments").text
        run = lead.post("/api/v1/playbooks/contain/run", json=target, headers=csrf).json()
        _settled(lead, [a["id"] for a in run["actions"]])
        cid = run["containment_id"]

        # The list (active by default) and the detail, for the analyst and for a reader.
        for client in (lead, watcher):
            listed = client.get("/containments").text
            assert f'href="/containments/{cid}"' in listed and "INC-913 token theft" in listed
            assert '<a href="/containments" aria-current="page">Containments</a>' in listed
            detail = client.get(f"/containments/{cid}").text
            assert 'data-testid="containment-detail-state">active<' in detail
            assert 'data-testid="role-step"' in detail and 'data-testid="role-release"' not in detail
            for action in run["actions"]:
                assert f'data-open-panel="/actions/{action["id"]}/panel"' in detail
        assert ">Release</button>" in lead.get(f"/containments/{cid}").text
        assert ">Release</button>" not in watcher.get(f"/containments/{cid}/panel").text
        user_page = lead.get("/users/mallory@example.test").text
        assert f'<a href="/containments/{cid}">Containment {cid}</a>' in user_page

        cleared = {**target, "reason": "cleared"}
        released = lead.post("/api/v1/playbooks/release/run", json=cleared, headers=csrf)
        _settled(lead, [a["id"] for a in released.json()["actions"]])
        assert f'href="/containments/{cid}"' not in lead.get("/containments").text
        everything = lead.get("/containments", params={"state": "all"}).text
        assert re.search(rf'href="/containments/{cid}".*?containment-state">released<', everything, re.S)
        detail = lead.get(f"/containments/{cid}").text
        assert 'data-testid="role-release"' in detail and "cleared" in detail
        assert ">Release</button>" not in detail
        assert 'data-testid="open-containment"' not in lead.get("/users/mallory@example.test").text

    # Without response:read: no entry in the menu, and the pages answer 403.
    with _signed_in(server, "nobody") as nobody:
        assert 'href="/containments"' not in nobody.get("/users").text
        assert nobody.get("/containments").status_code == 403
        assert nobody.get(f"/containments/{cid}").status_code == 403
