"""The emulator as an OpenID Connect provider (Okta's org authorization server), over HTTP."""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import AsyncIterator
from html import unescape
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import jwt
import pytest
from openapi_core.testing import MockRequest, MockResponse

from clampdown_lab.okta_emulator.oidc import OidcWebApp
from clampdown_lab.okta_emulator.state import OrgState
from tests.okta.contract import SPEC_HOST, Exchange, oauth_api, validate
from tests.okta.org import API_TOKEN, Org

CLIENT_ID = "0oaoidcwebapp0000001"
SECRET = "web-app-secret"
REDIRECT = "https://clampdown.example.test/auth/oidc/callback"
ALICE = "alice.martin@lab.example.test"
PASSWORD = "Alice-Password-1"


def challenge_for(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@pytest.fixture
async def idp(org: Org) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client to the org, with the web app registered and Alice able to sign in.
    Answers of the discovery, keys and token endpoints are checked against Okta's OAuth document."""
    org.emulator.oidc.register(OidcWebApp(CLIENT_ID, SECRET, (REDIRECT,), "Clampdown"))
    org.emulator.oidc.clock = time.time
    alice = org.user(ALICE)
    org.state.set_credentials(alice, PASSWORD, ["Everyone", "Finance", "Clampdown Operators"])
    seen: list[Exchange] = []

    async def record(response: httpx.Response) -> None:
        seen.append(await Exchange.capture(response))

    async with httpx.AsyncClient(base_url=org.url, event_hooks={"response": [record]}) as client:
        yield client
    for exchange in seen:
        check_oauth_answer(exchange)


def check_oauth_answer(exchange: Exchange) -> None:
    """Discovery, keys and token answers as Okta's OAuth document declares them."""
    path = urlsplit(exchange.url).path
    if path not in ("/.well-known/openid-configuration", "/oauth2/v1/keys", "/oauth2/v1/token"):
        return
    request = MockRequest(SPEC_HOST, exchange.method.lower(), path)
    response = MockResponse(
        exchange.response_body,
        status_code=exchange.status,
        content_type=exchange.response_headers.get("content-type", "").split(";")[0],
        headers=exchange.response_headers,
    )
    oauth_api().validate_response(request, response)


def authorize_params(**overrides: str) -> dict[str, str]:
    verifier = overrides.pop("verifier", "v" * 50)
    params = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": "openid profile email groups",
        "state": "state-123",
        "nonce": "nonce-456",
        "code_challenge": challenge_for(verifier),
        "code_challenge_method": "S256",
    }
    return {**params, **overrides}


async def sign_in(
    idp: httpx.AsyncClient, login: str = ALICE, password: str = PASSWORD, **overrides: str
) -> httpx.Response:
    """The form shown at GET /authorize, posted back with the credentials."""
    params = authorize_params(**overrides)
    form = await idp.get("/oauth2/v1/authorize", params=params)
    assert form.status_code == 200, form.text
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', form.text))
    fields = {k: unescape(v) for k, v in hidden.items()}
    assert fields == params
    return await idp.post("/oauth2/v1/authorize", data={**fields, "username": login, "password": password})


def redirected_with(answer: httpx.Response) -> dict[str, str]:
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return dict(parse_qsl(urlsplit(location).query))


async def redeem(idp: httpx.AsyncClient, code: str, verifier: str = "v" * 50, **extra: Any) -> httpx.Response:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    auth = extra.pop("auth", (CLIENT_ID, SECRET))
    return await idp.post("/oauth2/v1/token", data={**data, **extra}, auth=auth)


async def test_code_flow_issues_an_id_token_signed_with_the_published_key(
    org: Org, idp: httpx.AsyncClient
) -> None:
    meta = (await idp.get("/.well-known/openid-configuration")).json()
    assert meta["issuer"] == org.url
    assert meta["authorization_endpoint"] == f"{org.url}/oauth2/v1/authorize"
    answer = redirected_with(await sign_in(idp))
    assert answer["state"] == "state-123"
    tokens = await redeem(idp, answer["code"])
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    assert body["token_type"] == "Bearer" and body["scope"] == "openid profile email groups"
    keys = jwt.PyJWKSet.from_dict((await idp.get(meta["jwks_uri"])).json())
    header = jwt.get_unverified_header(body["id_token"])
    [key] = [k for k in keys.keys if k.key_id == header["kid"]]
    claims = jwt.decode(body["id_token"], key.key, algorithms=["RS256"], audience=CLIENT_ID, issuer=org.url)
    alice = org.user(ALICE)
    assert claims["sub"] == alice.id and claims["nonce"] == "nonce-456"
    assert claims["preferred_username"] == ALICE and claims["email"] == ALICE
    assert claims["name"] == "Alice Martin"
    assert claims["groups"] == ["Everyone", "Finance", "Clampdown Operators"]
    assert claims["exp"] - claims["iat"] == 3600
    [event] = org.events("user.session.start")
    assert event["actor"]["id"] == alice.id and event["outcome"] == {"result": "SUCCESS"}


