"""The emulator's ASGI app: routing, Okta error bodies, rate-limit headers and injected faults."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from clampdown_lab.okta_emulator.auth import Authenticator, OAuthError
from clampdown_lab.okta_emulator.authorization_servers_api import AuthorizationServersApi
from clampdown_lab.okta_emulator.control import control_routes
from clampdown_lab.okta_emulator.faults import Fault, FaultPlan
from clampdown_lab.okta_emulator.oidc import OidcEndpoints, OidcProvider
from clampdown_lab.okta_emulator.org_api import OrgApi
from clampdown_lab.okta_emulator.ratelimit import RateLimiter, bucket_for
from clampdown_lab.okta_emulator.ssf_receiver import SsfReceiver, SsfReceiverApi
from clampdown_lab.okta_emulator.ssf_transmitter import SsfTransmitter, SsfTransmitterApi
from clampdown_lab.okta_emulator.state import OktaApiError, OrgState, new_error_id
from clampdown_lab.okta_emulator.users_api import UsersApi

logger = logging.getLogger(__name__)


def error_body(code: str, summary: str, causes: tuple[str, ...] = ()) -> dict[str, Any]:
    """Okta's error object."""
    return {
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": new_error_id(),
        "errorCauses": [{"errorSummary": c} for c in causes],
    }


