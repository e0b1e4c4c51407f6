"""The emulated Okta Management API: users, lifecycle operations, sessions and the System Log."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from clampdown_lab.okta_emulator.auth import Authenticator, Principal, require_scope
from clampdown_lab.okta_emulator.expressions import CONTAINS_ATTRIBUTES, compile_expression, event_value
from clampdown_lab.okta_emulator.state import (
    STATUSES,
    OktaApiError,
    OrgState,
    UserRecord,
    not_found,
    okta_timestamp,
    stable_id,
)

USER_TYPE_ID = stable_id("oty", "default user type")
_MAX_USER_PAGE = 200


def empty_ok() -> Response:
    """Okta's 200 with no body (lifecycle calls), still labelled JSON as Okta does."""
    return Response(status_code=200, headers={"Content-Type": "application/json"})


def with_links(response: Response, links: list[str]) -> Response:
    """`response` with one `Link` header per relation, as Okta sends them (not one joined)."""
    for link in links:
        response.headers.append("Link", link)
    return response


def user_json(record: UserRecord, base_url: str) -> dict[str, Any]:
    """A user as the API returns it."""

    def ts(value: float | None) -> str | None:
        return okta_timestamp(value) if value is not None else None

    body: dict[str, Any] = {
        "id": record.id,
        "status": record.status,
        "created": ts(record.created),
        "activated": ts(record.activated),
        "statusChanged": ts(record.status_changed),
        "lastLogin": None,
        "lastUpdated": ts(record.last_updated),
        "passwordChanged": ts(record.created),
        "type": {"id": USER_TYPE_ID},
        "profile": record.profile,
        "credentials": {"password": {}, "provider": {"type": "OKTA", "name": "OKTA"}},
        "_links": {"self": {"href": f"{base_url}/api/v1/users/{record.id}"}},
    }
    if record.transitioning_to:
        body["transitioningToStatus"] = record.transitioning_to
    return body


