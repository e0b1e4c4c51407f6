"""An action Okta keeps refusing stays pending: the action center shows it live with its attempts
and errors, and the analyst cancels it before it ever runs."""

from __future__ import annotations

import httpx
from playwright.sync_api import Page, expect

from tests.web.conftest import Console, sign_in
from tests.web.lab import ScratchPerson, WebLab


def test_pending_action_shows_its_attempts_and_is_cancelled(
    page: Page, console: Console, web_lab: WebLab, person: ScratchPerson
) -> None:
    fault = {"kind": "status", "status": 503, "method": "POST", "count": 1000,
             "path": f"/api/v1/users/{person.okta_id}/lifecycle/suspend"}  # fmt: skip
    httpx.post(f"{web_lab.okta.url}/_emulator/faults", json=fault).raise_for_status()
    try:
        sign_in(page, console, "analyst")
        page.goto(f"{console.base}/actions?tab=pending")
        table = page.get_by_test_id("actions-table")
        expect(table).to_contain_text("Nothing pending.")

        # Queued from another tab of the same analyst; this page shows it without a reload.
        other = page.context.new_page()
        other.goto(f"{console.base}/users/{person.upn}")
        other.get_by_test_id("actions-okta").locator("summary").click()
        other.get_by_role("button", name="Suspend user in Okta").click()
        dialog = other.locator("#action-dialog")
        dialog.get_by_label("Reason").fill("suspicious MFA pushes, INC-51")
        dialog.get_by_role("button", name="Suspend user in Okta").click()
        expect(dialog).to_be_hidden()
        other.close()

        row = table.locator("tbody tr").filter(has_text=person.upn)
        expect(row).to_have_count(1, timeout=15_000)
        expect(page.locator("[data-pending-count]")).to_have_text("1")
        row.get_by_role("button", name="Details of action").click()
        drawer = page.locator("#drawer")
        # The drawer refreshes itself until the action is final: the failed attempt appears.
        expect(drawer.locator("table")).to_contain_text("503", timeout=30_000)
        expect(drawer.get_by_test_id("detail-status")).to_have_text("queued", timeout=30_000)
        drawer.get_by_role("button", name="Cancel action").click()
        scope = page.locator("#action-dialog-scope")
        expect(scope).to_contain_text(person.upn)
        expect(scope).to_contain_text("Okta")
        page.locator("#action-dialog").get_by_role("button", name="Cancel the action").click()
        expect(drawer.get_by_test_id("detail-status")).to_have_text("cancelled")
        page.locator("[data-close-drawer]").first.click()
        expect(table).to_contain_text("Nothing pending.", timeout=15_000)
        expect(page.locator("[data-pending-count]")).to_have_text("0")
    finally:
        httpx.delete(f"{web_lab.okta.url}/_emulator/faults").raise_for_status()
    assert web_lab.okta_status(person.okta_id) == "ACTIVE"
