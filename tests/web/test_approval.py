"""Four eyes from the console: the analyst asks for approval, a second person approves, then it runs."""

from __future__ import annotations

from playwright.sync_api import Browser, Page, expect

from tests.web.conftest import Console, sign_in
from tests.web.lab import ScratchPerson, WebLab
from tests.web.test_containment import eventually


def test_second_person_approves_a_suspend(
    page: Page, browser: Browser, console: Console, web_lab: WebLab, person: ScratchPerson
) -> None:
    sign_in(page, console, "analyst")
    page.goto(f"{console.base}/users/{person.upn}")
    page.get_by_test_id("actions-okta").locator("summary").click()
    page.get_by_role("button", name="Suspend user in Okta").click()
    dialog = page.locator("#action-dialog")
    dialog.get_by_label("Reason").fill("shared credentials, INC-60")
    dialog.get_by_label("Ask a second person to approve").check()
    dialog.get_by_role("button", name="Suspend user in Okta").click()
    expect(page.locator("#toast")).to_contain_text("waits for a second person")
    assert web_lab.okta_status(person.okta_id) == "ACTIVE"

    page.goto(f"{console.base}/actions?tab=pending&target={person.upn}")
    row = page.get_by_test_id("actions-table").locator("tbody tr")
    expect(row.get_by_test_id("status")).to_have_text("awaiting approval")
    row.get_by_role("button", name="Details of action").click()
    expect(page.locator("#drawer")).to_contain_text("approval requested by analyst")
    expect(page.locator("#drawer").get_by_role("button", name="Approve")).to_have_count(0)

    context = browser.new_context(viewport={"width": 1280, "height": 800})
    second = context.new_page()
    try:
        sign_in(second, console, "second")
        second.goto(f"{console.base}/actions?tab=pending&target={person.upn}")
        second.get_by_test_id("actions-table").get_by_role("button", name="Details of action").click()
        drawer = second.locator("#drawer")
        drawer.get_by_role("button", name="Approve").click()
        expect(second.locator("#action-dialog-scope")).to_contain_text(person.upn)
        second.locator("#action-dialog").get_by_label("Reason").fill("confirmed with the SOC lead")
        second.locator("#action-dialog").get_by_role("button", name="Approve").click()
        eventually(lambda: web_lab.okta_status(person.okta_id) == "SUSPENDED")
        expect(drawer.get_by_test_id("detail-status")).to_have_text("completed", timeout=30_000)
        expect(drawer).to_contain_text("second")
    finally:
        context.close()
    # The analyst's page moves the action out of Pending by itself.
    expect(page.get_by_test_id("actions-table")).to_contain_text("Nothing pending.", timeout=15_000)
