"""Microsoft Graph v1.0 resources of the emulated tenant, as one dispatcher that serves both
plain HTTP requests and the requests inside a `$batch`: users, riskyUsers and sign-in logs (and,
from eviction_api, roles, devices and authentication methods; from policies_api, token lifetime
policies), with Graph's permission checks, throttling scopes and error bodies."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlencode

from clampdown_lab.graph_emulator import odata, search
from clampdown_lab.graph_emulator.tenant import Tenant, UserRecord, iso
from clampdown_lab.graph_emulator.throttling import Counters, Faults, Throttle
from clampdown_lab.graph_emulator.tokens import Caller

USER_FIELDS = frozenset(UserRecord.__dataclass_fields__)
DEFAULT_USER_SELECT = (
    "businessPhones",
    "displayName",
    "givenName",
    "jobTitle",
    "mail",
    "mobilePhone",
    "officeLocation",
    "preferredLanguage",
    "surname",
    "userPrincipalName",
    "id",
)
WRITABLE_USER_FIELDS = {
    "accountEnabled": bool,
    "displayName": str,
    "givenName": str,
    "surname": str,
    "jobTitle": str,
    "department": str,
    "mail": str,
    "passwordProfile": dict,
}
USER_FILTERS = {
    "id": {"eq", "in"},
    "userPrincipalName": {"eq", "in", "startswith"},
    "mail": {"eq", "startswith"},
    "accountEnabled": {"eq"},
    "displayName": {"eq", "startswith"},
    "onPremisesSamAccountName": {"eq"},
    "onPremisesSecurityIdentifier": {"eq"},
    "department": {"eq"},
}
RISKY_FILTERS = {
    "id": {"eq", "in"},
    "riskLevel": {"eq"},
    "riskState": {"eq"},
    "userPrincipalName": {"eq"},
    "riskLastUpdatedDateTime": {"ge", "gt", "le", "lt"},
}
SIGNIN_FILTERS = {
    "createdDateTime": {"ge", "gt", "le", "lt"},
    "userId": {"eq"},
    "userPrincipalName": {"eq", "startswith"},
    "ipAddress": {"eq"},
    "appId": {"eq"},
    "status/errorCode": {"eq"},
}
MAX_RISK_USER_IDS = 60  # "The maximum count of users to dismiss in one call is 60."

READ_USERS = frozenset(
    {"User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"}
)
ENABLE_DISABLE = frozenset({"User.EnableDisableAccount.All", "User.ReadWrite.All", "Directory.ReadWrite.All"})
WRITE_USERS = frozenset({"User.ReadWrite.All", "Directory.ReadWrite.All"})
PASSWORD_PROFILE = frozenset(
    {"User-PasswordProfile.ReadWrite.All", "User.ReadWrite.All", "Directory.ReadWrite.All"}
)
PASSWORD_PROFILE_FIELDS = {
    "forceChangePasswordNextSignIn": bool,
    "forceChangePasswordNextSignInWithMfa": bool,
    "password": str,
}
# The directory roles that let an app disable, or change the password of, a privileged user.
PRIVILEGED_USER_ADMINS = frozenset({"Privileged Authentication Administrator", "Global Administrator"})
REVOKE = frozenset({"User.RevokeSessions.All", "User.ReadWrite.All", "Directory.ReadWrite.All"})
READ_RISK = frozenset({"IdentityRiskyUser.Read.All", "IdentityRiskyUser.ReadWrite.All"})
WRITE_RISK = frozenset({"IdentityRiskyUser.ReadWrite.All"})
READ_AUDIT = frozenset({"AuditLog.Read.All"})


@dataclass
class GraphRequest:
    """One request to a Graph resource: plain or from inside a `$batch`."""

    method: str
    path: str  # without /v1.0, e.g. /users/abc
    query: dict[str, str]
    headers: dict[str, str]
    body: Any  # parsed JSON, or None
    caller: Caller
    base_url: str  # https://host:port/v1.0


@dataclass
class GraphResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class GraphFault(Exception):
    """A Graph error response: status, code and message."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers or {}


