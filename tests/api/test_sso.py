"""Single sign-on end to end: a real `clampdown serve` with [sso] pointing at the Okta emulator.

The browser is httpx following redirects by hand: Clampdown's login, the emulator's sign-in form,
Clampdown's callback, then the console session it opened; and once Chromium, for what only a
browser enforces (SameSite cookies across the identity provider's site and Clampdown's).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest
import tomli_w
from cryptography.hazmat.primitives.asymmetric import rsa

from clampdown.audit.chain import AuditLog
from clampdown.auth.service import AuthService, token_hash
from clampdown.db.database import create_engine
from clampdown.store.auth import AuthStore, Denial
from clampdown_lab.okta_emulator import EmulatorServer, EmulatorSettings, build_emulator
from clampdown_lab.okta_emulator.oidc import OidcWebApp
from tests.api.conftest import free_port, start_server
from tests.lab_config import memory_provider

CLIENT_ID = "0oaclampdownsso00001"
CLIENT_SECRET = "emulator-client-secret-for-sso-tests"
PASSWORD = "Correct-Horse-42"
DOMAIN = "lab.example.test"
SESSION_COOKIE = "clampdown_session"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
PENDING_COOKIE = "clampdown_sso"
RECHECK = 1  # seconds between re-checks of a session with the identity provider


@dataclass
class Deployment:
    base: str  # Clampdown
    idp: EmulatorServer
    database_url: str

    def events(self, event_type: str, login: str) -> list[dict[str, Any]]:
        logs = self.idp.emulator.state.logs
        return [e for e in logs if e["eventType"] == event_type and e["actor"]["alternateId"] == login]

    def denials(self) -> list[Denial]:
        async def read() -> list[Denial]:
            engine = create_engine(self.database_url)
            try:
                return await AuthStore(engine).denials()
            finally:
                await engine.dispose()

        return asyncio.run(read())

    def audit(self, event: str) -> list[dict[str, Any]]:
        async def read() -> list[dict[str, Any]]:
            engine = create_engine(self.database_url)
            try:
                return [row async for row in AuditLog(engine).rows() if row["event"] == event]
            finally:
                await engine.dispose()

        return asyncio.run(read())

    def token(self, login: str, *, service: bool = False) -> str:
        """An API token for a signed-in-before SSO user, made as `clampdown tokens create` does."""

        async def make() -> str:
            engine = create_engine(self.database_url)
            try:
                issued = await AuthService(AuthStore(engine)).create_token(
                    f"{login}@{DOMAIN}", "test", None, service=service
                )
                return issued.token
            finally:
                await engine.dispose()

        return asyncio.run(make())


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    home = tmp_path_factory.mktemp("sso")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    people = [
        ("ines.operator", "ACTIVE", ["Everyone", "Clampdown Operators"]),
        ("ravi.reader", "ACTIVE", ["Everyone", "Clampdown Readers", "Clampdown Operators"]),
        ("bob.nguyen", "ACTIVE", ["Everyone", "Engineering"]),
        ("carol.diaz", "SUSPENDED", ["Everyone", "Clampdown Operators"]),
        # Each re-check test has its own person: ending a person's access ends all their sessions.
        ("dana.regroup", "ACTIVE", ["Everyone", "Clampdown Operators"]),
        ("eve.leaver", "ACTIVE", ["Everyone", "Clampdown Operators"]),
        ("fay.suspended", "ACTIVE", ["Everyone", "Clampdown Operators"]),
        ("gus.tokens", "ACTIVE", ["Everyone", "Clampdown Operators"]),
        # Scoped by group (sso.directory_mapping): "Everyone" maps to every directory.
        ("hana.emea", "ACTIVE", ["Clampdown Operators", "EMEA Responders"]),
        ("ivan.nowhere", "ACTIVE", ["Clampdown Operators"]),
    ]
    settings = EmulatorSettings(
        users=[
            {
                "login": f"{name}@{DOMAIN}",
                "firstName": name.split(".")[0].title(),
                "lastName": "Test",
                "status": status,
                "password": PASSWORD,
                "groups": groups,
            }
            for name, status, groups in people
        ],
        oidc_apps=[
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [f"{base}/auth/oidc/callback"],
            }
        ],
    )
    idp = EmulatorServer(build_emulator(settings)).start()
    secret_file = home / "sso-client-secret"
    secret_file.write_text(CLIENT_SECRET + "\n")
    database_url = f"sqlite:///{home / 'clampdown.db'}"
    config = {
        "database": {"url": database_url},
        "server": {"embedded_worker": False, "public_url": base, "session_secret": "s" * 48},
        "providers": {"okta": memory_provider("okta", home / "okta.db")},
        "hunting": {"scheduled": False},
        "sso": {
            # Another site than Clampdown's (127.0.0.1), as a real identity provider is.
            "issuer": idp.url.replace("127.0.0.1", "localhost"),
            "client_id": CLIENT_ID,
            "client_secret": {"file": str(secret_file)},
            "recheck_seconds": RECHECK,
            "role_mapping": {
                "Clampdown Operators": ["Security Operator"],
                "Clampdown Readers": ["Security Reader"],
            },
            "directory_mapping": {"Everyone": ["*"], "EMEA Responders": ["okta"]},
        },
    }
    path = home / "clampdown.toml"
    path.write_text(tomli_w.dumps(config))
    proc: subprocess.Popen[bytes] | None = None
    try:
        proc, _ = start_server(path, port)
        yield Deployment(base, idp, database_url)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(15)
        idp.stop()


def _form_fields(html: str) -> dict[str, str]:
    """The hidden inputs of the emulator's sign-in form, as a browser would post them."""
    pattern = r'<input type="hidden" name="([^"]+)" value="([^"]*)">'
    return {name: unescape(value) for name, value in re.findall(pattern, html)}


