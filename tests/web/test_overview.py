"""The overview, the console's home, in Chromium: every number on it is the number of rows the
action center (or the containments list) shows when its link is followed. Actions come from each
face (the API as the user page would, a hunting bulk, `clampdown contain --incident` and `act`, a
detection rule's batch), some complete, some fail, one waits for approval. With
$CLAMPDOWN_SCREENSHOTS set (scripts/screenshots.sh), the overview's picture for docs/console.md
is saved there."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy
import tomli_w
from playwright.sync_api import Page, expect

from clampdown.db.tables import actions
from tests.api.conftest import start_server
from tests.lab_config import clampdown, memory_provider
from tests.web.conftest import CHROMIUM, Console, _user, sign_in
from tests.web.test_accessibility import audit

LINK = "https://tickets.example/browse/{incident}"


@pytest.fixture(scope="module")
def overview_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """`clampdown serve` on SQLite with the embedded worker and memory directories for AD, Entra
    ID and Okta, incidents linked to a ticket system."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM}")
    home = tmp_path_factory.mktemp("overview-console")
    config = home / "clampdown.toml"
    settings = {
        "database": {"url": f"sqlite:///{home / 'clampdown.db'}"},
        "server": {"embedded_worker": True},
        "engine": {"poll_interval_seconds": 0.05, "backoff_base_seconds": 0.05, "max_attempts": 2},
        "console": {"incident_link": LINK},
        "providers": {p: memory_provider(p, home / f"{p}.json") for p in ("ad", "entra", "okta")},
    }
    config.write_text(tomli_w.dumps(settings), encoding="utf-8")
    upgraded = clampdown(config, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    token = _user(config, "analyst", "Global Administrator")
    proc, base = start_server(config)
    yield Console(base, config, token, token)
    proc.terminate()
    proc.wait(15)


def _settled(console: Console) -> None:
    """Until no action is queued or running (the embedded worker ran them all)."""
    headers = {"Authorization": f"Bearer {console.admin_token}"}
    deadline = time.monotonic() + 60
    while True:
        page = httpx.get(f"{console.base}/api/v1/actions", headers=headers, timeout=30,
                         params=[("status", "queued"), ("status", "running")])  # fmt: skip
        if not page.json()["items"]:
            return
        assert time.monotonic() < deadline, page.text
        time.sleep(0.3)


def _rule_fired(console: Console, rule: str, targets: list[str]) -> None:
    """A detection rule's batch, as the rule scheduler writes it (completed since)."""
    url = str(json.loads(json.dumps(_database_url(console.config))))
    now = datetime.now(UTC) - timedelta(minutes=5)
    rows = [{
        "type": "okta.suspend_user", "provider": "okta", "target": t, "requested_by": "analyst",
        "reason": f"detection rule '{rule}'", "status": "completed", "attempts": 1, "requested_at": now,
        "available_at": now, "finished_at": now, "history": [], "approval_rules": [], "instance": "okta",
        "source": "rule", "batch_id": f"rule-{rule}", "result": {"changed": True, "message": "suspended"},
    } for t in targets]  # fmt: skip
    engine = sqlalchemy.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.insert(actions), rows)
    engine.dispose()


def _database_url(config: Path) -> str:
    import tomllib

    return str(tomllib.loads(config.read_text())["database"]["url"])


def _seed(console: Console) -> None:
    headers = {"Authorization": f"Bearer {console.admin_token}"}
    api = httpx.Client(base_url=console.base, headers=headers, timeout=30)
    one = {"type": "okta.suspend_user", "reason": "phishing", "incident": "INC-42"}
    for target, source in (("alice", "user_page"), ("bob", "side_panel")):
        assert (
            api.post("/api/v1/actions", json={**one, "target": target, "source": source}).status_code == 202
        )
    waiting = {**one, "target": "frank", "request_approval": True}
    assert api.post("/api/v1/actions", json=waiting).json()["status"] == "awaiting_approval"
    bulk = {"type": "ad.disable_user", "targets": ["missing-1", "missing-2", "carol"], "reason": "spray",
            "source": "hunting", "incident": "INC-43"}  # fmt: skip
    assert api.post("/api/v1/actions/bulk", json=bulk).status_code == 202
    contained = clampdown(console.config, "contain", "dan", "-r", "token theft", "--incident", "INC-44",
                          "--wait", token=console.admin_token)  # fmt: skip
    assert contained.returncode == 0, contained.stderr
    acted = clampdown(console.config, "act", "entra.revoke_sessions", "erin", "-r", "INC-45",
                      "--incident", "INC-45", "--wait", token=console.admin_token)  # fmt: skip
    assert acted.returncode == 0, acted.stderr
    _settled(console)
    _rule_fired(console, "Password spray", ["gina", "hank"])
    listed = clampdown(console.config, "actions", "list", "--source", "playbook", "--incident", "INC-44",
                       "--json", token=console.admin_token)  # fmt: skip
    steps = json.loads(listed.stdout)
    assert steps and {(a["source"], a["incident"], a["status"]) for a in steps} == {
        ("playbook", "INC-44", "completed")
    }  # fmt: skip