def error_response(
    tenant: Tenant,
    status: int,
    code: str,
    message: str,
    request_id: str | None = None,
    headers: dict[str, str] | None = None,
    client_request_id: str | None = None,
) -> GraphResponse:
    """Graph's error body, with innerError carrying date and request-id."""
    request_id = request_id or str(uuid.uuid4())
    inner = {
        "date": iso(tenant.clock.now()).removesuffix("Z"),
        "request-id": request_id,
        "client-request-id": client_request_id or request_id,
    }
    body = {"error": {"code": code, "message": message, "innerError": inner}}
    out = {
        "Content-Type": "application/json",
        "request-id": request_id,
        "client-request-id": inner["client-request-id"],
    }
    return GraphResponse(status, body, out | (headers or {}))


def _search(request: GraphRequest) -> odata.Predicate | None:
    """The `$search` of an advanced query on users; Graph refuses it (and `$count`) without the
    `ConsistencyLevel: eventual` header."""
    text = request.query.get("$search")
    eventual = request.headers.get(search.CONSISTENCY_HEADER, "").lower() == "eventual"
    if text is not None and not eventual:
        raise GraphFault(400, "Request_UnsupportedQuery", search.NEEDS_CONSISTENCY)
    if "$count" in request.query and not eventual:
        raise GraphFault(400, "Request_BadRequest", "$count is not currently supported.")
    if text is None:
        return None
    try:
        return search.parse_search(text)
    except search.SearchError as exc:
        raise GraphFault(400, "Request_UnsupportedQuery", str(exc)) from None


def _user_json(user: UserRecord, select: list[str] | None) -> dict[str, Any]:
    data = asdict(user)
    data["businessPhones"], data["mobilePhone"], data["officeLocation"] = [], None, None
    data["preferredLanguage"] = None
    names = select or list(DEFAULT_USER_SELECT)
    for name in names:
        if name not in data:
            raise GraphFault(
                400,
                "Request_BadRequest",
                f"Could not find a property named '{name}' on type 'microsoft.graph.user'.",
            )
    out = {name: data[name] for name in names}
    out.setdefault("id", user.id)  # Graph always returns the key
    return out


def _check_type(value: Any, wanted: type) -> None:
    if not isinstance(value, wanted):
        edm = {bool: "Edm.Boolean", str: "Edm.String", dict: "microsoft.graph.passwordProfile"}[wanted]
        raise GraphFault(
            400, "Request_BadRequest", f"Cannot convert the literal '{value}' to the expected type '{edm}'."
        )


Handler = Callable[["GraphApi", GraphRequest, re.Match[str]], GraphResponse]