@dataclass
class Emulator:
    """One emulated org with everything tests may inspect or change while it runs."""

    state: OrgState
    auth: Authenticator
    limiter: RateLimiter = field(default_factory=RateLimiter)
    faults: FaultPlan = field(default_factory=FaultPlan)
    oidc: OidcProvider = field(default_factory=OidcProvider)
    deactivate_delay: float = 0.2
    org_name: str = "Clampdown Lab"
    latency: float = 0.0  # seconds each API request takes, as a real org's answers do
    # (method, path, status) of recent requests; bounded so a long-running lab stays small.
    request_log: deque[tuple[str, str, int]] = field(default_factory=lambda: deque(maxlen=200_000))
    # TLS verification of the SSF peers the org calls (receivers it pushes to, providers' JWKS and
    # configuration): True, False, or a CA bundle's path.
    ssf_verify: bool | str = True
    ssf: SsfTransmitter = field(init=False)
    ssf_receiver: SsfReceiver = field(init=False)

    def __post_init__(self) -> None:
        self.ssf = SsfTransmitter(self.oidc, state=self.state, verify=self.ssf_verify)
        self.ssf_receiver = SsfReceiver(self.state, verify=self.ssf_verify)
        self.state.listeners.append(self.ssf.on_log_event)

    def asgi(self) -> ASGIApp:
        """The app to serve: Okta's API behind the rate-limit and fault layer."""
        api = UsersApi(self.state, self.auth, self.deactivate_delay)
        oidc = OidcEndpoints(self.oidc, self.state)
        servers = AuthorizationServersApi(self.state, self.auth)
        org = OrgApi(self.state, self.auth, self.org_name)
        policies = "/api/v1/authorizationServers/{authServerId}/policies"
        ssf = SsfTransmitterApi(self.ssf, self.auth)
        receiver = SsfReceiverApi(self.ssf_receiver, self.auth)
        providers = "/api/v1/security-events-providers"
        provider = providers + "/{securityEventProviderId}"
        routes = [
            Route("/.well-known/openid-configuration", oidc.discovery, methods=["GET"]),
            Route("/oauth2/v1/authorize", oidc.authorize, methods=["GET", "POST"]),
            Route("/oauth2/v1/keys", oidc.keys, methods=["GET"]),
            Route("/oauth2/v1/token", self._token, methods=["POST"]),
            Route("/api/v1/users", api.list_users, methods=["GET"]),
            Route("/api/v1/users", api.create_user, methods=["POST"]),
            Route("/api/v1/users/{id}", api.get_user, methods=["GET"]),
            Route("/api/v1/users/{id}", api.delete_user, methods=["DELETE"]),
            Route("/api/v1/users/{id}/lifecycle/{operation}", api.lifecycle, methods=["POST"]),
            Route("/api/v1/users/{userId}/sessions", api.clear_sessions, methods=["DELETE"]),
            Route("/api/v1/users/{userId}/factors", api.list_factors, methods=["GET"]),
            Route("/api/v1/users/{userId}/grants", api.list_grants, methods=["GET"]),
            Route("/api/v1/users/{userId}/grants", api.revoke_grants, methods=["DELETE"]),
            Route("/api/v1/users/{userId}/risk", api.get_risk, methods=["GET"]),
            Route("/api/v1/users/{userId}/risk", api.put_risk, methods=["PUT"]),
            Route("/oauth2/v1/global-token-revocation", api.global_token_revocation, methods=["POST"]),
            Route("/api/v1/logs", api.list_logs, methods=["GET"]),
            Route("/api/v1/authorizationServers", servers.list_servers, methods=["GET"]),
            Route(policies, servers.list_policies, methods=["GET"]),
            Route(policies + "/{policyId}/rules", servers.list_rules, methods=["GET"]),
            Route("/.well-known/okta-organization", org.well_known, methods=["GET"]),
            Route("/api/v1/org", org.settings, methods=["GET"]),
            Route("/api/v1/users/{userId}/roles", org.user_roles, methods=["GET"]),
            Route("/oauth2/v1/clients/{clientId}/roles", org.client_roles, methods=["GET"]),
            Route("/.well-known/ssf-configuration", ssf.metadata, methods=["GET"]),
            Route("/api/v1/ssf/stream", ssf.get_streams, methods=["GET"]),
            Route("/api/v1/ssf/stream", ssf.create_stream, methods=["POST"]),
            Route("/api/v1/ssf/stream", ssf.replace_stream, methods=["PUT"]),
            Route("/api/v1/ssf/stream", ssf.update_stream, methods=["PATCH"]),
            Route("/api/v1/ssf/stream", ssf.delete_stream, methods=["DELETE"]),
            Route("/api/v1/ssf/stream/status", ssf.stream_status, methods=["GET"]),
            Route("/api/v1/ssf/stream/verification", ssf.verification, methods=["POST"]),
            Route(providers, receiver.list_providers, methods=["GET"]),
            Route(providers, receiver.create_provider, methods=["POST"]),
            Route(provider, receiver.get_provider, methods=["GET"]),
            Route(provider, receiver.replace_provider, methods=["PUT"]),
            Route(provider, receiver.delete_provider, methods=["DELETE"]),
            Route(provider + "/lifecycle/{operation:str}", receiver.lifecycle, methods=["POST"]),
            Route("/security/api/v1/security-events", receiver.publish, methods=["POST"]),
            *control_routes(self),
        ]
        handlers: dict[Any, Callable[[Request, Exception], Any]] = {
            OktaApiError: _okta_error,
            OAuthError: _oauth_error,
            404: _unknown_path,
            405: _wrong_method,
        }
        app = Starlette(routes=routes, exception_handlers=handlers)
        return _OktaEdge(app, self)

    async def _token(self, request: Request) -> Response:
        if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
            raise OAuthError(400, "invalid_request", "The token request must be form-urlencoded.")
        # Parsed by hand: Starlette's form parser needs python-multipart, not worth a dependency.
        form = dict(parse_qsl((await request.body()).decode()))
        issuer = OidcEndpoints.issuer(request)
        if form.get("grant_type") == "authorization_code":
            app = self.oidc.authenticate_client(form, request.headers.get("authorization"))
            answer = self.oidc.redeem(app, form, issuer, self.state)
        elif form.get("grant_type") == "refresh_token":
            app = self.oidc.authenticate_client(form, request.headers.get("authorization"))
            answer = self.oidc.refresh(app, form, issuer, self.state)
        else:  # service apps: client_credentials with a private_key_jwt assertion
            answer = self.auth.issue(form, f"{issuer}/oauth2/v1/token")
        return JSONResponse(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


async def _okta_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OktaApiError)
    return JSONResponse(error_body(exc.code, exc.summary, exc.causes), status_code=exc.status)


