"""Okta's org authorization server for OpenID Connect web apps.

Discovery, /oauth2/v1/authorize (a minimal sign-in form in place of Okta's widget), the
authorization_code and refresh_token grants of /oauth2/v1/token (client_secret_basic or
client_secret_post, PKCE S256 required) and /oauth2/v1/keys. Error answers follow the shared Okta
OAuth contract. As on Okta, the ID token carries a `groups` claim when the `groups` scope was
requested, and a refresh token comes with the `offline_access` scope; a refresh answers a new ID
token with the user's groups as they are now, and stops working once the user is no longer
active or their OAuth tokens were revoked (deactivation, clearing sessions with oauthTokens=true).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from typing import Any
from urllib.parse import parse_qsl, unquote_plus, urlencode

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from clampdown_lab.okta_emulator.auth import OAuthError
from clampdown_lab.okta_emulator.state import OrgState, UserRecord, stable_id

AUTHORIZE_PARAMS = ("client_id", "redirect_uri", "response_type", "scope", "state", "nonce",
                    "code_challenge", "code_challenge_method")  # fmt: skip
SIGN_IN_STATUSES = frozenset({"ACTIVE"})  # SUSPENDED, DEPROVISIONED, LOCKED_OUT... cannot sign in
_INVALID_CODE = "The authorization code is invalid or has expired."
_CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")
_CLAIMS = ("iss", "ver", "sub", "aud", "iat", "exp", "jti", "auth_time", "amr", "idp", "nonce", "name",
           "preferred_username", "email", "email_verified", "groups")  # fmt: skip


@dataclass(frozen=True)
class OidcWebApp:
    """An OIDC web app: a confidential client that signs people in with the code flow."""

    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    label: str = "OIDC web app"


@dataclass(frozen=True)
class _Grant:
    """What an authorization code stands for, until it is redeemed or expires."""

    client_id: str
    redirect_uri: str
    user_id: str
    scopes: tuple[str, ...]
    nonce: str | None
    code_challenge: str
    auth_time: float
    expires_at: float


@dataclass(frozen=True)
class _RefreshGrant:
    """What a refresh token stands for: the client, the user and the scopes first granted."""

    client_id: str
    user_id: str
    scopes: tuple[str, ...]
    auth_time: float


_INVALID_REFRESH = "The refresh token is invalid or expired."


def _generate_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def load_signing_key(pem: str) -> rsa.RSAPrivateKey:
    """The org's token signing key from PEM (the lab keeps it, so restarts keep the JWKS)."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("the signing key must be an RSA private key")
    return key