async def test_groups_claim_only_with_the_groups_scope(idp: httpx.AsyncClient) -> None:
    answer = redirected_with(await sign_in(idp, scope="openid profile"))
    id_token = (await redeem(idp, answer["code"])).json()["id_token"]
    claims = jwt.decode(id_token, options={"verify_signature": False})
    assert "groups" not in claims and "email" not in claims and claims["preferred_username"] == ALICE


async def test_a_code_is_single_use_and_short_lived(org: Org, idp: httpx.AsyncClient) -> None:
    code = redirected_with(await sign_in(idp))["code"]
    assert (await redeem(idp, code)).status_code == 200
    again = await redeem(idp, code)
    assert again.status_code == 400 and again.json() == {
        "error": "invalid_grant",
        "error_description": "The authorization code is invalid or has expired.",
    }
    late = redirected_with(await sign_in(idp))["code"]
    org.emulator.oidc.clock = lambda: time.time() + 301
    assert (await redeem(idp, late)).json()["error"] == "invalid_grant"


async def test_pkce_verifier_must_match_the_challenge(idp: httpx.AsyncClient) -> None:
    code = redirected_with(await sign_in(idp))["code"]
    wrong = await redeem(idp, code, verifier="w" * 50)
    assert wrong.status_code == 400
    assert wrong.json()["error_description"] == "PKCE verification failed."


@pytest.mark.parametrize(
    ("override", "error"),
    [
        ({"code_challenge": ""}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "profile"}, "invalid_scope"),
    ],
)
async def test_bad_authorize_requests_go_back_to_the_app_with_an_error(
    idp: httpx.AsyncClient, override: dict[str, str], error: str
) -> None:
    answer = await idp.get("/oauth2/v1/authorize", params=authorize_params(**override))
    back = redirected_with(answer)
    assert back["error"] == error and back["state"] == "state-123"


@pytest.mark.parametrize(
    "override", [{"client_id": "0oanotregistered0001"}, {"redirect_uri": "https://evil.example.test/cb"}]
)
async def test_unknown_client_or_redirect_uri_is_never_redirected_to(
    idp: httpx.AsyncClient, override: dict[str, str]
) -> None:
    answer = await idp.get("/oauth2/v1/authorize", params=authorize_params(**override))
    assert answer.status_code == 400 and "location" not in answer.headers


async def test_only_active_users_sign_in(org: Org, idp: httpx.AsyncClient) -> None:
    for status in ("SUSPENDED", "DEPROVISIONED"):
        login = f"{status.lower()}@lab.example.test"
        org.add(login, status=status)
        org.state.set_credentials(org.user(login), PASSWORD, ["Clampdown Operators"])
        refused = await sign_in(idp, login=login)
        assert refused.status_code == 401 and "Unable to sign in" in refused.text
    wrong = await sign_in(idp, password="not-it")
    unknown = await sign_in(idp, login="nobody@lab.example.test")
    assert wrong.status_code == unknown.status_code == 401
    reasons = [e["outcome"].get("reason") for e in org.events("user.session.start")]
    assert reasons == [
        "VERIFICATION_ERROR: user is SUSPENDED",
        "VERIFICATION_ERROR: user is DEPROVISIONED",
        "INVALID_CREDENTIALS",
        "INVALID_CREDENTIALS",
    ]
    # The sign-ins are in the System Log as Okta's API serves it, within its contract.
    logs = await idp.get(
        "/api/v1/logs",
        params={"filter": 'eventType eq "user.session.start"'},
        headers={"Authorization": f"SSWS {API_TOKEN}"},
    )
    validate(await Exchange.capture(logs))
    assert [e["outcome"]["result"] for e in logs.json()] == ["FAILURE"] * 4


async def test_a_user_suspended_after_signing_in_gets_no_token(org: Org, idp: httpx.AsyncClient) -> None:
    code = redirected_with(await sign_in(idp))["code"]
    org.user(ALICE).status = "SUSPENDED"
    assert (await redeem(idp, code)).json()["error"] == "invalid_grant"


async def test_client_authentication(idp: httpx.AsyncClient) -> None:
    code = redirected_with(await sign_in(idp))["code"]
    wrong = await redeem(idp, code, auth=(CLIENT_ID, "not-the-secret"))
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    none = await redeem(idp, code, auth=None)
    assert none.status_code == 401 and none.json()["error_description"] == "No client credentials found"
    both = await redeem(idp, code, client_id=CLIENT_ID, client_secret=SECRET)
    assert both.status_code == 400 and both.json()["error"] == "invalid_request"
    code = redirected_with(await sign_in(idp))["code"]
    post = await redeem(idp, code, auth=None, client_id=CLIENT_ID, client_secret=SECRET)
    assert post.status_code == 200, post.text


