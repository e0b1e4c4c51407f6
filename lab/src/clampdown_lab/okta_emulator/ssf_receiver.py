"""The org as an SSF receiver, as Okta's SSFReceiver and SSFSecurityEventToken APIs document it.

Security events providers (/api/v1/security-events-providers) name a transmitter by its
`/.well-known/ssf-configuration` or by issuer and JWKS URL; a provider publishes SETs to
POST /security/api/v1/security-events (no authentication: the SET's signature is the proof). A SET
is accepted (202) when an ACTIVE provider has its `iss`, its signature verifies against the
provider's JWKS (fetched over HTTP, cached, fetched again once for an unknown `kid`), its header says
typ secevent+jwt and RS256 or ES256, its `aud` is the org, its `iat` is recent and its `jti` new;
else 400 with a SecurityEventTokenError (`err` as RFC 8935 section 2.4 names them). An accepted
CAEP session-revoked about a user of the org clears that user's sessions, as Okta "performs the
appropriate action"; any other event type is recorded only (SecurityEventTokenRequestJwtEvents lists
some event types but does not forbid others: no additionalProperties).
"""

from __future__ import annotations

import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from clampdown_lab.okta_emulator.auth import Authenticator, require_scope
from clampdown_lab.okta_emulator.ssf_transmitter import SESSION_REVOKED, SET_MEDIA_TYPE
from clampdown_lab.okta_emulator.state import Actor, OktaApiError, OrgState, UserRecord, new_error_id

ALGORITHMS = ("RS256", "ES256")
MAX_AGE = 300.0  # seconds: an older `iat` is refused
MAX_SKEW = 60.0  # seconds an `iat` may be ahead of the org's clock
MAX_SET_BYTES = 64 * 1024


class SetRefused(Exception):
    """A SET the org does not accept: the `err` code of RFC 8935 (Okta's enum) and why."""

    def __init__(self, err: str, description: str) -> None:
        super().__init__(description)
        self.err = err
        self.description = description


@dataclass
class SecurityEventsProvider:
    """A transmitter the org accepts SETs from."""

    id: str
    name: str
    type: str
    issuer: str
    jwks_url: str
    well_known_url: str | None = None
    status: str = "ACTIVE"

    def to_json(self, base_url: str) -> dict[str, Any]:
        href = f"{base_url}/api/v1/security-events-providers/{self.id}"
        settings: dict[str, Any] = {"issuer": self.issuer, "jwks_url": self.jwks_url}
        if self.well_known_url is not None:
            settings = {"well_known_url": self.well_known_url, **settings}
        links: dict[str, Any] = {"self": {"href": href, "hints": {"allow": ["GET", "PUT", "DELETE"]}}}
        verb = "deactivate" if self.status == "ACTIVE" else "activate"
        links[verb] = {"href": f"{href}/lifecycle/{verb}", "hints": {"allow": ["POST"]}}
        return {
            "id": self.id,
            "name": self.name,
            "type": self.type,
            "status": self.status,
            "settings": settings,
            "_links": links,
        }


@dataclass
class ReceivedSet:
    """A SET published to the org and what became of it."""

    received_at: float
    result: str  # "accepted", or the `err` it was refused with
    description: str
    provider_id: str | None
    header: dict[str, Any]
    claims: dict[str, Any]  # verified when accepted; as sent (unverified) when refused
    action: str | None = None  # what the org did: "sessions_cleared" / "recorded"
    user_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "verified": self.result == "accepted"}


