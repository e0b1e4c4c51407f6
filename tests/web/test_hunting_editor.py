"""The hunting editor in Chromium: completion offers the columns of the table being typed, the
server's error is underlined where it is, `render timechart` draws a chart (checked in the DOM and
in a screenshot of it), and SQL results chart on demand. A console with no directories: the
editor needs only the event store. With $CLAMPDOWN_SCREENSHOTS set (scripts/screenshots.sh),
the pictures for docs/console.md are saved there."""

from __future__ import annotations

import base64
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import tomli_w
from playwright.sync_api import Browser, Page, expect

from clampdown.config import HuntingSettings
from clampdown.hunting.store import Batch, EventStore
from tests.api.conftest import start_server
from tests.lab_config import clampdown
from tests.web.conftest import CHROMIUM, Console, _user, sign_in

TIMECHART = (
    "CloudSignInEvents\n| where Timestamp > ago(1d)\n"
    "| summarize SignIns = count() by bin(Timestamp, 1h), ActionType\n| render timechart"
)
# The chart's series colours (web-src/charts.js PALETTE): blue and red.
SERIES_COLOURS = [(0x25, 0x63, 0xEB), (0xDC, 0x26, 0x26)]


@pytest.fixture(scope="module")
def hunt_console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """`clampdown serve` on SQLite with no directories, an analyst, and six hours of sign-ins."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"Chromium is not installed at {CHROMIUM}")
    home = tmp_path_factory.mktemp("hunt-console")
    config = home / "clampdown.toml"
    settings = {
        "database": {"url": f"sqlite:///{home / 'clampdown.db'}"},
        "server": {"embedded_worker": False},
    }
    config.write_text(tomli_w.dumps(settings), encoding="utf-8")
    upgraded = clampdown(config, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    token = _user(config, "analyst", "Security Reader")
    store = EventStore(home / "clampdown.events.duckdb", HuntingSettings())
    store.initialize()
    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    rows = [
        {
            "Timestamp": now - timedelta(hours=hour, minutes=n),
            "Provider": "okta",
            "ActionType": "LogonFailed" if n % 3 else "LogonSuccess",
            "AccountUpn": f"user{n % 4}@lab.example.test",
            "IPAddress": "203.0.113.66",
            "Source": "okta",
            "ReportId": f"r-{hour}-{n}",
        }
        for hour in range(6)
        for n in range(2 + 3 * (hour % 3))  # a spray's sawtooth: 2, 5, 8 sign-ins an hour
    ]
    store.append(Batch(rows={"CloudSignInEvents": rows}, positions={}))
    proc, base = start_server(config)
    yield Console(base, config, token, token)
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def _shots() -> Path | None:
    folder = os.environ.get("CLAMPDOWN_SCREENSHOTS")
    return Path(folder) if folder else None


def _open(page: Page, console: Console) -> None:
    sign_in(page, console, "analyst")
    page.goto(f"{console.base}/hunting")
    expect(page.get_by_test_id("hunt-editor")).to_be_visible()


def _type(page: Page, text: str) -> None:
    """Replace the editor's text by typing, as a person would (completion reacts to typing)."""
    editor = page.get_by_role("textbox", name="Query")
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    for number, line in enumerate(text.split("\n")):
        if number:
            page.keyboard.press("Escape")  # else Enter takes the completion offered for the word before
            page.keyboard.press("Enter")
        page.keyboard.type(line)


def test_completion_offers_the_columns_of_the_table_being_typed(page: Page, hunt_console: Console) -> None:
    _open(page, hunt_console)
    # The text area gave way to the editor, which the label names.
    expect(page.locator("textarea#hunt-query")).to_have_count(0)

    _type(page, "IdentityLogonEvents\n| where Pro")
    options = page.locator(".cm-tooltip-autocomplete li")
    expect(options.filter(has_text="Protocol")).to_be_visible()
    # KQL highlighting: the table's name as a table (the editor's styles apply under the page's CSP).
    table = page.locator(".cm-content span", has_text="IdentityLogonEvents").first
    expect(table).to_have_css("color", "rgb(15, 118, 110)")
    if folder := _shots():
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / "hunting-completion.png"))
    # Provider is a column of CloudSignInEvents and IdentityInfo, not of the table being typed.
    expect(options.filter(has_text="Provider")).to_have_count(0)
    page.wait_for_timeout(150)  # CodeMirror ignores an Enter in the popup's first 75 ms
    page.keyboard.press("Enter")
    expect(page.locator(".cm-line").nth(1)).to_have_text("| where Protocol")

    # A table name at the start, and the same in SQL: the columns of the table the query reads.
    _type(page, "CloudSign")
    expect(options.filter(has_text="CloudSignInEvents")).to_have_count(1)
    page.keyboard.press("Escape")
    _type(page, "SELECT AccountUpn FROM CloudSignInEvents WHERE Risk")
    expect(options.filter(has_text="RiskLevelDuringSignIn")).to_have_count(1)
    expect(options.filter(has_text="Protocol")).to_have_count(0)
    # SQL keywords are highlighted: the language followed the text to SQL.
    expect(page.locator(".cm-content span", has_text="SELECT").first).to_have_css(
        "color", "rgb(124, 58, 237)"
    )


