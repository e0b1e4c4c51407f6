"""`clampdown login --browser` in Chromium: the CLI prints the console's /cli/login address, the
person signs in there (the usual sign-in page: a password here, single sign-on the same way) and
allows it; the page hands a token sealed to the CLI's one-time key to the CLI's loopback listener,
and the CLI then works as that person."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from playwright.sync_api import sync_playwright

from clampdown.permissions import SECURITY_ADMINISTRATOR
from tests.api.conftest import Server
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS

PASSWORD = "correct horse battery"  # Server.token's


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLAMPDOWN_")}
    return {**env, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "COLUMNS": "300"}


async def test_login_through_the_browser(server: Server, tmp_path: Path) -> None:
    await server.token("ana.analyst", SECURITY_ADMINISTRATOR)
    cli = subprocess.Popen(
        [sys.executable, "-m", "clampdown", "login", "--server", server.base, "--browser"],
        env=_env(tmp_path), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert cli.stderr is not None
        line = await asyncio.to_thread(cli.stderr.readline)
        address = line.removeprefix("sign in in your browser: ").strip()
        asked = urlsplit(address)
        assert asked.path == "/cli/login" and address.startswith(server.base), line
        port = int(parse_qs(asked.query)["port"][0])

        def in_chromium() -> tuple[str, str, str]:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page()
                    page.goto(address)  # not signed in: the sign-in page, coming back here after
                    page.fill("#username", "ana.analyst")
                    page.fill("#password", PASSWORD)
                    page.click("button[type=submit]")
                    page.wait_for_url(re.compile(r".*/cli/login\?.*"), timeout=15_000)
                    asked_text = page.inner_text("#cli-login")
                    page.click("#cli-login-allow")
                    page.wait_for_url(re.compile(rf"http://127\.0\.0\.1:{port}/callback\?.*"), timeout=15_000)
                    return asked_text, page.url, page.inner_text("body")
                finally:
                    browser.close()

        asked_text, landed, shown = await asyncio.to_thread(in_chromium)
        assert "ana.analyst" in asked_text and "30 days" in asked_text
        assert "signed in" in shown
        sealed = parse_qs(urlsplit(landed).query)["sealed"][0]
        assert sealed.startswith("v1.") and "cdt_" not in landed  # the browser saw ciphertext only
        out, err = await asyncio.to_thread(cli.communicate, timeout=60)
        assert cli.returncode == 0, err
        assert out.strip() == f"logged in to {server.base} as ana.analyst (profile default)"
    finally:
        if cli.poll() is None:
            cli.kill()
    who = subprocess.run([sys.executable, "-m", "clampdown", "whoami", "--json"], env=_env(tmp_path),
                         capture_output=True, text=True, timeout=60)  # fmt: skip
    assert who.returncode == 0, who.stderr
    assert json.loads(who.stdout)["username"] == "ana.analyst"
    token = (tmp_path / ".config" / "clampdown" / "tokens" / "default").read_text().strip()
    me = httpx.get(f"{server.base}/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["username"] == "ana.analyst"


async def test_the_page_refuses_what_the_cli_never_sends(server: Server) -> None:
    await server.token("ben.analyst", SECURITY_ADMINISTRATOR)
    async with httpx.AsyncClient(base_url=server.base) as console:
        bare = await console.get("/cli/login", params={"port": 5000, "key": "k" * 43, "state": "s" * 20})
        assert bare.status_code == 303  # to sign in, then back here with every parameter
        assert bare.headers["location"].startswith("/login?next=/cli/login%3Fport%3D5000%26key%3D")
        await console.post("/api/v1/session", json={"username": "ben.analyst", "password": PASSWORD})
        for params in ({"port": 80, "key": "k" * 43, "state": "s" * 20},
                       {"port": 5000, "key": "k" * 42 + "!", "state": "s" * 20},
                       {"port": 5000, "key": "k" * 43, "state": "<script>"}):  # fmt: skip
            page = await console.get("/cli/login", params=params)
            assert page.status_code in (400, 422), (params, page.status_code)
            assert "<script>" not in page.text
        good = await console.get("/cli/login", params={"port": 5000, "key": "k" * 43, "state": "s" * 20,
                                                        "host": "laptop-42"})  # fmt: skip
        assert good.status_code == 200 and "laptop-42" in good.text and "ben.analyst" in good.text
