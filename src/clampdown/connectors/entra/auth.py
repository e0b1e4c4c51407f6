"""Access tokens for Graph from MSAL's confidential client (client credentials, secret or
certificate). MSAL is blocking, so it runs in a worker thread behind an async interface."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import msal  # type: ignore[import-untyped]
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from clampdown.connectors.entra.settings import EntraSettings
from clampdown.errors import ActionAccountError, ConfigError, TransientError

# Renew this long before expiry, so a token never expires in flight.
RENEW_MARGIN_SECONDS = 300.0


def _certificate_credential(settings: EntraSettings) -> dict[str, Any]:
    """MSAL's certificate credential from one PEM file holding the key and the certificate."""
    assert settings.certificate_path is not None
    try:
        pem = settings.certificate_path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"providers.entra.certificate_path: cannot read {settings.certificate_path}: {exc.strerror}"
        ) from None
    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        raise ConfigError(
            f"providers.entra.certificate_path: {settings.certificate_path} holds no PEM "
            "certificate (it must hold the private key and the certificate)"
        ) from None
    if b"PRIVATE KEY-----" not in pem:
        raise ConfigError(
            f"providers.entra.certificate_path: {settings.certificate_path} holds no private key"
        )
    credential: dict[str, Any] = {
        "private_key": pem.decode(),
        # With the certificate MSAL signs PS256 and sends x5t#S256, as Entra ID now documents.
        "public_certificate": cert.public_bytes(serialization.Encoding.PEM).decode(),
    }
    if settings.certificate_password is not None:
        credential["passphrase"] = settings.certificate_password.get_secret_value()
    return credential


class _Session(requests.Session):
    """MSAL's HTTP session with our CA file and timeout applied to every request.

    requests lets REQUESTS_CA_BUNDLE override a session's `verify`, so pass it per request.
    """

    def __init__(self, verify: str | bool, timeout: float) -> None:
        super().__init__()
        self.verify = verify
        self._timeout = timeout

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("verify", self.verify)
        kwargs.setdefault("timeout", self._timeout)
        return super().request(*args, **kwargs)


class TokenSource:
    """Hands out a valid Graph access token, shared by every concurrent task of the connector."""

    def __init__(self, settings: EntraSettings) -> None:
        self.settings = settings
        self._app: msal.ConfidentialClientApplication | None = None
        self._session: _Session | None = None
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()
        self.acquired = 0  # tokens obtained from the identity platform (tests, benchmarks)

    async def token(self) -> str:
        """A token valid for at least a few more minutes."""
        if self._token is not None and time.monotonic() < self._expires_at:
            return self._token
        async with self._lock:
            if self._token is None or time.monotonic() >= self._expires_at:
                await asyncio.to_thread(self._acquire)
            assert self._token is not None
            return self._token

    async def invalidate(self, token: str) -> None:
        """Forget `token` (Graph rejected it): the next call gets a new one from the identity platform."""
        async with self._lock:
            if self._token == token:
                self._token, self._expires_at = None, 0.0
                if self._app is not None:
                    await asyncio.to_thread(self._forget_cached_tokens)

    def close(self) -> None:
        """Close MSAL's HTTP connections."""
        if self._session is not None:
            self._session.close()

    def _forget_cached_tokens(self) -> None:
        assert self._app is not None
        cache = self._app.token_cache
        for item in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
            cache.remove_at(item)

    def _build_app(self) -> msal.ConfidentialClientApplication:
        settings = self.settings
        credential: str | dict[str, Any]
        if settings.client_secret is not None:
            credential = settings.client_secret.get_secret_value()
        else:
            credential = _certificate_credential(settings)
        authority = f"{settings.authority_host.rstrip('/')}/{settings.tenant_id}"
        verify: str | bool = str(settings.ca_bundle) if settings.ca_bundle else True
        self._session = self._session or _Session(verify, settings.timeout_seconds)
        try:
            return msal.ConfidentialClientApplication(
                settings.client_id,
                client_credential=credential,
                authority=authority,
                http_client=self._session,
                instance_discovery=settings.instance_discovery,
            )
        except requests.RequestException as exc:
            raise TransientError(f"cannot reach the Entra ID authority {authority}: {exc}") from None
        except ValueError as exc:
            raise ActionAccountError(f"Entra ID authority {authority} refused discovery: {exc}") from None

    def _acquire(self) -> None:
        if self._app is None:
            self._app = self._build_app()
        try:
            result = self._app.acquire_token_for_client(scopes=[self.settings.graph_scope])
        except requests.RequestException as exc:
            raise TransientError(f"cannot reach the Entra ID token endpoint: {exc}") from None
        if "access_token" not in result:
            raise self._token_error(result)
        self.acquired += 1
        lifetime = float(result.get("expires_in", 3599))
        self._token = str(result["access_token"])
        self._expires_at = time.monotonic() + max(lifetime - RENEW_MARGIN_SECONDS, lifetime / 2)

    def _token_error(self, result: dict[str, Any]) -> Exception:
        error = str(result.get("error", "unknown_error"))
        description = str(result.get("error_description", "")).split(" Trace ID:")[0]
        where = f"app {self.settings.client_id} in tenant {self.settings.tenant_id}"
        if error in ("temporarily_unavailable", "server_error"):
            return TransientError(f"Entra ID could not issue a token for {where}: {description}")
        hint = {
            "invalid_client": "check the client secret or certificate configured for the app registration",
            "unauthorized_client": "check client_id: the app registration is not in this tenant",
            "invalid_tenant": "check tenant_id",
            "invalid_scope": "check graph_scope (it must end with /.default)",
        }.get(error, "check the app registration")
        return ActionAccountError(
            f"Entra ID refused a token for {where} ({error}): {description}; {hint}", code="action_account"
        )