class UsersApi:
    """Request handlers over one org; `deactivate_delay` is how long an async deactivation takes."""

    def __init__(self, state: OrgState, auth: Authenticator, deactivate_delay: float = 0.2) -> None:
        self.state = state
        self.auth = auth
        self.deactivate_delay = deactivate_delay
        self._pending: set[asyncio.Task[None]] = set()

    def principal(self, request: Request, scope: str) -> Principal:
        principal = self.auth.authenticate(request.headers.get("authorization"))
        require_scope(principal, scope)
        client_ip = request.client.host if request.client else "127.0.0.1"
        user_agent = request.headers.get("user-agent", "")
        request.state.actor = replace(principal.actor, ip=client_ip, user_agent=user_agent)
        return principal

    def user(self, request: Request, principal: Principal, param: str) -> UserRecord:
        """The user a path names; `me` is the caller itself, as in a real org (for an API token,
        the admin who owns it), so a client that puts `me` in a path acts on its own admin."""
        reference = request.path_params[param]
        if reference == "me":
            record = self.state.users.get(principal.actor.id)
            if record is None:
                raise not_found(reference)
            return record
        return self.state.lookup(reference)

    @staticmethod
    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    # --- users -----------------------------------------------------------------------------
    async def get_user(self, request: Request) -> Response:
        principal = self.principal(request, "okta.users.read")
        actor = principal.actor
        if request.path_params["id"] == "me" and actor.type == "User" and actor.id not in self.state.users:
            # An API token's owner exists in every real org; the lab seldom seeds it as a user, so
            # it is answered as a standing admin (never stored: lists and lifecycle do not see it).
            owner = UserRecord(
                id=actor.id,
                status="ACTIVE",
                profile={"login": actor.alternate_id, "email": actor.alternate_id, "firstName": "Clampdown",
                         "lastName": "Action Account"},
                created=0.0,
                last_updated=0.0,
                status_changed=0.0,
                activated=0.0,
            )  # fmt: skip
            return JSONResponse(user_json(owner, self.base_url(request)), headers={"Etag": owner.etag()})
        record = self.user(request, principal, "id")
        return JSONResponse(user_json(record, self.base_url(request)), headers={"Etag": record.etag()})

    async def list_users(self, request: Request) -> Response:
        self.principal(request, "okta.users.read")
        params = request.query_params
        if "search" in params and "filter" in params:
            raise OktaApiError(
                400, "E0000033", "Bad request. Can't specify a search query and filter in the same request."
            )
        try:
            limit = min(int(params.get("limit", _MAX_USER_PAGE)), _MAX_USER_PAGE)
        except ValueError:
            raise OktaApiError(400, "E0000029", "Invalid paging request.") from None
        users = sorted(self.state.users.values(), key=lambda u: u.id)
        if "search" in params:
            predicate = compile_expression(
                params["search"], strict_filter=False, contains_on=CONTAINS_ATTRIBUTES
            )
            users = [u for u in users if predicate(u)]
        elif "filter" in params:
            predicate = compile_expression(params["filter"], strict_filter=True)
            users = [u for u in users if predicate(u)]
        elif "q" in params:
            prefix = params["q"].lower()
            users = [
                u
                for u in users
                if u.status != "DEPROVISIONED"
                and any(
                    str(u.profile.get(k, "")).lower().startswith(prefix)
                    for k in ("firstName", "lastName", "email")
                )
            ]
            return JSONResponse([user_json(u, self.base_url(request)) for u in users[:limit]])
        else:
            users = [u for u in users if u.status != "DEPROVISIONED"]
        if after := params.get("after"):
            users = [u for u in users if u.id > after]
        page = users[:limit]
        base = self.base_url(request)
        kept = {k: v for k, v in params.items() if k != "after"}
        links = [f'<{base}/api/v1/users?{urlencode({**kept, "limit": limit})}>; rel="self"']
        if len(users) > limit:
            following = urlencode({**kept, "after": page[-1].id, "limit": limit})
            links.append(f'<{base}/api/v1/users?{following}>; rel="next"')
        return with_links(JSONResponse([user_json(u, base) for u in page]), links)

    async def create_user(self, request: Request) -> Response:
        self.principal(request, "okta.users.manage")
        body = await request.json()
        profile = body.get("profile") if isinstance(body, dict) else None
        if not isinstance(profile, dict) or not profile.get("login"):
            raise OktaApiError(
                400, "E0000001", "Api validation failed: login", ("login: The field cannot be left blank",)
            )
        if self.state.find_by_login(str(profile["login"])) is not None:
            raise OktaApiError(
                400,
                "E0000001",
                "Api validation failed: login",
                ("login: An object with this field already exists in the current organization",),
            )
        activate = request.query_params.get("activate", "true").lower() == "true"
        record = self.state.add_user(profile, status="ACTIVE" if activate else "STAGED")
        return JSONResponse(user_json(record, self.base_url(request)))

    async def delete_user(self, request: Request) -> Response:
        principal = self.principal(request, "okta.users.manage")
        record = self.user(request, principal, "id")
        self.state.delete(record, request.state.actor, request.state.request_id)
        return Response(status_code=204)

    # --- lifecycle -------------------------------------------------------------------------
    async def lifecycle(self, request: Request) -> Response:
        principal = self.principal(request, "okta.users.manage")
        operation = request.path_params["operation"]
        record = self.user(request, principal, "id")
        actor, request_id = request.state.actor, request.state.request_id
        simple = {
            "suspend": self.state.suspend,
            "unsuspend": self.state.unsuspend,
            "unlock": self.state.unlock,
        }
        if operation in simple:
            simple[operation](record, actor, request_id)
            return empty_ok()
        if operation == "deactivate":
            return await self._deactivate(request, record)
        if operation == "activate":
            self.state.activate(record, actor, request_id)
            return JSONResponse({})
        if operation == "reactivate":
            self.state.reactivate(record, actor, request_id)
            token = stable_id("", f"activation {record.id} {record.last_updated}")
            return JSONResponse(
                {"activationUrl": f"{self.base_url(request)}/tokens/{token}/verify", "activationToken": token}
            )
        if operation == "expire_password":
            self.state.expire_password(record, actor, request_id)
            return JSONResponse(user_json(record, self.base_url(request)))
        if operation == "expire_password_with_temp_password":
            revoke = request.query_params.get("revokeSessions", "false").lower() == "true"
            temporary = self.state.expire_with_temp_password(record, revoke, actor, request_id)
            return JSONResponse({"tempPassword": temporary})
        if operation == "reset_factors":
            self.state.reset_factors(record, actor, request_id)
            return empty_ok()
        if operation == "reset_password":
            self.state.reset_password(record, actor, request_id)
            if request.query_params.get("sendEmail", "true").lower() == "false":
                token = stable_id("", f"reset {record.id} {record.last_updated}")
                return JSONResponse({"resetPasswordUrl": f"{self.base_url(request)}/reset_password/{token}"})
            return JSONResponse({})
        raise OktaApiError(404, "E0000007", f"Not found: Resource not found: {operation} (Operation)")

    async def _deactivate(self, request: Request, record: UserRecord) -> Response:
        actor, request_id = request.state.actor, request.state.request_id
        if record.transitioning_to == "DEPROVISIONED":
            return empty_ok()  # already on its way; Okta accepts the repeat
        self.state.begin_deactivate(record)
        if request.headers.get("prefer", "").lower() == "respond-async":
            task = asyncio.get_running_loop().create_task(self._finish_later(record, actor, request_id))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        else:
            await asyncio.sleep(min(self.deactivate_delay, 0.05))
            self.state.finish_deactivate(record, actor, request_id)
        return empty_ok()

    async def _finish_later(self, record: UserRecord, actor: Any, request_id: str) -> None:
        await asyncio.sleep(self.deactivate_delay)
        self.state.finish_deactivate(record, actor, request_id)

    def user_by_id(self, request: Request, principal: Principal) -> UserRecord:
        """The user a `{userId}` path names: an id only (these operations take no login)."""
        record = self.user(request, principal, "userId")
        if record.id != request.path_params["userId"]:
            raise not_found(request.path_params["userId"])
        return record

    async def clear_sessions(self, request: Request) -> Response:
        principal = self.principal(request, "okta.users.manage")
        record = self.user_by_id(request, principal)
        oauth_tokens = request.query_params.get("oauthTokens", "false").lower() == "true"
        self.state.clear_sessions(record, oauth_tokens, request.state.actor, request.state.request_id)
        return Response(status_code=204)

    # --- factors, grants, risk, Universal Logout ---------------------------------------------
    async def list_factors(self, request: Request) -> Response:
        principal = self.principal(request, "okta.users.read")
        record = self.user_by_id(request, principal)
        base = f"{self.base_url(request)}/api/v1/users/{record.id}"
        return JSONResponse([_factor_json(f, base) for f in record.factors])

    async def list_grants(self, request: Request) -> Response:
        principal = self.principal(request, "okta.users.read")
        record = self.user_by_id(request, principal)
        params = request.query_params
        try:
            limit = max(1, min(int(params.get("limit", 20)), 200))
        except ValueError:
            raise OktaApiError(400, "E0000029", "Invalid paging request.") from None
        grants = sorted(record.grants, key=lambda g: str(g["id"]))
        if after := params.get("after"):
            grants = [g for g in grants if str(g["id"]) > after]
        page = grants[:limit]
        base = f"{self.base_url(request)}/api/v1/users/{record.id}/grants"
        kept = {k: v for k, v in params.items() if k != "after"}
        links = [f'<{base}?{urlencode({**kept, "limit": limit})}>; rel="self"']
        if len(grants) > limit:
            links.append(
                f'<{base}?{urlencode({**kept, "after": page[-1]["id"], "limit": limit})}>; rel="next"'
            )
        body = [{**g, "_links": {"self": {"href": f"{base}/{g['id']}"}}} for g in page]
        return with_links(JSONResponse(body), links)

    async def revoke_grants(self, request: Request) -> Response:
        principal = self.principal(request, "okta.users.manage")
        record = self.user_by_id(request, principal)
        self.state.revoke_grants(record, request.state.actor, request.state.request_id)
        return Response(status_code=204)

    async def get_risk(self, request: Request) -> Response:
        principal = self.principal(request, "okta.userRisk.read")
        record = self.user_by_id(request, principal)
        return JSONResponse(_risk_json(record, self.base_url(request)))

    async def put_risk(self, request: Request) -> Response:
        principal = self.principal(request, "okta.userRisk.manage")
        record = self.user_by_id(request, principal)
        try:
            body = await request.json()
        except ValueError:
            body = None
        level = body.get("riskLevel") if isinstance(body, dict) else None
        reason = body.get("riskReason") if isinstance(body, dict) else None
        if level not in ("HIGH", "MEDIUM", "LOW"):
            raise OktaApiError(
                400,
                "E0000001",
                "Api validation failed: riskLevel",
                ("riskLevel: must be HIGH, MEDIUM or LOW",),
            )
        if reason is not None and (
            not isinstance(reason, str) or len(reason) > 500 or _RISK_REASON.fullmatch(reason) is None
        ):
            raise OktaApiError(
                400,
                "E0000001",
                "Api validation failed: riskReason",
                ("riskReason: letters, digits, spaces, hyphens, commas and periods only, at most 500",),
            )
        created = self.state.set_risk(record, level, reason, request.state.actor, request.state.request_id)
        return JSONResponse(_risk_json(record, self.base_url(request)), status_code=201 if created else 200)

    async def global_token_revocation(self, request: Request) -> Response:
        """POST /oauth2/v1/global-token-revocation; a request Okta cannot act on is a bare 400."""
        self.principal(request, "okta.universalLogout.manage")
        try:
            body = await request.json()
        except ValueError:
            body = None
        subject = body.get("sub_id") if isinstance(body, dict) else None
        record = None
        if isinstance(subject, dict) and subject.get("format") == "opaque":
            record = self.state.users.get(str(subject.get("id")))
        elif isinstance(subject, dict) and subject.get("format") == "iss_sub":
            record = self.state.find_by_login(str(subject.get("sub")))
        if record is None:
            return Response(status_code=400)
        self.state.universal_logout(record, request.state.actor, request.state.request_id)
        return Response(status_code=204)

    # --- System Log ------------------------------------------------------------------------
    async def list_logs(self, request: Request) -> Response:
        self.principal(request, "okta.logs.read")
        params = request.query_params
        try:
            limit = max(0, min(int(params.get("limit", 100)), 1000))
            until = _epoch(params["until"]) if "until" in params else self.state.clock()
            since = _epoch(params["since"]) if "since" in params else until - 7 * 86400
        except ValueError as exc:
            raise OktaApiError(400, "E0000001", "Api validation failed: query", (str(exc),)) from None
        events = [(i, e) for i, e in enumerate(self.state.logs) if since <= e["_epoch"] <= until]
        if "filter" in params:
            predicate = compile_expression(params["filter"], strict_filter=False, resolve=event_value)
            events = [(i, e) for i, e in events if predicate(e)]
        if "q" in params:
            words = params["q"].lower().split()
            events = [(i, e) for i, e in events if all(w in str(e).lower() for w in words)]
        descending = params.get("sortOrder", "ASCENDING") == "DESCENDING"
        if after := params.get("after"):
            cursor = int(after)
            events = [(i, e) for i, e in events if (i < cursor if descending else i > cursor)]
        if descending:
            events.reverse()
        page = events[:limit]
        base = self.base_url(request)
        kept = {k: v for k, v in params.items() if k != "after"}
        cursor_after = page[-1][0] if page else (int(after) if after else -1)
        links = [
            f'<{base}/api/v1/logs?{urlencode(kept)}>; rel="self"',
            f'<{base}/api/v1/logs?{urlencode({**kept, "after": cursor_after})}>; rel="next"',
        ]
        body = [{k: v for k, v in e.items() if not k.startswith("_")} for _, e in page]
        return with_links(JSONResponse(body), links)


_RISK_REASON = re.compile(r"[a-zA-Z0-9\s\-,.]*")


def _factor_json(factor: dict[str, Any], user_base: str) -> dict[str, Any]:
    href = f"{user_base}/factors/{factor['id']}"
    return {**factor, "_links": {"self": {"href": href}, "user": {"href": user_base}}}


def _risk_json(record: UserRecord, base_url: str) -> dict[str, Any]:
    links = {
        "self": {"href": f"{base_url}/api/v1/users/{record.id}/risk", "hints": {"allow": ["GET", "PUT"]}},
        "user": {"href": f"{base_url}/api/v1/users/{record.id}", "hints": {"allow": ["GET"]}},
    }
    body: dict[str, Any] = {"riskLevel": record.risk_level, "_links": links}
    if record.risk_level != "NONE" and record.risk_reason:
        body["reason"] = record.risk_reason
    return body


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def validate_status(status: str) -> str:
    if status not in STATUSES:
        raise ValueError(f"unknown Okta user status {status!r}")
    return status