def start_login(browser: httpx.Client, base: str, next_url: str | None = None) -> tuple[str, dict[str, str]]:
    """Clampdown's login, then the emulator's form: (where the form posts, its hidden fields)."""
    login = browser.get(
        f"{base}/auth/oidc/login", params={"next": next_url} if next_url is not None else None
    )
    assert login.status_code == 302
    assert PENDING_COOKIE in login.cookies
    authorize = login.headers["location"]
    form = browser.get(authorize)
    assert form.status_code == 200 and "<form" in form.text
    parts = urlsplit(authorize)
    return f"{parts.scheme}://{parts.netloc}/oauth2/v1/authorize", _form_fields(form.text)


def sign_in_at_idp(
    browser: httpx.Client, base: str, login: str, password: str = PASSWORD, next_url: str | None = None
) -> httpx.Response:
    """Everything up to the emulator's answer to the submitted form."""
    action, fields = start_login(browser, base, next_url)
    return browser.post(action, data={**fields, "username": f"{login}@{DOMAIN}", "password": password})


def sign_in(browser: httpx.Client, base: str, login: str, next_url: str | None = None) -> httpx.Response:
    """The whole flow; returns Clampdown's answer at the callback."""
    answer = sign_in_at_idp(browser, base, login, next_url=next_url)
    assert answer.status_code == 302, answer.text
    callback = answer.headers["location"]
    assert callback.startswith(f"{base}/auth/oidc/callback?")
    return browser.get(callback)


def test_operator_signs_in_with_the_mapped_role(deployment: Deployment) -> None:
    with httpx.Client() as browser:
        answer = sign_in(browser, deployment.base, "ines.operator")
        assert (
            answer.status_code == 200 and '<meta http-equiv="refresh" content="0;url=/users">' in answer.text
        )
        assert SESSION_COOKIE in answer.cookies
        me = browser.get(f"{deployment.base}/api/v1/me")
    assert me.status_code == 200, me.text
    body = me.json()
    assert body["username"] == f"ines.operator@{DOMAIN}"
    assert body["roles"] == ["Security Operator"] and body["channel"] == "console"
    assert "response:read" in body["permissions"] and body["csrf_token"]
    [event] = deployment.events("user.session.start", f"ines.operator@{DOMAIN}")
    assert event["outcome"] == {"result": "SUCCESS"}


def test_every_mapped_group_adds_its_role(deployment: Deployment) -> None:
    with httpx.Client() as browser:
        assert sign_in(browser, deployment.base, "ravi.reader").status_code == 200
        roles = browser.get(f"{deployment.base}/api/v1/me").json()["roles"]
    assert roles == ["Security Operator", "Security Reader"]


def test_groups_changed_at_the_idp_change_the_roles_at_next_sign_in(deployment: Deployment) -> None:
    state = deployment.idp.emulator.state
    user = state.find_by_login(f"ravi.reader@{DOMAIN}")
    state.set_credentials(user, None, ["Everyone", "Clampdown Readers"])
    with httpx.Client() as browser:
        assert sign_in(browser, deployment.base, "ravi.reader").status_code == 200
        roles = browser.get(f"{deployment.base}/api/v1/me").json()["roles"]
    assert roles == ["Security Reader"]


