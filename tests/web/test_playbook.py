"""Contain a person everywhere from the user page with the playbook, after seeing its plan, then
release them; each change checked in Samba and the Okta emulator."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.web.conftest import Console, sign_in
from tests.web.lab import ScratchPerson, WebLab
from tests.web.test_containment import confirm, eventually


def test_contain_then_release_from_the_user_page(
    page: Page, console: Console, web_lab: WebLab, person: ScratchPerson
) -> None:
    sign_in(page, console, "analyst")
    page.goto(f"{console.base}/users/{person.upn}")
    page.get_by_role("button", name="Run playbook contain").click()
    plan = page.get_by_test_id("plan")
    expect(plan).to_contain_text("ad.disable_user")
    expect(plan).to_contain_text("okta.suspend_user")
    assert not web_lab.ad_disabled(person.ad_dn)  # the plan changed nothing
    confirm(page, "confirmed compromise, INC-70", "Run playbook contain")
    eventually(lambda: web_lab.ad_disabled(person.ad_dn))
    eventually(lambda: web_lab.okta_status(person.okta_id) == "SUSPENDED")
    expect(page.locator("#toast")).to_contain_text("Run playbook contain:", timeout=30_000)
    expect(page.get_by_test_id("status-ad")).to_contain_text("disabled")

    page.get_by_role("button", name="Release").click()
    expect(page.get_by_test_id("plan")).to_contain_text("ad.enable_user")
    confirm(page, "contained by mistake, INC-70", "Release")
    eventually(lambda: not web_lab.ad_disabled(person.ad_dn))
    eventually(lambda: web_lab.okta_status(person.okta_id) == "ACTIVE")
