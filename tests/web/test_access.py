"""What the console lets a reader do (nothing), and what a forged or cross-site request gets."""

from __future__ import annotations

import time

import httpx
from playwright.sync_api import Page, expect

from tests.web.conftest import Console, sign_in
from tests.web.lab import ScratchPerson, WebLab

ATTACKER = "http://attacker.test"


def _api(console: Console, token: str) -> httpx.Client:
    return httpx.Client(base_url=console.base, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def suspend_in_okta(console: Console, person: ScratchPerson) -> int:
    """An Okta suspend run through the API as the administrator; its id once completed."""
    with _api(console, console.admin_token) as api:
        action = api.post(
            "/api/v1/actions", json={"type": "okta.suspend_user", "target": person.upn, "reason": "setup"}
        ).json()
        deadline = time.monotonic() + 30
        while api.get(f"/api/v1/actions/{action['id']}").json()["status"] != "completed":
            assert time.monotonic() < deadline, "the setup action did not complete"
            time.sleep(0.2)
    return int(action["id"])


def action_count(console: Console) -> int:
    with _api(console, console.admin_token) as api:
        return len(api.get("/api/v1/actions", params={"limit": 1000}).json()["items"])


def test_reader_sees_no_action_buttons_and_a_forged_request_is_refused(
    page: Page, console: Console, web_lab: WebLab, person: ScratchPerson
) -> None:
    action_id = suspend_in_okta(console, person)
    sign_in(page, console, "reader")
    expect(page.get_by_test_id("who")).to_contain_text("Security Reader")

    page.goto(f"{console.base}/users/{person.upn}")
    expect(page.get_by_test_id("status-okta")).to_contain_text("suspended")
    expect(page.get_by_test_id("read-only")).to_be_visible()
    expect(page.locator("[data-run-action]")).to_have_count(0)
    expect(page.get_by_role("button", name="Actions")).to_have_count(0)

    page.goto(f"{console.base}/actions?tab=history")
    page.get_by_role("button", name=f"Details of action {action_id}", exact=True).click()
    drawer = page.locator("#drawer")
    expect(drawer.get_by_test_id("detail-status")).to_have_text("completed")
    expect(drawer.get_by_role("button", name="Undo")).to_have_count(0)

    page.goto(f"{console.base}/hunting")
    page.get_by_role("button", name="Run query").click()
    expect(page.get_by_test_id("hunt-table")).to_be_visible()
    expect(page.get_by_role("button", name="Take action")).to_have_count(0)
    expect(page.get_by_role("button", name="Save query")).to_have_count(0)

    # The reader forges the request the buttons would send, with their own valid CSRF token.
    before = action_count(console)
    answer = page.evaluate(
        """async ([upn, id]) => {
            const token = document.querySelector('meta[name="csrf-token"]').content;
            const headers = {"Content-Type": "application/json", "X-CSRF-Token": token};
            const run = await fetch("/api/v1/actions", {method: "POST", headers,
                body: JSON.stringify({type: "okta.unsuspend_user", target: upn, reason: "forged"})});
            const undo = await fetch(`/api/v1/actions/${id}/undo`, {method: "POST", headers, body: "{}"});
            return [run.status, (await run.json()).error.code, undo.status];
        }""",
        [person.upn, action_id],
    )
    assert answer == [403, "permission_denied", 403]
    assert action_count(console) == before
    assert web_lab.okta_status(person.okta_id) == "SUSPENDED"


def test_cross_site_form_posts_cannot_start_an_action(
    page: Page, console: Console, web_lab: WebLab, person: ScratchPerson
) -> None:
    action_id = suspend_in_okta(console, person)
    sign_in(page, console, "analyst")
    before = action_count(console)
    # JSON smuggled in a text/plain form, and a body-less undo: what a hostile page can send.
    forms = f"""<!doctype html><title>win a prize</title>
      <form id="run" method="post" enctype="text/plain" action="{console.base}/api/v1/actions">
        <input name='{{"type":"okta.unsuspend_user","target":"{person.upn}","reason":"x","pad":"' value='"}}'>
      </form>
      <form id="undo" method="post" action="{console.base}/api/v1/actions/{action_id}/undo"></form>"""
    page.route(f"{ATTACKER}/**", lambda route: route.fulfill(content_type="text/html", body=forms))
    for form in ("run", "undo"):
        page.goto(f"{ATTACKER}/prize")
        with page.expect_response(lambda r: r.url.startswith(console.base)) as answer:
            page.evaluate(f"document.getElementById('{form}').submit()")
        # SameSite=Strict: the session cookie is not sent from another site, so no one is signed in.
        assert answer.value.status == 401, answer.value.text()
        page.wait_for_url(f"{console.base}/**")

    # From the console's own origin but without the CSRF header (what a plain form would send).
    page.goto(f"{console.base}/users")
    statuses = page.evaluate(
        """async ([upn, id]) => {
            const run = await fetch("/api/v1/actions", {method: "POST",
                headers: {"Content-Type": "application/json"},
                body: JSON.stringify({type: "okta.unsuspend_user", target: upn, reason: "x"})});
            const undo = await fetch(`/api/v1/actions/${id}/undo`, {method: "POST"});
            return [run.status, undo.status, (await undo.json()).error.message];
        }""",
        [person.upn, action_id],
    )
    assert statuses[:2] == [403, 403]
    assert "CSRF" in statuses[2]
    assert action_count(console) == before
    assert web_lab.okta_status(person.okta_id) == "SUSPENDED"
