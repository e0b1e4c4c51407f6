"""The emulator's FastAPI app: identity platform endpoints, Graph v1.0 and `$batch`, and a small
admin API under `/_emulator` that tests and the lab use to configure throttling, inject faults,
move the tenant's clock, register apps, add users, devices, authentication methods, directory
role memberships and the organization default token lifetime policy, and simulate sign-ins."""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Response
from pydantic import BaseModel, Field

from clampdown_lab.graph_emulator.batch import run_batch
from clampdown_lab.graph_emulator.graph_api import GraphApi, GraphFault, GraphRequest, dumps, error_response
from clampdown_lab.graph_emulator.tenant import AppRecord, Tenant, UserRecord, object_id
from clampdown_lab.graph_emulator.throttling import Counters, FaultRule, Faults, Throttle, ThrottleConfig
from clampdown_lab.graph_emulator.tokens import GraphAuthError, TokenError, TokenService
from clampdown_lab.people import LAB_DOMAIN, DemoPerson

ADMIN_KEY_HEADER = "x-emulator-admin-key"


@dataclass
class Emulator:
    """Everything one running emulator holds."""

    tenant: Tenant
    throttle: Throttle = field(default_factory=Throttle)
    faults: Faults = field(default_factory=Faults)
    counters: Counters = field(default_factory=Counters)
    admin_key: str | None = None
    shuffle_batch_responses: bool = True
    latency_seconds: float = 0.0  # added to every Graph request, as a real service takes time
    tokens: TokenService = field(init=False)
    graph: GraphApi = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = TokenService(self.tenant)
        self.graph = GraphApi(self.tenant, self.throttle, self.faults, self.counters)


def _json(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        dumps(body) if body is not None else b"",
        status_code=status,
        headers=headers or {},
        media_type="application/json" if body is not None else None,
    )


def _graph(response: Any) -> Response:
    return _json(response.status, response.body, response.headers)


class AppRegistration(BaseModel):
    client_id: str
    display_name: str = "Clampdown"
    roles: list[str]
    secrets: list[str] = Field(default_factory=list)
    certificates: list[str] = Field(default_factory=list)
    directory_roles: list[str] = Field(default_factory=list)


class DeviceSeed(BaseModel):
    user: str  # object id or UPN of the user it is registered to
    displayName: str
    operatingSystem: str = "Windows"
    trustType: str = "Workplace"
    accountEnabled: bool = True


class AuthMethodSeed(BaseModel):
    user: str
    kind: str  # fido2Methods, microsoftAuthenticatorMethods, phoneMethods, temporaryAccessPassMethods
    registered_hours_ago: float = Field(0.0, ge=0)
    properties: dict[str, Any] = Field(default_factory=dict)  # displayName, phoneNumber, ...


class TokenLifetimeSeed(BaseModel):
    """The organization default token lifetime policy, set (replacing any) or removed (null)."""

    access_token_lifetime: str | None  # a TimeSpan, e.g. "02:00:00"; None: no default policy
    displayName: str = "Organization default token lifetime"


class RoleSeed(BaseModel):
    user: str
    role: str  # a built-in directory role's display name


class LatencySetting(BaseModel):
    seconds: float = Field(ge=0, le=60)


class NewUser(BaseModel):
    userPrincipalName: str
    displayName: str
    accountEnabled: bool = True
    id: str | None = None
    onPremisesSyncEnabled: bool | None = None
    onPremisesSamAccountName: str | None = None
    onPremisesSecurityIdentifier: str | None = None


class PersonSeed(BaseModel):
    username: str
    given_name: str
    surname: str
    department: str
    title: str
    on_premises: dict[str, str] | None = None  # objectSid, sAMAccountName, objectGUID of the AD account
    domain: str = LAB_DOMAIN  # the UPN suffix
    upn_name: str = ""  # the UPN's part before @ when it is not the username


class SignInRequest(BaseModel):
    user: str
    ip_address: str = "203.0.113.10"
    app_display_name: str = "Office 365"
    city: str = "Paris"
    country: str = "FR"
    session_age_seconds: float | None = None  # a session issued that long ago is presented


class RiskRequest(BaseModel):
    user: str
    riskLevel: str = "medium"
    riskState: str = "atRisk"
    riskDetail: str = "none"


