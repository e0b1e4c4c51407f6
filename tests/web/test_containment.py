"""An analyst contains a person from the console, and every change is checked where it landed."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable

import httpx
from playwright.sync_api import Page, expect

from tests.web.conftest import Console, sign_in
from tests.web.lab import ScratchPerson, WebLab


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the change did not land in time"
        time.sleep(0.3)


def confirm(page: Page, reason: str, button: str) -> None:
    """Fill the reason in the open confirmation dialog and press its confirm button."""
    dialog = page.locator("#action-dialog")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Reason").fill(reason)
    dialog.get_by_role("button", name=button).click()
    expect(dialog).to_be_hidden()


def test_analyst_disables_suspends_and_undoes(
    page: Page, console: Console, web_lab: WebLab, person: ScratchPerson
) -> None:
    sign_in(page, console, "analyst")
    expect(page.get_by_test_id("who")).to_contain_text("analyst")
    expect(page.get_by_test_id("who")).to_contain_text("Global Administrator")

    # Find the person: one result, three accounts.
    page.get_by_label("Find a person").fill(person.upn)
    page.get_by_role("button", name="Search").click()
    results = page.get_by_test_id("search-results")
    for provider in ("Active Directory", "Entra ID", "Okta"):
        expect(results).to_contain_text(provider)

    # User page: disable in AD; the confirmation names the account and the provider.
    results.get_by_role("link", name="Open user page").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(person.upn)
    expect(page.get_by_test_id("status-ad")).to_contain_text("enabled")
    # Each card says how its account was linked into the person.
    linked = "Linked: matched the reference by userPrincipalName"
    expect(page.get_by_test_id("linked-ad")).to_have_text(linked)
    okta_link = f"Okta login = AD userPrincipalName {person.upn}"
    expect(page.get_by_test_id("linked-okta")).to_contain_text(okta_link)
    page.get_by_test_id("actions-ad").locator("summary").click()
    page.get_by_role("button", name="Disable user in Active Directory").click()
    scope = page.locator("#action-dialog-scope")
    expect(scope).to_contain_text(person.upn)
    expect(scope).to_contain_text("Active Directory")
    confirm(page, "phishing, INC-42", "Disable user in Active Directory")
    expect(page.locator("#toast")).to_contain_text("completed", timeout=30_000)
    eventually(lambda: web_lab.ad_disabled(person.ad_dn))
    expect(page.get_by_test_id("status-ad")).to_contain_text("disabled")

    # Side panel from the search results: suspend in Okta without leaving the list.
    page.goto(f"{console.base}/users?query={person.upn}")
    page.get_by_test_id("search-results").get_by_role("button", name=person.upn).click()
    panel = page.locator("#drawer")
    expect(panel).to_be_visible()
    expect(panel.get_by_test_id("status-okta")).to_contain_text("active")
    expect(panel.get_by_test_id("linked-entra")).to_contain_text("matched the reference by userPrincipalName")
    panel.get_by_test_id("actions-okta").locator("summary").click()
    panel.get_by_role("button", name="Suspend user in Okta").click()
    expect(page.locator("#action-dialog-scope")).to_contain_text("Okta")
    confirm(page, "phishing, INC-42", "Suspend user in Okta")
    eventually(lambda: web_lab.okta_status(person.okta_id) == "SUSPENDED")
    expect(panel.get_by_test_id("status-okta")).to_contain_text("suspended", timeout=30_000)
    assert page.url.endswith(f"/users?query={person.upn}")

    # Action center: both actions completed in History; undo the AD one from its detail drawer.
    page.goto(f"{console.base}/actions?tab=history&target={person.upn}")
    rows = page.get_by_test_id("actions-table").locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.get_by_test_id("status")).to_have_text(["completed", "completed"])
    ad_row = rows.filter(has_text="Disable user in Active Directory")
    ad_row.get_by_role("button", name="Details of action").click()
    expect(panel).to_contain_text("phishing, INC-42")
    expect(panel.get_by_test_id("detail-status")).to_have_text("completed")
    panel.get_by_role("button", name="Undo").click()
    expect(page.locator("#action-dialog-scope")).to_contain_text("Active Directory")
    confirm(page, "false positive, INC-42", "Undo")
    eventually(lambda: not web_lab.ad_disabled(person.ad_dn))
    # The table refreshes itself: the undo appears without a reload.
    page.locator("[data-close-drawer]").first.click()
    expect(rows).to_have_count(3, timeout=30_000)
    expect(rows.first.get_by_test_id("status")).to_have_text("completed", timeout=30_000)
    assert web_lab.okta_status(person.okta_id) == "SUSPENDED"

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(f"{console.base}/login")
    page.goto(f"{console.base}/actions")
    page.wait_for_url(f"{console.base}/login?next=/actions")


def test_export_is_a_csv_of_the_filtered_actions(page: Page, console: Console) -> None:
    sign_in(page, console, "analyst")
    page.goto(f"{console.base}/actions?tab=history")
    with page.expect_download() as download:
        page.get_by_test_id("export-csv").click()
    path = download.value.path()
    text = path.read_text(encoding="utf-8")
    assert next(csv.reader(io.StringIO(text)))[:4] == ["id", "type", "provider", "target"]
    listed = httpx.get(
        f"{console.base}/api/v1/actions",
        params={"status": ["completed", "failed", "cancelled"]},
        headers={"Authorization": f"Bearer {console.admin_token}"},
    ).json()["items"]
    assert len(list(csv.reader(io.StringIO(text)))) == len(listed) + 1
