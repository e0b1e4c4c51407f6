"""A Shared Signals transmitter for the tests: its keys made here with `cryptography`, its SSF
configuration metadata and JWKS served over real HTTP by a tiny server on a loopback port."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

AUDIENCE = "https://clampdown.test/ssf"
CREDENTIAL_COMPROMISE = "https://schemas.openid.net/secevent/risc/event-type/credential-compromise"
SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def public_jwk(kid: str, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    if isinstance(key, rsa.RSAPrivateKey):
        jwk: dict[str, Any] = RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
        alg = "RS256"
    else:
        jwk = ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
        alg = "ES256"
    return {**jwk, "kid": kid, "use": "sig", "alg": alg}


@dataclass
class Transmitter:
    """The transmitter's issuer, its published and unpublished keys, and what was fetched."""

    base: str
    keys: dict[str, Any] = field(default_factory=dict)  # kid -> private key
    published: list[str] = field(default_factory=list)  # kids in the JWKS
    fetches: list[str] = field(default_factory=list)  # paths asked for, in order
    # Poll delivery (RFC 8936): the SETs the next poll answers, and every poll request's body.
    queued: dict[str, str] = field(default_factory=dict)
    polls: list[dict[str, Any]] = field(default_factory=list)
    poll_token: str = "poll-token-for-clampdown-0123456789"
    critical: list[str] = field(default_factory=list)  # the metadata's critical_subject_members

    @property
    def issuer(self) -> str:
        return f"{self.base}/issuer"

    def claims(self, **changes: Any) -> dict[str, Any]:
        """A valid SET's claims: a RISC credential-compromise of alice, issued now."""
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "jti": uuid.uuid4().hex,
            "iat": int(time.time()),
            "aud": AUDIENCE,
            "txn": "8675309",
            "sub_id": {"format": "email", "email": "alice@memory.test"},
            "events": {CREDENTIAL_COMPROMISE: {"credential_type": "password"}},
        }
        claims.update(changes)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: dict[str, Any], kid: str = "rsa-1", typ: str = "secevent+jwt") -> str:
        key = self.keys[kid]
        alg = "RS256" if isinstance(key, rsa.RSAPrivateKey) else "ES256"
        return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid, "typ": typ})


class _Handler(BaseHTTPRequestHandler):
    transmitter: Transmitter

    def do_GET(self) -> None:
        t = self.transmitter
        t.fetches.append(self.path)
        if self.path == "/.well-known/ssf-configuration/issuer":
            body = {"issuer": t.issuer, "jwks_uri": f"{t.base}/jwks.json", "spec_version": "1_0",
                    "delivery_methods_supported": ["urn:ietf:rfc:8935"]}  # fmt: skip
            if t.critical:
                body["critical_subject_members"] = t.critical
        elif self.path == "/jwks.json":
            body = {"keys": [public_jwk(kid, t.keys[kid]) for kid in t.published]}
        else:
            self.send_error(404)
            return
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        t = self.transmitter
        if self.path != "/poll" or self.headers.get("Authorization") != f"Bearer {t.poll_token}":
            self.send_error(401 if self.path == "/poll" else 404)
            return
        length = int(self.headers.get("Content-Length", "0"))
        t.polls.append(json.loads(self.rfile.read(length)))
        sets, t.queued = t.queued, {}
        data = json.dumps({"sets": sets, "moreAvailable": False}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@pytest.fixture(scope="session")
def signing_keys() -> dict[str, Any]:
    """Made once: an RSA key the JWKS publishes, an EC key it publishes, one it never does."""
    return {"rsa-1": rsa_key(), "ec-1": ec_key(), "stranger": rsa_key()}


@pytest.fixture
def transmitter(signing_keys: dict[str, Any]) -> Iterator[Transmitter]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = Transmitter(f"http://127.0.0.1:{server.server_address[1]}", dict(signing_keys), ["rsa-1", "ec-1"])
    handler = type("Handler", (_Handler,), {"transmitter": t})
    server.RequestHandlerClass = handler
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield t
    server.shutdown()
    server.server_close()
