"""Every page: labelled controls, named buttons and links, one h1, a skip link first in the tab
order; the side panel works from the keyboard alone."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.web.conftest import Console, sign_in
from tests.web.lab import ScratchPerson

# Problems a screen reader or keyboard user would meet, found in the rendered page.
AUDIT = """() => {
  const problems = [];
  const visible = (el) => el.offsetParent !== null || el.closest("dialog, #drawer");
  const named = (el) => (el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")
    || el.textContent.trim() || el.title || "").length > 0;
  if (!document.documentElement.lang) problems.push("html has no lang");
  const h1 = document.querySelectorAll("h1").length;
  if (h1 !== 1) problems.push(`${h1} h1 headings`);
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    if (!visible(el)) continue;
    if (!(el.labels?.length || el.getAttribute("aria-label") || el.getAttribute("aria-labelledby")))
      problems.push(`unlabelled ${el.tagName.toLowerCase()} ${el.id || el.name}`);
  }
  for (const el of document.querySelectorAll("button, a[href], summary")) {
    if (visible(el) && !named(el)) problems.push(`unnamed ${el.outerHTML.slice(0, 80)}`);
  }
  for (const table of document.querySelectorAll("table")) {
    if (visible(table) && table.tHead && !table.tHead.querySelector("th[scope=col]"))
      problems.push("table header cells without scope");
  }
  return problems;
}"""


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
                 "/actions?tab=pending", "/actions?tab=history"):  # fmt: skip
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