@dataclass
class SsfReceiver:
    """Providers, the JWKS fetched from them, the SETs received and the `jti`s already seen."""

    state: OrgState
    clock: Callable[[], float] = time.time
    verify: bool | str = True  # TLS verification of providers' URLs: a CA file, or False
    timeout: float = 5.0
    max_age: float = MAX_AGE
    providers: dict[str, SecurityEventsProvider] = field(default_factory=dict)
    received: deque[ReceivedSet] = field(default_factory=lambda: deque(maxlen=1000))
    # (iss, jti) -> iat of the SETs accepted; forgotten once their iat is out of the window anyway.
    seen: dict[tuple[str, str], float] = field(default_factory=dict)
    jwks: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)  # url -> kid -> JWK
    jwks_fetches: int = 0

    def __post_init__(self) -> None:
        for saved in self.state.attachments.get("ssf_providers", []):
            provider = SecurityEventsProvider(**saved)
            self.providers[provider.id] = provider

    def save(self) -> None:
        """Keep the providers with the org's saved state."""
        self.state.attachments["ssf_providers"] = [asdict(p) for p in self.providers.values()]
        self.state.save()

    def clear(self) -> None:
        """Forget every provider, key and SET (tests start each case from an empty org)."""
        self.providers.clear()
        self.received.clear()
        self.seen.clear()
        self.jwks.clear()
        self.jwks_fetches = 0
        self.save()

    async def fetch_json(self, url: str) -> dict[str, Any]:
        """A JSON object from a provider's URL (http is allowed: the lab runs on loopback)."""
        async with httpx.AsyncClient(verify=self.verify, timeout=self.timeout) as client:
            answer = await client.get(url, headers={"Accept": "application/json"})
        answer.raise_for_status()
        body = answer.json()
        if not isinstance(body, dict):
            raise ValueError("the answer is not a JSON object")
        return body

    async def _key(self, url: str, kid: str) -> dict[str, Any]:
        """The JWK `kid` of the JWKS at `url`; fetched again once when the cached set lacks it."""
        cached = self.jwks.get(url)
        if cached is None or kid not in cached:
            try:
                body = await self.fetch_json(url)
            except (httpx.HTTPError, ValueError) as exc:
                raise SetRefused("invalid_key", f"The provider's JWKS could not be fetched: {exc}") from None
            self.jwks_fetches += 1
            keys = body.get("keys")
            if not isinstance(keys, list):
                raise SetRefused("invalid_key", "The provider's JWKS has no 'keys' array.")
            cached = {str(k["kid"]): k for k in keys if isinstance(k, dict) and "kid" in k}
            self.jwks[url] = cached
        if kid not in cached:
            raise SetRefused("invalid_key", f"No key with kid '{kid}' in the provider's JWKS.")
        return cached[kid]

    async def receive(self, token: str, org_url: str, request_id: str) -> ReceivedSet:
        """Verify and ingest one SET; a refusal is recorded too, then raised as SetRefused."""
        header: dict[str, Any] = {}
        claims: dict[str, Any] = {}
        provider: SecurityEventsProvider | None = None
        try:
            header, claims = _unverified(token)
            provider = self._provider_of(claims)
            claims = await self._verify(token, header, provider, org_url)
            record = self._subject(claims)
            action = "recorded"
            if SESSION_REVOKED in claims["events"] and record is not None:
                actor = Actor(provider.id, "SecurityEventsProvider", provider.issuer, provider.name)
                self.state.clear_sessions(record, False, actor, request_id)
                action = "sessions_cleared"
            self._remember(claims)
            provider_actor = Actor(provider.id, "SecurityEventsProvider", provider.issuer, provider.name)
            self.state.log_security_event_received(provider_actor, record, request_id)
            entry = ReceivedSet(
                self.clock(),
                "accepted",
                "",
                provider.id,
                header,
                claims,
                action,
                record.id if record else None,
            )
        except SetRefused as refused:
            self.received.append(
                ReceivedSet(
                    self.clock(),
                    refused.err,
                    refused.description,
                    provider.id if provider else None,
                    header,
                    claims,
                )
            )
            raise
        self.received.append(entry)
        return entry

    def _remember(self, claims: dict[str, Any]) -> None:
        oldest = self.clock() - self.max_age
        for key in [k for k, iat in self.seen.items() if iat < oldest]:
            del self.seen[key]
        self.seen[(str(claims["iss"]), str(claims["jti"]))] = float(claims["iat"])

    def _provider_of(self, claims: dict[str, Any]) -> SecurityEventsProvider:
        iss = claims.get("iss")
        if not isinstance(iss, str) or not iss:
            raise SetRefused("invalid_request", "The SET has no 'iss' claim.")
        known = [p for p in self.providers.values() if _same_url(p.issuer, iss)]
        if not known:
            raise SetRefused("invalid_issuer", f"No security events provider has the issuer '{iss}'.")
        active = [p for p in known if p.status == "ACTIVE"]
        if not active:
            raise SetRefused(
                "invalid_issuer", f"The security events provider of issuer '{iss}' is not active."
            )
        return active[0]

    async def _verify(
        self, token: str, header: dict[str, Any], provider: SecurityEventsProvider, org_url: str
    ) -> dict[str, Any]:
        typ = str(header.get("typ", "")).lower()
        if typ not in ("secevent+jwt", SET_MEDIA_TYPE):
            raise SetRefused("invalid_request", "The SET header 'typ' must be 'secevent+jwt'.")
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise SetRefused(
                "invalid_request", f"The SET header 'alg' must be one of {', '.join(ALGORITHMS)}."
            )
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise SetRefused("invalid_request", "The SET header has no 'kid'.")
        jwk = await self._key(provider.jwks_url, kid)
        if jwk.get("alg") not in (None, alg):
            raise SetRefused(
                "invalid_key", f"The key '{kid}' is for {jwk.get('alg')}, the SET is signed {alg}."
            )
        try:
            key = jwt.PyJWK(jwk, algorithm=str(alg))
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[str(alg)],
                options={
                    "verify_aud": False,
                    "verify_iat": False,
                    "require": ["iss", "iat", "jti", "events"],
                },
            )
        except jwt.InvalidSignatureError:
            raise SetRefused("authentication_failed", "The SET signature does not verify.") from None
        except jwt.MissingRequiredClaimError as exc:
            raise SetRefused("invalid_request", f"The SET lacks a required claim: {exc.claim}.") from None
        except (jwt.PyJWTError, ValueError) as exc:
            raise SetRefused("invalid_key", f"The SET cannot be verified with key '{kid}': {exc}") from None
        audiences = claims.get("aud")
        audiences = [audiences] if isinstance(audiences, str) else audiences
        if not isinstance(audiences, list) or not any(_same_url(str(a), org_url) for a in audiences):
            raise SetRefused("invalid_audience", f"The SET audience must be the org, {org_url}.")
        iat = claims["iat"]
        now = self.clock()
        if not isinstance(iat, int | float) or isinstance(iat, bool):
            raise SetRefused("invalid_request", "The SET 'iat' must be a number.")
        if iat < now - self.max_age:
            raise SetRefused(
                "invalid_request", f"The SET is too old: issued more than {int(self.max_age)} s ago."
            )
        if iat > now + MAX_SKEW:
            raise SetRefused("invalid_request", "The SET 'iat' is in the future.")
        if (str(claims["iss"]), str(claims["jti"])) in self.seen:
            raise SetRefused("invalid_request", f"The SET 'jti' {claims['jti']} was already received.")
        events = claims["events"]
        if (
            not isinstance(events, dict)
            or not events
            or not all(isinstance(v, dict) for v in events.values())
        ):
            raise SetRefused(
                "invalid_request", "The SET 'events' must be a non-empty object of event objects."
            )
        revoked = events.get(SESSION_REVOKED)
        if revoked is not None:
            # Okta validates the claims of the events it documents (CaepSessionRevokedEvent requires both).
            for name, kind in (("event_timestamp", int), ("subject", dict)):
                if not isinstance(revoked.get(name), kind):
                    raise SetRefused(
                        "invalid_request",
                        "Failed claim validation in security event token. "
                        f"'events.sessionRevoked.{_camel(name)}': The field cannot be left blank",
                    )
        return claims

    def _subject(self, claims: dict[str, Any]) -> UserRecord | None:
        """The org's user the SET is about: by email, login or Okta id in any subject it carries."""
        subjects: list[Any] = [claims.get("sub_id")]
        for payload in claims["events"].values():
            subject = payload.get("subject")
            subjects += [subject, subject.get("user")] if isinstance(subject, dict) else []
        sub_id = claims.get("sub_id")
        if isinstance(sub_id, dict) and sub_id.get("format") == "complex":
            subjects.append(sub_id.get("user"))
        for subject in subjects:
            for reference in _identifiers(subject):
                record = self.state.users.get(reference) or self.state.find_by_login(reference)
                if record is None:
                    record = next(
                        (u for u in self.state.users.values() if str(u.profile.get("email", "")).lower()
                         == reference.lower()),
                        None,
                    )  # fmt: skip
                if record is not None:
                    return record
        return None


