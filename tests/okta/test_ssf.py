"""The emulated org speaks the OpenID Shared Signals Framework both ways, as Okta documents it.

As transmitter: its SSF configuration, streams managed by OAuth clients (each its own), and SETs
pushed to a receiver (a local HTTP server here) that verifies them against the org's published JWKS.
As receiver: security events providers, and SETs published to it, signed with the test's keys that a
local server publishes as the provider's JWKS; each refusal answers with its RFC 8935 `err`.
Every exchange with the org is checked against Okta's Management document, and every SET the org
sends or is sent against the SET schemas of that document.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clampdown_lab.okta_emulator import EmulatorServer, EmulatorSettings, build_emulator
from clampdown_lab.okta_emulator.auth import ServiceApp
from tests.okta.contract import Exchange, validate, validate_schema
from tests.okta.org import API_TOKEN, Org, pem_pair

SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
CREDENTIAL_CHANGE = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
CREDENTIAL_COMPROMISE = "https://schemas.openid.net/secevent/risc/event-type/credential-compromise"
ACCOUNT_DISABLED = "https://schemas.openid.net/secevent/risc/event-type/account-disabled"
VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification"
PUSH = "urn:ietf:rfc:8935"
ALICE = "alice.martin@lab.example.test"
BOB = "bob.nguyen@lab.example.test"
RECEIVER_AUTH = "Bearer receiver-secret-for-the-test"
MANAGER = "0oassfmanager0000001"  # ssf.read ssf.manage
OTHER = "0oassfother000000002"  # ssf.read ssf.manage: another receiver
READER = "0oassfreader00000003"  # ssf.read only
PROVIDERS_READER = "0oasepreader00000004"  # okta.securityEventsProviders.read only


# --- a peer: an SSF receiver for the org's pushes, and a transmitter whose JWKS the org reads -------
@dataclass
class Peer:
    """What the local peer server publishes and what it was sent."""

    url: str = ""
    keys: list[dict[str, Any]] = field(default_factory=list)
    pushes: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    answers: list[int] = field(default_factory=list)  # statuses to answer pushes with, then 202
    jwks_reads: int = 0

    @property
    def issuer(self) -> str:
        return f"{self.url}/transmitter"

    def app(self) -> Starlette:
        async def configuration(request: Request) -> Response:
            return JSONResponse(
                {"issuer": self.issuer, "jwks_uri": f"{self.url}/jwks", "delivery_methods_supported": [PUSH]}
            )

        async def jwks(request: Request) -> Response:
            self.jwks_reads += 1
            return JSONResponse({"keys": self.keys})

        async def events(request: Request) -> Response:
            self.pushes.append((dict(request.headers), await request.body()))
            status = self.answers.pop(0) if self.answers else 202
            if status == 202:
                return Response(status_code=202)
            return JSONResponse({"err": "invalid_request", "description": "refused by the test"}, status)

        return Starlette(
            routes=[
                Route("/.well-known/ssf-configuration", configuration, methods=["GET"]),
                Route("/jwks", jwks, methods=["GET"]),
                Route("/events", events, methods=["POST"]),
            ]
        )


@pytest.fixture(scope="session")
def _peer_server() -> Iterator[Peer]:
    peer = Peer()
    config = uvicorn.Config(peer.app(), host="127.0.0.1", port=0, log_level="critical", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="ssf-peer", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the SSF peer did not start"
        time.sleep(0.01)
    host, port = server.servers[0].sockets[0].getsockname()[:2]
    peer.url = f"http://{host}:{port}"
    yield peer
    server.should_exit = True
    thread.join(timeout=10)


@dataclass
class Signer:
    """A key of the peer transmitter's, published in its JWKS."""

    key: Any
    kid: str
    alg: str

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.algorithms.RSAAlgorithm if self.alg == "RS256" else jwt.algorithms.ECAlgorithm
        public: dict[str, Any] = algorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {**public, "kid": self.kid, "alg": self.alg, "use": "sig"}

    def sign(self, claims: dict[str, Any], **header: Any) -> str:
        return jwt.encode(
            claims, self.key, algorithm=self.alg, headers={"typ": "secevent+jwt", "kid": self.kid, **header}
        )


RSA_SIGNER = Signer(rsa.generate_private_key(public_exponent=65537, key_size=2048), "peer-rsa-1", "RS256")
EC_SIGNER = Signer(ec.generate_private_key(ec.SECP256R1()), "peer-ec-1", "ES256")


