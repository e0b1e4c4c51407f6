"""The transmitter's signing keys: its SSF configuration metadata gives `jwks_uri` (SSF 1.0
section 7), whose JWKS is cached and fetched again once when a SET names a key it does not hold
(the transmitter rotated its keys): at most once every MIN_REFETCH_SECONDS, so a stream of forged
kids cannot make Clampdown hammer the transmitter."""

from __future__ import annotations

import asyncio
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import jwt

from clampdown.config import SsfReceiverSettings
from clampdown.errors import InvalidInput, TransientError

INVALID_KEY = "invalid_key"
WELL_KNOWN = "/.well-known/ssf-configuration"
MIN_REFETCH_SECONDS = 10.0
MAX_DOCUMENT = 1 << 20  # bytes of metadata or JWKS
TIMEOUT = 10.0


def well_known_url(issuer: str) -> str:
    """Where an issuer's SSF configuration metadata is: the well-known path inserted between the
    issuer's host and its path (SSF 1.0 section 7.2.1, as RFC 8414 does)."""
    parts = urlsplit(issuer)
    return urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN + parts.path.rstrip("/"), "", ""))


def configuration_url(settings: SsfReceiverSettings) -> str:
    """Where the transmitter's metadata is: configured, or its issuer's well-known address."""
    return settings.configuration_url or well_known_url(settings.issuer)


class JwksCache:
    """The transmitter's current keys, fetched on first use."""

    def __init__(self, settings: SsfReceiverSettings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http
        self.min_refetch_seconds = MIN_REFETCH_SECONDS
        self._keys: list[dict[str, Any]] | None = None
        # SSF 1.0 section 7.1: the complex subject members a receiver MUST interpret when present.
        self.critical_members: frozenset[str] = frozenset()
        self._refetched_at: float | None = None  # the last fetch an unknown kid caused
        self._lock = asyncio.Lock()

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = await self.http.get(url, timeout=TIMEOUT, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise TransientError(f"cannot fetch the transmitter's {what} at {url}: {exc}",
                                 code="transmitter_unreachable") from None  # fmt: skip
        if response.status_code != 200 or len(response.content) > MAX_DOCUMENT:
            raise TransientError(f"the transmitter's {what} at {url} answered {response.status_code}",
                                 code="transmitter_unreachable")  # fmt: skip
        try:
            found = response.json()
        except ValueError:
            found = None
        if not isinstance(found, dict):
            raise TransientError(f"the transmitter's {what} at {url} is not a JSON object",
                                 code="transmitter_unreachable")  # fmt: skip
        return found

    async def _fetch(self) -> None:
        url = configuration_url(self.settings)
        metadata = await self._get_json(url, "SSF configuration")
        if metadata.get("issuer") != self.settings.issuer:  # SSF 1.0 section 7.2.3
            raise TransientError(
                f"the SSF configuration at {url} names issuer {metadata.get('issuer')!r}, not "
                f"{self.settings.issuer!r}: it is not used", code="transmitter_misconfigured",
            )  # fmt: skip
        jwks_uri = metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise TransientError(f"the SSF configuration at {url} has no jwks_uri",
                                 code="transmitter_misconfigured")  # fmt: skip
        keys = (await self._get_json(jwks_uri, "JWKS")).get("keys")
        if not isinstance(keys, list):
            raise TransientError(f"the JWKS at {jwks_uri} has no keys", code="transmitter_misconfigured")
        self._keys = [k for k in keys if isinstance(k, dict) and k.get("use", "sig") == "sig"]
        critical = metadata.get("critical_subject_members")
        listed = critical if isinstance(critical, list) else []
        self.critical_members = frozenset(m for m in listed if isinstance(m, str))

    def _find(self, kid: str | None, alg: str) -> dict[str, Any] | None:
        keys = self._keys or []
        if kid is not None:
            return next((k for k in keys if k.get("kid") == kid), None)
        kty = "RSA" if alg.startswith("RS") else "EC"
        fitting = [k for k in keys if k.get("kty") == kty and k.get("alg", alg) == alg]
        return fitting[0] if len(fitting) == 1 else None

    async def key(self, kid: str | None, alg: str) -> jwt.PyJWK:
        """The key `kid` names (or, without a kid, the one key that fits `alg`), refetching the
        JWKS once when it is not held; InvalidInput (invalid_key) when there is none."""
        async with self._lock:
            if self._keys is None:
                await self._fetch()
            found = self._find(kid, alg)
            last = self._refetched_at
            if found is None and (last is None or time.monotonic() - last >= self.min_refetch_seconds):
                self._refetched_at = time.monotonic()
                await self._fetch()
                found = self._find(kid, alg)
        if found is None:
            named = f"key {kid!r}" if kid is not None else f"a single {alg} key (the SET names no kid)"
            raise InvalidInput(f"the transmitter's JWKS holds no {named}", code=INVALID_KEY)
        if found.get("alg", alg) != alg:
            raise InvalidInput(f"key {kid!r} is for {found.get('alg')}, not {alg}", code=INVALID_KEY)
        try:
            return jwt.PyJWK(found, algorithm=alg)
        except jwt.PyJWKError as exc:
            raise InvalidInput(f"key {kid!r} cannot verify {alg}: {exc}", code=INVALID_KEY) from None
