"""Every console page at 1280x800 on the lab, saved as PNG: into $CLAMPDOWN_SCREENSHOTS when set
(scripts/screenshots.sh regenerates docs/screenshots this way), else into a temporary folder, so
the suite also checks that each page renders without a script error."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import Console, sign_in
from tests.web.lab import ScratchPerson, WebLab, create_person, delete_person
from tests.web.test_containment import confirm, eventually
from tests.web.test_hunting import failed_sign_ins

DEMO = "alice.martin@lab.example.test"


def _queue(console: Console, type_: str, target: str, reason: str) -> int:
    headers = {"Authorization": f"Bearer {console.admin_token}"}
    answer = httpx.post(
        f"{console.base}/api/v1/actions",
        json={"type": type_, "target": target, "reason": reason},
        headers=headers,
        timeout=30,
    )
    answer.raise_for_status()
    return int(answer.json()["id"])


@pytest.fixture
def ivan(web_lab: WebLab) -> Iterator[ScratchPerson]:
    """A person with a readable name for the pictures."""
    made = create_person(web_lab, "Ivan", "Petrov")
    yield made
    delete_person(web_lab, made)


def test_screenshots(
    page: Page, console: Console, web_lab: WebLab, ivan: ScratchPerson, tmp_path: Path
) -> None:
    person = ivan
    folder = Path(os.environ.get("CLAMPDOWN_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)

    def shot(name: str) -> None:
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(folder / f"{name}.png"))

    # Some history first: an Entra risk confirmation on the demo person, and an AD disable undone.
    _queue(console, "entra.mark_compromised", DEMO, "impossible travel, INC-42")
    disabled = _queue(console, "ad.disable_user", person.upn, "phishing, INC-41")
    eventually(lambda: web_lab.ad_disabled(person.ad_dn))
    # Disabled in Samba is not yet recorded as completed: undo takes only a completed action.
    admin = {"Authorization": f"Bearer {console.admin_token}"}
    url = f"{console.base}/api/v1/actions/{disabled}"
    eventually(lambda: httpx.get(url, headers=admin).json()["status"] == "completed")
    httpx.post(
        f"{console.base}/api/v1/actions/{disabled}/undo",
        json={"reason": "false positive, INC-41"},
        headers={"Authorization": f"Bearer {console.admin_token}"},
    ).raise_for_status()
    eventually(lambda: not web_lab.ad_disabled(person.ad_dn))

    page.goto(f"{console.base}/login")
    shot("01-sign-in")
    sign_in(page, console, "analyst")

    page.get_by_label("Find a person").press_sequentially("mart", delay=60)  # the type-ahead
    expect(page.get_by_role("option", name=re.compile("Alice Martin"))).to_be_visible()
    page.get_by_label("Find a person").press("ArrowDown")
    shot("user-type-ahead")
    page.get_by_label("Find a person").press("Escape")

    page.get_by_label("Find a person").fill(DEMO)
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_test_id("search-results")).to_be_visible()
    shot("02-user-search")

    page.get_by_test_id("search-results").get_by_role("button", name=DEMO).click()
    expect(page.locator("#drawer").get_by_test_id("status-okta")).to_be_visible()
    shot("03-user-side-panel")

    page.goto(f"{console.base}/users/{DEMO}")
    expect(page.get_by_test_id("status-entra")).to_contain_text("risk high", timeout=30_000)
    page.get_by_test_id("actions-okta").locator("summary").click()
    shot("04-user-page-actions-menu")
    page.get_by_role("button", name="Suspend user in Okta").click()
    page.locator("#action-dialog").get_by_label("Reason").fill("phishing, INC-42")
    shot("05-action-confirmation")
    page.locator("#action-dialog").get_by_role("button", name="Suspend user in Okta").click()
    expect(page.get_by_test_id("status-okta")).to_contain_text("suspended", timeout=30_000)
    page.wait_for_timeout(500)
    shot("06-user-page")
    page.get_by_role("button", name="Run playbook contain").click()
    expect(page.get_by_test_id("plan")).to_contain_text("okta.suspend_user")
    page.locator("#action-dialog").get_by_label("Reason").fill("confirmed compromise, INC-42")
    shot("12-playbook-plan")
    page.locator("#action-dialog").get_by_role("button", name="Cancel").click()

    failed_sign_ins(console, person)
    page.goto(f"{console.base}/hunting")
    page.get_by_label("Query", exact=True).fill(
        'CloudSignInEvents\n| where ActionType == "LogonFailed"\n'
        "| summarize Failures = count(), LastSeen = max(Timestamp) by AccountUpn, Provider, IPAddress\n"
        "| order by Failures desc"
    )
    page.get_by_role("button", name="Run query").click()
    rows = page.get_by_test_id("hunt-table").locator("tbody tr")
    target = rows.filter(has_text=person.upn)
    expect(target).to_have_count(1)
    target.get_by_role("checkbox").check()
    page.get_by_label("Action to take").select_option("okta.suspend_user")
    shot("07-advanced-hunting")
    page.get_by_role("button", name="Take action on 1").click()
    confirm(page, "password spraying, INC-43", "Suspend user in Okta: 1 account")
    eventually(lambda: web_lab.okta_status(person.okta_id) == "SUSPENDED")

    page.goto(f"{console.base}/actions?tab=history")
    expect(page.get_by_test_id("batch-progress").first).to_contain_text("1 of 1 done", timeout=30_000)
    shot("08-action-center-history")
    page.get_by_role("button", name=f"Details of action {disabled}", exact=True).click()
    expect(page.locator("#drawer").get_by_test_id("detail-status")).to_have_text("completed")
    shot("09-action-detail")
    page.goto(f"{console.base}/actions?tab=pending")
    shot("10-action-center-pending")


def test_reader_screenshot(page: Page, console: Console, web_lab: WebLab, tmp_path: Path) -> None:
    folder = Path(os.environ.get("CLAMPDOWN_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    sign_in(page, console, "reader")
    page.goto(f"{console.base}/users/{DEMO}")
    expect(page.get_by_test_id("read-only")).to_be_visible()
    page.screenshot(path=str(folder / "11-reader-user-page.png"))