def test_user_without_a_mapped_group_is_refused_and_the_denial_recorded(deployment: Deployment) -> None:
    with httpx.Client() as browser:
        answer = sign_in(browser, deployment.base, "bob.nguyen")
        assert answer.status_code == 403
        assert SESSION_COOKIE not in answer.cookies
        error = answer.json()["error"]
        assert error["code"] == "permission_denied" and "Engineering" in error["message"]
        assert browser.get(f"{deployment.base}/api/v1/me").status_code == 401
    denial = next(d for d in deployment.denials() if d.principal == f"bob.nguyen@{DOMAIN}")
    assert (denial.attempted, denial.channel) == ("sign-in", "console")
    assert denial.missing == "a group mapped to a Clampdown role"


def test_tampered_state_is_refused(deployment: Deployment) -> None:
    with httpx.Client() as browser:
        answer = sign_in_at_idp(browser, deployment.base, "ines.operator")
        query = dict(parse_qsl(urlsplit(answer.headers["location"]).query))
        forged = {**query, "state": query["state"][:-2] + "xx"}
        refused = browser.get(f"{deployment.base}/auth/oidc/callback?{urlencode(forged)}")
    assert refused.status_code == 401, refused.text
    assert "state does not match" in refused.json()["error"]["message"]
    assert SESSION_COOKIE not in refused.cookies


def test_tampered_or_missing_pending_cookie_is_refused(deployment: Deployment) -> None:
    with httpx.Client() as browser:
        answer = sign_in_at_idp(browser, deployment.base, "ines.operator")
        callback = answer.headers["location"]
        pending = browser.cookies[PENDING_COOKIE]
        body, _, mac = pending.partition(".")
        # Another nonce under the old signature: the MAC no longer matches.
        browser.cookies.set(PENDING_COOKIE, body[:-3] + "AAA." + mac, domain="127.0.0.1", path="/auth/oidc")
        altered = browser.get(callback)
    assert altered.status_code == 401, altered.text
    assert "altered" in altered.json()["error"]["message"]
    with httpx.Client() as other_browser:  # the callback URL replayed where no sign-in started
        assert other_browser.get(callback).status_code == 401


def test_suspended_user_cannot_sign_in(deployment: Deployment) -> None:
    with httpx.Client() as browser:
        answer = sign_in_at_idp(browser, deployment.base, "carol.diaz")
    assert answer.status_code == 401 and "Unable to sign in" in answer.text
    assert "location" not in answer.headers
    [event] = deployment.events("user.session.start", f"carol.diaz@{DOMAIN}")
    assert event["outcome"]["result"] == "FAILURE" and "SUSPENDED" in event["outcome"]["reason"]


def test_wrong_password_is_refused_at_the_idp(deployment: Deployment) -> None:
    with httpx.Client() as browser:
        answer = sign_in_at_idp(browser, deployment.base, "bob.nguyen", password="not-the-password")
    assert answer.status_code == 401 and "location" not in answer.headers
    failures = [
        e for e in deployment.events("user.session.start", f"bob.nguyen@{DOMAIN}")
        if e["outcome"]["result"] == "FAILURE"
    ]  # fmt: skip
    assert failures[-1]["outcome"]["reason"] == "INVALID_CREDENTIALS"


def test_wrong_client_secret_is_refused(deployment: Deployment) -> None:
    oidc = deployment.idp.emulator.oidc
    registered = oidc.apps[CLIENT_ID]
    # The app's secret rotated at the IdP: Clampdown's configured secret is now wrong.
    oidc.register(OidcWebApp(CLIENT_ID, "rotated-secret", registered.redirect_uris))
    try:
        with httpx.Client() as browser:
            answer = sign_in(browser, deployment.base, "ines.operator")
    finally:
        oidc.register(registered)
    assert answer.status_code == 401, answer.text
    assert "client secret" in answer.json()["error"]["message"]
    assert SESSION_COOKIE not in answer.cookies


def test_session_cookie_is_a_stored_console_session(deployment: Deployment) -> None:
    with httpx.Client() as browser:
        answer = sign_in(browser, deployment.base, "ines.operator")
        session_id = answer.cookies[SESSION_COOKIE]

    async def stored() -> object:
        engine = create_engine(deployment.database_url)
        try:
            return await AuthStore(engine).session(token_hash(session_id))
        finally:
            await engine.dispose()

    assert asyncio.run(stored()) is not None


def test_state_that_is_not_ascii_is_refused_not_a_server_error(deployment: Deployment) -> None:
    with httpx.Client() as browser:
        answer = sign_in_at_idp(browser, deployment.base, "ines.operator")
        query = dict(parse_qsl(urlsplit(answer.headers["location"]).query))
        refused = browser.get(f"{deployment.base}/auth/oidc/callback?{urlencode({**query, 'state': 'é'})}")
    assert refused.status_code == 401, refused.text