@pytest.fixture
def peer(_peer_server: Peer, org: Org) -> Iterator[Peer]:
    """The peer with its two keys published and nothing received; the org's SSF state emptied
    (after the test too: other tests' changes to the org are not pushed anywhere)."""
    _peer_server.keys = [RSA_SIGNER.jwk(), EC_SIGNER.jwk()]
    _peer_server.pushes.clear()
    _peer_server.answers.clear()
    _peer_server.jwks_reads = 0
    org.emulator.ssf.clear()
    org.emulator.ssf.retry_delays = (0.05, 0.1, 0.2)
    org.emulator.ssf_receiver.clear()
    yield _peer_server
    org.emulator.ssf.clear()
    org.emulator.ssf_receiver.clear()


# --- the org's API, every exchange checked against the contract ---------------------------------------
@pytest.fixture
async def api(org: Org, peer: Peer) -> AsyncIterator[Api]:
    private, public = pem_pair()
    scopes = {
        MANAGER: {"ssf.read", "ssf.manage"},
        OTHER: {"ssf.read", "ssf.manage"},
        READER: {"ssf.read"},
        PROVIDERS_READER: {"okta.securityEventsProviders.read"},
    }
    for client_id, granted in scopes.items():
        org.emulator.auth.apps[client_id] = ServiceApp(client_id, public, frozenset(granted))
    exchanges: list[Exchange] = []

    async def record(response: httpx.Response) -> None:
        if not response.request.url.path.startswith("/_emulator"):
            exchanges.append(await Exchange.capture(response))

    async with (
        httpx.AsyncClient(base_url=org.url, event_hooks={"response": [record]}) as client,
        httpx.AsyncClient(base_url=org.url) as off_contract,  # requests off the contract on purpose
    ):
        yield Api(client, off_contract, org, peer, private)
    await asyncio.sleep(0)
    assert exchanges
    for exchange in exchanges:
        validate(exchange)


