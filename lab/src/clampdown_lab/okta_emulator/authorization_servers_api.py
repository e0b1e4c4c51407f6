"""The emulated Authorization Servers API, read side: custom authorization servers, their access
policies and the policies' rules, as Okta's Management document answers them
(listAuthorizationServers, listAuthorizationServerPolicies, listAuthorizationServerPolicyRules;
scope okta.authorizationServers.read)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from clampdown_lab.okta_emulator.auth import Authenticator, require_scope
from clampdown_lab.okta_emulator.state import (
    AccessPolicyRecord,
    AuthorizationServerRecord,
    OktaApiError,
    OrgState,
    PolicyRuleRecord,
    okta_timestamp,
    stable_id,
)
from clampdown_lab.okta_emulator.users_api import with_links

READ_SCOPE = "okta.authorizationServers.read"
_MAX_PAGE = 200


class AuthorizationServersApi:
    """Request handlers over the org's custom authorization servers."""

    def __init__(self, state: OrgState, auth: Authenticator) -> None:
        self.state = state
        self.auth = auth

    def _authorize(self, request: Request) -> None:
        require_scope(self.auth.authenticate(request.headers.get("authorization")), READ_SCOPE)

    def _server(self, request: Request) -> AuthorizationServerRecord:
        server_id = request.path_params["authServerId"]
        server = self.state.authorization_servers.get(server_id)
        if server is None:
            raise OktaApiError(
                404, "E0000007", f"Not found: Resource not found: {server_id} (AuthorizationServer)"
            )
        return server

    def _policy(self, request: Request, server: AuthorizationServerRecord) -> AccessPolicyRecord:
        policy_id = request.path_params["policyId"]
        for policy in server.policies:
            if policy.id == policy_id:
                return policy
        raise OktaApiError(404, "E0000007", f"Not found: Resource not found: {policy_id} (Policy)")

    async def list_servers(self, request: Request) -> Response:
        """GET /api/v1/authorizationServers ?q &limit (max 200) &after, with Link headers."""
        self._authorize(request)
        params = request.query_params
        try:
            limit = max(1, min(int(params.get("limit", _MAX_PAGE)), _MAX_PAGE))
        except ValueError:
            raise OktaApiError(400, "E0000029", "Invalid paging request.") from None
        servers = sorted(self.state.authorization_servers.values(), key=lambda s: s.id)
        if query := params.get("q", "").lower():
            servers = [
                s for s in servers if query in s.name.lower() or any(query in a.lower() for a in s.audiences)
            ]
        if after := params.get("after"):
            servers = [s for s in servers if s.id > after]
        page = servers[:limit]
        base = _base(request)
        kept = {k: v for k, v in params.items() if k != "after"}
        links = [f'<{base}/api/v1/authorizationServers?{urlencode({**kept, "limit": limit})}>; rel="self"']
        if len(servers) > limit:
            following = urlencode({**kept, "after": page[-1].id, "limit": limit})
            links.append(f'<{base}/api/v1/authorizationServers?{following}>; rel="next"')
        return with_links(JSONResponse([_server_json(s, base) for s in page]), links)

    async def list_policies(self, request: Request) -> Response:
        """GET /api/v1/authorizationServers/{authServerId}/policies."""
        self._authorize(request)
        server = self._server(request)
        base = f"{_base(request)}/api/v1/authorizationServers/{server.id}/policies"
        return JSONResponse([_policy_json(p, base) for p in server.policies])

    async def list_rules(self, request: Request) -> Response:
        """GET /api/v1/authorizationServers/{authServerId}/policies/{policyId}/rules."""
        self._authorize(request)
        server = self._server(request)
        policy = self._policy(request, server)
        base = f"{_base(request)}/api/v1/authorizationServers/{server.id}/policies/{policy.id}/rules"
        return JSONResponse([_rule_json(r, base) for r in policy.rules])


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _link(href: str, *methods: str) -> dict[str, Any]:
    return {"href": href, "hints": {"allow": list(methods)}}


def _server_json(server: AuthorizationServerRecord, base: str) -> dict[str, Any]:
    issuer = f"{base}/oauth2/{server.id}"
    admin = f"{base}/api/v1/authorizationServers/{server.id}"
    created = okta_timestamp(server.created)
    lifecycle = "deactivate" if server.status == "ACTIVE" else "activate"
    return {
        "id": server.id,
        "name": server.name,
        "description": server.description,
        "audiences": server.audiences,
        "issuer": issuer,
        "issuerMode": "ORG_URL",
        "status": server.status,
        "created": created,
        "lastUpdated": created,
        "credentials": {
            "signing": {
                "rotationMode": "AUTO",
                "lastRotated": created,
                "nextRotation": okta_timestamp(server.created + 90 * 86400),
                "kid": stable_id("", f"signing key {server.id}"),
            }
        },
        "_links": {
            "scopes": _link(f"{admin}/scopes", "GET"),
            "claims": _link(f"{admin}/claims", "GET"),
            "policies": _link(f"{admin}/policies", "GET"),
            "self": _link(admin, "GET", "DELETE", "PUT"),
            "metadata": [
                {**_link(f"{issuer}/.well-known/{name}", "GET"), "name": name}
                for name in ("oauth-authorization-server", "openid-configuration")
            ],
            "rotateKey": _link(f"{admin}/credentials/lifecycle/keyRotate", "POST"),
            lifecycle: _link(f"{admin}/lifecycle/{lifecycle}", "POST"),
        },
    }


def _policy_json(policy: AccessPolicyRecord, base: str) -> dict[str, Any]:
    href = f"{base}/{policy.id}"
    lifecycle = "deactivate" if policy.status == "ACTIVE" else "activate"
    return {
        "type": "OAUTH_AUTHORIZATION_POLICY",
        "id": policy.id,
        "status": policy.status,
        "name": policy.name,
        "description": policy.description,
        "priority": policy.priority,
        "system": False,
        "conditions": {"clients": {"include": ["ALL_CLIENTS"]}},
        "created": okta_timestamp(policy.created),
        "lastUpdated": okta_timestamp(policy.created),
        "_links": {
            "self": _link(href, "GET", "PUT", "DELETE"),
            lifecycle: _link(f"{href}/lifecycle/{lifecycle}", "POST"),
            "rules": _link(f"{href}/rules", "GET"),
        },
    }


def _rule_json(rule: PolicyRuleRecord, base: str) -> dict[str, Any]:
    href = f"{base}/{rule.id}"
    lifecycle = "deactivate" if rule.status == "ACTIVE" else "activate"
    return {
        "type": "RESOURCE_ACCESS",
        "id": rule.id,
        "status": rule.status,
        "name": rule.name,
        "priority": rule.priority,
        "created": okta_timestamp(rule.created),
        "lastUpdated": okta_timestamp(rule.created),
        "system": False,
        "conditions": {
            "people": {"users": {"include": []}, "groups": {"include": ["EVERYONE"]}},
            "grantTypes": {"include": ["implicit", "client_credentials", "authorization_code", "password"]},
            "scopes": {"include": ["*"]},
        },
        "actions": {
            "token": {
                "accessTokenLifetimeMinutes": rule.access_token_minutes,
                "refreshTokenLifetimeMinutes": rule.refresh_token_minutes,
                "refreshTokenWindowMinutes": rule.refresh_window_minutes,
            }
        },
        "_links": {
            "self": _link(href, "GET", "PUT", "DELETE"),
            lifecycle: _link(f"{href}/lifecycle/{lifecycle}", "POST"),
        },
    }
