"""The org as an OpenID Shared Signals (SSF) transmitter, as Okta's SSFTransmitter API documents it.

`/.well-known/ssf-configuration`, the stream configuration endpoints under /api/v1/ssf/stream
(one stream per OAuth client id, at most ten per org, each client sees only its own) and push
delivery (RFC 8935) of Security Event Tokens signed with the org's key (/oauth2/v1/keys).

What is transmitted: the events Okta documents, CAEP session-revoked (Okta maps user.session.end
to it; the emulator's DELETE /api/v1/users/{id}/sessions and universal logout end sessions) and
credential-change (Okta maps user.account.reset_password and update_password to it; the emulator
also counts an expired password as one), plus, on demand from /_emulator/ssf/transmit, those two
and RISC credential-compromise (the lab's addition, see EVENTS_SUPPORTED).
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from clampdown_lab.okta_emulator.auth import Authenticator, Principal, require_scope
from clampdown_lab.okta_emulator.oidc import OidcProvider
from clampdown_lab.okta_emulator.state import OktaApiError, OrgState, UserRecord, not_found, validation_failed

logger = logging.getLogger(__name__)

SESSION_REVOKED = "https://schemas.openid.net/secevent/caep/event-type/session-revoked"
CREDENTIAL_CHANGE = "https://schemas.openid.net/secevent/caep/event-type/credential-change"
CREDENTIAL_COMPROMISE = "https://schemas.openid.net/secevent/risc/event-type/credential-compromise"
VERIFICATION = "https://schemas.openid.net/secevent/ssf/event-type/verification"
PUSH_RFC8935 = "urn:ietf:rfc:8935"
PUSH_RISC = "https://schemas.openid.net/secevent/risc/delivery-method/push"
SET_MEDIA_TYPE = "application/secevent+jwt"
# Okta's documents list session-revoked and credential-change (the SSFTransmitter tag, the
# StreamConfiguration examples); RISC credential-compromise is the lab's addition, so that a
# password manager's kind of signal can be played from the emulator (issue 21's round trip).
EVENTS_SUPPORTED = (SESSION_REVOKED, CREDENTIAL_CHANGE, CREDENTIAL_COMPROMISE)
EVENT_NAMES = {
    "session-revoked": SESSION_REVOKED,
    "credential-change": CREDENTIAL_CHANGE,
    "credential-compromise": CREDENTIAL_COMPROMISE,
}
MAX_STREAMS = 10  # per org (createSsfStream)
# System Log event types of the emulator that Okta's transmitter maps to a CAEP event.
LOG_EVENT_MAP = {
    "user.session.end": SESSION_REVOKED,
    "user.session.clear": SESSION_REVOKED,
    "user.authentication.universal_logout": SESSION_REVOKED,
    "user.account.reset_password": CREDENTIAL_CHANGE,
    "user.account.update_password": CREDENTIAL_CHANGE,
    "user.account.expire_password": CREDENTIAL_CHANGE,
}
# Read-only fields a request may carry if they match (events_delivered follows events_requested,
# so a stale copy in a read-modify-write is let through).
_READ_ONLY = ("iss", "aud", "events_supported", "min_verification_interval")


@dataclass
class Stream:
    """One receiver's stream: where and what to push, owned by one OAuth client id."""

    stream_id: str
    client_id: str
    iss: str
    delivery: dict[str, Any]
    events_requested: list[str]
    format: str = "iss_sub"
    status: str = "enabled"

    @property
    def aud(self) -> str:
        """The receiver's origin: the transmitter sets `aud`, Okta's example shows the endpoint's."""
        parts = urlsplit(str(self.delivery["endpoint_url"]))
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def events_delivered(self) -> list[str]:
        return [e for e in self.events_requested if e in EVENTS_SUPPORTED]

    def to_json(self) -> dict[str, Any]:
        # The authorization header is a secret of the receiver's: never given back.
        delivery = {k: v for k, v in self.delivery.items() if v is not None and k != "authorization_header"}
        return {
            "aud": self.aud,
            "delivery": delivery,
            "events_delivered": self.events_delivered,
            "events_requested": list(self.events_requested),
            "events_supported": list(EVENTS_SUPPORTED),
            "format": self.format,
            "iss": self.iss,
            "min_verification_interval": 0,
            "stream_id": self.stream_id,
        }