@dataclass
class Api:
    http: httpx.AsyncClient
    unchecked: httpx.AsyncClient
    org: Org
    peer: Peer
    private_key: str
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)

    async def token(self, client_id: str, scope: str) -> dict[str, str]:
        """The Authorization header of an access token for the service app `client_id`."""
        if (client_id, scope) not in self.tokens:
            now = int(time.time())
            audience = f"{self.org.url}/oauth2/v1/token"
            claims = {"iss": client_id, "sub": client_id, "aud": audience, "iat": now, "exp": now + 300}
            assertion = jwt.encode(
                {**claims, "jti": secrets.token_hex(8)}, self.private_key, algorithm="RS256"
            )
            form = {
                "grant_type": "client_credentials",
                "scope": scope,
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            }
            answer = await self.http.post("/oauth2/v1/token", data=form)
            assert answer.status_code == 200, answer.text
            self.tokens[(client_id, scope)] = answer.json()["access_token"]
        return {"Authorization": f"Bearer {self.tokens[(client_id, scope)]}"}

    async def create_stream(self, client_id: str = MANAGER, **overrides: Any) -> dict[str, Any]:
        body = {
            "delivery": {
                "method": PUSH,
                "endpoint_url": f"{self.peer.url}/events",
                "authorization_header": RECEIVER_AUTH,
            },
            "events_requested": [SESSION_REVOKED, CREDENTIAL_CHANGE, CREDENTIAL_COMPROMISE],
            "format": "iss_sub",
            **overrides,
        }
        answer = await self.http.post(
            "/api/v1/ssf/stream", json=body, headers=await self.token(client_id, "ssf.manage")
        )
        assert answer.status_code == 201, answer.text
        return answer.json()  # type: ignore[no-any-return]

    async def pushed(
        self, count: int, timeout: float = 5.0
    ) -> list[tuple[dict[str, Any], dict[str, Any], dict[str, str]]]:
        """The first `count` SETs the org pushed to the peer, verified against the org's JWKS."""
        deadline = time.monotonic() + timeout
        while len(self.peer.pushes) < count:
            assert time.monotonic() < deadline, f"{len(self.peer.pushes)} SETs pushed, {count} expected"
            await asyncio.sleep(0.02)
        metadata = (await self.http.get("/.well-known/ssf-configuration")).json()
        keys = (await self.http.get(urlsplit(metadata["jwks_uri"]).path)).json()["keys"]
        found = []
        for headers, body in self.peer.pushes[:count]:
            token = body.decode()
            header = jwt.get_unverified_header(token)
            jwk = next(k for k in keys if k["kid"] == header["kid"])
            claims = jwt.decode(
                token,
                jwt.PyJWK(jwk).key,
                algorithms=["RS256"],
                audience=self.peer.url,
                issuer=self.org.url,
            )
            validate_schema("SecurityEventTokenJwtHeader", header)
            validate_schema("SecurityEventTokenJwtBody", claims)
            found.append((header, claims, headers))
        return found

    async def publish(self, token: str, content_type: str = "application/secevent+jwt") -> httpx.Response:
        return await self.http.post(
            "/security/api/v1/security-events", content=token.encode(), headers={"Content-Type": content_type}
        )

    async def add_provider(self, **settings: Any) -> dict[str, Any]:
        body = {
            "name": "Clampdown",
            "type": "okta",
            "settings": settings or {"well_known_url": self._well_known},
        }
        answer = await self.http.post(
            "/api/v1/security-events-providers", json=body, headers={"Authorization": f"SSWS {API_TOKEN}"}
        )
        assert answer.status_code == 200, answer.text
        return answer.json()  # type: ignore[no-any-return]

    @property
    def _well_known(self) -> str:
        return f"{self.peer.url}/.well-known/ssf-configuration"

    async def control(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.request(method, f"/_emulator/ssf/{path}", **kwargs)


# --- the org as transmitter -------------------------------------------------------------------------
async def test_the_ssf_configuration_names_the_org_its_keys_and_push_delivery(api: Api) -> None:
    answer = await api.http.get("/.well-known/ssf-configuration")
    assert answer.status_code == 200
    metadata = answer.json()
    org = api.org.url
    assert metadata["issuer"] == org
    assert metadata["jwks_uri"] == f"{org}/oauth2/v1/keys"
    assert metadata["configuration_endpoint"] == f"{org}/api/v1/ssf/stream"
    assert metadata["verification_endpoint"] == f"{org}/api/v1/ssf/stream/verification"
    assert set(metadata["delivery_methods_supported"]) == {
        PUSH,
        "https://schemas.openid.net/secevent/risc/delivery-method/push",
    }
    assert metadata["default_subjects"] == "ALL"
    assert metadata["authorization_schemes"] == [{"spec_urn": "urn:ietf:rfc:6749"}]
    keys = (await api.http.get("/oauth2/v1/keys")).json()["keys"]
    assert [k["alg"] for k in keys] == ["RS256"] and keys[0]["kid"]


async def test_a_stream_belongs_to_the_client_that_made_it(api: Api) -> None:
    manage = await api.token(MANAGER, "ssf.read ssf.manage")
    stream = await api.create_stream()
    assert stream["stream_id"].startswith("esc")
    assert stream["iss"] == api.org.url and stream["aud"] == api.peer.url
    assert stream["events_delivered"] == [SESSION_REVOKED, CREDENTIAL_CHANGE, CREDENTIAL_COMPROMISE]
    assert CREDENTIAL_COMPROMISE in stream["events_supported"]
    assert "authorization_header" not in stream["delivery"]  # the receiver's secret is not given back
    sid = stream["stream_id"]

    second = {"delivery": stream["delivery"], "events_requested": []}
    again = await api.http.post("/api/v1/ssf/stream", json=second, headers=manage)
    assert again.status_code == 409 and again.json()["errorCode"] == "E0000195"
    listed = await api.http.get("/api/v1/ssf/stream", headers=manage)
    assert [s["stream_id"] for s in listed.json()] == [sid]
    one = await api.http.get("/api/v1/ssf/stream", params={"stream_id": sid}, headers=manage)
    assert one.json() == stream

    other = await api.token(OTHER, "ssf.read")
    assert (await api.http.get("/api/v1/ssf/stream", headers=other)).json() == []
    hidden = await api.http.get("/api/v1/ssf/stream", params={"stream_id": sid}, headers=other)
    assert hidden.status_code == 404 and hidden.json()["errorCode"] == "E0000007"
    status = await api.http.get("/api/v1/ssf/stream/status", params={"stream_id": sid}, headers=manage)
    assert status.json() == {"stream_id": sid, "status": "enabled"}
    missing = await api.unchecked.get("/api/v1/ssf/stream/status", headers=manage)  # stream_id is required
    assert missing.status_code == 400 and missing.json()["errorCode"] == "E0000028"

    patch = {"delivery": stream["delivery"], "events_requested": [SESSION_REVOKED, ACCOUNT_DISABLED]}
    patched = await api.http.patch("/api/v1/ssf/stream", json=patch, headers=manage)
    assert patched.status_code == 200
    assert patched.json()["events_delivered"] == [SESSION_REVOKED]  # account-disabled is not transmitted
    replace = {**stream, "events_requested": [CREDENTIAL_CHANGE]}
    replaced = await api.http.put("/api/v1/ssf/stream", json=replace, headers=manage)
    assert replaced.status_code == 200 and replaced.json()["events_delivered"] == [CREDENTIAL_CHANGE]
    forged = await api.http.put("/api/v1/ssf/stream", json={**stream, "iss": "https://elsewhere.example"},
                                headers=manage)  # fmt: skip
    assert forged.status_code == 400 and forged.json()["errorCode"] == "E0000001"

    deleted = await api.http.delete("/api/v1/ssf/stream", params={"stream_id": sid}, headers=manage)
    assert deleted.status_code == 204 and deleted.content == b""
    assert (await api.http.get("/api/v1/ssf/stream", headers=manage)).json() == []
    assert api.org.emulator.ssf.streams == {}


async def test_stream_management_needs_an_oauth_token_with_the_scope(api: Api) -> None:
    body = {"delivery": {"method": PUSH, "endpoint_url": f"{api.peer.url}/events"}, "events_requested": []}
    reader = await api.token(READER, "ssf.read")
    refused = await api.http.post("/api/v1/ssf/stream", json=body, headers=reader)
    assert refused.status_code == 403 and refused.json()["errorCode"] == "E0000006"
    assert (await api.http.get("/api/v1/ssf/stream", headers=reader)).status_code == 200
    no_token = await api.http.get("/api/v1/ssf/stream")
    assert no_token.status_code == 403 and no_token.json()["errorCode"] == "E0000005"
    bad = await api.http.get("/api/v1/ssf/stream", headers={"Authorization": "Bearer not-a-token"})
    assert bad.status_code == 401 and bad.json()["errorCode"] == "E0000011"
    assert api.org.emulator.ssf.streams == {}


async def test_bad_stream_requests_are_refused_with_the_field_named(api: Api) -> None:
    manage = await api.token(MANAGER, "ssf.manage")
    cases = [
        ({"method": "https://schemas.openid.net/secevent/risc/delivery-method/poll"}, "delivery.method"),
        ({"method": PUSH, "endpoint_url": "ftp://x.example"}, "endpoint_url"),
        ({"method": PUSH, "authorization_header": 7}, "authorization_header"),
    ]
    for delivery, named in cases:
        body = {"delivery": {"endpoint_url": "https://x.example", **delivery}, "events_requested": []}
        # Off the contract on purpose (the document's enum and types): sent unchecked.
        answer = await api.unchecked.post("/api/v1/ssf/stream", json=body, headers=manage)
        assert answer.status_code == 400, body
        assert named in answer.json()["errorCauses"][0]["errorSummary"]


async def test_an_org_holds_at_most_ten_streams(api: Api) -> None:
    public = api.org.emulator.auth.apps[MANAGER].public_key_pem
    for n in range(11):
        client_id = f"0oassfmany{n:010d}"
        api.org.emulator.auth.apps[client_id] = ServiceApp(client_id, public, frozenset({"ssf.manage"}))
    for n in range(10):
        await api.create_stream(f"0oassfmany{n:010d}")
    body = {"delivery": {"method": PUSH, "endpoint_url": f"{api.peer.url}/events"}, "events_requested": []}
    answer = await api.http.post(
        "/api/v1/ssf/stream", json=body, headers=await api.token("0oassfmany0000000010", "ssf.manage")
    )
    assert answer.status_code == 400 and answer.json()["errorCode"] == "E0000001"
    assert len(api.org.emulator.ssf.streams) == 10


async def test_verification_pushes_a_signed_set_echoing_the_state(api: Api) -> None:
    stream = await api.create_stream()
    manage = await api.token(MANAGER, "ssf.manage")
    answer = await api.http.post("/api/v1/ssf/stream/verification", json={"stream_id": stream["stream_id"],
                                 "state": "c3RhdGUtb2YtdGhlLXRlc3Q="}, headers=manage)  # fmt: skip
    assert answer.status_code == 204 and answer.content == b""
    [(header, claims, headers)] = await api.pushed(1)
    assert header["typ"] == "secevent+jwt" and header["alg"] == "RS256"
    assert headers["content-type"] == "application/secevent+jwt"
    assert headers["authorization"] == RECEIVER_AUTH
    assert claims["events"] == {VERIFICATION: {"state": "c3RhdGUtb2YtdGhlLXRlc3Q="}}
    assert claims["sub_id"] == {"format": "opaque", "id": stream["stream_id"]}
    unknown = await api.http.post(
        "/api/v1/ssf/stream/verification", json={"stream_id": "esc-none"}, headers=manage
    )
    assert unknown.status_code == 404


async def test_what_happens_in_the_org_is_transmitted_as_caep(api: Api) -> None:
    await api.create_stream()
    ssws = {"Authorization": f"SSWS {API_TOKEN}"}
    alice = api.org.ids[ALICE]
    assert (await api.http.delete(f"/api/v1/users/{alice}/sessions", headers=ssws)).status_code == 204
    reset_path = f"/api/v1/users/{alice}/lifecycle/reset_password"
    reset = await api.http.post(reset_path, params={"sendEmail": "false"}, headers=ssws)
    assert reset.status_code == 200
    by_type = {next(iter(claims["events"])): claims for _, claims, _ in await api.pushed(2)}
    revoked, changed = by_type[SESSION_REVOKED], by_type[CREDENTIAL_CHANGE]
    subject = {"format": "iss_sub", "iss": api.org.url, "sub": ALICE}
    assert revoked["sub_id"] == subject and revoked["aud"] == api.peer.url
    assert revoked["events"][SESSION_REVOKED]["subject"] == subject
    assert changed["events"][CREDENTIAL_CHANGE]["change_type"] == "update"
    assert changed["events"][CREDENTIAL_CHANGE]["credential_type"] == "password"
    assert revoked["jti"] != changed["jti"]
    await _settled(api)
    deliveries = (await api.control("GET", "deliveries")).json()["deliveries"]
    assert sorted((d["event_type"], d["outcome"], d["status"]) for d in deliveries) == [
        (CREDENTIAL_CHANGE, "delivered", 202),
        (SESSION_REVOKED, "delivered", 202),
    ]


@pytest.mark.parametrize(
    ("event", "event_type"),
    [
        ("session-revoked", SESSION_REVOKED),
        ("credential-change", CREDENTIAL_CHANGE),
        ("credential-compromise", CREDENTIAL_COMPROMISE),
    ],
)
async def test_the_control_api_makes_the_org_transmit_each_event(
    api: Api, event: str, event_type: str
) -> None:
    await api.create_stream()
    answer = await api.control("POST", "transmit", json={"login": BOB, "event": event, "reason": "INC-7"})
    assert answer.status_code == 200, answer.text
    [(_, claims, _)] = await api.pushed(1)
    assert claims["jti"] == answer.json()["jti"]
    payload = claims["events"][event_type]
    assert payload["reason_admin"] == {"en": "INC-7"}
    assert isinstance(payload["event_timestamp"], int)
    assert claims["sub_id"] == {"format": "iss_sub", "iss": api.org.url, "sub": BOB}
    if event_type == CREDENTIAL_COMPROMISE:
        assert payload["credential_type"] == "password"
    assert api.org.user(BOB).sessions == 1  # transmitting changes nothing in the org


async def test_the_control_api_refuses_what_it_cannot_transmit(api: Api) -> None:
    assert (
        await api.control("POST", "transmit", json={"login": BOB, "event": "session-revoked"})
    ).status_code == 409
    await api.create_stream(events_requested=[SESSION_REVOKED])
    assert (
        await api.control("POST", "transmit", json={"login": BOB, "event": "credential-compromise"})
    ).status_code == 409
    assert (
        await api.control("POST", "transmit", json={"login": "nobody@x", "event": "session-revoked"})
    ).status_code == 404
    assert (await api.control("POST", "transmit", json={"login": BOB, "event": "party"})).status_code == 400
    assert (await api.control("POST", "transmit", content=b"{")).status_code == 400
    await api.http.get("/.well-known/ssf-configuration")  # an exchange with the org to check


async def test_a_refused_push_is_retried_then_given_up(api: Api) -> None:
    await api.create_stream()
    api.peer.answers = [503, 400]
    await api.control("POST", "transmit", json={"login": BOB, "event": "session-revoked"})
    await api.pushed(3)
    await _settled(api)
    [delivery] = (await api.control("GET", "deliveries")).json()["deliveries"]
    assert (delivery["attempts"], delivery["outcome"], delivery["status"]) == (3, "delivered", 202)

    api.peer.answers = [400, 400, 400, 400]
    await api.control("POST", "transmit", json={"login": BOB, "event": "session-revoked"})
    await api.pushed(7)
    await _settled(api)
    failed = (await api.control("GET", "deliveries")).json()["deliveries"][1]
    assert (failed["attempts"], failed["outcome"], failed["status"]) == (4, "failed", 400)
    assert "invalid_request" in failed["error"]


async def _settled(api: Api) -> None:
    deadline = time.monotonic() + 5
    while any(d.outcome == "pending" for d in api.org.emulator.ssf.deliveries):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)


