"""The emulated org's own description and its admin role assignments, read side, as Okta's
Management document answers them: getWellknownOrgMetadata (no credential), getOrgSettings
(okta.orgs.read), listAssignedRolesForUser and listRolesForClient (okta.roles.read)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from clampdown_lab.okta_emulator.auth import Authenticator, require_scope
from clampdown_lab.okta_emulator.state import OktaApiError, OrgState, okta_timestamp, stable_id

ROLES_SCOPE, ORG_SCOPE = "okta.roles.read", "okta.orgs.read"
# The labels Okta gives its standard roles (RoleType).
ROLE_LABELS = {
    "SUPER_ADMIN": "Super Administrator",
    "ORG_ADMIN": "Organizational Administrator",
    "USER_ADMIN": "User Administrator",
    "HELP_DESK_ADMIN": "Help Desk Administrator",
    "READ_ONLY_ADMIN": "Read-Only Administrator",
    "APP_ADMIN": "Application Administrator",
    "GROUP_MEMBERSHIP_ADMIN": "Group Membership Administrator",
    "API_ACCESS_MANAGEMENT_ADMIN": "API Access Management Administrator",
    "REPORT_ADMIN": "Report Administrator",
    "MOBILE_ADMIN": "Mobile Administrator",
}


class OrgApi:
    """Request handlers over the org's settings and the admin roles of its API callers."""

    def __init__(self, state: OrgState, auth: Authenticator, name: str) -> None:
        self.state, self.auth, self.name = state, auth, name
        self._created = state.clock()

    @staticmethod
    def _base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    def _org_id(self, request: Request) -> str:
        return stable_id("00o", self._base(request))  # one id per emulated org (its URL)

    async def well_known(self, request: Request) -> Response:
        """GET /.well-known/okta-organization: the org's id and pipeline, for anyone."""
        base = self._base(request)
        body = {"id": self._org_id(request), "pipeline": "idx", "_links": {"organization": {"href": base}}}
        return JSONResponse(body)

    async def settings(self, request: Request) -> Response:
        """GET /api/v1/org: the org's general settings."""
        require_scope(self.auth.authenticate(request.headers.get("authorization")), ORG_SCOPE)
        base = self._base(request)
        host = urlsplit(base).hostname or "lab"
        stamp = okta_timestamp(self._created)
        body = {
            "id": self._org_id(request),
            "companyName": self.name,
            "subdomain": host.split(".")[0],
            "status": "ACTIVE",
            "website": base,
            "created": stamp,
            "lastUpdated": stamp,
            "_links": {"contacts": {"href": f"{base}/api/v1/org/contacts"}},
        }
        return JSONResponse(body)

    def _assignments(self, request: Request, holder: str, kind: str, href: str) -> Response:
        stamp = okta_timestamp(self._created)
        body: list[dict[str, Any]] = [
            {
                "id": stable_id("ra", f"{holder} {role}"),
                "label": ROLE_LABELS.get(role, role),
                "type": role,
                "status": "ACTIVE",
                "created": stamp,
                "lastUpdated": stamp,
                "assignmentType": kind,
                "_links": {"assignee": {"href": href}},
            }
            for role in self.auth.roles_of(holder)
        ]
        return JSONResponse(body)

    async def user_roles(self, request: Request) -> Response:
        """GET /api/v1/users/{userId}/roles: an API token owner's roles; none for other users."""
        require_scope(self.auth.authenticate(request.headers.get("authorization")), ROLES_SCOPE)
        user_id = request.path_params["userId"]
        href = f"{self._base(request)}/api/v1/users/{quote(user_id, safe='')}"
        if self.auth.token_owner(user_id) is not None:
            return self._assignments(request, user_id, "USER", href)
        self.state.lookup(user_id)  # 404 E0000007 for a user the org does not have
        return JSONResponse([])

    async def client_roles(self, request: Request) -> Response:
        """GET /oauth2/v1/clients/{clientId}/roles: a service app's roles."""
        require_scope(self.auth.authenticate(request.headers.get("authorization")), ROLES_SCOPE)
        client_id = request.path_params["clientId"]
        if client_id not in self.auth.apps:
            raise OktaApiError(404, "E0000007", f"Not found: Resource not found: {client_id} (App)")
        href = f"{self._base(request)}/oauth2/v1/clients/{quote(client_id, safe='')}/roles"
        return self._assignments(request, client_id, "CLIENT", href)