@dataclass
class Delivery:
    """One SET pushed (or being pushed) to a stream's endpoint, and how it went."""

    jti: str
    stream_id: str
    event_type: str
    endpoint_url: str
    subject: str | None
    attempts: int = 0
    status: int | None = None  # the receiver's last HTTP answer
    outcome: str = "pending"  # pending | delivered | failed
    error: str | None = None
    created: float = field(default_factory=time.time)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SsfTransmitter:
    """Streams, the SETs pushed to them and the push itself (with retries in the background)."""

    oidc: OidcProvider
    state: OrgState | None = None  # where the streams are saved, with the org (the lab restarts)
    clock: Callable[[], float] = time.time
    verify: bool | str = True  # TLS verification of receivers: a CA file, or False
    retry_delays: tuple[float, ...] = (0.5, 2.0, 5.0)  # after the 1st, 2nd and 3rd failed attempt
    timeout: float = 5.0
    streams: dict[str, Stream] = field(default_factory=dict)
    deliveries: deque[Delivery] = field(default_factory=lambda: deque(maxlen=1000))
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, repr=False)
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.state is not None:
            for saved in self.state.attachments.get("ssf_streams", []):
                stream = Stream(**saved)
                self.streams[stream.stream_id] = stream

    def save(self) -> None:
        """Keep the streams with the org's saved state."""
        if self.state is not None:
            self.state.attachments["ssf_streams"] = [asdict(s) for s in self.streams.values()]
            self.state.save()

    def clear(self) -> None:
        """Forget every stream and delivery (tests start each case from an empty org)."""
        self.streams.clear()
        self.deliveries.clear()
        self.save()

    # --- what is transmitted ---------------------------------------------------------------
    def on_log_event(self, event_type: str, record: UserRecord) -> None:
        """The org's System Log hook: an event Okta maps to CAEP goes out on every stream that wants it."""
        mapped = LOG_EVENT_MAP.get(event_type)
        if mapped is not None:
            self.transmit(record.login, mapped)

    def transmit(self, login: str, event_type: str, reason: str | None = None) -> list[Delivery]:
        """Sign one SET about the user `login` per enabled stream delivering `event_type`; push them."""
        now = int(self.clock())
        made = []
        for stream in list(self.streams.values()):
            if stream.status != "enabled" or event_type not in stream.events_delivered:
                continue
            subject = {"format": "iss_sub", "iss": stream.iss, "sub": login}
            payload: dict[str, Any] = {"event_timestamp": now, "subject": subject}
            if event_type == CREDENTIAL_CHANGE:
                payload |= {
                    "change_type": "update",
                    "credential_type": "password",
                    "initiating_entity": "admin",
                }
            elif event_type == CREDENTIAL_COMPROMISE:
                payload["credential_type"] = "password"
            elif event_type == SESSION_REVOKED:
                payload["initiating_entity"] = "admin"
            if reason:
                payload["reason_admin"] = {"en": reason}
            made.append(self._send(stream, event_type, payload, subject, login))
        return made

    def verify_stream(self, stream: Stream, state: str | None) -> Delivery:
        """The SSF verification event, with the receiver's `state` echoed back."""
        subject = {"format": "opaque", "id": stream.stream_id}
        payload = {"state": state} if state is not None else {}
        return self._send(stream, VERIFICATION, payload, subject, None)

    def _send(
        self,
        stream: Stream,
        event_type: str,
        payload: dict[str, Any],
        subject: dict[str, Any],
        login: str | None,
    ) -> Delivery:
        jti = secrets.token_hex(16)
        claims = {
            "iss": stream.iss,
            "aud": stream.aud,
            "iat": int(self.clock()),
            "jti": jti,
            "sub_id": subject,
            "events": {event_type: payload},
        }
        token = jwt.encode(
            claims,
            self.oidc.signing_key,
            algorithm="RS256",
            headers={"typ": "secevent+jwt", "kid": self.oidc.key_id},
        )
        delivery = Delivery(jti, stream.stream_id, event_type, str(stream.delivery["endpoint_url"]), login)
        self.deliveries.append(delivery)
        self._schedule(lambda: self._push(stream, delivery, token))
        return delivery

    # --- push delivery (RFC 8935) ------------------------------------------------------------
    def _schedule(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # called outside the server's loop (a test changing the state directly)
            if self._loop is None or self._loop.is_closed():
                logger.warning("SSF: no event loop to push from yet; the SET is recorded, not sent")
                return
            self._loop.call_soon_threadsafe(self._start, work)
            return
        self._loop = loop
        self._start(work)

    def _start(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        task = asyncio.get_running_loop().create_task(work())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _push(self, stream: Stream, delivery: Delivery, token: str) -> None:
        headers = {"Content-Type": SET_MEDIA_TYPE, "Accept": "application/json"}
        if stream.delivery.get("authorization_header"):
            headers["Authorization"] = str(stream.delivery["authorization_header"])
        async with httpx.AsyncClient(verify=self.verify, timeout=self.timeout) as client:
            for attempt, delay in enumerate((*self.retry_delays, None), start=1):
                delivery.attempts = attempt
                try:
                    answer = await client.post(delivery.endpoint_url, content=token, headers=headers)
                    delivery.status, delivery.error = answer.status_code, None
                    if answer.status_code == 202:
                        delivery.outcome = "delivered"
                        return
                    delivery.error = _error_of(answer)
                except httpx.HTTPError as exc:
                    delivery.status, delivery.error = None, f"{type(exc).__name__}: {exc}"
                if delay is None:
                    break
                await asyncio.sleep(delay)
        delivery.outcome = "failed"
        logger.warning(
            "SSF: SET %s to %s failed after %d attempts: %s",
            delivery.jti,
            delivery.endpoint_url,
            delivery.attempts,
            delivery.error,
        )

    async def drain(self) -> None:
        """Wait for every push under way (tests)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)


def _error_of(answer: httpx.Response) -> str:
    """The receiver's refusal as RFC 8935 section 2.4 words it (`err`, `description`), else its status."""
    try:
        body = answer.json()
    except ValueError:
        return f"HTTP {answer.status_code}"
    if isinstance(body, dict) and "err" in body:
        return f"HTTP {answer.status_code} {body.get('err')}: {body.get('description', '')}"
    return f"HTTP {answer.status_code}"


class SsfTransmitterApi:
    """The Starlette handlers of the SSFTransmitter API."""

    def __init__(self, transmitter: SsfTransmitter, auth: Authenticator) -> None:
        self.transmitter = transmitter
        self.auth = auth

    @staticmethod
    def issuer(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    async def metadata(self, request: Request) -> Response:
        issuer = self.issuer(request)
        return JSONResponse(
            {
                "issuer": issuer,
                "jwks_uri": f"{issuer}/oauth2/v1/keys",
                "configuration_endpoint": f"{issuer}/api/v1/ssf/stream",
                "verification_endpoint": f"{issuer}/api/v1/ssf/stream/verification",
                "delivery_methods_supported": [PUSH_RISC, PUSH_RFC8935],
                "spec_version": "1_0-ID3",
                "authorization_schemes": [{"spec_urn": "urn:ietf:rfc:6749"}],
                "default_subjects": "ALL",
            }
        )

    def client_id(self, request: Request, scope: str) -> str:
        """The OAuth client calling: streams are tied to the client id of the access token."""
        principal: Principal = self.auth.authenticate(request.headers.get("authorization"))
        if principal.actor.type != "PublicClientApp":
            raise OktaApiError(
                403,
                "E0000006",
                "You do not have permission to perform the requested action",
                ("SSF streams are managed with an OAuth 2.0 access token, not an API token.",),
            )
        require_scope(principal, scope)
        return principal.actor.id

    def own_stream(self, client_id: str, stream_id: str | None) -> Stream:
        """The caller's stream (by id when given); another client's stream is not found."""
        for stream in self.transmitter.streams.values():
            if stream.client_id == client_id and (stream_id is None or stream.stream_id == stream_id):
                return stream
        raise not_found(f"{stream_id} (SSF stream)" if stream_id else "SSF stream of this client")

    async def get_streams(self, request: Request) -> Response:
        client_id = self.client_id(request, "ssf.read")
        stream_id = request.query_params.get("stream_id")
        if stream_id is not None:
            return JSONResponse(self.own_stream(client_id, stream_id).to_json())
        mine = [s.to_json() for s in self.transmitter.streams.values() if s.client_id == client_id]
        return JSONResponse(mine)

    async def create_stream(self, request: Request) -> Response:
        client_id = self.client_id(request, "ssf.manage")
        body = await _json_object(request)
        config = _stream_config(body, require_all=True, issuer=self.issuer(request))
        if any(s.client_id == client_id for s in self.transmitter.streams.values()):
            raise OktaApiError(
                409,
                "E0000195",
                "Api validation failed due to conflict: a stream already exists for this client",
                ("One SSF stream is allowed for each client ID.",),
            )
        if len(self.transmitter.streams) >= MAX_STREAMS:
            raise validation_failed(f"an org has at most {MAX_STREAMS} SSF streams")
        stream = Stream(
            stream_id="esc" + secrets.token_urlsafe(13).replace("-", "x").replace("_", "y")[:17],
            client_id=client_id,
            iss=self.issuer(request),
            delivery=config["delivery"],
            events_requested=config["events_requested"],
            format=config.get("format", "iss_sub"),
        )
        self.transmitter.streams[stream.stream_id] = stream
        self.transmitter.save()
        self.transmitter._loop = asyncio.get_running_loop()
        return JSONResponse(stream.to_json(), status_code=201)

    async def replace_stream(self, request: Request) -> Response:
        return await self._update(request, replace=True)

    async def update_stream(self, request: Request) -> Response:
        return await self._update(request, replace=False)

    async def _update(self, request: Request, replace: bool) -> Response:
        client_id = self.client_id(request, "ssf.manage")
        body = await _json_object(request)
        stream_id = body.get("stream_id")
        if stream_id is not None and not isinstance(stream_id, str):
            raise validation_failed("stream_id: a string")
        stream = self.own_stream(client_id, stream_id)
        current = stream.to_json()
        config = _stream_config(body, require_all=replace, issuer=stream.iss, current=current)
        if "delivery" in config:
            stream.delivery = config["delivery"]
        if "events_requested" in config:
            stream.events_requested = config["events_requested"]
        stream.format = config.get("format", "iss_sub" if replace else stream.format)
        self.transmitter.save()
        return JSONResponse(stream.to_json())

    async def delete_stream(self, request: Request) -> Response:
        client_id = self.client_id(request, "ssf.manage")
        stream = self.own_stream(client_id, request.query_params.get("stream_id"))
        del self.transmitter.streams[stream.stream_id]
        self.transmitter.save()
        return Response(status_code=204)

    async def stream_status(self, request: Request) -> Response:
        client_id = self.client_id(request, "ssf.read")
        stream_id = request.query_params.get("stream_id")
        if not stream_id:
            raise OktaApiError(
                400, "E0000028", "The request is missing a required parameter.", ("stream_id",)
            )
        stream = self.own_stream(client_id, stream_id)
        return JSONResponse({"stream_id": stream.stream_id, "status": stream.status})

    async def verification(self, request: Request) -> Response:
        client_id = self.client_id(request, "ssf.manage")
        body = await _json_object(request)
        stream_id, state = body.get("stream_id"), body.get("state")
        if not isinstance(stream_id, str) or not stream_id:
            raise validation_failed("stream_id: required, a string")
        if state is not None and not isinstance(state, str):
            raise validation_failed("state: a string")
        stream = self.own_stream(client_id, stream_id)
        self.transmitter.verify_stream(stream, state)
        return Response(status_code=204)


async def _json_object(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body() or b"null")
    except ValueError:
        raise validation_failed("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise validation_failed("the body must be a JSON object")
    return body


def _stream_config(
    body: dict[str, Any], require_all: bool, issuer: str, current: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The writable fields of a stream request, checked; read-only ones must match (Okta's rule)."""
    config: dict[str, Any] = {}
    if "delivery" in body or require_all:
        config["delivery"] = _delivery(body.get("delivery"))
    if "events_requested" in body or require_all:
        events = body.get("events_requested")
        if not isinstance(events, list) or not all(isinstance(e, str) and e for e in events):
            raise validation_failed("events_requested: a list of event type URIs")
        if len(events) > 50 or any(len(e) > 256 for e in events):
            raise validation_failed("events_requested: at most 50 URIs of at most 256 characters")
        config["events_requested"] = list(dict.fromkeys(events))
    if "format" in body and body["format"] is not None:
        if body["format"] != "iss_sub":
            raise validation_failed("format: only iss_sub is supported")
        config["format"] = "iss_sub"
    expected = dict(current or {})
    expected.setdefault("iss", issuer)
    expected.setdefault("events_supported", list(EVENTS_SUPPORTED))
    expected.setdefault("min_verification_interval", 0)
    if "delivery" in config:
        expected["aud"] = Stream("", "", issuer, config["delivery"], []).aud
    for name in _READ_ONLY:
        if name in body and body[name] is not None and name in expected and body[name] != expected[name]:
            raise validation_failed(f"{name} is set by the transmitter; expected {expected[name]!r}")
    return config


def _delivery(value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise validation_failed("delivery: an object with method and endpoint_url")
    method, url = value.get("method"), value.get("endpoint_url")
    if method not in (PUSH_RFC8935, PUSH_RISC):
        raise validation_failed(f"delivery.method: {PUSH_RFC8935} or {PUSH_RISC} (push only)")
    # The lab pushes to Clampdown over http on loopback; Okta itself requires https.
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("https", "http") or not parts.netloc or len(url or "") > 2048:
        raise validation_failed("delivery.endpoint_url: an http(s) URL of at most 2048 characters")
    header = value.get("authorization_header")
    if header is not None and (not isinstance(header, str) or len(header) > 8192):
        raise validation_failed("delivery.authorization_header: a string of at most 8192 characters")
    return {"method": method, "endpoint_url": url, "authorization_header": header}


def event_type_named(name: str) -> str:
    """The event type URI of a short name (session-revoked ...) or of itself."""
    if name in EVENT_NAMES:
        return EVENT_NAMES[name]
    if name in EVENTS_SUPPORTED:
        return name
    raise ValueError(f"event: one of {', '.join(EVENT_NAMES)}")