def _identifiers(subject: Any) -> list[str]:
    """The identifiers of an RFC 9493 subject (email, iss_sub, opaque, account, phone)."""
    if not isinstance(subject, dict):
        return []
    found = []
    match subject.get("format"):
        case "email":
            found.append(subject.get("email"))
        case "iss_sub":
            found.append(subject.get("sub"))
        case "opaque":
            found.append(subject.get("id"))
        case "account":
            uri = subject.get("uri")
            found.append(uri.removeprefix("acct:") if isinstance(uri, str) else None)
    return [f for f in found if isinstance(f, str) and f]


def _unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        header = jwt.get_unverified_header(token)
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError as exc:
        raise SetRefused("invalid_request", f"The body is not a signed JWT: {exc}") from None
    if not isinstance(claims, dict):
        raise SetRefused("invalid_request", "The SET claims are not a JSON object.")
    return header, claims


def _camel(name: str) -> str:
    """A claim name as Okta's errors spell it (SecurityEventTokenError: snake case in camel case)."""
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


def _same_url(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


def _invalid(cause: str) -> OktaApiError:
    return OktaApiError(400, "E0000001", "Api validation failed: securityEventsProvider", (cause,))


class SsfReceiverApi:
    """The Starlette handlers of the SSFReceiver and SSFSecurityEventToken APIs."""

    def __init__(self, receiver: SsfReceiver, auth: Authenticator) -> None:
        self.receiver = receiver
        self.auth = auth

    @staticmethod
    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def authorize(self, request: Request, scope: str) -> None:
        """An API token, or an access token with `scope` (okta.securityEventsProviders.*)."""
        require_scope(self.auth.authenticate(request.headers.get("authorization")), scope)

    def provider(self, request: Request) -> SecurityEventsProvider:
        provider_id = request.path_params["securityEventProviderId"]
        provider = self.receiver.providers.get(provider_id)
        if provider is None:
            raise OktaApiError(
                404, "E0000007", f"Not found: Resource not found: {provider_id} (SecurityEventsProvider)"
            )
        return provider

    async def list_providers(self, request: Request) -> Response:
        self.authorize(request, "okta.securityEventsProviders.read")
        base = self.base_url(request)
        return JSONResponse([p.to_json(base) for p in self.receiver.providers.values()])

    async def create_provider(self, request: Request) -> Response:
        self.authorize(request, "okta.securityEventsProviders.manage")
        fields = await self._fields(request)
        provider = SecurityEventsProvider(id="sse" + secrets.token_hex(9)[:17], **fields)
        self.receiver.providers[provider.id] = provider
        self.receiver.save()
        return JSONResponse(provider.to_json(self.base_url(request)))

    async def get_provider(self, request: Request) -> Response:
        self.authorize(request, "okta.securityEventsProviders.read")
        return JSONResponse(self.provider(request).to_json(self.base_url(request)))

    async def replace_provider(self, request: Request) -> Response:
        self.authorize(request, "okta.securityEventsProviders.manage")
        provider = self.provider(request)
        fields = await self._fields(request)
        for name, value in fields.items():
            setattr(provider, name, value)
        self.receiver.save()
        return JSONResponse(provider.to_json(self.base_url(request)))

    async def delete_provider(self, request: Request) -> Response:
        self.authorize(request, "okta.securityEventsProviders.manage")
        del self.receiver.providers[self.provider(request).id]
        self.receiver.save()
        return Response(status_code=204)

    async def lifecycle(self, request: Request) -> Response:
        self.authorize(request, "okta.securityEventsProviders.manage")
        provider = self.provider(request)
        operation = request.path_params["operation"]
        if operation not in ("activate", "deactivate"):
            raise OktaApiError(404, "E0000007", f"Not found: Resource not found: {operation} (Operation)")
        provider.status = "ACTIVE" if operation == "activate" else "INACTIVE"
        self.receiver.save()
        return JSONResponse(provider.to_json(self.base_url(request)))

    async def _fields(self, request: Request) -> dict[str, Any]:
        """The provider a create or replace request describes, with issuer and JWKS URL resolved."""
        try:
            body = json.loads(await request.body() or b"null")
        except ValueError:
            raise _invalid("the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise _invalid("the body must be a JSON object")
        name, kind, settings = body.get("name"), body.get("type"), body.get("settings")
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise _invalid("name: required, at most 100 characters")
        if not isinstance(kind, str) or not kind.strip() or len(kind) > 255:
            raise _invalid("type: required, at most 255 characters")
        if not isinstance(settings, dict):
            raise _invalid("settings: either well_known_url, or issuer and jwks_url")
        well_known = settings.get("well_known_url")
        if well_known is not None and ("issuer" in settings or "jwks_url" in settings):
            raise _invalid("settings: either well_known_url, or issuer and jwks_url, not both")
        if well_known is not None:
            _check_url(well_known, "settings.well_known_url")
            try:
                metadata = await self.receiver.fetch_json(well_known)
            except (httpx.HTTPError, ValueError) as exc:
                raise _invalid(
                    f"settings.well_known_url: the SSF configuration could not be read: {exc}"
                ) from None
            issuer, jwks_url = metadata.get("issuer"), metadata.get("jwks_uri")
            if not isinstance(issuer, str) or not issuer or not isinstance(jwks_url, str):
                raise _invalid("settings.well_known_url: the SSF configuration lacks issuer or jwks_uri")
            _check_url(jwks_url, "jwks_uri of the SSF configuration")
        else:
            issuer, jwks_url = settings.get("issuer"), settings.get("jwks_url")
            if not isinstance(issuer, str) or not issuer or len(issuer) > 700:
                raise _invalid("settings.issuer: required, at most 700 characters")
            _check_url(jwks_url, "settings.jwks_url")
        return {
            "name": name,
            "type": kind,
            "issuer": issuer,
            "jwks_url": jwks_url,
            "well_known_url": well_known,
        }

    async def publish(self, request: Request) -> Response:
        """POST /security/api/v1/security-events: one SET, 202 or 400 SecurityEventTokenError."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await request.body()
        try:
            if content_type != SET_MEDIA_TYPE:
                raise SetRefused("invalid_request", f"The Content-Type must be {SET_MEDIA_TYPE}.")
            if not body or len(body) > MAX_SET_BYTES:
                raise SetRefused("invalid_request", "The body must be one SET, at most 64 KiB.")
            try:
                token = body.decode("ascii").strip()
            except UnicodeDecodeError:
                raise SetRefused("invalid_request", "The body is not a compact JWT.") from None
            request_id = str(request.scope.get("state", {}).get("request_id") or new_error_id())
            await self.receiver.receive(token, self.base_url(request), request_id)
        except SetRefused as refused:
            return JSONResponse({"err": refused.err, "description": refused.description}, status_code=400)
        return Response(status_code=202)


def _check_url(value: object, what: str) -> None:
    parts = urlsplit(value) if isinstance(value, str) else None
    if parts is None or parts.scheme not in ("https", "http") or not parts.netloc or len(str(value)) > 1000:
        raise _invalid(f"{what}: an http(s) URL of at most 1000 characters")
