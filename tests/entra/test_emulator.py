"""The emulator's own behaviour where the connector does not go: identity platform errors as
Entra ID words them, discovery documents, OData query rules, write validation, sign-in logs."""

from __future__ import annotations

from datetime import timedelta

import httpx

from clampdown_lab.graph_emulator import Emulator
from clampdown_lab.graph_emulator.tenant import iso
from tests.entra.support import FULL_APP, SECRET

GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def token_request(emulator_admin: httpx.Client, tenant: str, **form: str) -> httpx.Response:
    body = {
        "client_id": FULL_APP,
        "client_secret": SECRET,
        "grant_type": "client_credentials",
        "scope": GRAPH_SCOPE,
    } | form
    return emulator_admin.post(f"/{tenant}/oauth2/v2.0/token", data=body)


def bearer(emulator_admin: httpx.Client, emulator: Emulator) -> dict[str, str]:
    reply = token_request(emulator_admin, emulator.tenant.tenant_id)
    assert reply.status_code == 200 and reply.json()["expires_in"] == 3599
    return {"Authorization": f"Bearer {reply.json()['access_token']}"}


def test_token_endpoint_errors_name_the_aadsts_code(emulator_admin: httpx.Client, emulator: Emulator) -> None:
    tenant = emulator.tenant.tenant_id
    cases = {
        ("invalid_tenant", 400, 90002): token_request(emulator_admin, "no-such-tenant.example"),
        ("unauthorized_client", 400, 700016): token_request(emulator_admin, tenant, client_id="0" * 8),
        ("invalid_client", 401, 7000215): token_request(emulator_admin, tenant, client_secret="wrong"),
        ("invalid_scope", 400, 1002012): token_request(emulator_admin, tenant, scope="User.Read"),
        ("unsupported_grant_type", 400, 70003): token_request(emulator_admin, tenant, grant_type="password"),
    }
    for (error, status, code), reply in cases.items():
        body = reply.json()
        assert reply.status_code == status, error
        assert body["error"] == error and body["error_codes"] == [code]
        assert body["error_description"].startswith(f"AADSTS{code}: ")
        assert body["trace_id"] and body["correlation_id"]
    # The tenant's domain name is accepted in place of its id, as Entra ID does.
    assert token_request(emulator_admin, emulator.tenant.domain).status_code == 200


def test_discovery_documents(emulator_admin: httpx.Client, emulator: Emulator) -> None:
    tenant = emulator.tenant.tenant_id
    config = emulator_admin.get(f"/{tenant}/v2.0/.well-known/openid-configuration").json()
    assert config["token_endpoint"].endswith(f"/{tenant}/oauth2/v2.0/token")
    assert config["issuer"].endswith(f"/{tenant}/v2.0")
    found = emulator_admin.get(
        "/common/discovery/instance",
        params={
            "authorization_endpoint": f"https://127.0.0.1/{tenant}/oauth2/v2.0/authorize",
            "api-version": "1.1",
        },
    )
    assert found.json()["tenant_discovery_endpoint"].endswith(
        f"/{tenant}/v2.0/.well-known/openid-configuration"
    )


def test_user_queries_follow_graph_rules(emulator_admin: httpx.Client, emulator: Emulator) -> None:
    headers = bearer(emulator_admin, emulator)
    alice = emulator_admin.get("/v1.0/users/alice.martin@lab.example.test", headers=headers).json()
    assert "accountEnabled" not in alice  # not in Graph's default property set: ask with $select
    assert alice["userPrincipalName"] == "alice.martin@lab.example.test"
    selected = emulator_admin.get(
        f"/v1.0/users/{alice['id']}", params={"$select": "id,accountEnabled"}, headers=headers
    )
    assert selected.json()["accountEnabled"] is True
    bad_select = emulator_admin.get(f"/v1.0/users/{alice['id']}", params={"$select": "nope"}, headers=headers)
    assert bad_select.status_code == 400
    unsupported = emulator_admin.get("/v1.0/users", params={"$filter": "jobTitle eq 'SRE'"}, headers=headers)
    assert unsupported.status_code == 400
    assert unsupported.json()["error"]["code"] == "Request_UnsupportedQuery"
    too_big = emulator_admin.get("/v1.0/users", params={"$top": "1000"}, headers=headers)
    assert too_big.status_code == 400
    pages, url, params = [], "/v1.0/users", {"$top": "3", "$select": "id"}
    while url:
        page = emulator_admin.get(url, params=params, headers=headers).json()
        pages.append(page["value"])
        url, params = page.get("@odata.nextLink", ""), None
    assert sum(len(p) for p in pages) == len(emulator.tenant.users) and len(pages) == 3


def test_writes_are_validated(emulator_admin: httpx.Client, emulator: Emulator) -> None:
    headers = bearer(emulator_admin, emulator)
    path = "/v1.0/users/alice.martin@lab.example.test"
    read_only = emulator_admin.patch(path, json={"id": "x"}, headers=headers)
    assert read_only.status_code == 400 and "read-only" in read_only.json()["error"]["message"]
    wrong_type = emulator_admin.patch(path, json={"accountEnabled": "no"}, headers=headers)
    assert wrong_type.status_code == 400 and "Edm.Boolean" in wrong_type.json()["error"]["message"]
    unknown = emulator_admin.patch(path, json={"colour": "blue"}, headers=headers)
    assert unknown.status_code == 400
    ids = [u.id for u in emulator.tenant.users.values()] * 8
    too_many = emulator_admin.post(
        "/v1.0/identityProtection/riskyUsers/dismiss", json={"userIds": ids[:61]}, headers=headers
    )
    assert too_many.status_code == 400
    assert not emulator_admin.get("/v1.0/users", headers={"Authorization": "Bearer not-a-token"}).is_success


def test_sign_in_log_filters_and_order(emulator_admin: httpx.Client, emulator: Emulator) -> None:
    headers = bearer(emulator_admin, emulator)
    tenant = emulator.tenant
    user = tenant.find_user("carol.diaz@lab.example.test")
    assert user is not None
    start = tenant.clock.now()
    for minutes in (0, 10, 20):
        tenant.record_sign_in(user, ip_address=f"192.0.2.{minutes}", at=start + timedelta(minutes=minutes))
    user.accountEnabled = False
    blocked = tenant.record_sign_in(user, ip_address="192.0.2.99", at=start + timedelta(minutes=30))
    assert blocked["status"]["errorCode"] == 50057
    since = iso(start + timedelta(minutes=5))
    reply = emulator_admin.get(
        "/v1.0/auditLogs/signIns",
        headers=headers,
        params={"$filter": f"createdDateTime ge {since} and userId eq '{user.id}'"},
    )
    assert [e["ipAddress"] for e in reply.json()["value"]] == ["192.0.2.99", "192.0.2.20", "192.0.2.10"]
