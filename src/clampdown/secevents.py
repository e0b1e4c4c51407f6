"""Security Event Tokens Clampdown transmits (SSF 1.0, CAEP 1.0, RISC 1.0): the event types, the
signing keys and their JWKS, and one SET signed.

A key is a PEM private key: EC P-256 signs ES256, RSA (2048 bits or more) RS256; its `kid` is its
RFC 7638 thumbprint, so the same file always publishes the same kid. The current key signs; keys
of before a rotation are still published, so a receiver verifies what was signed before it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from clampdown.errors import ConfigError

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
RISC = "https://schemas.openid.net/secevent/risc/event-type/"
SSF = "https://schemas.openid.net/secevent/ssf/event-type/"

SESSION_REVOKED = CAEP + "session-revoked"
CREDENTIAL_CHANGE = CAEP + "credential-change"
ACCOUNT_DISABLED = RISC + "account-disabled"
ACCOUNT_ENABLED = RISC + "account-enabled"
VERIFICATION = SSF + "verification"
STREAM_UPDATED = SSF + "stream-updated"

# What a containment announces (the catalog says which action announces which), and the events
# of the stream itself. A stream asks for a subset; it always gets verification and stream-updated.
CONTAINMENT_EVENTS = (ACCOUNT_DISABLED, SESSION_REVOKED, CREDENTIAL_CHANGE, ACCOUNT_ENABLED)
STREAM_EVENTS = (VERIFICATION, STREAM_UPDATED)
SUPPORTED_EVENTS = CONTAINMENT_EVENTS + STREAM_EVENTS

PUSH = "urn:ietf:rfc:8935"
POLL = "urn:ietf:rfc:8936"
DELIVERY_METHODS = (PUSH, POLL)
SET_TYPE = "secevent+jwt"


@dataclass(frozen=True)
class SigningKey:
    """One private key, its algorithm, its kid and its public JWK."""

    private: Any
    algorithm: str
    kid: str
    jwk: dict[str, Any]


def load_key(path: str) -> SigningKey:
    """The key in a PEM file; ConfigError naming the file when it is missing or of a kind not used."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"ssf.transmitter: cannot read the signing key {path}: {exc.strerror}") from None
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"ssf.transmitter: {path} is not an unencrypted PEM private key ({exc})") from None
    if isinstance(private, ec.EllipticCurvePrivateKey) and isinstance(private.curve, ec.SECP256R1):
        algorithm = "ES256"
        jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    elif isinstance(private, rsa.RSAPrivateKey) and private.key_size >= 2048:
        algorithm = "RS256"
        jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    else:
        raise ConfigError(
            f"ssf.transmitter: {path} is neither an EC P-256 nor an RSA key of 2048 bits or more"
        )
    kid = _thumbprint(jwk)
    return SigningKey(private, algorithm, kid, {**jwk, "kid": kid, "use": "sig", "alg": algorithm})


def _thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638: the SHA-256 of the key's required members, in order, base64url."""
    required = ("crv", "kty", "x", "y") if jwk["kty"] == "EC" else ("e", "kty", "n")
    canonical = json.dumps({k: jwk[k] for k in required}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def generate_key(path: str) -> SigningKey:
    """A new EC P-256 key written to `path` (0600), for `clampdown ssf keygen` and the lab."""
    private = ec.generate_private_key(ec.SECP256R1())
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.touch(mode=0o600, exist_ok=False)
    target.write_bytes(pem)
    return load_key(path)


class TransmitterKeys:
    """The current signing key and those still published."""

    def __init__(self, current: SigningKey, previous: Sequence[SigningKey] = ()) -> None:
        self.current = current
        self.previous = tuple(k for k in previous if k.kid != current.kid)

    @classmethod
    def load(cls, signing_key_file: str, previous_key_files: Sequence[str] = ()) -> TransmitterKeys:
        return cls(load_key(signing_key_file), [load_key(p) for p in previous_key_files])

    def jwks(self) -> dict[str, Any]:
        """The published JWKS: public keys only."""
        return {"keys": [self.current.jwk, *(k.jwk for k in self.previous)]}

    def sign(
        self,
        issuer: str,
        audience: Sequence[str],
        events: dict[str, dict[str, Any]],
        sub_id: dict[str, Any],
        now: datetime,
        txn: str | None = None,
    ) -> tuple[str, str]:
        """One SET (RFC 8417, SSF 1.0 section 4): (its jti, the compact JWS)."""
        jti = secrets.token_urlsafe(24)
        claims: dict[str, Any] = {
            "iss": issuer,
            "aud": audience[0] if len(audience) == 1 else list(audience),
            "iat": int(now.timestamp()),
            "jti": jti,
            "sub_id": sub_id,
            "events": events,
        }
        if txn is not None:
            claims["txn"] = txn
        headers = {"typ": SET_TYPE, "kid": self.current.kid}
        token = jwt.encode(claims, self.current.private, algorithm=self.current.algorithm, headers=headers)
        return jti, token
