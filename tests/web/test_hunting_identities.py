"""The README's hunt in the console: a domain controller's failed logons, which name a
sAMAccountName only, grouped by the person's real UPN (joined through IdentityInfo when ingested);
acting on that row reaches the person in AD, Entra ID and Okta, checked where each lands. With
$CLAMPDOWN_SCREENSHOTS set (scripts/screenshots.sh), the picture for docs/console.md is saved."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.lab_config import clampdown
from tests.web.conftest import Console, sign_in
from tests.web.lab import ScratchPerson, WebLab
from tests.web.test_containment import confirm, eventually

README_HUNT = "IdentityLogonEvents | where ActionType == 'LogonFailed' | summarize count() by AccountUpn"
FAILURES = 7


def _dc_failures(path: Path, person: ScratchPerson) -> Path:
    """A brute force on the person at the lab's DC, as Winlogbeat ships it: LAB\\username only."""
    start = datetime.now(UTC) - timedelta(minutes=30)
    first = int(start.timestamp() * 1000)  # record ids above any other test's
    lines = []
    for n in range(FAILURES):
        data = {"TargetUserName": person.username, "TargetDomainName": "LAB", "Status": "0xc000006d",
                "SubStatus": "0xc000006a", "LogonType": "3", "IpAddress": "10.20.0.66"}  # fmt: skip
        winlog = {"channel": "Security", "computer_name": "DC1.lab.example.test", "event_id": 4625,
                  "record_id": first + n, "event_data": data}  # fmt: skip
        stamp = (start + timedelta(seconds=6 * n)).isoformat().replace("+00:00", "Z")
        lines.append(json.dumps({"@timestamp": stamp, "winlog": winlog}))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _entra_enabled(web_lab: WebLab, entra_id: str) -> bool:
    with web_lab.entra_admin() as admin:
        answer = admin.get("/_emulator/users")
        answer.raise_for_status()
        return bool(next(u for u in answer.json() if u["id"] == entra_id)["accountEnabled"])


def test_the_readme_hunt_groups_dc_failures_by_upn_and_acts_everywhere(
    page: Page, console: Console, web_lab: WebLab, person: ScratchPerson, tmp_path: Path
) -> None:
    # The demo's day first (a brute force on bob.nguyen, a spray over the demo people), then the
    # person's own failures: all of them name LAB\<sAMAccountName> only.
    day = clampdown(console.config, "ingest", "lab-day", token=console.admin_token)
    assert day.returncode == 0, day.stdout + day.stderr
    events = _dc_failures(tmp_path / "dc.ndjson", person)
    ingested = clampdown(console.config, "ingest", "jsonl", str(events), token=console.admin_token)
    assert ingested.returncode == 0, ingested.stdout + ingested.stderr
    assert "accounts looked up" in ingested.stdout, ingested.stdout

    sign_in(page, console, "analyst")
    page.goto(f"{console.base}/hunting")
    page.get_by_label("Query", exact=True).fill(README_HUNT)
    page.get_by_role("button", name="Run query").click()
    rows = page.get_by_test_id("hunt-table").locator("tbody tr")
    row = rows.filter(has_text=person.upn)
    expect(row).to_have_count(1)
    expect(row.locator("td").last).to_have_text(str(FAILURES))
    bob = rows.filter(has_text="bob.nguyen@lab.example.test")
    expect(bob.locator("td").last).to_have_text("26")  # 25 brute-force failures and the spray's one
    assert "" not in rows.locator("td:nth-child(2)").all_inner_texts()  # no failure without its UPN
    row.get_by_role("checkbox").check()
    page.get_by_label("Action to take").select_option("ad.disable_user")
    if folder := os.environ.get("CLAMPDOWN_SCREENSHOTS"):
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / "hunting-by-upn.png"), full_page=True)

    # The row's UPN reaches the person in each provider.
    for action, title, landed in (
        ("ad.disable_user", "Disable user in Active Directory", lambda: web_lab.ad_disabled(person.ad_dn)),
        (
            "entra.suspend_user",
            "Suspend user in Entra ID",
            lambda: not _entra_enabled(web_lab, person.entra_id),
        ),
        (
            "okta.suspend_user",
            "Suspend user in Okta",
            lambda: web_lab.okta_status(person.okta_id) == "SUSPENDED",
        ),
    ):
        page.get_by_label("Action to take").select_option(action)
        page.get_by_role("button", name="Take action on 1").click()
        confirm(page, "brute force, INC-19", f"{title}: 1 account")
        eventually(landed)