def test_sign_in_survives_a_signing_key_rotation_at_the_idp(deployment: Deployment) -> None:
    with httpx.Client() as browser:  # Clampdown has fetched the JWKS once
        assert sign_in(browser, deployment.base, "ines.operator").status_code == 200
    oidc = deployment.idp.emulator.oidc
    old_key = oidc.signing_key
    oidc.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    try:
        with httpx.Client() as browser:
            answer = sign_in(browser, deployment.base, "ines.operator")
    finally:
        oidc.signing_key = old_key
    assert answer.status_code == 200, answer.text


def test_sign_in_tolerates_a_small_clock_skew_with_the_idp(deployment: Deployment) -> None:
    oidc = deployment.idp.emulator.oidc
    oidc.clock = lambda: time.time() + 20  # the IdP's clock runs 20 s ahead of Clampdown's
    try:
        with httpx.Client() as browser:
            answer = sign_in(browser, deployment.base, "ines.operator")
    finally:
        oidc.clock = time.time
    assert answer.status_code == 200, answer.text


def test_sign_in_goes_on_to_next_only_on_this_site(deployment: Deployment) -> None:
    for next_url, lands in [
        ("/actions", "/actions"),
        ("/\t/evil.example", "/users"),
        ("//evil.example", "/users"),
        ("/\\evil.example", "/users"),
        ("https://evil.example/", "/users"),
        ('/x"><script>', "/x&quot;&gt;&lt;script&gt;"),
    ]:
        with httpx.Client() as browser:
            answer = sign_in(browser, deployment.base, "ines.operator", next_url)
        assert answer.status_code == 200, answer.text
        assert f'content="0;url={lands}"' in answer.text, (next_url, answer.text)


def test_sso_sign_ins_are_audited_with_their_outcome(deployment: Deployment) -> None:
    with httpx.Client() as browser:
        assert sign_in(browser, deployment.base, "ines.operator").status_code == 200
        answer = sign_in_at_idp(browser, deployment.base, "ines.operator")
        query = dict(parse_qsl(urlsplit(answer.headers["location"]).query))
        forged = {**query, "state": "not-the-state"}
        assert browser.get(f"{deployment.base}/auth/oidc/callback?{urlencode(forged)}").status_code == 401
        assert sign_in(browser, deployment.base, "bob.nguyen").status_code == 403
    succeeded = [e for e in deployment.audit("signin.succeeded") if e["data"]["method"] == "sso"]
    assert succeeded[-1]["actor"] == f"ines.operator@{DOMAIN}"
    assert succeeded[-1]["data"]["source"] == "127.0.0.1" and succeeded[-1]["data"]["channel"] == "console"
    failed = [e for e in deployment.audit("signin.failed") if e["data"]["method"] == "sso"]
    assert any(e["actor"] == "unknown user" and "state does not match" in e["data"]["reason"] for e in failed)
    assert any(e["actor"] == f"bob.nguyen@{DOMAIN}" and "Engineering" in e["data"]["reason"] for e in failed)


def _me(browser: httpx.Client, base: str) -> httpx.Response:
    return browser.get(f"{base}/api/v1/me")


def test_roles_follow_the_groups_while_signed_in(deployment: Deployment) -> None:
    login = f"dana.regroup@{DOMAIN}"
    with httpx.Client() as browser:
        assert sign_in(browser, deployment.base, "dana.regroup").status_code == 200
        assert _me(browser, deployment.base).json()["roles"] == ["Security Operator"]
        state = deployment.idp.emulator.state
        state.set_credentials(state.find_by_login(login), None, ["Everyone", "Clampdown Readers"])
        assert _me(browser, deployment.base).json()["roles"] == ["Security Operator"]  # not due yet
        time.sleep(RECHECK + 0.2)
        me = _me(browser, deployment.base)
    assert me.status_code == 200 and me.json()["roles"] == ["Security Reader"]
    [synced] = [e for e in deployment.audit("user.roles_changed") if e["subject"] == login]
    assert synced["actor"] == "sso" and synced["data"]["synced_from"] == "sso"
    assert synced["data"]["before"] == ["Security Operator"] and synced["data"]["roles"] == [
        "Security Reader"
    ]