@dataclass
class OidcProvider:
    """Registered OIDC web apps, outstanding authorization codes and the signing key."""

    signing_key: rsa.RSAPrivateKey = field(default_factory=_generate_key)
    apps: dict[str, OidcWebApp] = field(default_factory=dict)
    clock: Callable[[], float] = time.time
    code_lifetime: float = 300.0  # Okta: authorization codes are valid for five minutes
    id_token_lifetime: int = 3600
    codes: dict[str, _Grant] = field(default_factory=dict)
    refresh_tokens: dict[str, _RefreshGrant] = field(default_factory=dict)
    sign_ins: int = 0
    refreshes: int = 0

    def register(self, app: OidcWebApp) -> None:
        """Add or replace an OIDC web app."""
        self.apps[app.client_id] = app

    @property
    def key_id(self) -> str:
        public = self.signing_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.urlsafe_b64encode(hashlib.sha256(public).digest()).rstrip(b"=").decode()

    def jwks(self) -> dict[str, Any]:
        jwk: dict[str, Any] = jwt.algorithms.RSAAlgorithm.to_jwk(self.signing_key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "alg": "RS256", "kid": self.key_id, "use": "sig"}]}

    def issue_code(self, params: dict[str, str], user: UserRecord) -> str:
        """A single-use authorization code for a request already validated by `check_request`."""
        now = self.clock()
        for code, grant in list(self.codes.items()):  # forget the expired ones as we go
            if grant.expires_at <= now:
                del self.codes[code]
        code = secrets.token_urlsafe(32)
        self.codes[code] = _Grant(
            client_id=params["client_id"],
            redirect_uri=params["redirect_uri"],
            user_id=user.id,
            scopes=tuple(params["scope"].split()),
            nonce=params.get("nonce") or None,
            code_challenge=params["code_challenge"],
            auth_time=now,
            expires_at=now + self.code_lifetime,
        )
        self.sign_ins += 1
        return code

    def authenticate_client(self, form: dict[str, str], authorization: str | None) -> OidcWebApp:
        """The app calling /token, by client_secret_basic or client_secret_post."""
        from_header: tuple[str, str] | None = None
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() == "basic" and value:
            try:
                decoded = base64.b64decode(value, validate=True).decode()
            except ValueError:
                raise OAuthError(401, "invalid_client", "Invalid client credentials.") from None
            user, _, password = decoded.partition(":")
            from_header = (unquote_plus(user), unquote_plus(password))
        from_body = (form["client_id"], form["client_secret"]) if "client_secret" in form else None
        if from_header and (from_body or "client_assertion" in form):
            raise OAuthError(
                400,
                "invalid_request",
                "Can't supply multiple client credentials. Use one of the following: credentials in "
                "the Authorization header, credentials in the post body, or a `client_assertion` in "
                "the post body.",
            )
        given = from_header or from_body
        if given is None:
            raise OAuthError(401, "invalid_client", "No client credentials found")
        app = self.apps.get(given[0])
        if app is None:
            raise OAuthError(401, "invalid_client", "The client_id is not known.")
        if not hmac.compare_digest(given[1].encode(), app.client_secret.encode()):
            raise OAuthError(
                401, "invalid_client", "The client secret supplied for a confidential client is invalid."
            )
        return app

    def redeem(self, app: OidcWebApp, form: dict[str, str], issuer: str, state: OrgState) -> dict[str, Any]:
        """The token answer for an authorization_code grant; the code is spent whatever happens."""
        grant = self.codes.pop(form.get("code", ""), None)
        if grant is None or grant.expires_at <= self.clock():
            raise OAuthError(400, "invalid_grant", _INVALID_CODE)
        if grant.client_id != app.client_id:
            raise OAuthError(
                400,
                "invalid_grant",
                "The grant was issued to another client. Ensure that the `client_id` matches the one "
                "used at the authorize request.",
            )
        if form.get("redirect_uri") != grant.redirect_uri:
            raise OAuthError(
                400,
                "invalid_grant",
                "The 'redirect_uri' does not match the redirection URI used in the authorization request.",
            )
        verifier = form.get("code_verifier", "")
        if not verifier or not hmac.compare_digest(_s256(verifier), grant.code_challenge):
            raise OAuthError(400, "invalid_grant", "PKCE verification failed.")
        user = state.users.get(grant.user_id)
        if user is None or user.status not in SIGN_IN_STATUSES:
            raise OAuthError(400, "invalid_grant", _INVALID_CODE)  # suspended since signing in
        user.oauth_tokens += 1
        state.save()
        answer = {
            "token_type": "Bearer",
            "expires_in": self.id_token_lifetime,
            "access_token": secrets.token_urlsafe(32),
            "scope": " ".join(grant.scopes),
            "id_token": self._id_token(grant, user, issuer),
        }
        if "offline_access" in grant.scopes:
            refresh = secrets.token_urlsafe(32)
            self.refresh_tokens[refresh] = _RefreshGrant(
                app.client_id, user.id, grant.scopes, grant.auth_time
            )
            answer["refresh_token"] = refresh
        return answer

    def refresh(self, app: OidcWebApp, form: dict[str, str], issuer: str, state: OrgState) -> dict[str, Any]:
        """The token answer for a refresh_token grant: a new ID token with the user's groups now."""
        token = form.get("refresh_token", "")
        if not token:
            raise OAuthError(400, "invalid_request", "The 'refresh_token' parameter is required.")
        grant = self.refresh_tokens.get(token)
        if grant is None or grant.client_id != app.client_id:
            raise OAuthError(400, "invalid_grant", _INVALID_REFRESH)
        user = state.users.get(grant.user_id)
        if user is None or user.status not in SIGN_IN_STATUSES or user.oauth_tokens <= 0:
            del self.refresh_tokens[token]  # revoked with the user's tokens, or the user is gone
            raise OAuthError(400, "invalid_grant", _INVALID_REFRESH)
        scopes = grant.scopes
        if form.get("scope"):
            asked = tuple(form["scope"].split())
            if not set(asked) <= set(grant.scopes):
                raise OAuthError(
                    400, "invalid_scope", "The requested scope is invalid, unknown, or malformed."
                )
            scopes = asked
        self.refreshes += 1
        as_code = _Grant(app.client_id, "", user.id, scopes, None, "", grant.auth_time, 0.0)
        return {
            "token_type": "Bearer",
            "expires_in": self.id_token_lifetime,
            "access_token": secrets.token_urlsafe(32),
            "scope": " ".join(scopes),
            "refresh_token": token,  # Okta's default: the refresh token is not rotated
            "id_token": self._id_token(as_code, user, issuer),
        }

    def _id_token(self, grant: _Grant, user: UserRecord, issuer: str) -> str:
        now = int(self.clock())
        claims: dict[str, Any] = {
            "sub": user.id,
            "ver": 1,
            "iss": issuer,
            "aud": grant.client_id,
            "iat": now,
            "exp": now + self.id_token_lifetime,
            "jti": "ID." + secrets.token_urlsafe(24),
            "amr": ["pwd"],
            "idp": stable_id("00o", issuer),
            "auth_time": int(grant.auth_time),
        }
        if grant.nonce:
            claims["nonce"] = grant.nonce
        if "profile" in grant.scopes:
            claims["name"] = user.display_name
            claims["preferred_username"] = user.login
        if "email" in grant.scopes:
            claims["email"] = str(user.profile.get("email", user.login))
            claims["email_verified"] = True
        if "groups" in grant.scopes:
            claims["groups"] = list(user.groups)
        return jwt.encode(claims, self.signing_key, algorithm="RS256", headers={"kid": self.key_id})


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class _RequestRefused(Exception):
    """An /authorize request that cannot go back to the app: shown to the person as a page."""