# --- the org as receiver ----------------------------------------------------------------------------
async def test_providers_are_managed_with_the_api_token_or_their_scopes(api: Api) -> None:
    from_well_known = await api.add_provider()
    assert from_well_known["id"].startswith("sse") and from_well_known["status"] == "ACTIVE"
    assert from_well_known["settings"] == {
        "well_known_url": f"{api.peer.url}/.well-known/ssf-configuration",
        "issuer": api.peer.issuer,
        "jwks_url": f"{api.peer.url}/jwks",
    }
    by_issuer = await api.add_provider(issuer="https://idp.example.test", jwks_url=f"{api.peer.url}/jwks")
    assert by_issuer["settings"] == {"issuer": "https://idp.example.test", "jwks_url": f"{api.peer.url}/jwks"}

    reader = await api.token(PROVIDERS_READER, "okta.securityEventsProviders.read")
    listed = await api.http.get("/api/v1/security-events-providers", headers=reader)
    assert [p["id"] for p in listed.json()] == [from_well_known["id"], by_issuer["id"]]
    refused = await api.http.delete(f"/api/v1/security-events-providers/{by_issuer['id']}", headers=reader)
    assert refused.status_code == 403 and refused.json()["errorCode"] == "E0000006"

    ssws = {"Authorization": f"SSWS {API_TOKEN}"}
    path = f"/api/v1/security-events-providers/{by_issuer['id']}"
    off = await api.http.post(f"{path}/lifecycle/deactivate", headers=ssws)
    assert off.json()["status"] == "INACTIVE" and "activate" in off.json()["_links"]
    on = await api.http.post(f"{path}/lifecycle/activate", headers=ssws)
    assert on.json()["status"] == "ACTIVE" and "deactivate" in on.json()["_links"]
    settings = {"issuer": "https://edr.example.test", "jwks_url": f"{api.peer.url}/jwks"}
    renamed = await api.http.put(
        path, headers=ssws, json={"name": "EDR", "type": "okta", "settings": settings}
    )
    assert (
        renamed.json()["name"] == "EDR" and renamed.json()["settings"]["issuer"] == "https://edr.example.test"
    )
    assert (await api.http.get(path, headers=ssws)).json() == renamed.json()
    assert (await api.http.delete(path, headers=ssws)).status_code == 204
    gone = await api.http.get(path, headers=ssws)
    assert gone.status_code == 404 and gone.json()["errorCode"] == "E0000007"
    assert list(api.org.emulator.ssf_receiver.providers) == [from_well_known["id"]]