async def test_control_api_registers_apps_and_sets_credentials(org: Org) -> None:
    async with httpx.AsyncClient(base_url=org.url) as control:
        app = {"client_id": "0oacontrolled0000001", "client_secret": "s3", "redirect_uris": [REDIRECT]}
        assert (await control.post("/_emulator/oidc/apps", json=app)).status_code == 201
        seeded = await control.post(
            "/_emulator/users",
            json={"users": [{"login": "new.op@lab.example.test", "password": "pw-1", "groups": ["Ops"]}]},
        )
        user_id = seeded.json()["ids"]["new.op@lab.example.test"]
        changed = await control.put(
            f"/_emulator/users/{user_id}/credentials", json={"groups": ["Ops", "SOC"]}
        )
        assert changed.json()["groups"] == ["Ops", "SOC"] and "password_hash" not in changed.json()
    record = org.user("new.op@lab.example.test")
    assert org.emulator.oidc.apps["0oacontrolled0000001"].client_secret == "s3"
    assert record.check_password("pw-1") and not record.check_password("pw-2")


def test_passwords_and_groups_survive_a_restart(tmp_path: Any) -> None:
    state = OrgState(state_file=tmp_path / "state.json")
    state.seed({"login": "kept@lab.example.test", "password": secrets.token_hex(8) + "x", "groups": ["G"]})
    state.set_credentials(state.find_by_login("kept@lab.example.test"), "kept-password", None)  # type: ignore[arg-type]
    reloaded = OrgState.load(tmp_path / "state.json").find_by_login("kept@lab.example.test")
    assert reloaded is not None and reloaded.groups == ["G"] and reloaded.check_password("kept-password")


async def refresh(idp: httpx.AsyncClient, token: str, **extra: Any) -> httpx.Response:
    auth = extra.pop("auth", (CLIENT_ID, SECRET))
    data = {"grant_type": "refresh_token", "refresh_token": token, **extra}
    return await idp.post("/oauth2/v1/token", data=data, auth=auth)


async def test_offline_access_gives_a_refresh_token_whose_id_tokens_carry_the_groups_now(
    org: Org, idp: httpx.AsyncClient
) -> None:
    meta = (await idp.get("/.well-known/openid-configuration")).json()
    assert "refresh_token" in meta["grant_types_supported"] and "offline_access" in meta["scopes_supported"]
    plain = redirected_with(await sign_in(idp))
    assert "refresh_token" not in (await redeem(idp, plain["code"])).json()
    code = redirected_with(await sign_in(idp, scope="openid profile groups offline_access"))["code"]
    first = (await redeem(idp, code)).json()
    assert first["refresh_token"]
    org.state.set_credentials(org.user(ALICE), None, ["Everyone", "Finance"])
    again = await refresh(idp, first["refresh_token"])
    assert again.status_code == 200, again.text
    claims = jwt.decode(again.json()["id_token"], options={"verify_signature": False})
    assert claims["groups"] == ["Everyone", "Finance"] and claims["preferred_username"] == ALICE
    assert claims["aud"] == CLIENT_ID and "nonce" not in claims
    narrower = await refresh(idp, first["refresh_token"], scope="openid")
    assert narrower.status_code == 200 and narrower.json()["scope"] == "openid"
    wider = await refresh(idp, first["refresh_token"], scope="openid okta.users.manage")
    assert wider.status_code == 400 and wider.json()["error"] == "invalid_scope"


async def test_a_refresh_token_ends_with_the_user_or_their_revoked_tokens(
    org: Org, idp: httpx.AsyncClient
) -> None:
    scope = "openid profile groups offline_access"
    token = (await redeem(idp, redirected_with(await sign_in(idp, scope=scope))["code"])).json()[
        "refresh_token"
    ]
    assert (await refresh(idp, token, auth=(CLIENT_ID, "wrong"))).status_code == 401
    org.user(ALICE).status = "SUSPENDED"
    refused = await refresh(idp, token)
    assert refused.status_code == 400 and refused.json() == {
        "error": "invalid_grant",
        "error_description": "The refresh token is invalid or expired.",
    }
    org.user(ALICE).status = "ACTIVE"  # a spent refresh token stays spent
    assert (await refresh(idp, token)).json()["error"] == "invalid_grant"
    token = (await redeem(idp, redirected_with(await sign_in(idp, scope=scope))["code"])).json()[
        "refresh_token"
    ]
    cleared = await idp.delete(
        f"/api/v1/users/{org.user(ALICE).id}/sessions",
        params={"oauthTokens": "true"},
        headers={"Authorization": f"SSWS {API_TOKEN}"},
    )
    assert cleared.status_code == 204
    assert (await refresh(idp, token)).json()["error"] == "invalid_grant"
    assert (await refresh(idp, "never-issued")).json()["error"] == "invalid_grant"
