"""Every answer the emulator gives, and every request Clampdown sends, against Okta's OpenAPI documents."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest

from clampdown.connectors.okta import OktaConnector
from clampdown_lab.okta_emulator import Fault
from tests.okta.contract import Exchange, validate
from tests.okta.org import CLIENT_ID, Org, context

ALICE = "alice.martin@lab.example.test"


async def test_user_reads_and_pagination(org: Org, raw: httpx.AsyncClient) -> None:
    one = await raw.get(f"/api/v1/users/{org.ids[ALICE]}")
    assert one.status_code == 200 and one.headers["Etag"]
    seen: list[str] = []
    url: str | None = "/api/v1/users?limit=3"
    while url:
        page = await raw.get(url)
        assert page.status_code == 200 and len(page.json()) <= 3
        seen += [u["id"] for u in page.json()]
        url = page.links.get("next", {}).get("url")
    assert sorted(seen) == sorted(org.ids.values())
    assert 'rel="self"' in page.headers["Link"]


async def test_search_filter_and_their_errors(org: Org, raw: httpx.AsyncClient) -> None:
    org.add("gone@lab.example.test", status="DEPROVISIONED")
    plain = await raw.get("/api/v1/users")
    assert "gone@lab.example.test" not in {u["profile"]["login"] for u in plain.json()}
    found = await raw.get("/api/v1/users", params={"search": 'status eq "DEPROVISIONED"'})
    assert [u["profile"]["login"] for u in found.json()] == ["gone@lab.example.test"]
    filtered = await raw.get("/api/v1/users", params={"filter": f'profile.login eq "{ALICE}"'})
    assert [u["id"] for u in filtered.json()] == [org.ids[ALICE]]
    starts = await raw.get("/api/v1/users", params={"search": 'profile.department sw "fin"'})
    assert len(starts.json()) == 2
    both = await raw.get(
        "/api/v1/users", params={"search": 'status eq "ACTIVE"', "filter": 'status eq "ACTIVE"'}
    )
    assert (both.status_code, both.json()["errorCode"]) == (400, "E0000033")
    bad = await raw.get("/api/v1/users", params={"filter": 'profile.department eq "IT"'})
    assert (bad.status_code, bad.json()["errorCode"]) == (400, "E0000031")


async def test_error_answers(org: Org, raw: httpx.AsyncClient) -> None:
    missing = await raw.get("/api/v1/users/nobody@lab.example.test")
    assert (missing.status_code, missing.json()["errorCode"]) == (404, "E0000007")
    user = org.ids[ALICE]
    refused = await raw.post(f"/api/v1/users/{user}/lifecycle/unsuspend")
    assert (refused.status_code, refused.json()["errorCode"]) == (400, "E0000001")
    assert refused.json()["errorCauses"][0]["errorSummary"]
    anonymous = await raw.get(f"/api/v1/users/{user}", headers={"Authorization": "SSWS wrong"})
    assert (anonymous.status_code, anonymous.json()["errorCode"]) == (401, "E0000011")
    not_reactivatable = await raw.post(f"/api/v1/users/{user}/lifecycle/reactivate")
    assert (not_reactivatable.status_code, not_reactivatable.json()["errorCode"]) == (403, "E0000038")


async def test_rate_limited_answer(org: Org, raw: httpx.AsyncClient) -> None:
    org.emulator.limiter.configure(limits={"users.get": 2})
    statuses = [(await raw.get(f"/api/v1/users/{org.ids[ALICE]}")).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    last = await raw.get(f"/api/v1/users/{org.ids[ALICE]}")
    assert last.json()["errorCode"] == "E0000047"
    assert (last.headers["X-Rate-Limit-Limit"], last.headers["X-Rate-Limit-Remaining"]) == ("2", "0")
    assert int(last.headers["X-Rate-Limit-Reset"]) > 0


async def test_every_lifecycle_operation(org: Org, raw: httpx.AsyncClient) -> None:
    user = org.ids["bob.nguyen@lab.example.test"]
    lifecycle = f"/api/v1/users/{user}/lifecycle"
    assert (await raw.post(f"{lifecycle}/suspend")).status_code == 200
    assert (await raw.post(f"{lifecycle}/unsuspend")).status_code == 200
    expired = await raw.post(f"{lifecycle}/expire_password")
    assert expired.json()["status"] == "PASSWORD_EXPIRED"
    reset = await raw.post(f"{lifecycle}/reset_password", params={"sendEmail": "false"})
    assert "resetPasswordUrl" in reset.json()
    assert (await raw.post(f"{lifecycle}/reactivate")).json()["activationToken"]
    assert (
        await raw.delete(f"/api/v1/users/{user}/sessions", params={"oauthTokens": "true"})
    ).status_code == 204
    assert (await raw.post(f"{lifecycle}/deactivate")).status_code == 200
    assert (await raw.post(f"{lifecycle}/activate", params={"sendEmail": "true"})).status_code == 200
    assert (await raw.delete(f"/api/v1/users/{user}")).status_code == 204  # deactivates
    assert (await raw.delete(f"/api/v1/users/{user}")).status_code == 204  # deletes
    assert (await raw.get(f"/api/v1/users/{user}")).status_code == 404


async def test_create_user_and_system_log(org: Org, raw: httpx.AsyncClient) -> None:
    body = {
        "profile": {
            "login": "new.hire@lab.example.test",
            "email": "new.hire@lab.example.test",
            "firstName": "New",
            "lastName": "Hire",
        }
    }
    created = await raw.post(
        "/api/v1/users",
        params={"activate": "true"},
        content=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    assert created.json()["status"] == "ACTIVE"
    await raw.post(f"/api/v1/users/{created.json()['id']}/lifecycle/suspend")
    logs = await raw.get(
        "/api/v1/logs", params={"filter": 'eventType eq "user.lifecycle.suspend"', "limit": "10"}
    )
    events = logs.json()
    assert [e["target"][0]["alternateId"] for e in events] == ["new.hire@lab.example.test"]
    assert "next" in logs.links  # the System Log always offers `next`, for polling
    assert (await raw.get(logs.links["next"]["url"])).json() == []


async def test_connector_traffic_with_oauth(
    org: Org, make_connector: Callable[..., OktaConnector], check_contract: list[Exchange]
) -> None:
    connector = make_connector(client_id=CLIENT_ID, private_key=org.private_key)
    account = await connector.resolve_user("carol.diaz@lab.example.test")
    await connector.suspend_user(account, context())
    await connector.suspend_user(account, context())
    await connector.unsuspend_user(account, context())
    await connector.deactivate_user(account, context())
    await connector.resolve_user("carol.diaz")
    paths = {(e.method, e.url.split("?")[0].removeprefix(org.url)) for e in check_contract}
    assert ("POST", "/oauth2/v1/token") in paths
    assert ("DELETE", f"/api/v1/users/{account.id}/sessions") in paths


async def test_the_validator_rejects_what_breaks_the_contract(org: Org) -> None:
    """The contract check is not vacuous: a wrong status value or body shape is caught."""
    org.emulator.faults.add(Fault(kind="status", status=503, path=".*/lifecycle/suspend"))
    broken = Exchange(
        "GET",
        f"{org.url}/api/v1/users/00u1",
        {"authorization": "SSWS x"},
        b"",
        200,
        {"content-type": "application/json"},
        json.dumps({"id": "00u1", "status": "ENABLED"}).encode(),
    )
    with pytest.raises(AssertionError, match="ENABLED"):
        validate(broken)
    body_on_empty = Exchange(
        "POST",
        f"{org.url}/api/v1/users/00u1/lifecycle/suspend",
        {"authorization": "SSWS x"},
        b"",
        200,
        {"content-type": "application/json"},
        b"{}",
    )
    with pytest.raises(AssertionError, match="body where none"):
        validate(body_on_empty)
    wrong_code = Exchange(
        "GET",
        f"{org.url}/api/v1/users/00u1",
        {"authorization": "SSWS x"},
        b"",
        404,
        {"content-type": "application/json"},
        json.dumps(
            {
                "errorCode": "E0000001",
                "errorSummary": "x",
                "errorLink": "E0000001",
                "errorId": "x",
                "errorCauses": [],
            }
        ).encode(),
    )
    with pytest.raises(AssertionError, match="E0000001 is not HTTP"):
        validate(wrong_code)