def test_a_person_removed_from_the_mapped_groups_loses_sessions_and_session_tokens(
    deployment: Deployment,
) -> None:
    login = f"eve.leaver@{DOMAIN}"
    with httpx.Client() as browser:
        assert sign_in(browser, deployment.base, "eve.leaver").status_code == 200
        session_token = deployment.token("eve.leaver")
        service_token = deployment.token("eve.leaver", service=True)
        by_token = httpx.get(
            f"{deployment.base}/api/v1/me", headers={"Authorization": f"Bearer {session_token}"}
        )
        assert by_token.status_code == 200 and by_token.json()["roles"] == ["Security Operator"]
        state = deployment.idp.emulator.state
        state.set_credentials(state.find_by_login(login), None, ["Everyone", "Engineering"])
        time.sleep(RECHECK + 0.2)
        ended = _me(browser, deployment.base)
        assert ended.status_code == 401 and "no longer" not in ended.text
        assert "sso.role_mapping" in ended.json()["error"]["message"]
        assert _me(browser, deployment.base).status_code == 401  # the session is gone for good
    revoked = httpx.get(f"{deployment.base}/api/v1/me", headers={"Authorization": f"Bearer {session_token}"})
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]["message"]
    service = httpx.get(f"{deployment.base}/api/v1/me", headers={"Authorization": f"Bearer {service_token}"})
    assert service.status_code == 200 and service.json()["roles"] == []  # it stays, with no role left
    [event] = [e for e in deployment.audit("session.ended") if e["subject"] == login]
    assert (
        event["actor"] == "sso"
        and event["data"]["sessions"] == 1
        and len(event["data"]["tokens_revoked"]) == 1
    )


def test_a_person_suspended_at_the_idp_is_signed_out(deployment: Deployment) -> None:
    login = f"fay.suspended@{DOMAIN}"
    with httpx.Client() as browser:
        assert sign_in(browser, deployment.base, "fay.suspended").status_code == 200
        deployment.idp.emulator.state.find_by_login(login).status = "SUSPENDED"
        time.sleep(RECHECK + 0.2)
        ended = _me(browser, deployment.base)
        console = browser.get(f"{deployment.base}/users")
    assert ended.status_code == 401, ended.text
    assert "ended the sign-in" in ended.json()["error"]["message"]
    assert console.status_code == 303 and console.headers["location"].startswith("/login")
    [event] = [e for e in deployment.audit("session.ended") if e["subject"] == login]
    assert "refresh token is invalid" in event["data"]["reason"]


def test_a_session_token_of_an_sso_user_ends_with_their_sessions(deployment: Deployment) -> None:
    with httpx.Client() as browser:
        assert sign_in(browser, deployment.base, "gus.tokens").status_code == 200
        token = deployment.token("gus.tokens")
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.get(f"{deployment.base}/api/v1/me", headers=bearer).status_code == 200
        csrf = _me(browser, deployment.base).json()["csrf_token"]
        browser.request("DELETE", f"{deployment.base}/api/v1/session", headers={"X-CSRF-Token": csrf})
    after = httpx.get(f"{deployment.base}/api/v1/me", headers=bearer)
    assert after.status_code == 401 and "ends with their console session" in after.json()["error"]["message"]


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed")
def test_chromium_lands_signed_in_on_the_console(deployment: Deployment) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{deployment.base}/auth/oidc/login")
            assert page.url.startswith(deployment.idp.url.replace("127.0.0.1", "localhost"))
            page.fill("input[name=username]", f"ines.operator@{DOMAIN}")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(re.compile(r".*/users"), timeout=10_000)
            # On the console, not sent back to its sign-in page: the session cookie went along.
            assert urlsplit(page.url).path == "/users", page.url
        finally:
            browser.close()


def test_directories_follow_the_groups_and_a_person_in_none_is_not_let_in(deployment: Deployment) -> None:
    login = f"hana.emea@{DOMAIN}"
    with httpx.Client() as browser:
        assert sign_in(browser, deployment.base, "hana.emea").status_code == 200
        assert _me(browser, deployment.base).json()["directories"] == ["okta"]
        state = deployment.idp.emulator.state
        state.set_credentials(state.find_by_login(login), None, ["Everyone", "Clampdown Operators"])
        time.sleep(RECHECK + 0.2)
        me = _me(browser, deployment.base)
    assert me.status_code == 200 and me.json()["directories"] is None  # every directory now
    [created] = [e for e in deployment.audit("user.created") if e["subject"] == login]
    assert created["data"]["scope"] == ["okta"]
    [synced] = [e for e in deployment.audit("user.scope_changed") if e["subject"] == login]
    assert synced["actor"] == "sso" and synced["data"]["synced_from"] == "sso"
    assert synced["data"]["before"] == ["okta"] and synced["data"]["scope"] is None
    with httpx.Client() as browser:
        refused = sign_in(browser, deployment.base, "ivan.nowhere")
    assert refused.status_code == 403 and "sso.directory_mapping" in refused.json()["error"]["message"]

