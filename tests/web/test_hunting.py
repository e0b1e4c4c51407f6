"""Hunt in the console, select two result rows and suspend both accounts in Okta as one batch."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from clampdown.config import HuntingSettings
from clampdown.hunting.store import Batch, EventStore
from tests.web.conftest import Console, sign_in
from tests.web.lab import ScratchPerson, WebLab, create_person, delete_person
from tests.web.test_containment import confirm, eventually


@pytest.fixture
def second_person(web_lab: WebLab) -> Iterator[ScratchPerson]:
    made = create_person(web_lab)
    yield made
    delete_person(web_lab, made)


def failed_sign_ins(console: Console, *people: ScratchPerson) -> None:
    """Three failed Okta sign-ins per person, written into the server's event store."""
    store = EventStore(console.config.parent / "clampdown.events.duckdb", HuntingSettings())
    store.initialize()
    now = datetime.now(UTC)
    rows = [
        {
            "Timestamp": now - timedelta(minutes=i),
            "Provider": "okta",
            "ActionType": "LogonFailed",
            "Application": "Okta Dashboard",
            "ErrorCode": "INVALID_CREDENTIALS",
            "AccountUpn": p.upn,
            "AccountObjectId": p.okta_id,
            "IPAddress": "203.0.113.66",
            "Country": "NL",
            "Source": "okta",
            "ReportId": str(uuid.uuid4()),
        }
        for p in people
        for i in range(3)
    ]
    store.append(Batch(rows={"CloudSignInEvents": rows}, positions={}))


def test_hunt_and_suspend_two_accounts(
    page: Page, console: Console, web_lab: WebLab, person: ScratchPerson, second_person: ScratchPerson
) -> None:
    failed_sign_ins(console, person, second_person)
    sign_in(page, console, "analyst")
    page.get_by_role("link", name="Advanced hunting").click()
    query = (
        f'CloudSignInEvents\n| where AccountUpn in ("{person.upn}", "{second_person.upn}")'
        ' and ActionType == "LogonFailed"\n| summarize Failures = count() by AccountUpn, Provider'
        "\n| order by AccountUpn asc"
    )
    page.get_by_label("Query", exact=True).fill(query)
    page.get_by_role("button", name="Run query").click()
    rows = page.get_by_test_id("hunt-table").locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("3")

    # A result's account opens the side panel, without leaving the results.
    rows.first.get_by_role("button", name=min(person.upn, second_person.upn)).click()
    expect(page.locator("#drawer").get_by_test_id("status-okta")).to_contain_text("active")
    page.locator("#drawer [data-close-drawer]").click()

    rows.nth(0).get_by_role("checkbox").check()
    rows.nth(1).get_by_role("checkbox").check()
    page.get_by_label("Action to take").select_option("okta.suspend_user")
    page.get_by_role("button", name="Take action on 2").click()
    scope = page.locator("#action-dialog-scope")
    expect(scope).to_contain_text("2 accounts")
    expect(scope).to_contain_text("Okta")
    confirm(page, "password spraying, INC-77", "Suspend user in Okta: 2 accounts")

    page.get_by_role("link", name="follow it in the action center").click()
    expect(page.get_by_test_id("batch-progress")).to_have_text("2 of 2 done", timeout=30_000)
    eventually(lambda: web_lab.okta_status(person.okta_id) == "SUSPENDED")
    eventually(lambda: web_lab.okta_status(second_person.okta_id) == "SUSPENDED")

    # The user page shows the person's events from the hunting store.
    page.goto(f"{console.base}/users/{person.upn}")
    events = page.get_by_test_id("recent-events")
    expect(events.locator("tbody tr")).to_have_count(3)
    expect(events).to_contain_text("LogonFailed")
    expect(events).to_contain_text("203.0.113.66")