def test_the_servers_error_is_underlined_where_it_is(page: Page, hunt_console: Console) -> None:
    _open(page, hunt_console)
    _type(page, "CloudSignInEvents\n| where Nope == 1")
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")  # runs the query from the keyboard
    expect(page.locator("#hunt-error")).to_contain_text("line 2, column 9")
    underlined = page.locator(".cm-lintRange-error")
    expect(underlined).to_have_count(1)
    expect(underlined).to_have_text("Nope")
    # Editing the text takes the stale underline away.
    page.keyboard.type(" ")
    expect(underlined).to_have_count(0)

    # As one types, the server's check underlines a mistake before anything runs.
    _type(page, "CloudSignInEvents\n| summarize n = count() by\n| take 5")
    page.keyboard.press("Escape")
    expect(page.locator(".cm-lintRange-error")).to_have_text("|")
    expect(page.locator("#hunt-error")).to_be_empty()
    page.locator(".cm-lintRange-error").hover()
    expect(page.locator(".cm-tooltip-lint")).to_contain_text("KQL syntax error")

    _type(page, "CloudSignInEvents\n| render radarchart")
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Run query").click()
    expect(page.locator("#hunt-error")).to_contain_text("render radarchart is not supported here")
    expect(page.locator(".cm-lintRange-error")).to_have_text("radarchart")


def _coloured_pixels(page: Page, png: bytes) -> list[int]:
    """How many pixels of the PNG are (nearly) each series colour, counted by the browser."""
    data = "data:image/png;base64," + base64.b64encode(png).decode()
    counted: list[int] = page.evaluate(
        """async ([data, colours]) => {
          const image = new Image();
          image.src = data;
          await image.decode();
          const canvas = document.createElement("canvas");
          canvas.width = image.width; canvas.height = image.height;
          const g = canvas.getContext("2d");
          g.drawImage(image, 0, 0);
          const px = g.getImageData(0, 0, image.width, image.height).data;
          return colours.map(([r, gr, b]) => {
            let n = 0;
            for (let i = 0; i < px.length; i += 4) {
              const near = (k, v) => Math.abs(px[i + k] - v) < 40;
              if (near(0, r) && near(1, gr) && near(2, b)) n++;
            }
            return n;
          });
        }""",
        [data, SERIES_COLOURS],
    )
    return counted


def test_render_timechart_draws_a_chart(page: Page, hunt_console: Console) -> None:
    _open(page, hunt_console)
    _type(page, TIMECHART)
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")
    chart = page.get_by_test_id("hunt-chart")
    expect(chart).to_be_visible()
    expect(chart).to_have_attribute("data-chart-kind", "timechart")
    # Two series (LogonFailed, LogonSuccess), one point per hour each; six hours of rows.
    expect(chart).to_have_attribute("data-series", "2")
    points = int(chart.get_attribute("data-points") or 0)
    assert 10 <= points <= 14, points
    expect(page.locator("#hunt-chart-on")).to_be_checked()
    expect(page.locator("#hunt-chart-x")).to_have_value("Timestamp")
    expect(page.locator("#hunt-chart-y")).to_have_value("SignIns")
    expect(page.locator("#hunt-chart canvas")).to_have_attribute(
        "aria-label", "timechart: SignIns by Timestamp and ActionType"
    )
    # The screenshot shows both series' lines, in their colours.
    picture = chart.screenshot()
    blue, red = _coloured_pixels(page, picture)
    assert blue > 200 and red > 200, (blue, red)
    if folder := _shots():
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / "hunting-timechart.png"), full_page=True)

    # Without the render clause, no chart until one is asked for.
    _type(page, "SELECT ActionType, count(*) AS SignIns FROM CloudSignInEvents GROUP BY 1 ORDER BY 1")
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#hunt-meta")).to_contain_text("2 rows")
    expect(chart).to_be_hidden()
    page.get_by_label("Chart", exact=True).check()
    page.get_by_label("Chart kind").select_option("columnchart")
    expect(chart).to_be_visible()
    expect(chart).to_have_attribute("data-chart-kind", "columnchart")
    expect(page.locator("#hunt-chart-x")).to_have_value("ActionType")
    expect(chart).to_have_attribute("data-points", "2")
    blue, _ = _coloured_pixels(page, chart.screenshot())
    assert blue > 1000, blue

    # kind = stacked100: each column's series add up to 100 (two columns: 200 in all).
    _type(
        page,
        "CloudSignInEvents | summarize n = count() by ActionType, AccountUpn\n"
        "| render columnchart with (kind = stacked100)",
    )
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Enter")
    expect(chart).to_have_attribute("data-chart-kind", "columnchart")
    expect(chart).to_have_attribute("data-series", "4")
    expect(chart).to_have_attribute("data-y-sum", "200")


def test_without_the_bundle_the_text_area_still_runs_queries(page: Page, hunt_console: Console) -> None:
    page.route("**/static/dist/hunting-editor.js", lambda route: route.abort())
    sign_in(page, hunt_console, "analyst")
    page.goto(f"{hunt_console.base}/hunting")
    area = page.get_by_label("Query", exact=True)
    expect(area).to_be_visible()
    area.fill("CloudSignInEvents | summarize n = count()")
    area.press("Control+Enter")
    expect(page.get_by_test_id("hunt-table").locator("tbody tr")).to_have_count(1)


def test_a_timechart_reads_times_as_utc_wherever_the_browser_is(
    browser: Browser, hunt_console: Console
) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, timezone_id="Asia/Kolkata")
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        _open(page, hunt_console)
        _type(page, TIMECHART)
        page.keyboard.press("Escape")
        page.keyboard.press("Control+Enter")
        chart = page.get_by_test_id("hunt-chart")
        expect(chart).to_have_attribute("data-chart-kind", "timechart")
        # The rows' bins are UTC (without an offset); the chart's axis says the same hours, not
        # five and a half hours off.
        cells = page.get_by_test_id("hunt-table").locator("tbody tr td:nth-child(2)").all_inner_texts()
        hours = sorted(c[:16].replace("T", " ") for c in cells)
        expect(chart).to_have_attribute("data-x-from", hours[0])
        expect(chart).to_have_attribute("data-x-to", hours[-1])
    finally:
        context.close()