async def _oauth_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OAuthError)
    return JSONResponse({"error": exc.error, "error_description": exc.description}, status_code=exc.status)


async def _unknown_path(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        error_body("E0000007", f"Not found: Resource not found: {request.url.path}"), status_code=404
    )


async def _wrong_method(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        error_body("E0000022", "The endpoint does not support the provided HTTP method"), status_code=405
    )


# The Okta error an injected status answers with.
_FAULT_ERRORS = {
    400: ("E0000001", "Api validation failed"),
    403: ("E0000006", "You do not have permission to perform the requested action"),
    404: ("E0000007", "Not found: Resource not found"),
    429: ("E0000047", "API call exceeded rate limit due to too many requests."),
}


class DroppedConnection(Exception):
    """Raised inside the server so that uvicorn closes the connection mid-answer."""


class _OktaEdge:
    """What sits in front of every Okta endpoint: faults, rate limits and the standard headers."""

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(("/api/", "/oauth2/")):
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        request_id = new_error_id()
        scope.setdefault("state", {})["request_id"] = request_id
        status_box = [0]
        record = self.emulator.request_log.append

        async def send_counted(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_box[0] = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, send_counted, method, path, request_id)
        finally:
            record((method, path, status_box[0]))

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, method: str, path: str, request_id: str
    ) -> None:
        fault = self.emulator.faults.take(method, path)
        if fault is not None and fault.kind == "drop_before":
            await _drop(send)
        base_headers = {"X-Okta-Request-Id": request_id}
        if fault is not None and fault.kind == "status":
            code, summary = _FAULT_ERRORS.get(fault.status, ("E0000009", "Internal Server Error"))
            body = error_body(code, summary)
            await _send_json(send, fault.status, body, base_headers)
            return
        names = {k.decode().lower() for k, _ in scope["headers"]}
        # Okta's front end refuses a bodiless POST/PUT that does not say Content-Length: 0.
        if method in ("POST", "PUT") and not names & {"content-length", "transfer-encoding"}:
            await _send_raw(send, 411, b"Length Required", {"Content-Type": "text/plain", **base_headers})
            return
        decision = self.emulator.limiter.admit(bucket_for(method, path))
        if not decision.allowed:
            body = error_body("E0000047", "API call exceeded rate limit due to too many requests.")
            await _send_json(send, 429, body, {**base_headers, **decision.headers()})
            return
        extra = [(k.lower().encode(), v.encode()) for k, v in {**base_headers, **decision.headers()}.items()]
        drop_after = fault is not None and fault.kind == "drop_after"
        foreign = fault.link_base if fault is not None and fault.kind == "foreign_links" else None

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if foreign is not None:
                    headers = [
                        (k, re.sub(rb"<https?://[^/>]+", b"<" + foreign.encode(), v) if k == b"link" else v)
                        for k, v in headers
                    ]
                message = {**message, "headers": [*headers, *extra]}
                if drop_after:
                    await _drop(send)
            await send(message)

        try:
            if fault is not None and fault.kind == "delay":
                await asyncio.sleep(fault.delay)  # a slow answer holds its concurrency slot
            if self.emulator.latency:
                await asyncio.sleep(self.emulator.latency)
            await self.app(scope, receive, send_with_headers)
        finally:
            self.emulator.limiter.release()


async def _send_raw(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


async def _send_json(send: Send, status: int, body: Any, headers: dict[str, str]) -> None:
    await _send_raw(send, status, json.dumps(body).encode(), {"Content-Type": "application/json", **headers})


async def _drop(send: Send) -> None:
    """Start an answer that promises a body, then fail: the server closes the connection."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json"), (b"content-length", b"4096")],
        }
    )
    await send({"type": "http.response.body", "body": b'{"', "more_body": True})
    raise DroppedConnection("fault injected: connection dropped")


__all__ = ["DroppedConnection", "Emulator", "Fault", "error_body"]
