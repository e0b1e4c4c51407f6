"""Every page: labelled controls, named buttons and links, text contrast, one h1, a skip link first in the tab
order; the side panel works from the keyboard alone."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page, expect

from tests.web.conftest import Console, sign_in
from tests.web.lab import ScratchPerson

# Problems a screen reader, keyboard or low-vision user would meet (WCAG AA contrast included).
AUDIT = (Path(__file__).parent / "audit.js").read_text(encoding="utf-8")


def audit(page: Page, *, first_tab: bool = True) -> None:
    page.wait_for_load_state("networkidle")
    assert page.evaluate(AUDIT) == [], page.url
    if first_tab:  # the sign-in page focuses its first field instead
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent.trim()") == "Skip to content"


def test_pages_are_labelled_and_keyboard_usable(page: Page, console: Console, person: ScratchPerson) -> None:
    page.goto(f"{console.base}/login")
    audit(page, first_tab=False)
    expect(page.get_by_label("Username")).to_be_focused()
    sign_in(page, console, "analyst")
    for path in (f"/users?query={person.upn}", f"/users/{person.upn}", "/hunting",
                 "/actions?tab=pending", "/actions?tab=history", "/containments",
                 "/containments?state=all"):  # fmt: skip
        page.goto(console.base + path)
        audit(page)
    page.goto(console.base + "/hunting")
    page.get_by_role("button", name="Run query").click()
    expect(page.get_by_test_id("hunt-table")).to_be_visible()
    assert page.evaluate(AUDIT) == []

    # Keyboard only: open the side panel from the results, move inside it, close it with Escape.
    page.goto(f"{console.base}/users?query={person.upn}")
    opener = page.get_by_test_id("search-results").get_by_role("button", name=person.upn)
    opener.focus()
    page.keyboard.press("Enter")
    drawer = page.locator("#drawer")
    expect(drawer.get_by_test_id("status-okta")).to_be_visible()
    assert page.evaluate("document.getElementById('drawer').contains(document.activeElement)")
    for _ in range(12):
        page.keyboard.press("Tab")
        assert page.evaluate("document.getElementById('drawer').contains(document.activeElement)")
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()
    expect(opener).to_be_focused()
