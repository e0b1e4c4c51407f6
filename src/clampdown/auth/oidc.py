"""OpenID Connect sign-in (authorization code with PKCE) against Entra ID or Okta.

The pending login (state, nonce, PKCE verifier) travels in a short-lived cookie signed with the
server's session secret, so any instance behind a balancer can finish a login any other started.
The ID token is checked against the provider's published keys: signature, issuer, audience,
expiry and nonce. The provider's groups or app roles are mapped to Clampdown roles by config.

With the `offline_access` scope the provider also hands a refresh token. It is kept with the
console session, sealed (encrypted and authenticated) under a key derived from the session
secret, and used to ask the provider again, every `sso.recheck_seconds`, whether the person still
signs in and which groups they are in now.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
import jwt
from cryptography.fernet import Fernet, InvalidToken

from clampdown.auth.compare import same_secret
from clampdown.auth.redirects import safe_next
from clampdown.auth.service import Unauthenticated
from clampdown.config import SsoSettings
from clampdown.errors import ConfigError, TransientError

PENDING_LIFETIME = 600  # seconds a browser has to come back from the identity provider
CLOCK_SKEW = 120  # seconds our clock and the identity provider's may disagree (iat, exp)


@dataclass(frozen=True)
class SsoIdentity:
    """Who the identity provider says signed in, and the Clampdown roles that maps to."""

    username: str
    display_name: str | None
    roles: frozenset[str]
    provider_groups: tuple[str, ...]
    # The directories the roles hold in (sso.directory_mapping); None: every one; empty: none.
    scope: frozenset[str] | None = None


@dataclass(frozen=True)
class SsoSignIn:
    """A finished sign-in: who, where the browser goes next, and the refresh token if one came."""

    identity: SsoIdentity
    next_url: str
    refresh_token: str | None


class IdentityProviderRefused(Unauthenticated):
    """The identity provider no longer accepts the person's refresh token: they are deactivated,
    suspended, deleted, or their tokens were revoked."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class OidcClient:
    """One configured identity provider."""

    def __init__(self, settings: SsoSettings, secret: bytes, redirect_url: str) -> None:
        self.settings = settings
        self._secret = secret
        self.redirect_url = redirect_url
        verify: bool | str = settings.ca_file or True
        if settings.tls_verify_disabled_unsafe:
            verify = False
        self._http = httpx.AsyncClient(verify=verify, timeout=15)
        self._discovery: dict[str, Any] | None = None
        self._keys: jwt.PyJWKSet | None = None
        sealing_key = hashlib.sha256(b"clampdown sso refresh token\x00" + secret).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(sealing_key))

    def seal(self, refresh_token: str) -> str:
        """The refresh token encrypted for storage: the database alone does not reveal it."""
        return self._fernet.encrypt(refresh_token.encode()).decode()

    def unseal(self, sealed: str) -> str | None:
        """The refresh token, or None if it was sealed under another secret or altered."""
        try:
            return self._fernet.decrypt(sealed.encode()).decode()
        except (InvalidToken, ValueError):
            return None

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = await self._http.get(url)
        except httpx.HTTPError as exc:
            raise TransientError(f"identity provider unreachable at {url}: {exc}") from None
        if response.status_code != 200:
            raise TransientError(f"identity provider answered {response.status_code} for {url}")
        data: dict[str, Any] = response.json()
        return data

    async def discovery(self) -> dict[str, Any]:
        if self._discovery is None:
            url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
            found = await self._get_json(url)
            if found.get("issuer") != self.settings.issuer.rstrip("/"):
                raise ConfigError(f"sso.issuer: the provider calls itself {found.get('issuer')!r}")
            self._discovery = found
        return self._discovery

    def _sign(self, payload: dict[str, Any]) -> str:
        body = _b64(json.dumps(payload, separators=(",", ":")).encode())
        mac = _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())
        return f"{body}.{mac}"

    def _unsign(self, cookie: str | None) -> dict[str, Any]:
        body, _, mac = (cookie or "").partition(".")
        expected = _b64(hmac.new(self._secret, body.encode(), hashlib.sha256).digest())
        if not body or not same_secret(mac, expected):
            raise Unauthenticated("sign-in was not started here, or its cookie was altered: start again")
        payload: dict[str, Any] = json.loads(_unb64(body))
        if payload.get("exp", 0) < time.time():
            raise Unauthenticated("sign-in took too long: start again")
        return payload

    async def start(self, next_url: str | None = None) -> tuple[str, str]:
        """(URL to send the browser to, signed cookie holding the pending login); the browser
        lands on `next_url` afterwards if it is a path on this site."""
        meta = await self.discovery()
        state, nonce, verifier = (
            secrets.token_urlsafe(24),
            secrets.token_urlsafe(24),
            secrets.token_urlsafe(48),
        )
        challenge = _b64(hashlib.sha256(verifier.encode()).digest())
        query = urlencode(
            {
                "response_type": "code",
                "client_id": self.settings.client_id,
                "redirect_uri": self.redirect_url,
                "scope": " ".join(self.settings.scopes),
                "state": state,
                "nonce": nonce,
                "code_challenge": challenge,
                "code_challenge_method": "S256",
            }
        )
        pending = {
            "state": state,
            "nonce": nonce,
            "verifier": verifier,
            "next": safe_next(next_url),
            "exp": time.time() + PENDING_LIFETIME,
        }
        return f"{meta['authorization_endpoint']}?{query}", self._sign(pending)

    async def finish(self, code: str | None, state: str | None, cookie: str | None) -> SsoSignIn:
        """Exchange the code, check the ID token, map groups to roles."""
        pending = self._unsign(cookie)
        if not state or not same_secret(state, str(pending["state"])):
            raise Unauthenticated("sign-in state does not match: start again")
        if not code:
            raise Unauthenticated("the identity provider returned no authorization code")
        grant = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_url,
            "code_verifier": pending["verifier"],
        }
        answer = await self._token(grant, Unauthenticated, "the identity provider refused the sign-in")
        claims = await self._verify(str(answer.get("id_token", "")), str(pending["nonce"]))
        refresh = answer.get("refresh_token")
        return SsoSignIn(
            self._identity(claims), safe_next(pending.get("next")), str(refresh) if refresh else None
        )

    async def refresh(self, refresh_token: str) -> tuple[SsoIdentity, str]:
        """Who the refresh token's person is now, by a new ID token; and the refresh token to keep
        (the same, or its successor where the provider rotates them). IdentityProviderRefused when
        the provider no longer accepts it; TransientError when it cannot be asked."""
        grant = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        answer = await self._token(grant, IdentityProviderRefused, "the identity provider ended the sign-in")
        claims = await self._verify(str(answer.get("id_token", "")), None)
        return self._identity(claims), str(answer.get("refresh_token") or refresh_token)

    async def _token(
        self, grant: dict[str, str], refused: type[Unauthenticated], refused_text: str
    ) -> dict[str, Any]:
        meta = await self.discovery()
        try:
            response = await self._http.post(
                meta["token_endpoint"],
                data=grant,
                auth=(self.settings.client_id, self.settings.client_secret.get_secret_value()),
            )
        except httpx.HTTPError as exc:
            raise TransientError(f"identity provider unreachable: {exc}") from None
        if response.status_code >= 500 or response.status_code == 429:
            raise TransientError(f"identity provider answered {response.status_code} at its token endpoint")
        if response.status_code != 200:
            try:
                detail = str(response.json().get("error_description", ""))
            except ValueError:  # not JSON: a proxy's error page
                detail = f"HTTP {response.status_code}"
            raise refused(f"{refused_text}: {detail}".rstrip(": "))
        answer: dict[str, Any] = response.json()
        return answer

    async def _signing_key(self, id_token: str) -> jwt.PyJWK:
        """The provider's key for this token; the key set is fetched again for a key not seen
        before, as providers rotate their keys."""
        kid = jwt.get_unverified_header(id_token).get("kid")
        for attempt in (1, 2):
            if self._keys is None or attempt == 2:
                meta = await self.discovery()
                self._keys = jwt.PyJWKSet.from_dict(await self._get_json(meta["jwks_uri"]))
            found = [k for k in self._keys.keys if kid is None or k.key_id == kid]
            if found:
                return found[0]
        raise jwt.InvalidKeyError(f"the provider publishes no key {kid!r}")

    async def _verify(self, id_token: str, nonce: str | None) -> dict[str, Any]:
        """The ID token's claims once signature, issuer, audience and expiry hold; and its nonce
        is this sign-in's (a refreshed ID token has none to check, `nonce` None)."""
        meta = await self.discovery()
        try:
            key = await self._signing_key(id_token)
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key=key.key,
                algorithms=["RS256", "RS384", "RS512", "ES256", "ES384"],
                audience=self.settings.client_id,
                issuer=meta["issuer"],
                options={"require": ["exp", "iat", "sub"]},
                leeway=CLOCK_SKEW,
            )
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"the ID token is not valid: {exc}") from None
        if nonce is not None and not same_secret(str(claims.get("nonce", "")), nonce):
            raise Unauthenticated("the ID token's nonce does not match this sign-in")
        return claims

    def _identity(self, claims: dict[str, Any]) -> SsoIdentity:
        username = str(claims.get(self.settings.username_claim) or claims.get("email") or claims["sub"])
        raw = claims.get(self.settings.roles_claim) or []
        groups = tuple(str(g) for g in (raw if isinstance(raw, list) else [raw]))
        roles = frozenset(r for g in groups for r in self.settings.role_mapping.get(g, []))
        return SsoIdentity(username, claims.get("name"), roles, groups, self._scope(groups))

    def _scope(self, groups: tuple[str, ...]) -> frozenset[str] | None:
        mapping = self.settings.directory_mapping
        if not mapping:
            return None
        directories = {d for g in groups for d in mapping.get(g, [])}
        return None if "*" in directories else frozenset(directories)
