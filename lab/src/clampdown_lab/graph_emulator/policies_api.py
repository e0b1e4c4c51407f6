"""The tenant's token lifetime policies, as Graph serves them: list (`Policy.Read.All`) and create
(`Policy.ReadWrite.ApplicationConfiguration`) under `/policies/tokenLifetimePolicies`. The
organization default's AccessTokenLifetime is also the lifetime of the tokens the emulator issues."""

from __future__ import annotations

import re
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from clampdown_lab.graph_emulator.graph_api import GraphFault, GraphResponse
from clampdown_lab.graph_emulator.tenant import TokenLifetimePolicyRecord

if TYPE_CHECKING:
    from clampdown_lab.graph_emulator.graph_api import GraphApi, GraphRequest

READ_POLICIES = frozenset({"Policy.Read.All", "Policy.ReadWrite.ApplicationConfiguration"})
WRITE_POLICIES = frozenset({"Policy.ReadWrite.ApplicationConfiguration"})
WRITABLE = {"displayName": str, "definition": list, "isOrganizationDefault": bool, "description": str}
COLLECTION = "/policies/tokenLifetimePolicies"


def routes() -> list[tuple[str, re.Pattern[str], tuple[str, ...], Any]]:
    """(method, path pattern, throttle scopes, handler) for GraphApi's table."""
    path = re.compile(r"/policies/tokenLifetimePolicies/?")
    return [
        ("GET", path, ("directory",), list_policies),
        ("POST", path, ("directory", "directory_writes"), create_policy),
    ]


def policy_json(policy: TokenLifetimePolicyRecord) -> dict[str, Any]:
    return asdict(policy)


def list_policies(api: GraphApi, request: GraphRequest, match: re.Match[str]) -> GraphResponse:
    api._require(request, READ_POLICIES)
    items = [policy_json(p) for p in api.tenant.token_lifetime_policies.values()]
    return api._page(request, items, "policies/tokenLifetimePolicies", 100, 999)


def create_policy(api: GraphApi, request: GraphRequest, match: re.Match[str]) -> GraphResponse:
    """201 with the new policy; 400 for a malformed definition or a second organization default."""
    body = request.body
    if not isinstance(body, dict) or not body:
        raise GraphFault(400, "Request_BadRequest", "Empty Payload. JSON content expected.")
    for name, value in body.items():
        if name == "@odata.type":
            continue
        wanted = WRITABLE.get(name)
        if wanted is None:
            raise GraphFault(400, "Request_BadRequest", f"Invalid property '{name}'.")
        if not isinstance(value, wanted):
            raise GraphFault(400, "Request_BadRequest", f"Invalid value for property '{name}'.")
    definition = body.get("definition")
    if not body.get("displayName") or not definition or not all(isinstance(d, str) for d in definition):
        raise GraphFault(
            400,
            "Request_BadRequest",
            "A token lifetime policy needs a displayName and a definition (a list of JSON strings).",
        )
    api._require(request, WRITE_POLICIES)
    try:
        policy = api.tenant.add_token_lifetime_policy(
            str(body["displayName"]), list(definition), bool(body.get("isOrganizationDefault", False))
        )
    except ValueError as exc:
        raise GraphFault(400, "Request_BadRequest", str(exc)) from None
    policy.description = body.get("description")
    api.dirty = True
    context = {"@odata.context": f"{request.base_url}/$metadata#policies/tokenLifetimePolicies/$entity"}
    return GraphResponse(201, context | policy_json(policy), {"Content-Type": "application/json"})