async def test_a_provider_needs_a_readable_configuration_or_an_issuer_and_keys(api: Api) -> None:
    ssws = {"Authorization": f"SSWS {API_TOKEN}"}
    bad = [
        (api.http, {"well_known_url": f"{api.peer.url}/nothing-here"}),
        (api.http, {"issuer": "i", "jwks_url": "file:///etc/keys"}),
        # Off the contract on purpose (settings match both of its schemas, or neither): unchecked.
        (
            api.unchecked,
            {"well_known_url": "https://a.example/x", "issuer": "i", "jwks_url": "https://a.example/k"},
        ),
        (api.unchecked, {"issuer": "i"}),
    ]
    for client, settings in bad:
        body = {"name": "x", "type": "okta", "settings": settings}
        answer = await client.post("/api/v1/security-events-providers", json=body, headers=ssws)
        assert answer.status_code == 400 and answer.json()["errorCode"] == "E0000001", settings
    assert api.org.emulator.ssf_receiver.providers == {}


def _set(
    api: Api,
    signer: Signer = RSA_SIGNER,
    header: dict[str, Any] | None = None,
    check: bool = True,
    **claims: Any,
) -> str:
    """A SET from the peer transmitter, checked against Okta's schema unless `check` is False."""
    body: dict[str, Any] = {
        "iss": api.peer.issuer,
        "aud": api.org.url,
        "iat": int(time.time()),
        "jti": secrets.token_hex(12),
        "events": {
            SESSION_REVOKED: {
                "event_timestamp": int(time.time()),
                "initiating_entity": "admin",
                "reason_admin": {"en": "Contained by Clampdown"},
                "subject": {"user": {"format": "email", "email": ALICE}},
            }
        },
        **claims,
    }
    if check:
        validate_schema("SecurityEventTokenRequestJwtBody", body)
    return signer.sign(body, **(header or {}))