def create_app(emulator: Emulator) -> FastAPI:
    """The ASGI app serving one emulated tenant."""
    app = FastAPI(title="Clampdown Microsoft Graph emulator", docs_url=None, redoc_url=None, openapi_url=None)
    tenant = emulator.tenant

    def root(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    # -- identity platform -------------------------------------------------------------------
    @app.get("/common/discovery/instance")
    async def instance_discovery(request: Request, authorization_endpoint: str) -> Response:
        return _json(200, emulator.tokens.instance_discovery(root(request), authorization_endpoint))

    @app.get("/{tenant_name}/v2.0/.well-known/openid-configuration")
    async def openid_configuration(request: Request, tenant_name: str) -> Response:
        try:
            return _json(200, emulator.tokens.openid_configuration(root(request), tenant_name))
        except TokenError as exc:
            return _json(exc.status, exc.body(tenant))

    @app.get("/{tenant_name}/discovery/v2.0/keys")
    async def keys(tenant_name: str) -> Response:
        return _json(200, emulator.tokens.jwks())

    @app.post("/{tenant_name}/oauth2/v2.0/token")
    async def token(request: Request, tenant_name: str) -> Response:
        form = dict(parse_qsl((await request.body()).decode()))
        url = f"{root(request)}/{tenant.tenant_id}/oauth2/v2.0/token"
        try:
            return _json(200, emulator.tokens.issue(tenant_name, form, url), {"Cache-Control": "no-store"})
        except TokenError as exc:
            return _json(exc.status, exc.body(tenant))

    # -- Graph -------------------------------------------------------------------------------
    @app.api_route("/v1.0/{path:path}", methods=["GET", "POST", "PATCH", "PUT", "DELETE"])
    async def graph(request: Request, path: str) -> Response:
        emulator.counters.http_requests += 1
        if emulator.latency_seconds:
            await asyncio.sleep(emulator.latency_seconds)
        client_request_id = request.headers.get("client-request-id")
        try:
            caller = emulator.tokens.caller(request.headers.get("authorization"))
        except GraphAuthError as exc:
            emulator.counters.count(401)
            return _graph(
                error_response(
                    tenant,
                    401,
                    "InvalidAuthenticationToken",
                    str(exc),
                    headers={"WWW-Authenticate": 'Bearer realm="", error="invalid_token"'},
                    client_request_id=client_request_id,
                )
            )
        limited = emulator.throttle.check(("requests",))
        if limited is not None:
            scope, wait = limited
            emulator.counters.throttled[scope] = emulator.counters.throttled.get(scope, 0) + 1
            emulator.counters.count(429)
            headers = {"Retry-After": f"{wait:g}"} if wait is not None else {}
            return _graph(
                error_response(
                    tenant,
                    429,
                    "TooManyRequests",
                    "Too many requests. Please retry again later.",
                    headers=headers,
                    client_request_id=client_request_id,
                )
            )
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            return _graph(
                error_response(
                    tenant,
                    400,
                    "BadRequest",
                    "Unable to read JSON request payload. "
                    "Please ensure Content-Type header is set and payload is of valid "
                    "JSON format.",
                    client_request_id=client_request_id,
                )
            )
        base = f"{root(request)}/v1.0"
        if path == "$batch" and request.method == "POST":
            try:
                out = run_batch(emulator.graph, body, caller, base, emulator.shuffle_batch_responses)
            except GraphFault as exc:
                return _graph(
                    error_response(
                        tenant, exc.status, exc.code, exc.message, client_request_id=client_request_id
                    )
                )
            return _json(200, out)
        graph_request = GraphRequest(
            method=request.method,
            path="/" + path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            caller=caller,
            base_url=base,
        )
        return _graph(emulator.graph.handle(graph_request))

    # -- admin -------------------------------------------------------------------------------
    def admin(request: Request) -> Response | None:
        if emulator.admin_key and request.headers.get(ADMIN_KEY_HEADER) != emulator.admin_key:
            return _json(403, {"error": "admin key required"})
        return None

    @app.get("/_emulator/health")
    async def health() -> Response:
        return _json(200, {"status": "ok", "tenant_id": tenant.tenant_id, "users": len(tenant.users)})

    @app.put("/_emulator/latency")
    async def set_latency(request: Request, body: LatencySetting) -> Response:
        """How long each Graph request takes from now on (benchmarks: a real tenant's round trip)."""
        if (denied := admin(request)) is not None:
            return denied
        emulator.latency_seconds = body.seconds
        return _json(200, {"seconds": emulator.latency_seconds})

    @app.get("/_emulator/users")
    async def dump_users(request: Request) -> Response:
        return admin(request) or _json(200, [asdict(u) for u in tenant.users.values()])

    @app.get("/_emulator/risky")
    async def dump_risky(request: Request) -> Response:
        return admin(request) or _json(200, [asdict(r) for r in tenant.risky.values()])

    @app.post("/_emulator/users")
    async def add_users(request: Request, users: list[NewUser]) -> Response:
        if (denied := admin(request)) is not None:
            return denied
        made = []
        for new in users:
            record = UserRecord(
                id=new.id or object_id("user", new.userPrincipalName), **new.model_dump(exclude={"id"})
            )
            made.append(tenant.add_user(record).id)
        emulator.graph.dirty = True
        return _json(200, {"ids": made})

    @app.post("/_emulator/people")
    async def add_people(request: Request, people: list[PersonSeed]) -> Response:
        if (denied := admin(request)) is not None:
            return denied
        ids = {}
        for seed in people:
            person = DemoPerson(
                seed.username, seed.given_name, seed.surname, seed.department, seed.title,
                seed.domain, seed.upn_name,
            )
            ids[seed.username] = tenant.add_person(person, seed.on_premises).id
        emulator.graph.dirty = True
        return _json(200, {"ids": ids})

    @app.post("/_emulator/sync")
    async def directory_sync(request: Request, on_premises_enabled: dict[str, bool]) -> Response:
        """A directory sync cycle: body maps sAMAccountName -> enabled in AD."""
        if (denied := admin(request)) is not None:
            return denied
        changed = tenant.directory_sync(on_premises_enabled)
        emulator.graph.dirty = True
        return _json(200, {"changed": changed})

    @app.post("/_emulator/devices")
    async def add_device(request: Request, seed: DeviceSeed) -> Response:
        if (denied := admin(request)) is not None:
            return denied
        user = tenant.find_user(seed.user)
        if user is None:
            return _json(404, {"error": f"no user {seed.user}"})
        fields = seed.model_dump(exclude={"user", "displayName"})
        device = tenant.register_device(user, seed.displayName, **fields)
        emulator.graph.dirty = True
        return _json(200, {"id": device.id})

    @app.get("/_emulator/devices")
    async def dump_devices(request: Request) -> Response:
        return admin(request) or _json(200, [asdict(d) for d in tenant.devices.values()])

    @app.post("/_emulator/auth-methods")
    async def add_auth_method(request: Request, seed: AuthMethodSeed) -> Response:
        if (denied := admin(request)) is not None:
            return denied
        user = tenant.find_user(seed.user)
        if user is None:
            return _json(404, {"error": f"no user {seed.user}"})
        created = tenant.clock.now() - timedelta(hours=seed.registered_hours_ago)
        try:
            method = tenant.add_auth_method(user, seed.kind, created, **seed.properties)
        except ValueError as exc:
            return _json(400, {"error": str(exc)})
        emulator.graph.dirty = True
        return _json(200, {"id": method.id})

    @app.get("/_emulator/auth-methods")
    async def dump_auth_methods(request: Request) -> Response:
        by_user = {u: [asdict(m) for m in ms] for u, ms in tenant.auth_methods.items()}
        return admin(request) or _json(200, by_user)

    @app.put("/_emulator/token-lifetime")
    async def set_token_lifetime(request: Request, seed: TokenLifetimeSeed) -> Response:
        if (denied := admin(request)) is not None:
            return denied
        old = tenant.default_token_lifetime_policy()
        if old is not None:
            del tenant.token_lifetime_policies[old.id]
        if seed.access_token_lifetime is None:
            emulator.graph.dirty = True
            return _json(200, {"id": None})
        definition = json.dumps(
            {"TokenLifetimePolicy": {"Version": 1, "AccessTokenLifetime": seed.access_token_lifetime}}
        )
        try:
            policy = tenant.add_token_lifetime_policy(seed.displayName, [definition], True)
        except ValueError as exc:
            if old is not None:
                tenant.token_lifetime_policies[old.id] = old
            return _json(400, {"error": str(exc)})
        emulator.graph.dirty = True
        return _json(200, {"id": policy.id, "expires_in": emulator.tokens.lifetime_seconds()})

    @app.get("/_emulator/token-lifetime-policies")
    async def dump_token_lifetime_policies(request: Request) -> Response:
        return admin(request) or _json(200, [asdict(p) for p in tenant.token_lifetime_policies.values()])

    @app.post("/_emulator/roles")
    async def assign_role(request: Request, seed: RoleSeed) -> Response:
        if (denied := admin(request)) is not None:
            return denied
        user = tenant.find_user(seed.user)
        if user is None:
            return _json(404, {"error": f"no user {seed.user}"})
        try:
            tenant.assign_role(user, seed.role)
        except ValueError as exc:
            return _json(400, {"error": str(exc)})
        emulator.graph.dirty = True
        return _json(200, {"roles": tenant.role_members[user.id]})

    @app.post("/_emulator/apps")
    async def add_app(request: Request, registration: AppRegistration) -> Response:
        if (denied := admin(request)) is not None:
            return denied
        tenant.apps[registration.client_id] = AppRecord(**registration.model_dump())
        emulator.graph.dirty = True
        return _json(200, {"client_id": registration.client_id})

    @app.put("/_emulator/throttle")
    async def set_throttle(request: Request, config: ThrottleConfig) -> Response:
        if (denied := admin(request)) is not None:
            return denied
        emulator.throttle.configure(config)
        return _json(200, config.model_dump())

    @app.post("/_emulator/faults")
    async def add_fault(request: Request, rule: FaultRule) -> Response:
        if (denied := admin(request)) is not None:
            return denied
        emulator.faults.rules.append(rule)
        return _json(200, {"armed": len(emulator.faults.rules)})

    @app.delete("/_emulator/faults")
    async def clear_faults(request: Request) -> Response:
        if (denied := admin(request)) is not None:
            return denied
        emulator.faults.rules.clear()
        emulator.faults.next_link_base = None
        return _json(200, {"armed": 0})

    @app.put("/_emulator/next-link")
    async def poison_next_links(request: Request, base: str | None = None) -> Response:
        """Point every @odata.nextLink at `base` (e.g. http://elsewhere/v1.0); no base: the emulator."""
        if (denied := admin(request)) is not None:
            return denied
        emulator.faults.next_link_base = base
        return _json(200, {"next_link_base": base})

    @app.post("/_emulator/clock")
    async def move_clock(request: Request, advance_seconds: float) -> Response:
        if (denied := admin(request)) is not None:
            return denied
        tenant.clock.offset += timedelta(seconds=advance_seconds)
        return _json(200, {"offset_seconds": tenant.clock.offset.total_seconds()})

    @app.get("/_emulator/counters")
    async def counters(request: Request) -> Response:
        return admin(request) or _json(200, emulator.counters.to_json())

    @app.post("/_emulator/counters/reset")
    async def reset_counters(request: Request) -> Response:
        if (denied := admin(request)) is not None:
            return denied
        emulator.counters.reset()
        return _json(200, emulator.counters.to_json())

    @app.post("/_emulator/signins")
    async def sign_in(request: Request, attempt: SignInRequest) -> Response:
        if (denied := admin(request)) is not None:
            return denied
        user = tenant.find_user(attempt.user)
        if user is None:
            return _json(404, {"error": f"no user {attempt.user}"})
        issued = (
            tenant.clock.now() - timedelta(seconds=attempt.session_age_seconds)
            if attempt.session_age_seconds is not None
            else None
        )
        entry = tenant.record_sign_in(
            user,
            ip_address=attempt.ip_address,
            app_display_name=attempt.app_display_name,
            city=attempt.city,
            country=attempt.country,
            session_issued_at=issued,
        )
        emulator.graph.dirty = True
        return _json(200, entry)

    @app.post("/_emulator/risk")
    async def set_risk(request: Request, risk: RiskRequest) -> Response:
        if (denied := admin(request)) is not None:
            return denied
        user = tenant.find_user(risk.user)
        if user is None:
            return _json(404, {"error": f"no user {risk.user}"})
        tenant.set_risk(user, risk.riskLevel, risk.riskState, risk.riskDetail, "emulator")
        emulator.graph.dirty = True
        return _json(200, {"id": user.id})

    return app


def new_client_secret() -> str:
    """A client secret shaped like Entra ID's (40 characters)."""
    return (uuid.uuid4().hex + uuid.uuid4().hex)[:40]