def test_every_number_of_the_overview_is_what_its_link_shows(page: Page, overview_console: Console) -> None:
    console = overview_console
    _seed(console)
    sign_in(page, console, "analyst")
    page.goto(f"{console.base}/")
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="Overview")).to_have_attribute("aria-current", "page")
    overview = page.get_by_test_id("overview")
    day = overview.get_by_test_id("actions-24h")
    expected = {"completed": None, "failed": 2, "awaiting_approval": 1, "queued": 0, "running": 0}
    for status, count in expected.items():
        shown = int(day.locator(f'[data-status="{status}"]').get_attribute("data-count") or -1)
        assert (count is None and shown > 0) or shown == count, (status, shown)
    expect(overview.get_by_test_id("rules-total")).to_have_attribute("data-count", "2")
    expect(overview.get_by_test_id("active-containments")).to_have_text("1")
    expect(overview.get_by_test_id("ttc-count")).to_contain_text("1 containment")
    assert page.get_by_test_id("ttc-median").inner_text() != "—"
    expect(overview.get_by_test_id("health")).not_to_contain_text("failing")
    audit(page)  # labelled, named links, contrast, one h1, the skip link first
    if folder := os.environ.get("CLAMPDOWN_SCREENSHOTS"):
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(Path(folder) / "overview.png"), full_page=True)

    numbers = overview.locator("a[data-count]")
    links = [(a.get_attribute("href") or "", int(a.get_attribute("data-count") or -1))
             for a in numbers.all()]  # fmt: skip
    assert len(links) >= 2 * 7 + 3  # two windows of statuses and totals, a failure reason, rules, a firing
    for href, count in links:
        page.goto(f"{console.base}{href}")
        rows = page.get_by_test_id("actions-table").locator("tbody tr[data-action-id]")
        expect(rows, href).to_have_count(count)  # the same set, row for row
    href = overview_href(page, console, "active-containments")
    page.goto(f"{console.base}{href}")
    expect(page.get_by_test_id("containments-table").locator("tbody tr[data-containment-id]")).to_have_count(
        1
    )

    # The action center shows where each came from and links its incident to the ticket system.
    page.goto(f"{console.base}/actions?tab=all&incident=INC-42&source=user_page")
    audit(page)
    row = page.get_by_test_id("actions-table").locator("tbody tr[data-action-id]")
    expect(row).to_have_count(1)
    expect(row.get_by_test_id("source")).to_have_text("User page")
    link = row.get_by_test_id("incident").get_by_role("link", name="INC-42")
    expect(link).to_have_attribute("href", "https://tickets.example/browse/INC-42")
    if folder := os.environ.get("CLAMPDOWN_SCREENSHOTS"):
        page.goto(f"{console.base}/actions?tab=all")  # every action, where it came from, its incident
        page.wait_for_load_state("networkidle")
        page.screenshot(path=str(Path(folder) / "action-center-source.png"))
        page.go_back()
    row.get_by_role("button", name="Details of action").click()
    expect(page.locator("#drawer").get_by_test_id("detail-source")).to_have_text("User page")
    expect(page.locator("#drawer").get_by_test_id("detail-incident")).to_contain_text("INC-42")


def overview_href(page: Page, console: Console, test_id: str) -> str:
    page.goto(f"{console.base}/")
    return page.get_by_test_id(test_id).get_attribute("href") or ""