class _RedirectError(Exception):
    """An /authorize error sent back to the app's redirect_uri as `error` and `error_description`."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class OidcEndpoints:
    """The Starlette handlers of the org authorization server."""

    def __init__(self, provider: OidcProvider, state: OrgState) -> None:
        self.provider = provider
        self.state = state

    @staticmethod
    def issuer(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    async def discovery(self, request: Request) -> Response:
        issuer = self.issuer(request)
        return JSONResponse(
            {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/oauth2/v1/authorize",
                "token_endpoint": f"{issuer}/oauth2/v1/token",
                "jwks_uri": f"{issuer}/oauth2/v1/keys",
                "response_types_supported": ["code"],
                "response_modes_supported": ["query"],
                "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile", "groups", "offline_access"],
                "token_endpoint_auth_methods_supported": list(_CLIENT_AUTH_METHODS),
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": list(_CLAIMS),
            }
        )

    async def keys(self, request: Request) -> Response:
        return JSONResponse(self.provider.jwks(), headers={"Cache-Control": "max-age=3600, must-revalidate"})

    async def authorize(self, request: Request) -> Response:
        """GET shows the sign-in form; POST (the form, with username and password) signs in."""
        if request.method == "GET":
            params = dict(request.query_params)
        else:
            params = dict(parse_qsl((await request.body()).decode()))
        try:
            app = self._check_client(params)
        except _RequestRefused as exc:
            return _page("Bad request", f"<p>{escape(str(exc))}</p>", 400)
        try:
            self._check_request(params)
        except _RedirectError as exc:
            return _back_to_app(params, {"error": exc.error, "error_description": exc.description})
        if request.method == "GET":
            return _sign_in_form(app, params, None, 200)
        return self._sign_in(request, app, params)

    def _sign_in(self, request: Request, app: OidcWebApp, params: dict[str, str]) -> Response:
        login = params.get("username", "").strip()
        user = self.state.find_by_login(login) if login else None
        request_id = str(request.scope.get("state", {}).get("request_id", ""))
        ip = request.client.host if request.client else "127.0.0.1"
        agent = request.headers.get("user-agent", "")
        reason: str | None = None
        if user is None or not user.check_password(params.get("password", "")):
            reason = "INVALID_CREDENTIALS"
        elif user.status not in SIGN_IN_STATUSES:
            reason = f"VERIFICATION_ERROR: user is {user.status}"
        self.state.log_sign_in(login, user, reason, request_id, ip, agent)
        if reason is not None or user is None:
            # Okta's widget says no more than this, whatever the cause.
            return _sign_in_form(app, params, "Unable to sign in", 401)
        user.sessions += 1
        code = self.provider.issue_code(params, user)
        return _back_to_app(params, {"code": code, "state": params["state"]})

    def _check_client(self, params: dict[str, str]) -> OidcWebApp:
        app = self.provider.apps.get(params.get("client_id", ""))
        if app is None:
            raise _RequestRefused("Invalid value for 'client_id' parameter.")
        if params.get("redirect_uri") not in app.redirect_uris:
            raise _RequestRefused(
                "The 'redirect_uri' parameter must be a Login redirect URI in the client app settings."
            )
        return app

    def _check_request(self, params: dict[str, str]) -> None:
        if params.get("response_type") != "code":
            raise _RedirectError(
                "unsupported_response_type", "The response type is not supported by the authorization server."
            )
        if "openid" not in params.get("scope", "").split():
            raise _RedirectError(
                "invalid_scope", "The authentication request has an invalid 'scope' parameter."
            )
        if not params.get("state"):
            raise _RedirectError(
                "invalid_request", "The authentication request has an empty 'state' parameter."
            )
        if not params.get("code_challenge") or params.get("code_challenge_method") != "S256":
            raise _RedirectError(
                "invalid_request", "PKCE code challenge is required, with code_challenge_method S256."
            )


def _back_to_app(params: dict[str, str], answer: dict[str, str]) -> Response:
    if "state" not in answer and params.get("state"):
        answer = {**answer, "state": params["state"]}
    separator = "&" if "?" in params["redirect_uri"] else "?"
    response = RedirectResponse(f"{params['redirect_uri']}{separator}{urlencode(answer)}", status_code=302)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _page(title: str, body: str, status: int) -> HTMLResponse:
    html = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"</head><body><main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _sign_in_form(app: OidcWebApp, params: dict[str, str], error: str | None, status: int) -> HTMLResponse:
    hidden = "".join(
        f'<input type="hidden" name="{name}" value="{escape(params[name])}">'
        for name in AUTHORIZE_PARAMS
        if params.get(name)
    )
    alert = f'<p role="alert">{escape(error)}</p>' if error else ""
    body = (
        f"<p>Sign in to {escape(app.label)}</p>{alert}"
        f'<form method="post" action="/oauth2/v1/authorize">{hidden}'
        '<label>Username <input name="username" autocomplete="username" required></label>'
        '<label>Password <input name="password" type="password" autocomplete="current-password" '
        'required></label><button type="submit">Sign in</button></form>'
    )
    return _page("Okta emulator sign-in", body, status)