@pytest.mark.parametrize("signer", [RSA_SIGNER, EC_SIGNER], ids=["RS256", "ES256"])
async def test_a_valid_session_revoked_set_is_accepted_and_clears_the_sessions(
    api: Api, signer: Signer
) -> None:
    provider = await api.add_provider()
    assert api.org.user(ALICE).sessions == 1
    token = _set(api, signer)
    validate_schema("SecurityEventTokenRequestJwtHeader", jwt.get_unverified_header(token))
    answer = await api.publish(token)
    assert answer.status_code == 202, answer.text
    assert api.org.user(ALICE).sessions == 0
    assert api.org.user(BOB).sessions == 1
    [received] = (await api.control("GET", "received")).json()["received"]
    assert received["result"] == "accepted" and received["verified"] is True
    assert received["provider_id"] == provider["id"]
    assert received["action"] == "sessions_cleared" and received["user_id"] == api.org.ids[ALICE]
    assert received["claims"]["jti"] == jwt.decode(token, options={"verify_signature": False})["jti"]
    assert api.org.events("security.events.provider.receive_event", api.org.ids[ALICE])
    assert api.org.events("user.session.clear", api.org.ids[ALICE])


LAPTOP = {"device": {"format": "opaque", "id": "laptop-7"}}


@pytest.mark.parametrize(
    ("subject", "sub_id"),
    [
        ({"user": {"format": "iss_sub", "iss": "https://idp.example.test", "sub": BOB}}, None),
        ({"user": {"format": "opaque", "id": "okta-id-of-bob"}}, None),
        (LAPTOP, {"format": "email", "email": BOB}),
        (LAPTOP, {"format": "complex", "user": {"format": "email", "email": BOB}}),
    ],
    ids=["iss_sub", "okta id", "sub_id email", "sub_id complex"],
)  # fmt: skip
async def test_the_user_may_be_named_in_each_subject_format(
    api: Api, subject: dict[str, Any], sub_id: dict[str, Any] | None
) -> None:
    await api.add_provider()
    if subject.get("user", {}).get("id") == "okta-id-of-bob":
        subject = {"user": {"format": "opaque", "id": api.org.ids[BOB]}}
    events = {SESSION_REVOKED: {"event_timestamp": int(time.time()), "subject": subject}}
    extra = {"sub_id": sub_id} if sub_id else {}
    assert (await api.publish(_set(api, events=events, **extra))).status_code == 202
    assert api.org.user(BOB).sessions == 0 and api.org.user(ALICE).sessions == 1


