"""Security Event Tokens (RFC 8417) verified as SSF 1.0 requires.

A SET is refused with the RFC 8935 section 2.4 error code that says why, carried as the `code` of
an InvalidInput: `invalid_request` (not a SET, a malformed claim, `iat` out of the window),
`invalid_key` (alg none or HMAC, a key the transmitter's JWKS does not hold, a signature that does
not verify), `invalid_issuer`, `invalid_audience`. The jti replay check is the receiver's
(signals/replay.py): it needs the database.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from jwt.types import Options

from clampdown.config import SsfReceiverSettings
from clampdown.errors import InvalidInput
from clampdown.signals.jwks import INVALID_KEY, JwksCache
from clampdown.signals.subjects import INVALID_REQUEST, Subject, parse_subject, refused

INVALID_ISSUER = "invalid_issuer"
INVALID_AUDIENCE = "invalid_audience"
AUTHENTICATION_FAILED = "authentication_failed"
ACCESS_DENIED = "access_denied"
ERROR_CODES = (INVALID_REQUEST, INVALID_KEY, INVALID_ISSUER, INVALID_AUDIENCE, AUTHENTICATION_FAILED,
               ACCESS_DENIED)  # fmt: skip

ALGORITHMS = ("RS256", "ES256")  # asymmetric only: a shared secret would let a receiver forge SETs
SET_TYPES = frozenset({"secevent+jwt", "application/secevent+jwt"})  # RFC 8417 section 2.3
MAX_JTI = 256
MAX_EVENT_TYPE = 512
MAX_EVENTS = 16


@dataclass(frozen=True)
class SecurityEvent:
    """One event of a SET: its type URI and its payload."""

    type: str
    payload: dict[str, Any]

    @property
    def name(self) -> str:
        """The type's last part: credential-compromise, session-revoked, account-disabled, ..."""
        return self.type.rstrip("/").rsplit("/", 1)[-1]

    @property
    def occurred_at(self) -> datetime | None:
        """The event's own `event_timestamp` (CAEP and RISC), when given as a number."""
        stamp = self.payload.get("event_timestamp")
        if isinstance(stamp, int | float) and not isinstance(stamp, bool):
            try:
                return datetime.fromtimestamp(stamp, UTC)
            except (OverflowError, OSError, ValueError):
                return None
        return None


@dataclass(frozen=True)
class VerifiedSet:
    """A SET whose signature and claims hold, but whose jti has not been checked for replay yet."""

    issuer: str
    jti: str
    issued_at: datetime
    audience: tuple[str, ...]
    txn: str | None
    subject: Subject
    events: tuple[SecurityEvent, ...]
    claims: dict[str, Any]


def check_claims(claims: dict[str, Any], settings: SsfReceiverSettings, now: datetime) -> VerifiedSet:
    """The claims of a SET whose signature verified, checked as RFC 8417 and SSF 1.0 section 4.1
    require: iss, aud, iat within the window, jti, no sub and no exp, the events and sub_id."""
    issuer = claims.get("iss")
    if issuer != settings.issuer:
        raise InvalidInput(
            f"iss {issuer!r} is not this stream's issuer {settings.issuer!r}", code=INVALID_ISSUER
        )
    aud = claims.get("aud")
    audience = (aud,) if isinstance(aud, str) else tuple(aud) if isinstance(aud, list) else ()
    if not audience or not all(isinstance(a, str) for a in audience):
        raise InvalidInput("aud must be a string or an array of strings", code=INVALID_AUDIENCE)
    if settings.audience not in audience:
        raise InvalidInput(f"aud {list(audience)} does not name this receiver", code=INVALID_AUDIENCE)
    iat = claims.get("iat")
    if not isinstance(iat, int | float) or isinstance(iat, bool):
        raise refused("iat must be a number of seconds since 1970 (RFC 8417 section 2.2)")
    try:
        issued_at = datetime.fromtimestamp(iat, UTC)
    except (OverflowError, OSError, ValueError):
        raise refused("iat is not a time") from None
    earliest = now - timedelta(seconds=settings.iat_past_seconds)
    latest = now + timedelta(seconds=settings.iat_future_seconds)
    if not earliest <= issued_at <= latest:
        raise refused(
            f"iat {issued_at.isoformat()} is outside the accepted window ({settings.iat_past_seconds:g} s "
            f"before to {settings.iat_future_seconds:g} s after {now.isoformat()})"
        )
    jti = claims.get("jti")
    if not isinstance(jti, str) or not jti or len(jti) > MAX_JTI:
        raise refused(f"jti must be a non-empty string of at most {MAX_JTI} characters")
    if "sub" in claims:
        raise refused("an SSF SET carries no sub claim: its subject is sub_id (SSF 1.0 section 4.1.2)")
    if "exp" in claims:
        raise refused("an SSF SET carries no exp claim (SSF 1.0 section 4.1.7)")
    txn = claims.get("txn")
    if txn is not None and not isinstance(txn, str):
        raise refused("txn must be a string")
    if "sub_id" not in claims:
        raise refused("sub_id is missing: SSF transmitters name the subject in it (SSF 1.0 section 3.1)")
    subject = parse_subject(claims["sub_id"])
    return VerifiedSet(issuer, jti, issued_at, audience, txn, subject, _events(claims.get("events")), claims)


