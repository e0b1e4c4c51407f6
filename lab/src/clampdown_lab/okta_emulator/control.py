"""The emulator's control API under /_emulator: seed users, passwords and groups, custom
authorization servers, register OIDC apps, set limits, inject faults, inspect; make the org
transmit an SSF event and see the SETs it pushed and received.

Not part of Okta's API; tests and benchmarks use it when the emulator runs in another process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from clampdown_lab.okta_emulator.faults import Fault
from clampdown_lab.okta_emulator.oidc import OidcWebApp
from clampdown_lab.okta_emulator.ssf_transmitter import event_type_named
from clampdown_lab.okta_emulator.users_api import validate_status

if TYPE_CHECKING:
    from clampdown_lab.okta_emulator.app import Emulator


def control_routes(emulator: Emulator) -> list[Route]:
    """Routes that let a test drive `emulator` over HTTP."""

    async def seed_users(request: Request) -> Response:
        body = await request.json()
        ids = {}
        for item in body.get("users", []):
            validate_status(str(item.get("status", "ACTIVE")))
            # An existing user keeps its status: seeding again must not undo an analyst's action.
            record = emulator.state.seed(item)
            ids[record.login] = record.id
        emulator.state.save()
        return JSONResponse({"ids": ids})

    async def seed_authorization_servers(request: Request) -> Response:
        body = await request.json()
        try:
            servers = [emulator.state.add_authorization_server(item) for item in body.get("servers", [])]
        except (KeyError, TypeError, ValueError) as exc:
            return JSONResponse({"error": f"bad authorization server: {exc}"}, status_code=400)
        return JSONResponse({"ids": {s.name: s.id for s in servers}})

    async def add_grant(request: Request) -> Response:
        """A consent grant the user gave an app (an attacker's OAuth app, in a test)."""
        record = emulator.state.users.get(request.path_params["id"])
        if record is None:
            return JSONResponse({"error": "no such user"}, status_code=404)
        body = await request.json()
        scope = str(body.get("scopeId", "okta.users.read.self"))
        grant = emulator.state.add_grant(record, str(body["clientId"]), scope)
        return JSONResponse(grant)

    async def enroll_factor(request: Request) -> Response:
        """An enrolled MFA factor of the user (an attacker's authenticator, in a test)."""
        record = emulator.state.users.get(request.path_params["id"])
        if record is None:
            return JSONResponse({"error": "no such user"}, status_code=404)
        body = await request.json()
        kind, provider = str(body.get("factorType", "push")), str(body.get("provider", "OKTA"))
        factor = emulator.state.enroll_factor(record, kind, provider)
        return JSONResponse(factor)

    async def get_user(request: Request) -> Response:
        record = emulator.state.users.get(request.path_params["id"])
        if record is None:
            return JSONResponse({"error": "no such user"}, status_code=404)
        return JSONResponse(_without_secrets(record.to_json()))

    async def set_credentials(request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        record = emulator.state.lookup(request.path_params["id"])
        groups = body.get("groups")
        emulator.state.set_credentials(
            record, body.get("password"), list(groups) if groups is not None else None
        )
        return JSONResponse(_without_secrets(record.to_json()))

    async def register_oidc_app(request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        app = OidcWebApp(
            client_id=str(body["client_id"]),
            client_secret=str(body["client_secret"]),
            redirect_uris=tuple(str(u) for u in body["redirect_uris"]),
            label=str(body.get("label", "OIDC web app")),
        )
        emulator.oidc.register(app)
        return JSONResponse({"client_id": app.client_id, "redirect_uris": list(app.redirect_uris)}, 201)

    async def set_limits(request: Request) -> Response:
        body: dict[str, Any] = await request.json()
        emulator.limiter.configure(
            limits={str(k): int(v) for k, v in body.get("limits", {}).items()},
            concurrency=body.get("concurrency"),
            window_seconds=body.get("window_seconds"),
        )
        return JSONResponse({"limits": emulator.limiter.limits, "concurrency": emulator.limiter.concurrency})

    async def set_latency(request: Request) -> Response:
        """How long each API request takes from now on (benchmarks: a real org's round trip)."""
        body: dict[str, Any] = await request.json()
        seconds = body.get("seconds")
        if not isinstance(seconds, int | float) or not 0 <= seconds <= 60:
            return JSONResponse({"error": "seconds: a number from 0 to 60"}, status_code=400)
        emulator.latency = float(seconds)
        return JSONResponse({"seconds": emulator.latency})

    async def add_fault(request: Request) -> Response:
        body = await request.json()
        emulator.faults.add(Fault(**body))
        return JSONResponse({"faults": len(emulator.faults.faults)})

    async def clear_faults(request: Request) -> Response:
        emulator.faults.clear()
        return Response(status_code=204)

    async def stats(request: Request) -> Response:
        by_status: dict[str, int] = {}
        for _, _, status in emulator.request_log:
            by_status[str(status)] = by_status.get(str(status), 0) + 1
        users_by_status: dict[str, int] = {}
        for record in emulator.state.users.values():
            users_by_status[record.status] = users_by_status.get(record.status, 0) + 1
        return JSONResponse(
            {
                "users_by_status": users_by_status,
                "requests": len(emulator.request_log),
                "by_status": by_status,
                "buckets": emulator.limiter.counters,
                "tokens_issued": emulator.auth.tokens_issued,
                "sign_ins": emulator.oidc.sign_ins,
                "log_events": len(emulator.state.logs),
            }
        )

    async def reset_stats(request: Request) -> Response:
        emulator.request_log.clear()
        emulator.limiter.counters.clear()
        emulator.limiter.windows.clear()
        return Response(status_code=204)

    async def expire_tokens(request: Request) -> Response:
        emulator.auth.expire_access_tokens()
        return Response(status_code=204)

    async def ssf_transmit(request: Request) -> Response:
        """Make the org transmit an SSF event about a user now: one SET per stream that wants it."""
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return JSONResponse({"error": "a JSON object: login, event, reason"}, status_code=400)
        try:
            event_type = event_type_named(str(body.get("event", "")))
        except ValueError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        record = emulator.state.find_by_login(str(body.get("login", "")))
        if record is None:
            return JSONResponse({"error": "login: no such user"}, status_code=404)
        reason = body.get("reason")
        sent = emulator.ssf.transmit(record.login, event_type, str(reason) if reason else None)
        if not sent:
            return JSONResponse({"error": f"no enabled SSF stream delivers {event_type}"}, status_code=409)
        return JSONResponse(
            {"jti": sent[0].jti, "jtis": [d.jti for d in sent], "streams": [d.stream_id for d in sent]}
        )

    async def ssf_deliveries(request: Request) -> Response:
        """Every SET the org pushed: to which stream and URL, how many attempts, the answer."""
        return JSONResponse({"deliveries": [d.to_json() for d in emulator.ssf.deliveries]})

    async def ssf_received(request: Request) -> Response:
        """Every SET published to the org: its provider, the verification result, what was done."""
        return JSONResponse({"received": [r.to_json() for r in emulator.ssf_receiver.received]})

    return [
        Route("/_emulator/users", seed_users, methods=["POST"]),
        Route("/_emulator/users/{id}", get_user, methods=["GET"]),
        Route("/_emulator/users/{id}/grants", add_grant, methods=["POST"]),
        Route("/_emulator/users/{id}/factors", enroll_factor, methods=["POST"]),
        Route("/_emulator/authorization-servers", seed_authorization_servers, methods=["POST"]),
        Route("/_emulator/users/{id}/credentials", set_credentials, methods=["PUT"]),
        Route("/_emulator/oidc/apps", register_oidc_app, methods=["POST"]),
        Route("/_emulator/rate-limits", set_limits, methods=["PUT"]),
        Route("/_emulator/latency", set_latency, methods=["PUT"]),
        Route("/_emulator/faults", add_fault, methods=["POST"]),
        Route("/_emulator/faults", clear_faults, methods=["DELETE"]),
        Route("/_emulator/stats", stats, methods=["GET"]),
        Route("/_emulator/stats", reset_stats, methods=["DELETE"]),
        Route("/_emulator/oauth/expire", expire_tokens, methods=["POST"]),
        Route("/_emulator/ssf/transmit", ssf_transmit, methods=["POST"]),
        Route("/_emulator/ssf/deliveries", ssf_deliveries, methods=["GET"]),
        Route("/_emulator/ssf/received", ssf_received, methods=["GET"]),
    ]


def _without_secrets(user: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in user.items() if k != "password_hash"}