async def test_other_event_types_are_accepted_and_only_recorded(api: Api) -> None:
    await api.add_provider()
    events = {
        ACCOUNT_DISABLED: {"event_timestamp": int(time.time()), "reason": "hijacking"},
        CREDENTIAL_CHANGE: {"change_type": "revoke", "credential_type": "password"},
    }
    token = _set(api, events=events, sub_id={"format": "email", "email": ALICE})
    assert (await api.publish(token)).status_code == 202
    assert api.org.user(ALICE).sessions == 1
    [received] = (await api.control("GET", "received")).json()["received"]
    assert received["action"] == "recorded" and set(received["claims"]["events"]) == set(events)


def _refusals(api: Api) -> dict[str, tuple[str, str]]:
    """A SET for each way of being wrong, with the `err` it must be refused with."""
    other_key = Signer(
        rsa.generate_private_key(public_exponent=65537, key_size=2048), RSA_SIGNER.kid, "RS256"
    )
    return {
        "expired": (_set(api, iat=int(time.time()) - 3600), "invalid_request"),
        "future": (_set(api, iat=int(time.time()) + 3600), "invalid_request"),
        "unknown kid": (_set(api, header={"kid": "nobody-knows-me"}), "invalid_key"),
        "wrong audience": (_set(api, aud="https://another-org.okta.com"), "invalid_audience"),
        "unknown issuer": (_set(api, iss="https://stranger.example.test"), "invalid_issuer"),
        "bad signature": (other_key.sign(jwt.decode(_set(api), options={"verify_signature": False})),
                          "authentication_failed"),
        "not a SET typ": (_set(api, header={"typ": "JWT"}), "invalid_request"),
        "no events": (_set(api, events={}), "invalid_request"),
        "no subject": (_set(api, events={SESSION_REVOKED: {"event_timestamp": 1}}, check=False),
                       "invalid_request"),
        "HS256": (jwt.encode({"iss": api.peer.issuer}, "k" * 32, algorithm="HS256",
                             headers={"typ": "secevent+jwt", "kid": RSA_SIGNER.kid}), "invalid_request"),
        "not a JWT": ("this is not a token", "invalid_request"),
    }  # fmt: skip