def _events(value: Any) -> tuple[SecurityEvent, ...]:
    """The events claim (RFC 8417 section 2.2): an object of event type URIs to event objects. SSF
    1.0 section 4.2.1: one event, or several alternative URIs of the same event."""
    if not isinstance(value, dict) or not value:
        raise refused("events must be a JSON object with at least one event type")
    if len(value) > MAX_EVENTS:
        raise refused(f"events holds {len(value)} event types; at most {MAX_EVENTS} are accepted")
    found = []
    for kind, payload in value.items():
        if not kind or len(kind) > MAX_EVENT_TYPE or ":" not in kind:
            raise refused(f"event type {kind[:80]!r} is not a URI")
        if not isinstance(payload, dict):
            raise refused(f"the payload of event {kind} must be a JSON object")
        found.append(SecurityEvent(kind, payload))
    return tuple(found)


def _header(token: str) -> dict[str, Any]:
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError:
        raise refused("the body is not a signed JWT (a JWS in compact serialization)") from None
    return header


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The claims as the token states them, before anything is checked: for the audit trail and
    the issuer check only."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return None
    return claims if isinstance(claims, dict) else None


# PyJWT checks the signature only: every claim is checked by check_claims, as SSF requires.
_SIGNATURE_ONLY: Options = {
    "verify_signature": True,
    "verify_exp": False,
    "verify_iat": False,
    "verify_nbf": False,
    "verify_aud": False,
    "verify_iss": False,
    "require": [],
}


class SetVerifier:
    """Verifies SETs from one transmitter: its issuer, audience, window and JWKS."""

    def __init__(self, settings: SsfReceiverSettings, jwks: JwksCache) -> None:
        self.settings = settings
        self.jwks = jwks

    async def verify(self, token: str, now: datetime) -> VerifiedSet:
        """The SET's claims once its type, algorithm, key, signature and claims hold; InvalidInput
        with the RFC 8935 error code otherwise."""
        header = _header(token)
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in SET_TYPES:
            raise refused(f"typ {typ!r}: an SSF SET is explicitly typed secevent+jwt (SSF 1.0 section 4.1.1)")
        alg = header.get("alg")
        if alg not in ALGORITHMS:
            raise InvalidInput(f"alg {alg!r} is not accepted: only {', '.join(ALGORITHMS)}", code=INVALID_KEY)
        stated = unverified_claims(token)
        if stated is None:
            raise refused("the JWT's payload is not a JSON object")
        if stated.get("iss") != self.settings.issuer:  # before fetching keys for a stranger's token
            raise InvalidInput(
                f"iss {stated.get('iss')!r} is not this stream's issuer {self.settings.issuer!r}",
                code=INVALID_ISSUER,
            )
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidInput("kid must be a string", code=INVALID_KEY)
        key = await self.jwks.key(kid, str(alg))
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[str(alg)],
                options=_SIGNATURE_ONLY,
            )
        except jwt.InvalidSignatureError:
            raise InvalidInput(f"the signature does not verify with key {kid!r}", code=INVALID_KEY) from None
        except (jwt.DecodeError, json.JSONDecodeError):
            raise refused("the JWT cannot be decoded") from None
        except jwt.PyJWTError as exc:
            raise refused(f"the JWT is not valid: {exc}") from None
        return check_claims(claims, self.settings, now)
