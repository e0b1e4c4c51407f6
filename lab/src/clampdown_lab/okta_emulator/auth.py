"""Who may call the emulated org: SSWS API tokens and OAuth 2.0 service apps (private_key_jwt)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import jwt

from clampdown_lab.okta_emulator.state import Actor, OktaApiError

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_ASSERTION_ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512"]
ALL_SCOPES = frozenset(
    {
        "okta.users.read",
        "okta.users.manage",
        "okta.logs.read",
        "okta.userRisk.read",
        "okta.userRisk.manage",
        "okta.universalLogout.manage",
        "okta.authorizationServers.read",
        "okta.roles.read",
        "okta.orgs.read",
        "okta.securityEventsProviders.read",
        "okta.securityEventsProviders.manage",
        "ssf.read",
        "ssf.manage",
    }
)
# The admin role a caller holds when the lab names none: the emulator lets every caller do
# everything, as an org's super administrator may.
DEFAULT_ROLES = ("SUPER_ADMIN",)


class OAuthError(Exception):
    """An OAuth error answer of the token endpoint: `{"error": ..., "error_description": ...}`."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description


@dataclass(frozen=True)
class ServiceApp:
    """An API service app: its public key (PEM) and the scopes granted to it."""

    client_id: str
    public_key_pem: str
    scopes: frozenset[str]
    key_id: str | None = None


@dataclass(frozen=True)
class Principal:
    """An authenticated caller and the scopes it holds (all of them for an API token)."""

    actor: Actor
    scopes: frozenset[str]


@dataclass
class _AccessToken:
    principal: Principal
    expires_at: float


@dataclass
class Authenticator:
    """Checks `Authorization` headers and issues access tokens at /oauth2/v1/token."""

    clock: Callable[[], float] = time.time
    api_tokens: dict[str, Actor] = field(default_factory=dict)
    apps: dict[str, ServiceApp] = field(default_factory=dict)
    token_lifetime: int = 3600  # Okta fixes this at one hour; tests shorten it
    access_tokens: dict[str, _AccessToken] = field(default_factory=dict)
    seen_jti: set[str] = field(default_factory=set)
    tokens_issued: int = 0
    # Standard admin role types by actor id (an API token owner's user id, a service app's client
    # id); a caller not named holds DEFAULT_ROLES. Reported by the role assignment reads only.
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def roles_of(self, actor_id: str) -> tuple[str, ...]:
        """The admin role types `actor_id` holds."""
        return self.roles.get(actor_id, DEFAULT_ROLES)

    def token_owner(self, user_id: str) -> Actor | None:
        """The admin user an API token acts as, by user id; None when no token is that user's."""
        return next((a for a in self.api_tokens.values() if a.id == user_id), None)

    def authenticate(self, header: str | None) -> Principal:
        """The caller of an API request. As a real org answers: a missing or malformed header
        (no `SSWS <token>` or `Bearer <token>`) is 403 E0000005; a well-formed one naming no
        valid token is 401 E0000011."""
        scheme, _, value = (header or "").partition(" ")
        if scheme not in ("SSWS", "Bearer") or not value.strip():
            raise OktaApiError(403, "E0000005", "Invalid session")
        if scheme == "SSWS" and value in self.api_tokens:
            return Principal(self.api_tokens[value], ALL_SCOPES)
        if scheme == "Bearer":
            token = self.access_tokens.get(value)
            if token is not None and token.expires_at > self.clock():
                return token.principal
        raise OktaApiError(401, "E0000011", "Invalid token provided")

    def expire_access_tokens(self) -> None:
        """Make every issued access token expire now (tests of the connector's refresh)."""
        for token in self.access_tokens.values():
            token.expires_at = 0.0

    def issue(self, form: dict[str, str], token_url: str) -> dict[str, object]:
        """Answer a client_credentials request authenticated by a private_key_jwt assertion."""
        if form.get("grant_type") != "client_credentials":
            raise OAuthError(400, "unsupported_grant_type", "The authorization grant type is not supported.")
        if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE or not form.get("client_assertion"):
            raise OAuthError(
                401,
                "invalid_client",
                "Client authentication failed: a private_key_jwt assertion is required.",
            )
        assertion = form["client_assertion"]
        try:
            unverified = jwt.decode(assertion, options={"verify_signature": False})
        except jwt.PyJWTError:
            raise OAuthError(401, "invalid_client", "The client_assertion is not a valid JWT.") from None
        app = self.apps.get(str(unverified.get("iss", "")))
        if app is None:
            raise OAuthError(401, "invalid_client", "The client_id in the assertion is not known.")
        try:
            claims = jwt.decode(
                assertion,
                app.public_key_pem,
                algorithms=_ASSERTION_ALGORITHMS,
                audience=token_url,
                issuer=app.client_id,
                options={"require": ["exp", "iss", "sub", "aud"]},
            )
        except jwt.PyJWTError as exc:
            raise OAuthError(401, "invalid_client", f"The client_assertion is not valid: {exc}") from None
        if claims["sub"] != app.client_id:
            raise OAuthError(401, "invalid_client", "The client_assertion 'sub' must be the client_id.")
        if claims["exp"] > self.clock() + 3600 + 60:
            raise OAuthError(
                400, "invalid_client", "The client_assertion expires more than one hour from now."
            )
        jti = claims.get("jti")
        if jti is not None:
            if jti in self.seen_jti:
                raise OAuthError(400, "invalid_client", "The client_assertion 'jti' was already used.")
            self.seen_jti.add(jti)
        requested = frozenset(form.get("scope", "").split())
        if not requested:
            raise OAuthError(400, "invalid_scope", "No scopes were requested.")
        if not requested <= app.scopes:
            missing = " ".join(sorted(requested - app.scopes))
            raise OAuthError(
                400, "invalid_scope", f"The following scopes are not granted to the app: {missing}"
            )
        value = secrets.token_urlsafe(32)
        actor = Actor(app.client_id, "PublicClientApp", app.client_id, f"Service app {app.client_id}")
        self.access_tokens[value] = _AccessToken(
            Principal(actor, requested), self.clock() + self.token_lifetime
        )
        self.tokens_issued += 1
        return {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "access_token": value,
            "scope": " ".join(sorted(requested)),
        }


def require_scope(principal: Principal, scope: str) -> None:
    """403 E0000006 when an OAuth caller lacks the scope an operation needs."""
    if scope not in principal.scopes:
        raise OktaApiError(
            403,
            "E0000006",
            "You do not have permission to perform the requested action",
            (f"The access token lacks the scope {scope}.",),
        )