async def test_each_wrong_set_is_refused_with_its_error_code(api: Api) -> None:
    await api.add_provider()
    for name, (token, err) in _refusals(api).items():
        answer = await api.publish(token)
        assert answer.status_code == 400, name
        assert answer.json()["err"] == err, (name, answer.json())
        assert answer.json()["description"]
    assert api.org.user(ALICE).sessions == 1
    received = (await api.control("GET", "received")).json()["received"]
    assert [r["result"] for r in received] == [err for _, err in _refusals(api).values()]
    assert not any(r["verified"] for r in received)
    assert not api.org.events("security.events.provider.receive_event")


async def test_a_replayed_set_is_refused(api: Api) -> None:
    await api.add_provider()
    token = _set(api)
    assert (await api.publish(token)).status_code == 202
    replay = await api.publish(token)
    assert replay.status_code == 400 and replay.json()["err"] == "invalid_request"
    assert "already" in replay.json()["description"]


async def test_an_inactive_provider_is_not_listened_to(api: Api) -> None:
    provider = await api.add_provider()
    ssws = {"Authorization": f"SSWS {API_TOKEN}"}
    await api.http.post(
        f"/api/v1/security-events-providers/{provider['id']}/lifecycle/deactivate", headers=ssws
    )
    answer = await api.publish(_set(api))
    assert answer.status_code == 400 and answer.json()["err"] == "invalid_issuer"
    assert api.org.user(ALICE).sessions == 1


async def test_a_new_key_is_fetched_once_then_cached(api: Api) -> None:
    await api.add_provider()
    assert (await api.publish(_set(api))).status_code == 202
    assert (await api.publish(_set(api))).status_code == 202
    reads = api.peer.jwks_reads
    rotated = Signer(ec.generate_private_key(ec.SECP256R1()), "peer-ec-2", "ES256")
    api.peer.keys.append(rotated.jwk())
    assert (await api.publish(_set(api, rotated))).status_code == 202
    assert api.peer.jwks_reads == reads + 1
    assert (await api.publish(_set(api, header={"kid": "still-unknown"}))).status_code == 400
    assert api.peer.jwks_reads == reads + 2


async def test_a_set_must_be_posted_as_secevent_jwt(api: Api) -> None:
    await api.add_provider()
    # Off the contract on purpose (another media type): sent unchecked.
    answer = await api.unchecked.post(
        "/security/api/v1/security-events", content=_set(api), headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400 and answer.json()["err"] == "invalid_request"
    assert api.org.user(ALICE).sessions == 1


async def test_streams_and_providers_outlive_a_restart_of_the_org(api: Api, tmp_path: Any) -> None:
    private, public = pem_pair()
    settings = EmulatorSettings(
        api_tokens={API_TOKEN: "admin@lab.example.test"},
        apps=[{"client_id": MANAGER, "public_key_pem": public, "scopes": ["ssf.manage"]}],
        state_file=str(tmp_path / "org.json"),
    )
    server = EmulatorServer(build_emulator(settings)).start()
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            first = Api(http, http, api.org, api.peer, private)
            first.org = Org(server.emulator, server.url, private, private)
            stream = await first.create_stream()
            provider = await first.add_provider()
    finally:
        server.stop()
    again = build_emulator(settings)
    assert list(again.ssf.streams) == [stream["stream_id"]]
    assert again.ssf.streams[stream["stream_id"]].delivery["authorization_header"] == RECEIVER_AUTH
    assert list(again.ssf_receiver.providers) == [provider["id"]]
    assert again.ssf_receiver.providers[provider["id"]].issuer == api.peer.issuer
    await api.http.get("/.well-known/ssf-configuration")  # an exchange with the org to check
