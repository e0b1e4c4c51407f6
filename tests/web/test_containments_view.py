"""The Containments view: contain a scratch person from the user page, follow the containment in
/containments and its page with its steps, release it there; each change checked where it landed."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.web.conftest import Console, sign_in
from tests.web.lab import ScratchPerson, WebLab
from tests.web.test_accessibility import AUDIT
from tests.web.test_containment import confirm, eventually


def test_a_containment_from_active_to_released(
    page: Page, console: Console, web_lab: WebLab, person: ScratchPerson
) -> None:
    sign_in(page, console, "analyst")
    page.goto(f"{console.base}/users/{person.upn}")
    expect(page.get_by_test_id("open-containment")).to_have_count(0)
    page.get_by_role("button", name="Run playbook contain").click()
    confirm(page, "session hijack, INC-913", "Run playbook contain")
    eventually(lambda: web_lab.ad_disabled(person.ad_dn))
    eventually(lambda: web_lab.okta_status(person.okta_id) == "SUSPENDED")

    # The user page says the person is contained, links to the containment and says what may
    # still work.
    banner = page.get_by_test_id("open-containment")
    expect(banner).to_contain_text("active", timeout=30_000)
    expect(banner).to_contain_text("until a person releases it")
    expect(page.get_by_test_id("residual").get_by_test_id("residual-ad-kerberos_tickets")).to_have_count(1)

    # The list: active by default, newest first; the row opens the containment's page.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Containments").click()
    row = page.get_by_test_id("containments-table").locator("tbody tr").filter(has_text=person.upn)
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("containment-state")).to_have_text("active")
    expect(row).to_contain_text("session hijack, INC-913")
    expect(row).to_contain_text("analyst")
    row.get_by_role("link", name="Containment").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(person.upn)
    expect(page.get_by_test_id("containment-detail-state")).to_have_text("active")
    steps = page.get_by_test_id("role-step")
    expect(steps).to_contain_text("Disable user in Active Directory")
    expect(steps).to_contain_text("Suspend user in Okta")
    expect(steps.get_by_test_id("status").filter(has_text="completed").first).to_be_visible()
    expect(page.get_by_test_id("containment-ending")).to_contain_text("Not ended")

    # What may still work, read from the providers when the page loads: once the steps are done,
    # Kerberos tickets and access tokens until a time, the Okta sessions ended.
    def residual_says(test_id: str, words: str) -> bool:
        page.reload()
        row = page.get_by_test_id("residual").get_by_test_id(test_id)
        return row.count() == 1 and words in (row.text_content() or "")

    eventually(lambda: residual_says("residual-entra-access_tokens", "CAE-capable apps"), timeout=60)
    residual = page.get_by_test_id("residual")
    expect(residual.get_by_test_id("residual-ad-kerberos_tickets").get_by_test_id("residual-status")).to_contain_text(
        "until"
    )
    expect(residual.get_by_test_id("residual-okta-sessions").get_by_test_id("residual-status")).to_have_text("ended")
    assert page.evaluate(AUDIT) == [], page.url  # the page passes the same audit as every other

    # A step opens the action center's drawer.
    steps.locator("tr", has_text="Disable user in Active Directory").get_by_role(
        "button", name="Details of action"
    ).click()
    drawer = page.locator("#drawer")
    expect(drawer.get_by_test_id("detail-status")).to_have_text("completed")
    expect(drawer).to_contain_text("session hijack, INC-913")
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()

    # Release from the containment's page: the release actions hang off it, and it says how it ended.
    page.get_by_role("button", name="Release").click()
    expect(page.get_by_test_id("plan")).to_contain_text("ad.enable_user")
    confirm(page, "cleared by the user, INC-913", "Release")
    eventually(lambda: not web_lab.ad_disabled(person.ad_dn))
    eventually(lambda: web_lab.okta_status(person.okta_id) == "ACTIVE")
    expect(page.get_by_test_id("containment-detail-state")).to_have_text("released", timeout=30_000)
    expect(page.get_by_test_id("role-release")).to_contain_text("Enable user in Active Directory")
    ending = page.get_by_test_id("containment-ending")
    expect(ending).to_contain_text("analyst")
    expect(ending).to_contain_text("cleared by the user, INC-913")

    # The list: gone from the active ones, released among all.
    page.goto(f"{console.base}/containments")
    rows = page.get_by_test_id("containments-table").locator("tbody tr")
    expect(rows.filter(has_text=person.upn)).to_have_count(0)
    page.get_by_label("State").select_option("all")
    page.get_by_role("button", name="Apply").click()
    row = page.get_by_test_id("containments-table").locator("tbody tr").filter(has_text=person.upn)
    expect(row.get_by_test_id("containment-state")).to_have_text("released")
    page.goto(f"{console.base}/users/{person.upn}")
    expect(page.get_by_test_id("open-containment")).to_have_count(0)
