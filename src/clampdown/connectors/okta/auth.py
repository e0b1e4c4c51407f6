"""The two ways Okta accepts an action account: an SSWS API token, or an OAuth 2.0 service app.

The service app authenticates with a private_key_jwt client assertion at the org authorization
server (`/oauth2/v1/token`); the access token is cached until shortly before it expires.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Protocol

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from clampdown.errors import ActionAccountError, ConfigError, TransientError

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


class OktaAuth(Protocol):
    """Gives the Authorization header value for the next request."""

    async def header(self, http: httpx.AsyncClient) -> str:
        """The header value, fetching a new access token first if needed."""
        ...

    def invalidate(self, header: str) -> bool:
        """Forget a credential Okta rejected; True if asking again may give a working one."""
        ...


class ApiTokenAuth:
    """`Authorization: SSWS {token}`."""

    def __init__(self, token: str) -> None:
        self._value = f"SSWS {token}"

    async def header(self, http: httpx.AsyncClient) -> str:
        return self._value

    def invalidate(self, header: str) -> bool:
        return False  # an API token does not renew itself


class ServiceAppAuth:
    """Client-credentials tokens for an API service app, shared by every task of the connector."""

    def __init__(
        self,
        org_url: str,
        client_id: str,
        private_key_pem: str,
        scopes: list[str],
        key_id: str | None = None,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = 60.0,
    ) -> None:
        self.token_url = f"{org_url}/oauth2/v1/token"
        self.client_id = client_id
        self.scopes = " ".join(scopes)
        self.key_id = key_id
        self.clock = clock
        self.refresh_margin = refresh_margin
        try:
            self._key = load_pem_private_key(private_key_pem.encode(), password=None)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"providers.okta.private_key: not a usable PEM private key ({exc})") from None
        if isinstance(self._key, rsa.RSAPrivateKey):
            self._algorithm = "RS256"
        elif isinstance(self._key, ec.EllipticCurvePrivateKey) and self._key.curve.name in _EC_ALGORITHMS:
            self._algorithm = _EC_ALGORITHMS[self._key.curve.name]
        else:
            raise ConfigError("providers.okta.private_key: Okta accepts RSA or EC (P-256/384/521) keys only")
        self._lock = asyncio.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self.tokens_fetched = 0

    def client_assertion(self) -> str:
        """A signed JWT proving the app's identity to the token endpoint, valid five minutes."""
        now = int(self.clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.token_url,
            "iat": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
        }
        headers = {"kid": self.key_id} if self.key_id else None
        return jwt.encode(claims, self._key, algorithm=self._algorithm, headers=headers)  # type: ignore[arg-type]

    async def header(self, http: httpx.AsyncClient) -> str:
        if self._token is None or self.clock() >= self._expires_at:
            async with self._lock:  # one refresh for all concurrent tasks
                if self._token is None or self.clock() >= self._expires_at:
                    await self._fetch(http)
        return f"Bearer {self._token}"

    def invalidate(self, header: str) -> bool:
        if header == f"Bearer {self._token}":
            self._token = None
        return True

    async def _fetch(self, http: httpx.AsyncClient) -> None:
        form = {
            "grant_type": "client_credentials",
            "scope": self.scopes,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(),
        }
        try:
            response = await http.post(self.token_url, data=form, headers={"Accept": "application/json"})
        except httpx.TransportError as exc:
            raise TransientError(f"Okta's token endpoint did not answer: {exc}") from None
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(
                f"Okta's token endpoint answered HTTP {response.status_code}; try again later"
            )
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or "access_token" not in body:
            reason = body.get("error_description") or body.get("error") or f"HTTP {response.status_code}"
            raise ActionAccountError(
                f"Okta refused a token to service app {self.client_id}: {reason}. Check the app's client id, "
                f"its public key, and that the scopes {self.scopes} are granted to it."
            )
        self._token = str(body["access_token"])
        lifetime = float(body.get("expires_in", 3600))
        self._expires_at = self.clock() + max(lifetime - self.refresh_margin, lifetime / 2)
        self.tokens_fetched += 1