class GraphApi:
    """Dispatches a GraphRequest to the resource handlers of one tenant."""

    def __init__(self, tenant: Tenant, throttle: Throttle, faults: Faults, counters: Counters) -> None:
        self.tenant, self.throttle, self.faults, self.counters = tenant, throttle, faults, counters
        self.dirty = False  # set when state changed, so the lab server saves it
        self.routes: list[tuple[str, re.Pattern[str], tuple[str, ...], Handler]] = [
            ("GET", re.compile(r"/users/?"), ("directory",), GraphApi.list_users),
            ("GET", re.compile(r"/users/([^/]+)"), ("directory",), GraphApi.get_user),
            ("PATCH", re.compile(r"/users/([^/]+)"), ("directory", "directory_writes"), GraphApi.patch_user),
            (
                "POST",
                re.compile(r"/users/([^/]+)/(?:microsoft\.graph\.)?revokeSignInSessions"),
                ("directory", "directory_writes"),
                GraphApi.revoke_sessions,
            ),
            (
                "GET",
                re.compile(r"/identityProtection/riskyUsers/?"),
                ("identity_protection",),
                GraphApi.list_risky,
            ),
            (
                "POST",
                re.compile(
                    r"/identityProtection/riskyUsers/(?:microsoft\.graph\.)?"
                    r"(confirmCompromised|dismiss|confirmSafe)"
                ),
                ("identity_protection",),
                GraphApi.risk_action,
            ),
            (
                "GET",
                re.compile(r"/identityProtection/riskyUsers/([^/]+)/history"),
                ("identity_protection",),
                GraphApi.risky_history,
            ),
            (
                "GET",
                re.compile(r"/identityProtection/riskyUsers/([^/]+)"),
                ("identity_protection",),
                GraphApi.get_risky,
            ),
            ("GET", re.compile(r"/auditLogs/signIns/?"), ("reports",), GraphApi.list_sign_ins),
            ("GET", re.compile(r"/auditLogs/signIns/([^/]+)"), ("reports",), GraphApi.get_sign_in),
        ]
        # Imported here: eviction_api and policies_api build on this module's types.
        from clampdown_lab.graph_emulator import eviction_api, policies_api

        self.routes += eviction_api.routes()
        self.routes += policies_api.routes()

    def handle(self, request: GraphRequest) -> GraphResponse:
        """Serve one request: route, throttle, inject faults, run, map GraphFault to an error body."""
        self.counters.inner_requests += 1
        client_request_id = request.headers.get("client-request-id")
        path_matched = False
        for method, pattern, scopes, handler in self.routes:
            match = pattern.fullmatch(request.path)
            if match is None:
                continue
            path_matched = True
            if method != request.method:
                continue
            limited = self.throttle.check(scopes)
            if limited is not None:
                scope, wait = limited
                self.counters.throttled[scope] = self.counters.throttled.get(scope, 0) + 1
                headers = {"Retry-After": f"{wait:g}"} if wait is not None else {}
                headers["x-ms-throttle-scope"] = f"{scope}/Application/{request.caller.app_id}"
                return self._count(
                    error_response(
                        self.tenant,
                        429,
                        "TooManyRequests",
                        "Too many requests. Please retry again later.",
                        headers=headers,
                        client_request_id=client_request_id,
                    )
                )
            fault = self.faults.match(request.method, request.path)
            if fault is not None:
                headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
                return self._count(
                    error_response(
                        self.tenant,
                        fault.status,
                        fault.code,
                        fault.message,
                        headers=headers,
                        client_request_id=client_request_id,
                    )
                )
            try:
                response = handler(self, request, match)
            except GraphFault as exc:
                response = error_response(
                    self.tenant,
                    exc.status,
                    exc.code,
                    exc.message,
                    headers=exc.headers,
                    client_request_id=client_request_id,
                )
            response.headers.setdefault("request-id", str(uuid.uuid4()))
            if client_request_id:
                response.headers.setdefault("client-request-id", client_request_id)
            return self._count(response)
        if path_matched:
            return self._count(
                error_response(
                    self.tenant,
                    405,
                    "Request_BadRequest",
                    f"The request method '{request.method}' is not supported for this resource.",
                    client_request_id=client_request_id,
                )
            )
        segment = request.path.strip("/").split("/")[0]
        return self._count(
            error_response(
                self.tenant,
                400,
                "BadRequest",
                f"Resource not found for the segment '{segment}'.",
                client_request_id=client_request_id,
            )
        )

    def _count(self, response: GraphResponse) -> GraphResponse:
        self.counters.count(response.status)
        return response

    # -- helpers -----------------------------------------------------------------------------
    @staticmethod
    def _require(
        request: GraphRequest,
        any_of: frozenset[str],
        code: str = "Authorization_RequestDenied",
    ) -> None:
        if not request.caller.roles & any_of:
            raise GraphFault(403, code, "Insufficient privileges to complete the operation.")

    def _user(self, key: str) -> UserRecord:
        user = self.tenant.find_user(key)
        if user is None:
            raise GraphFault(
                404,
                "Request_ResourceNotFound",
                f"Resource '{key}' does not exist or one of its "
                "queried reference-property objects are not present.",
            )
        return user

    def _page(
        self, request: GraphRequest, items: list[dict[str, Any]], context: str, default_top: int, max_top: int
    ) -> GraphResponse:
        try:
            top = int(request.query.get("$top", default_top))
            offset = odata.decode_skiptoken(request.query.get("$skiptoken"))
        except ValueError:
            raise GraphFault(400, "Request_BadRequest", "Invalid $top or $skiptoken value.") from None
        if not 1 <= top <= max_top:
            raise GraphFault(
                400,
                "Request_BadRequest",
                f"Invalid page size specified: '{top}'. Must be between 1 and {max_top} inclusive.",
            )
        body: dict[str, Any] = {
            "@odata.context": f"{request.base_url}/$metadata#{context}",
            "value": items[offset : offset + top],
        }
        if offset + top < len(items):
            query = {k: v for k, v in request.query.items() if k != "$skiptoken"}
            query["$skiptoken"] = odata.encode_skiptoken(offset + top)
            base = self.faults.next_link_base or request.base_url
            body["@odata.nextLink"] = f"{base}{request.path}?{urlencode(query)}"
        return GraphResponse(200, body, {"Content-Type": "application/json"})

    @staticmethod
    def _filter(request: GraphRequest, allowed: dict[str, set[str]], code: str) -> odata.Predicate | None:
        text = request.query.get("$filter")
        if not text:
            return None
        try:
            return odata.parse_filter(text, allowed)
        except odata.UnsupportedQuery as exc:
            raise GraphFault(400, code, str(exc)) from None

    # -- users -------------------------------------------------------------------------------
    def list_users(self, request: GraphRequest, match: re.Match[str]) -> GraphResponse:
        self._require(request, READ_USERS)
        predicate = self._filter(request, USER_FILTERS, "Request_UnsupportedQuery")
        searched = _search(request)
        select = odata.parse_select(request.query.get("$select"))
        users = [
            u
            for u in self.tenant.users.values()
            if (predicate is None or predicate(asdict(u))) and (searched is None or searched(asdict(u)))
        ]
        page = self._page(request, [_user_json(u, select) for u in users], "users", 100, 999)
        if request.query.get("$count", "").lower() == "true":
            page.body["@odata.count"] = len(users)
        return page

    def get_user(self, request: GraphRequest, match: re.Match[str]) -> GraphResponse:
        self._require(request, READ_USERS)
        user = self._user(match.group(1))
        body = {"@odata.context": f"{request.base_url}/$metadata#users/$entity"}
        body |= _user_json(user, odata.parse_select(request.query.get("$select")))
        return GraphResponse(200, body, {"Content-Type": "application/json"})

    def patch_user(self, request: GraphRequest, match: re.Match[str]) -> GraphResponse:
        body = request.body
        if not isinstance(body, dict) or not body:
            raise GraphFault(400, "Request_BadRequest", "Empty Payload. JSON content expected.")
        for name, value in body.items():
            if name not in WRITABLE_USER_FIELDS:
                if name in USER_FIELDS:
                    raise GraphFault(
                        400, "Request_BadRequest", f"Property '{name}' is read-only and cannot be set."
                    )
                raise GraphFault(400, "Request_BadRequest", f"Invalid property '{name}'.")
            _check_type(value, WRITABLE_USER_FIELDS[name])
        if isinstance(body.get("passwordProfile"), dict):
            for name, value in body["passwordProfile"].items():
                if name not in PASSWORD_PROFILE_FIELDS:
                    raise GraphFault(
                        400, "Request_BadRequest", f"Invalid property '{name}' on 'passwordProfile'."
                    )
                _check_type(value, PASSWORD_PROFILE_FIELDS[name])
        needs = {
            frozenset({"accountEnabled"}): ENABLE_DISABLE,
            frozenset({"passwordProfile"}): PASSWORD_PROFILE,
        }
        self._require(request, needs.get(frozenset(body), WRITE_USERS))
        user = self._user(match.group(1))
        if {"accountEnabled", "passwordProfile"} & set(body) and self.tenant.is_privileged(user):
            # Privileged-user protection: an admin's sign-in and password are changed only by an
            # app that itself holds a role above theirs, whatever its application permissions.
            app = self.tenant.apps.get(request.caller.app_id)
            if app is None or not PRIVILEGED_USER_ADMINS & set(app.directory_roles):
                raise GraphFault(
                    403, "Authorization_RequestDenied", "Insufficient privileges to complete the operation."
                )
        for name, value in body.items():
            if name == "passwordProfile":
                profile = dict(user.passwordProfile or {}) | {
                    k: v for k, v in value.items() if k != "password"
                }
                profile["password"] = None  # Graph never returns it; the emulator never keeps it
                value = profile
            setattr(user, name, value)
        self.dirty = True
        return GraphResponse(204)

    def revoke_sessions(self, request: GraphRequest, match: re.Match[str]) -> GraphResponse:
        self._require(request, REVOKE)
        user = self._user(match.group(1))
        user.signInSessionsValidFromDateTime = iso(self.tenant.clock.now())
        self.dirty = True
        return GraphResponse(
            200,
            {"@odata.context": f"{request.base_url}/$metadata#Edm.Boolean", "value": True},
            {"Content-Type": "application/json"},
        )

    # -- identity protection -----------------------------------------------------------------
    def _risky_json(self, record: Any, select: list[str] | None) -> dict[str, Any]:
        data = {k: v for k, v in asdict(record).items() if k != "history"}
        return {k: data[k] for k in select} if select else data

    def list_risky(self, request: GraphRequest, match: re.Match[str]) -> GraphResponse:
        self._require(request, READ_RISK, "Forbidden")
        predicate = self._filter(request, RISKY_FILTERS, "BadRequest")
        select = odata.parse_select(request.query.get("$select"))
        records = [
            r for r in self.tenant.risky.values() if predicate is None or predicate(self._risky_json(r, None))
        ]
        return self._page(
            request, [self._risky_json(r, select) for r in records], "identityProtection/riskyUsers", 20, 500
        )

    def get_risky(self, request: GraphRequest, match: re.Match[str]) -> GraphResponse:
        self._require(request, READ_RISK, "Forbidden")
        record = self.tenant.risky.get(match.group(1).lower())
        if record is None:
            raise GraphFault(404, "NotFound", f"The riskyUser with id '{match.group(1)}' was not found.")
        body = {"@odata.context": f"{request.base_url}/$metadata#identityProtection/riskyUsers/$entity"}
        return GraphResponse(200, body | self._risky_json(record, None), {"Content-Type": "application/json"})

    def risky_history(self, request: GraphRequest, match: re.Match[str]) -> GraphResponse:
        self._require(request, READ_RISK, "Forbidden")
        record = self.tenant.risky.get(match.group(1).lower())
        if record is None:
            raise GraphFault(404, "NotFound", f"The riskyUser with id '{match.group(1)}' was not found.")
        return self._page(
            request,
            list(reversed(record.history)),
            f"identityProtection/riskyUsers('{record.id}')/history",
            100,
            500,
        )

    def risk_action(self, request: GraphRequest, match: re.Match[str]) -> GraphResponse:
        self._require(request, WRITE_RISK, "Forbidden")
        body = request.body
        ids = body.get("userIds") if isinstance(body, dict) else None
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise GraphFault(
                400,
                "BadRequest",
                "The request body must contain 'userIds', a non-empty list of user object ids.",
            )
        if len(ids) > MAX_RISK_USER_IDS:
            raise GraphFault(
                400,
                "BadRequest",
                f"The maximum count of users in one call is {MAX_RISK_USER_IDS}; {len(ids)} were given.",
            )
        action = match.group(1)
        for user_id in ids:
            user = self.tenant.users.get(user_id.lower())
            if user is None:
                continue  # Identity Protection ignores ids it has no user for
            if action == "confirmCompromised":
                self.tenant.set_risk(
                    user,
                    "high",
                    "confirmedCompromised",
                    "adminConfirmedUserCompromised",
                    request.caller.app_id,
                )
            elif user.id in self.tenant.risky:
                state = "dismissed" if action == "dismiss" else "confirmedSafe"
                detail = "adminDismissedAllRiskForUser" if action == "dismiss" else "adminConfirmedSigninSafe"
                self.tenant.set_risk(user, "none", state, detail, request.caller.app_id)
        self.dirty = True
        return GraphResponse(204)

    # -- sign-in logs ------------------------------------------------------------------------
    def list_sign_ins(self, request: GraphRequest, match: re.Match[str]) -> GraphResponse:
        self._require(request, READ_AUDIT)
        predicate = self._filter(request, SIGNIN_FILTERS, "BadRequest")
        entries = [e for e in reversed(self.tenant.sign_ins) if predicate is None or predicate(e)]
        return self._page(request, entries, "auditLogs/signIns", 1000, 1000)

    def get_sign_in(self, request: GraphRequest, match: re.Match[str]) -> GraphResponse:
        self._require(request, READ_AUDIT)
        for entry in self.tenant.sign_ins:
            if entry["id"] == match.group(1):
                return GraphResponse(200, entry, {"Content-Type": "application/json"})
        raise GraphFault(404, "NotFound", f"The signIn with id '{match.group(1)}' was not found.")


def dumps(body: Any) -> bytes:
    """Compact JSON, as Graph sends it."""
    return json.dumps(body, separators=(",", ":")).encode()
